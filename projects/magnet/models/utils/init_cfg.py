"""Reading ``init_cfg=dict(type='Pretrained', checkpoint=...)``."""
from __future__ import annotations

from typing import Optional

from mmengine.model import BaseModule
from ..errors import ModelConfigError


def pretrained_checkpoint(module: BaseModule) -> Optional[str]:
    """The ``checkpoint`` of a module's ``Pretrained`` init_cfg, or None.

    Raises:
        ValueError: ``init_cfg`` is set but is not a ``Pretrained`` config
            with a ``checkpoint``.
    """
    cfg = module.init_cfg
    if cfg is None:
        return None
    if not isinstance(cfg, dict) or cfg.get('type') != 'Pretrained' or \
            'checkpoint' not in cfg:
        raise ModelConfigError(
            f"{type(module).__name__}: init_cfg must be dict(type="
            f"'Pretrained', checkpoint=...), got {cfg}")
    return cfg['checkpoint']
