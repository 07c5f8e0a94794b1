from .magnet import MagNet
from .training_modules import TRAINING_ONLY_MODULES, inference_model_cfg

__all__ = ['MagNet', 'TRAINING_ONLY_MODULES', 'inference_model_cfg']
