"""Check a converted state dict against the model it is meant for."""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional

import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from .official import ConversionError
from .official_config import infer_model_cfg

#: Weights the released checkpoints hold that no inference output depends on
#: (kept so that checkpoints round-trip and training can use them).
UNUSED_AT_INFERENCE = (
    'backbone.norm0.', 'backbone.norm1.', 'backbone.norm2.',
    'backbone.norm3.', 'backbone.gates.3.', 'text_encoder.fusions.3.',
    'text_encoder.fusions.0.norm.', 'text_encoder.fusions.1.norm.',
    'text_encoder.fusions.2.norm.', 'lang_proj.',
    'decode_head.transformer_decoder.cls_embed.')


def expected_shapes(official_state: Mapping[str, torch.Tensor],
                    model_cfg: Optional[dict] = None) -> Dict[str, tuple]:
    """Parameter/buffer shapes of the model matching ``official_state``."""
    init_default_scope('mmseg')
    cfg = model_cfg or infer_model_cfg(official_state)
    model = MODELS.build(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_converted(converted: Mapping[str, torch.Tensor],
                    expected: Mapping[str, tuple]) -> None:
    """Raise :class:`ConversionError` unless keys and shapes match exactly."""
    problems: List[str] = []
    missing = sorted(set(expected) - set(converted))
    extra = sorted(set(converted) - set(expected))
    wrong = sorted(k for k in set(expected) & set(converted)
                   if tuple(converted[k].shape) != tuple(expected[k]))
    if missing:
        problems.append(f'{len(missing)} model tensors have no source, e.g. '
                        f'{missing[:8]}')
    if extra:
        problems.append(f'{len(extra)} converted tensors fit no model '
                        f'tensor, e.g. {extra[:8]}')
    if wrong:
        problems.append('shape mismatch: ' + ', '.join(
            f'{k} {tuple(converted[k].shape)} vs {expected[k]}'
            for k in wrong[:8]))
    if problems:
        raise ConversionError('conversion incomplete: ' + '; '.join(problems))
