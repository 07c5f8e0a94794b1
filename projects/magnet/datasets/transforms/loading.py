"""Loading the referred object's mask from its REFER/COCO segmentation
(:class:`LoadReferringMask`); images: :mod:`.image_loading`."""
from __future__ import annotations

from typing import Any

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from pycocotools import mask as mask_utils

__all__ = ['decode_refer_mask', 'LoadReferringMask']


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
