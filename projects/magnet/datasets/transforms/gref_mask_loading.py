"""The gRefCOCO ground truth: the union of the referred objects' masks
(:class:`LoadGRefMask`); RefCOCO's single-object mask:
:mod:`.mask_loading`."""
from __future__ import annotations

import logging
from typing import Any, List, Optional, Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS
from pycocotools import mask as mask_utils

from ...utils.errors import MissingKeyError
# the RLE checks and the coordinate bound of RefCOCO's decoder (one rule
# for both datasets)
from .mask_loading import (SegmentationError, _check_rle,
                           check_polygon_range, polygon_array)

__all__ = ['decode_gref_mask', 'LoadGRefMask']

#: (where, polygon index) of the dropped polygons already logged
_LOGGED_DROPS: set = set()


def _valid_polygons(polys: Sequence[Any], height: int, width: int,
                    where: str) -> List[Any]:
    """The polygons of one object the official loader keeps: those with an
    even number of coordinates and at least 3 points.

    The others are dropped (the official loader drops them silently; here
    each is logged once per ``where`` and polygon index). A polygon that is
    not a flat list of finite numbers, or lies more than
    :data:`COORD_MARGIN` image sizes outside the image, raises (pycocotools
    would crash or allocate without bound).
    """
    kept = []
    for i, poly in enumerate(polys):
        head = f'{where}: cannot decode segmentation: polygon {i}'
        arr = polygon_array(poly, head)
        n = arr.size
        if n % 2 or n < 6:
            if (where, i) not in _LOGGED_DROPS:
                _LOGGED_DROPS.add((where, i))
                why = 'an odd number' if n % 2 else 'fewer than 3 points'
                print_log(
                    f'{where}: polygon {i} has {n} coordinates ({why}): '
                    'dropped, as the official gRefCOCO loader does',
                    logger='current', level=logging.WARNING)
            continue
        check_polygon_range(arr, head, height, width)
        kept.append(poly)
    return kept


def _object_mask(seg: Any, height: int, width: int,
                 where: str) -> np.ndarray:
    """One object's mask, (height, width) bool: every polygon (or RLE)
    OR-ed; all False when every polygon was dropped (logged)."""
    if isinstance(seg, dict):
        rles = [seg]
    elif isinstance(seg, (list, tuple)) and seg and all(
            isinstance(s, dict) for s in seg):
        rles = list(seg)
    elif isinstance(seg, (list, tuple)) and seg and not any(
            isinstance(s, dict) for s in seg):
        polys = _valid_polygons(seg, height, width, where)
        if not polys:
            print_log(
                f'{where}: no polygon has an even number of coordinates and '
                '3 points or more: the object adds nothing to the mask (the '
                'official loader ignores it too)',
                logger='current', level=logging.WARNING)
            return np.zeros((height, width), bool)
        rles = None
    else:
        raise SegmentationError(
            f'{where}: expected polygons or RLE (a non-empty list of '
            'coordinate lists, an RLE dict or a list of RLE dicts), got '
            f'{repr(seg)[:60]}')
    try:
        if rles is None:
            rles = mask_utils.frPyObjects(polys, height, width)
        else:
            for rle in rles:
                _check_rle(rle, height, width, where)
            # uncompressed RLE (list counts) -> compressed, for ``decode``
            rles = [
                mask_utils.frPyObjects(r, height, width) if isinstance(
                    r['counts'], list) else r for r in rles
            ]
        masks = mask_utils.decode(rles)  # (H, W, N) uint8
    except SegmentationError:
        raise
    except Exception as e:  # pycocotools raises bare Exception/TypeError
        raise SegmentationError(f'{where}: cannot decode segmentation '
                                f'({type(e).__name__}: {e})') from e
    return masks.any(axis=2)


