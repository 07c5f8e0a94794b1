"""The inference graph of a MagNet segmentor as one tensor-in/tensor-out
module, the form ONNX export (and any tracer) takes.

:class:`MagNetExportGraph` wraps a built segmentor (no copy of its weights
or code): the same ``encode`` and ``decode_head.predict_with_no_target``
calls as ``MagNet.encode_decode``, with the text given as tensors instead of
the data samples' metainfo.

Inputs (the names the exported graph uses, :data:`INPUT_NAMES`):

* ``image``: ``(B, 3, H, W)`` float32, the data preprocessor's output (RGB,
  normalised by the config's ``mean`` / ``std``, ``H x W`` the config's test
  size);
* ``input_ids``: ``(B, N)`` int64 token ids (the config's tokenizer, padded
  to its ``max_length`` N);
* ``attention_mask``: ``(B, N)`` int64, 1 for real tokens, 0 for padding.

Outputs (:data:`OUTPUT_NAMES`, plus :data:`NO_TARGET_OUTPUT` for a head
with the no-target decision):

* ``prob``: ``(B, 1, H, W)`` float32 referent probability at the input size
  (``sigmoid`` of ``mask_logits``);
* ``mask_logits``: ``(B, 1, H, W)`` the logits behind it (what the
  segmentor's ``postprocess_result`` resizes to the original image);
* ``no_target_score``: ``(B, )`` probability that the expression refers to
  nothing (gRefCOCO heads only).
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Tuple

import torch
from torch import nn

from ..models.layers.ms_deform_attn import MSDeformAttn

Tensor = torch.Tensor

__all__ = [
    'INPUT_NAMES', 'OUTPUT_NAMES', 'NO_TARGET_OUTPUT', 'MagNetExportGraph',
    'export_core'
]

INPUT_NAMES = ('image', 'input_ids', 'attention_mask')
OUTPUT_NAMES = ('prob', 'mask_logits')
NO_TARGET_OUTPUT = 'no_target_score'


@contextlib.contextmanager
def export_core(model: nn.Module, impl: str = 'grid_sample') -> Iterator[int]:
    """Run every deformable attention of ``model`` on the ``impl`` core
    inside the block (restored on exit); yields how many were switched.

    The ``'grid_sample'`` core is plain ``F.grid_sample`` arithmetic, which
    exporters map to the standard ONNX ``GridSample`` (opset >= 16); the
    default inference core gathers with ``embedding_bag``, which has no
    ONNX form. Both compute the same function (tested equal).
    """
    layers = [m for m in model.modules() if isinstance(m, MSDeformAttn)]
    saved = [m.pytorch_impl for m in layers]
    for m in layers:
        m.pytorch_impl = impl
    try:
        yield len(layers)
    finally:
        for m, s in zip(layers, saved):
            m.pytorch_impl = s


class MagNetExportGraph(nn.Module):
    """``(image, input_ids, attention_mask) -> (prob, mask_logits
    [, no_target_score])`` of a built MagNet segmentor (see the module
    docstring for the shapes).

    Args:
        segmentor (nn.Module): a :class:`~projects.magnet.models.MagNet`
            (an inference build, in eval mode), shared, not copied.
    """

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    @property
    def with_no_target(self) -> bool:
        """Whether the graph also outputs ``no_target_score``."""
        return bool(getattr(self.segmentor, 'predicts_no_target', False))

    @property
    def output_names(self) -> Tuple[str, ...]:
        return OUTPUT_NAMES + ((NO_TARGET_OUTPUT, )
                               if self.with_no_target else ())

    def forward(self, image: Tensor, input_ids: Tensor,
                attention_mask: Tensor) -> Tuple[Tensor, ...]:
        """Args: see the module docstring. Returns: ``(prob, mask_logits)``
        and, with a no-target head, ``no_target_score``."""
        seg = self.segmentor
        feats = seg.encode(image, input_ids, attention_mask)['feats']
        size = tuple(image.shape[-2:])
        logits, score = seg.decode_head.predict_with_no_target(
            feats, [dict(pad_shape=size)], seg.test_cfg)
        if self.with_no_target:
            return logits.sigmoid(), logits, score
        return logits.sigmoid(), logits
