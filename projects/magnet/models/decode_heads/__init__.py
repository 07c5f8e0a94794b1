from .magnet_head import MagNetHead

__all__ = ['MagNetHead']
