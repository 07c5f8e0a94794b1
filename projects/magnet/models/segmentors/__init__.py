from .magnet import TRAINING_ONLY_MODULES, MagNet, inference_model_cfg

__all__ = ['MagNet', 'TRAINING_ONLY_MODULES', 'inference_model_cfg']
