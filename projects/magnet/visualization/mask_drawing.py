"""Drawing helpers: mask blending and outlines, per-sample IoU, the
expression of a sample, the expression colours."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np

from ..evaluation.refseg_scores import intersection_union
from ..utils.errors import InvalidInputError

__all__ = [
    'Color', 'EXPRESSION_COLORS', 'TEXT_KEYS', 'blend_mask', 'mask_outline',
    'sample_iou', 'expression_of', 'NO_TARGET_LABEL', 'expression_labels'
]

Color = Tuple[int, int, int]

#: Colours (RGB) of the expressions in :meth:`draw_expression_masks`, in
#: order; chosen to stay distinct from each other on photos.
EXPRESSION_COLORS: Tuple[Color, ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25),
    (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
    (210, 245, 60), (0, 128, 128), (170, 110, 40), (128, 0, 0))

#: Metainfo keys that may hold the expression, in order of preference.
TEXT_KEYS = ('text', 'sentence', 'expression', 'raw')


def blend_mask(image: np.ndarray, mask: np.ndarray, color: Sequence[int],
               alpha: float) -> np.ndarray:
    """Paint ``mask`` over ``image`` in ``color`` with opacity ``alpha``.

    Masked pixels become ``round((1 - alpha) * pixel + alpha * color)``
    (cv2's ``addWeighted``); the others are unchanged. The same arithmetic
    as mmengine's ``Visualizer.draw_binary_masks``, which is not called
    here: it goes through a matplotlib render of the whole canvas (4.1 s
    instead of 0.05 s for one mask on a 2000x2000 image), and the demo
    blends one mask per expression on the full-size image.

    Args:
        image (np.ndarray): (H, W, 3) uint8.
        mask (np.ndarray): (H, W) bool (or {0, 1}).
        color: 3 values in [0, 255], in the image's channel order.
        alpha (float): opacity in [0, 1].

    Returns:
        np.ndarray: a new (H, W, 3) uint8 image.
    """
    mask = np.asarray(mask).astype(bool)
    if mask.shape != image.shape[:2]:
        raise InvalidInputError(
            f'mask {mask.shape} and image {image.shape[:2]} '
            'differ in size')
    out = image.copy()
    if mask.any():
        px = out[mask]  # (K, 3)
        out[mask] = cv2.addWeighted(px, 1.0 - alpha,
                                    np.full_like(px, color), alpha, 0)
    return out


def mask_outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels of ``mask`` that touch the background (4-neighbourhood),
    ``width`` pixels deep: the mask minus its erosion (cv2, cross kernel,
    outside the image counts as background).

    Args:
        mask (np.ndarray): (H, W) bool.
        width (int): outline thickness in pixels.

    Returns:
        np.ndarray: (H, W) bool.
    """
    mask = np.asarray(mask).astype(bool)
    inner = cv2.erode(mask.astype(np.uint8),
                      cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)),
                      iterations=max(1, width),
                      borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & ~inner.astype(bool)


def sample_iou(pred: np.ndarray, gt: np.ndarray,
               ignore_index: int = 255) -> float:
    """Foreground IoU of one sample: ``RefSegMetric``'s own I and U
    (:func:`~projects.magnet.evaluation.refseg_scores.intersection_union`).

    Args:
        pred (np.ndarray): (H, W) prediction, foreground = 1.
        gt (np.ndarray): (H, W) ground truth, foreground = 1; pixels equal to
            ``ignore_index`` are left out.
        ignore_index (int): ignored GT value.

    Returns:
        float: I / U in [0, 1]; 0 when the union is empty (the official
        rule).
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise InvalidInputError(f'prediction {pred.shape} and ground truth '
                                f'{gt.shape} differ in size')
    inter, union = intersection_union(pred, gt, ignore_index)
    return inter / union if union else 0.0


#: What a drawing says for an expression predicted to refer to nothing.
NO_TARGET_LABEL = 'no target'


def expression_labels(expressions: Sequence[str],
                      no_target: Optional[Sequence[bool]] = None
                      ) -> List[str]:
    """The expressions as a legend writes them: ``'<text> (no target)'``
    where ``no_target`` (the model's ``pred_no_target``) is True.

    Raises:
        InvalidInputError: ``no_target`` of another length.
    """
    expressions = list(expressions)
    if no_target is None:
        return expressions
    flags = [bool(f) for f in np.asarray(no_target).reshape(-1)]
    if len(flags) != len(expressions):
        raise InvalidInputError(f'{len(flags)} no-target flags but '
                                f'{len(expressions)} expressions')
    return [f'{t} ({NO_TARGET_LABEL})' if f else t
            for t, f in zip(expressions, flags)]


def expression_of(metainfo: dict) -> str:
    """The referring expression stored in a data sample's metainfo.

    ``text`` (``RefCOCODataset`` evaluation items, ``SampleSentence``, the
    inference API), else ``sentence``/``expression``/``raw``, else the
    ``raw`` strings of ``sentences`` joined by ``' | '``; ``''`` if none.
    """
    for key in TEXT_KEYS:
        value = metainfo.get(key)
        if isinstance(value, str):
            return value
    sentences = metainfo.get('sentences')
    if isinstance(sentences, (list, tuple)):
        raws = [s.get('raw', '') if isinstance(s, dict) else str(s)
                for s in sentences]
        return ' | '.join(r for r in raws if r)
    return ''


def to_numpy_mask(data) -> np.ndarray:
    """(1, H, W) / (H, W) tensor or array -> (H, W) int64 array."""
    arr = data.detach().cpu().numpy() if hasattr(data, 'detach') else \
        np.asarray(data)
    if arr.ndim == 3:
        arr = arr[0]
    return arr.astype(np.int64)


def upscale_nearest(arr: np.ndarray, factor: int) -> np.ndarray:
    """(H, W[, C]) uint8 or bool enlarged ``factor`` times (nearest:
    ``mmcv.imrescale``; a bool mask goes through uint8, which cv2 takes)."""
    if factor == 1:
        return arr
    out = mmcv.imrescale(arr.astype(np.uint8) if arr.dtype == bool else arr,
                         factor, interpolation='nearest')
    return out.astype(bool) if arr.dtype == bool else out
