"""How the referring segmentation scores are counted: one sample's
foreground intersection and union, the official scores (oIoU, mIoU,
Pr@t) from those counts, and the names of the expression-length buckets.
:class:`~projects.magnet.evaluation.RefSegMetric` (the mmengine metric)
and the visualiser share them."""
from __future__ import annotations

import numbers
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import MetricConfigError

__all__ = ['refseg_scores', 'length_bucket_names', 'intersection_union']


def intersection_union(pred, gt, ignore_index: int = 255) -> Tuple[int, int]:
    """Foreground intersection and union of one sample, as the metric
    counts them (also the visualizer's per-sample IoU).

    Predicted foreground is ``pred == 1``, GT foreground ``gt == 1``; GT
    pixels equal to ``ignore_index`` count for neither.

    Args:
        pred: (H, W) prediction, numpy array or tensor.
        gt: (H, W) ground truth of the same kind and size.
        ignore_index (int): ignored GT value.

    Returns:
        tuple[int, int]: (I, U) in pixels.
    """
    pred_fg = (pred == 1) & (gt != ignore_index)
    gt_fg = gt == 1
    return int((pred_fg & gt_fg).sum()), int((pred_fg | gt_fg).sum())


def refseg_scores(intersections: np.ndarray,
                  unions: np.ndarray,
                  iou_thrs: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9)
                  ) -> Dict[str, float]:
    """Official scores from per-sentence intersections and unions.

    Args:
        intersections (np.ndarray): (S,) foreground intersection per sentence.
        unions (np.ndarray): (S,) foreground union per sentence.
        iou_thrs (Sequence[float]): thresholds of the precision scores.

    Returns:
        dict: ``oIoU`` = ΣI / ΣU × 100; ``mIoU`` = mean(I / U) × 100 with
        IoU = 0 when U = 0 (empty prediction and empty GT score 0, as in the
        official code); ``Pr@t`` = % of sentences with IoU >= t.
    """
    inter = np.asarray(intersections, dtype=np.int64)
    union = np.asarray(unions, dtype=np.int64)
    iou = np.divide(
        inter, union, out=np.zeros(len(inter)), where=union > 0)
    total_union = union.sum()
    scores = OrderedDict(
        oIoU=float(inter.sum() / total_union * 100) if total_union else 0.,
        mIoU=float(iou.mean() * 100) if len(iou) else 0.)
    for t in iou_thrs:
        scores[f'Pr@{t:g}'] = float((iou >= t).mean() * 100) \
            if len(iou) else 0.
    return scores


def _span_name(lo: int, hi: Optional[int]) -> str:
    """Name of the word-count bucket ``[lo, hi)`` (``hi=None``: open)."""
    if hi is None:
        return f'len{lo}+'
    return f'len{lo}' if hi - lo == 1 else f'len{lo}-{hi - 1}'


def length_bucket_names(edges: Sequence[int]) -> List[str]:
    """Names of the expression-length buckets of ``RefSegMetric``.

    ``edges`` (strictly increasing ints >= 0) are the first word counts of
    the buckets ``[e0, e1)``, ``[e1, e2)``, ..., ``[e_last, inf)``, plus
    ``[0, e0)`` when ``e0 > 0``. A bucket ``[a, b)`` is named
    ``'len{a}-{b-1}'`` (``'len{a}'`` when it holds a single count), the last
    ``'len{e_last}+'``: ``(1, 4, 7, 10)`` gives ``['len0', 'len1-3',
    'len4-6', 'len7-9', 'len10+']``.
    """
    try:
        edges = list(edges)
    except TypeError:  # a scalar
        raise MetricConfigError(
            'length_buckets must be strictly increasing ints '
            f'>= 0, got {edges!r}') from None
    if not edges or any(
            not isinstance(e, numbers.Integral) or isinstance(e, bool)
            or e < 0 for e in edges) or any(
                a >= b for a, b in zip(edges, edges[1:])):
        raise MetricConfigError(
            'length_buckets must be strictly increasing ints '
            f'>= 0, got {edges!r}')
    edges = [int(e) for e in edges]
    bounds = ([0] if edges[0] > 0 else []) + edges
    return [
        _span_name(lo, hi)
        for lo, hi in zip(bounds, bounds[1:] + [None])
    ]
