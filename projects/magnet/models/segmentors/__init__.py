from .magnet import MagNet

__all__ = ['MagNet']