def decode_gref_mask(segmentations: Sequence[Any],
                     height: int,
                     width: int,
                     where: str = 'gRefCOCO mask',
                     ann_ids: Optional[Sequence[int]] = None) -> np.ndarray:
    """The gRefCOCO ground truth of one expression (the official union
    rule): the OR of every polygon / RLE of every referred object.

    Unlike RefCOCO's :func:`~.mask_loading.decode_refer_mask` (pixels
    covered by two polygons of one object are background there), overlaps
    stay foreground, within an object and between objects. Polygons with an
    odd number of coordinates or fewer than 3 points are dropped, each
    logged once (the official loader drops them without a message); an
    object left without a polygon adds nothing. Crowd annotations are
    left out by the dataset (``GRefCOCODataset``'s ``segmentations``).
    No segmentation (a no-target expression) gives the empty mask.

    Args:
        segmentations: the objects' segmentations (polygons or RLE, as
            stored in ``instances.json``).
        height (int): image height recorded in ``instances.json``.
        width (int): image width.
        where (str): context of the error messages.
        ann_ids: the objects' annotation ids (named in the messages).

    Returns:
        np.ndarray: uint8 mask of shape (height, width), values {0, 1}.

    Raises:
        SegmentationError: a malformed segmentation (message names
            ``where``, the ann_id and what is wrong).
    """
    if not (isinstance(height, (int, np.integer)) and isinstance(
            width, (int, np.integer)) and height > 0 and width > 0):
        raise SegmentationError(
            f'{where}: the image size must be positive integers, got '
            f'height={height!r}, width={width!r}')
    height, width = int(height), int(width)
    if ann_ids is None:
        ann_ids = list(range(len(segmentations)))
    union = np.zeros((height, width), bool)
    for seg, ann_id in zip(segmentations, ann_ids):
        union |= _object_mask(seg, height, width,
                              f'{where} ann_id={ann_id}: "segmentation"')
    return union.astype(np.uint8)


@TRANSFORMS.register_module()
class LoadGRefMask(BaseTransform):
    """Decode the union of the referred objects' masks into
    ``gt_seg_map`` (gRefCOCO; :func:`decode_gref_mask`).

    Required keys: ``no_target``, ``segmentations``, ``seg_ann_ids``,
    ``height``, ``width`` (from ``GRefCOCODataset``); ``img`` and
    ``ori_shape`` (optional: the size check and the fit to a downscaled
    image, as in :class:`~.mask_loading.LoadReferringMask`); ``img_path``,
    ``image_id``, ``ref_id`` (optional, named in the errors).

    Added keys: ``gt_seg_map`` (np.uint8, (h, w), {0, 1}; all 0 for a
    no-target expression), ``'gt_seg_map'`` in ``seg_fields``.
    ``no_target`` stays in the results: add it to ``PackSegInputs.
    meta_keys`` to have it in the data sample's metainfo (the gRefCOCO
    config does).

    An empty mask is normal here (no-target expressions) and is never an
    error.
    """

    def transform(self, results: dict) -> dict:
        missing = [
            k for k in ('no_target', 'segmentations', 'seg_ann_ids',
                        'height', 'width') if k not in results
        ]
        if missing:
            raise MissingKeyError(
                f'LoadGRefMask: the results lack {missing}: it reads the '
                'items of GRefCOCODataset (use LoadReferringMask for '
                'RefCOCODataset)')
        height, width = int(results['height']), int(results['width'])
        where = (f'{results.get("img_path", "<image>")} image_id='
                 f'{results.get("image_id")} ref_id={results.get("ref_id")}')
        img = results.get('img')
        real = results.get('ori_shape') if img is not None else None
        real = tuple(real[:2]) if real is not None else (
            None if img is None else img.shape[:2])
        if real is not None and real != (height, width):
            raise SegmentationError(
                f'{where}: the loaded image is {real[0]}x{real[1]} (height x '
                f'width) but instances.json records {height}x{width}; was '
                'the image rotated by its EXIF orientation? use '
                'color_type="color_ignore_orientation" in LoadImageFromFile')
        if results['no_target']:
            mask = np.zeros((height, width), np.uint8)
        else:
            mask = decode_gref_mask(results['segmentations'], height, width,
                                    where, results['seg_ann_ids'])
        if img is not None and img.shape[:2] != mask.shape:
            # the image was downscaled at load: the mask follows it
            # (nearest, as mmseg's Resize does for seg maps)
            h, w = img.shape[:2]
            mask = mmcv.imresize(mask, (w, h), interpolation='nearest')
        results['gt_seg_map'] = mask
        results['no_target'] = bool(results['no_target'])
        seg_fields = results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in seg_fields:
            seg_fields.append('gt_seg_map')
        return results
