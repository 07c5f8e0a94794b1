"""The segmentor's side of the no-target decision (generalised RIS).

The decode head gives each sample a no-target probability (see
:mod:`projects.magnet.models.decode_heads.no_target`); here it becomes the
data-sample fields every consumer reads (the GRES metric, the inference API,
the visualiser).
"""
from __future__ import annotations

import torch
from mmengine.structures import PixelData
from mmseg.utils import SampleList

from ..errors import ModelConfigError

__all__ = ['apply_no_target', 'check_whole_mode']


def check_whole_mode(test_cfg: dict) -> None:
    """The no-target decision is one per sample: whole-image inference
    only (a sliding window would give one per crop)."""
    mode = test_cfg.get('mode', 'whole')
    if mode != 'whole':
        raise ModelConfigError(
            f'test_cfg.mode={mode!r}: a head that predicts no-target needs '
            "test_cfg.mode='whole' (one decision per image and expression)")


def apply_no_target(samples: SampleList, scores: torch.Tensor,
                    threshold: float) -> SampleList:
    """Write the decision into the predicted samples (in place).

    Args:
        samples (list[SegDataSample]): with ``pred_sem_seg`` (1, H, W).
        scores (Tensor): ``(B, )`` no-target probabilities, one per sample.
        threshold (float): a sample with ``score > threshold`` is predicted
            to refer to nothing.

    Returns:
        list[SegDataSample]: the same samples, each with ``pred_no_target``
        (bool), ``no_target_score`` (float) and, where ``pred_no_target``,
        ``pred_sem_seg`` all 0 (``seg_logits`` is left as it is).
    """
    if len(samples) != len(scores):
        raise ValueError(f'{len(scores)} no-target scores for '
                         f'{len(samples)} samples')
    for sample, score in zip(samples, scores.tolist()):
        empty = score > threshold
        sample.set_data(dict(pred_no_target=bool(empty),
                             no_target_score=float(score)))
        if empty:
            sample.pred_sem_seg = PixelData(
                data=torch.zeros_like(sample.pred_sem_seg.data))
    return samples
