"""Decode the referred object's mask from its REFER/COCO segmentation."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from pycocotools import mask as mask_utils

__all__ = [
    'decode_refer_mask', 'LoadReferringMask', 'LoadImageFromArray',
    'to_three_channels'
]


def _check_rle_size(rle: dict, height: int, width: int, where: str) -> None:
    if 'counts' not in rle or 'size' not in rle:
        raise ValueError(f'{where}: an RLE segmentation needs "counts" and '
                         f'"size", got keys {sorted(rle)}')
    if list(rle['size']) != [height, width]:
        raise ValueError(f'{where}: RLE "size" {list(rle["size"])} differs '
                         f'from the image size [{height}, {width}]')


def decode_refer_mask(segmentation: Any,
                      height: int,
                      width: int,
                      where: str = 'segmentation') -> np.ndarray:
    """Decode a REFER ground-truth mask exactly as the official code does.

    * polygons (a list of coordinate lists/arrays): rasterised with
      ``pycocotools.mask.frPyObjects(seg, height, width)`` + ``decode``, then
      the per-polygon channels are **summed** (as uint8, like the official
      ``np.sum(...).astype(np.uint8)``) and only pixels whose sum is exactly
      1 are foreground: pixels covered by two overlapping polygons of the
      same object are background (official quirk, kept for exact numbers);
    * RLE (a dict, compressed or uncompressed counts, e.g. crowd regions, or
      a list of such dicts): decoded (the same ``== 1`` rule is applied over
      the RLE channels of a list).

    Args:
        segmentation: polygons or RLE as stored in ``instances.json``.
        height (int): image height (``instances.json`` ``images.height``).
        width (int): image width.
        where (str): context for error messages (file / ref / field).

    Returns:
        np.ndarray: uint8 mask of shape (height, width) with values {0, 1}.
    """
    is_seq = isinstance(segmentation, (list, tuple)) and len(segmentation)
    if isinstance(segmentation, dict):
        rles = [segmentation]
    elif is_seq and all(isinstance(s, dict) for s in segmentation):
        rles = list(segmentation)
    elif is_seq:
        rles = None  # polygons
    else:
        raise ValueError(f'{where}: expected polygons or RLE, got '
                         f'{type(segmentation).__name__} '
                         f'({repr(segmentation)[:60]})')
    for rle in rles or []:
        _check_rle_size(rle, height, width, where)
    try:
        if rles is None:
            rles = mask_utils.frPyObjects(list(segmentation), height, width)
        # Uncompressed RLE (list counts, used for COCO crowd regions) ->
        # compressed, which is what ``decode`` takes.
        rles = [
            mask_utils.frPyObjects(r, height, width)
            if isinstance(r['counts'], list) else r for r in rles
        ]
        masks = mask_utils.decode(rles)  # (H, W, N) uint8
    except Exception as e:  # pycocotools raises bare Exception/TypeError
        raise ValueError(f'{where}: cannot decode segmentation '
                         f'({type(e).__name__}: {e})') from e
    if masks.shape[2] == 1:
        return np.ascontiguousarray(masks[..., 0])
    counts = masks.sum(axis=2, dtype=np.uint8)
    return (counts == 1).astype(np.uint8)


@TRANSFORMS.register_module()
class LoadReferringMask(BaseTransform):
    """Decode the referred object's mask into ``gt_seg_map``.

    Required keys: ``segmentation``, ``height``, ``width`` (from
    ``RefCOCODataset``); ``img`` (optional, used to check the size).

    Added keys: ``gt_seg_map`` (np.uint8, (H, W), {0, 1}); ``'gt_seg_map'``
    is appended to ``seg_fields`` so mmseg's ``Resize`` resizes it with
    nearest interpolation.

    The mask is decoded at the size stated in ``instances.json``. If a loaded
    ``img`` has another size a ValueError is raised: load images with
    ``LoadImageFromFile(imdecode_backend='pillow',
    color_type='color_ignore_orientation')`` (the official loader ignores the
    EXIF orientation, as do the annotations).
    """

    def transform(self, results: dict) -> dict:
        height, width = int(results['height']), int(results['width'])
        where = (f'{results.get("img_path", "<image>")} ref_id='
                 f'{results.get("ref_id")} ann_id={results.get("ann_id")}: '
                 '"segmentation"')
        img = results.get('img')
        if img is not None and img.shape[:2] != (height, width):
            raise ValueError(
                f'{where}: the loaded image is {img.shape[:2]} but '
                f'instances.json says ({height}, {width}); was the image '
                'rotated by its EXIF orientation? use color_type='
                '"color_ignore_orientation" in LoadImageFromFile')
        results['gt_seg_map'] = decode_refer_mask(results['segmentation'],
                                                  height, width, where)
        seg_fields = results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in seg_fields:
            seg_fields.append('gt_seg_map')
        return results


def to_three_channels(img: np.ndarray, where: str = 'image') -> np.ndarray:
    """An image array as (H, W, 3) uint8, with a defined rule per layout.

    * (H, W) or (H, W, 1) grayscale: the channel is repeated three times;
    * (H, W, 3): returned unchanged (copied only if not C-contiguous, e.g.
      a ``[..., ::-1]`` view);
    * (H, W, 4) with alpha last (RGBA / BGRA): the alpha channel is
      **dropped**, colours are kept as stored (no compositing onto a
      background) — what PIL's ``Image.convert('RGB')`` does, i.e. what the
      official loader does with an RGBA file.

    The channel order is kept (BGR stays BGR).

    Args:
        img (np.ndarray): uint8 image, (H, W), (H, W, 1), (H, W, 3) or
            (H, W, 4).
        where (str): what the array is, for error messages (e.g. its path).

    Returns:
        np.ndarray: (H, W, 3) uint8.

    Raises:
        TypeError: ``img`` is not a numpy array.
        ValueError: another dtype than uint8, another layout, or an empty
            image.
    """
    if not isinstance(img, np.ndarray):
        raise TypeError(f'{where}: expected a numpy array, got '
                        f'{type(img).__name__}')
    if img.dtype != np.uint8:
        raise ValueError(f'{where}: expected a uint8 image, got dtype '
                         f'{img.dtype} (convert it, e.g. '
                         '(img * 255).round().astype(np.uint8) for floats '
                         'in [0, 1])')
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f'{where}: expected an image of shape (H, W), '
                         f'(H, W, 1), (H, W, 3) or (H, W, 4), got '
                         f'{img.shape}')
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f'{where}: the image is empty ({img.shape})')
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.shape[2] == 4:
        img = img[..., :3]
    return np.ascontiguousarray(img)


@TRANSFORMS.register_module()
class LoadImageFromArray(BaseTransform):
    """Take an in-memory image from ``results['img']`` (inference).

    The in-memory counterpart of ``LoadImageFromFile`` in the test pipeline:
    the image is made (H, W, 3) uint8 by :func:`to_three_channels`
    (grayscale repeated, alpha dropped), in the channel order of the
    pipeline (**BGR**, like ``LoadImageFromFile``; the data preprocessor's
    ``bgr_to_rgb`` turns it into RGB).

    Required keys: ``img`` (np.uint8, (H, W[, C])).
    Optional keys: ``img_path`` (kept, e.g. the file the array came from;
    None otherwise).
    Modified keys: ``img``. Added keys: ``img_path``, ``img_shape``,
    ``ori_shape``.

    Args:
        to_float32 (bool): convert the image to float32. Defaults to False.
    """

    def __init__(self, to_float32: bool = False) -> None:
        self.to_float32 = to_float32

    def transform(self, results: dict) -> Optional[dict]:
        img_path = results.get('img_path')
        if 'img' not in results:
            raise KeyError('LoadImageFromArray needs "img" (an image '
                           'array) in the results')
        img = to_three_channels(results['img'], img_path or 'image array')
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_path'] = img_path
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(to_float32={self.to_float32})'
