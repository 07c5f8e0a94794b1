"""Checkpoint converters (official MagNet -> this project)."""
from .official import (ConversionError, convert_official_checkpoint,
                       unwrap_official)
from .official_config import infer_model_cfg, model_cfg_from_official_args

__all__ = [
    'ConversionError', 'convert_official_checkpoint', 'unwrap_official',
    'infer_model_cfg', 'model_cfg_from_official_args'
]
