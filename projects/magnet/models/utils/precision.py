"""fp32 islands under mixed precision.

Under ``torch.autocast`` (``--amp``: fp16/bf16 on CUDA, bf16 on the CPU)
matmuls and convolutions run in the low-precision dtype. A few parts of
MagNet must not:

* the language-side arithmetic with the released models' +-10000 additive
  masks (:mod:`..layers.language_fusion`, :mod:`..layers.pwam`): the
  fusion multiplies features by the mask, and 10000 * x in bf16 keeps 3
  significant digits;
* deformable-attention sampling (bilinear weights of sub-pixel offsets);
* the losses (log / exp of logits, sums over many pixels).

:func:`float32_region` marks such a function: inside it autocast is off and
floating-point tensor arguments are cast to fp32; outside autocast it costs
one check. (mmcv 1.x had ``force_fp32`` for this; mmcv 2.x dropped it, and
mmengine has no equivalent, hence this small decorator.)
"""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import torch

__all__ = ['float32_region', 'autocast_active', 'to_float32']

F = TypeVar('F', bound=Callable[..., Any])
_DEVICES = ('cpu', 'cuda')


def autocast_active() -> bool:
    """Whether CPU or CUDA autocast is enabled here."""
    return any(torch.is_autocast_enabled(d) for d in _DEVICES)


def to_float32(obj: Any) -> Any:
    """Cast low-precision floating tensors in ``obj`` (nested tuples,
    lists, dicts) to fp32; everything else unchanged."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and obj.dtype in (torch.float16,
                                                     torch.bfloat16):
            return obj.float()
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_float32(o) for o in obj)
    if isinstance(obj, dict):
        return {k: to_float32(v) for k, v in obj.items()}
    return obj


def float32_region(fn: F) -> F:
    """Run ``fn`` in fp32 when called under autocast (see module doc)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not autocast_active():
            return fn(*args, **kwargs)
        with torch.autocast('cpu', enabled=False), \
                torch.autocast('cuda', enabled=False):
            return fn(*to_float32(args), **to_float32(kwargs))

    return wrapper  # type: ignore[return-value]
