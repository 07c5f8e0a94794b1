"""Loading the referred object's mask from its REFER/COCO segmentation
(:class:`LoadReferringMask`); images: :mod:`.image_loading`.

Over 400 lines: the checks of every polygon / RLE form (shared with the
gRefCOCO loader) belong with the one decoder that defines them."""
from __future__ import annotations

import logging
from typing import Any, List, Sequence

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS
from pycocotools import mask as mask_utils

from ...utils.errors import UserError

__all__ = ['SegmentationError', 'decode_refer_mask', 'LoadReferringMask']


class SegmentationError(UserError, ValueError):
    """A ground-truth segmentation that cannot be decoded, is empty, or
    does not fit its image; the message names the file, the ids and the
    field."""


#: polygon coordinates may lie this many image sizes beyond the border
#: (x in [-k W, (k + 1) W], y likewise); farther points are a unit or format
#: error, and pycocotools' rasteriser allocates memory in proportion to the
#: distance (and crashes on huge or non-finite values).
COORD_MARGIN = 4

#: (where, polygon index) of the degenerate polygons already logged
_LOGGED_DROPS: set = set()


def _rle_string_counts(counts: str, where: str) -> np.ndarray:
    """The run lengths of a compressed COCO RLE string (vectorised).

    The COCO format: each run is a signed integer written as 5-bit groups,
    least significant first, in characters ``chr(48 + group)`` whose bit
    0x20 says "more groups follow" and whose bit 0x10, in the last group,
    is the sign; from the fourth run on, the value is the difference to the
    run two places back.

    Returns:
        np.ndarray: (R,) int64 run lengths.

    Raises:
        ValueError: a character outside ``'0'..'o'``, an unfinished or
            over-long run, or a negative run.
    """
    head = f'{where}: cannot decode segmentation: the RLE "counts" string'
    try:
        raw = counts.encode('ascii')
    except UnicodeEncodeError as e:
        raise SegmentationError(f'{head} is not ASCII') from e
    c = np.frombuffer(raw, np.uint8).astype(np.int64) - 48
    if not c.size:
        return np.zeros(0, np.int64)
    bad = (c < 0) | (c >= 64)
    if bad.any():
        j = int(np.argmax(bad))
        raise SegmentationError(
            f'{head} has the character {counts[j]!r} at {j} '
            "(expected '0'..'o')")
    last = (c & 0x20) == 0  # the last group of a run
    if not last[-1]:
        raise SegmentationError(f'{head} ends inside a run')
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    run_of = np.cumsum(last) - last  # run index of every character
    k = np.arange(c.size) - starts[run_of]  # group index inside its run
    if k.max() > 7:  # 40 bits: far more than any image's pixel count
        raise SegmentationError(f'{head} has a run of more than 8 characters')
    x = np.add.reduceat((c & 0x1f) << (5 * k), starts)
    negative = (c[ends] & 0x10) != 0
    x[negative] -= np.left_shift(1, 5 * (k[ends][negative] + 1))
    runs = x.copy()
    runs[1::2] = np.cumsum(x[1::2])  # run i >= 3 is a delta to run i - 2
    runs[2::2] = np.cumsum(x[2::2])
    if (runs < 0).any():
        j = int(np.argmax(runs < 0))
        raise SegmentationError(
            f'{where}: cannot decode segmentation: RLE run {j} '
            f'is negative ({runs[j]})')
    return runs


def _check_rle(rle: dict, height: int, width: int, where: str) -> None:
    """ValueError unless ``rle`` is an RLE of exactly (height, width).

    pycocotools does not check that the runs cover the image: runs summing
    to less leave uninitialised memory in the decoded mask (garbage values).
    """
    if 'counts' not in rle or 'size' not in rle:
        raise SegmentationError(
            f'{where}: an RLE segmentation needs "counts" and '
            f'"size", got keys {sorted(rle)}')
    size = rle['size']
    if not isinstance(size, (list, tuple)) or list(size) != [height, width]:
        raise SegmentationError(
            f'{where}: RLE "size" {size!r} differs from the '
            f'image size [{height}, {width}] (height, width '
            'recorded in instances.json)')
    counts = rle['counts']
    if isinstance(counts, bytes):
        try:
            counts = counts.decode('ascii')
        except UnicodeDecodeError as e:
            raise SegmentationError(
                f'{where}: cannot decode segmentation: the RLE '
                '"counts" bytes are not ASCII') from e
    if isinstance(counts, str):
        runs: Any = _rle_string_counts(counts, where)
    elif isinstance(counts, list):
        try:
            runs = np.asarray(counts)
        except (TypeError, ValueError):  # ragged
            runs = np.asarray(None)
        if runs.ndim != 1 or (runs.size and
                              (runs.dtype.kind not in 'iu' or runs.min() < 0)):
            raise SegmentationError(
                f'{where}: cannot decode segmentation: the RLE '
                '"counts" list must hold non-negative integers, '
                f'got {repr(counts)[:60]}')
    else:
        raise SegmentationError(
            f'{where}: cannot decode segmentation: RLE '
            '"counts" must be a str (compressed) or a list of '
            f'integers, got {type(counts).__name__}')
    total = int(np.sum(runs, dtype=np.int64))
    if total != height * width:
        raise SegmentationError(
            f'{where}: cannot decode segmentation: the RLE runs '
            f'cover {total} pixels, expected height x width = '
            f'{height} x {width} = {height * width}')


def polygon_array(poly: Any, head: str) -> np.ndarray:
    """``poly`` as a flat array of numbers, (2N,); ``head`` starts the
    message of the :class:`SegmentationError` for anything else (a nested
    or ragged list, strings)."""
    try:
        arr = np.asarray(poly)
    except (TypeError, ValueError):  # ragged
        arr = np.asarray(None)
    if arr.ndim != 1 or arr.dtype.kind not in 'iuf':
        raise SegmentationError(f'{head} must be a flat list of numbers '
                                f'[x1, y1, x2, y2, ...], got '
                                f'{repr(poly)[:60]}')
    return arr


def check_polygon_range(arr: np.ndarray, head: str, height: int,
                        width: int) -> None:
    """Refuse a polygon (2N,) with a non-finite coordinate or one more than
    :data:`COORD_MARGIN` image sizes outside the image (pycocotools would
    crash or allocate without bound)."""
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        j = int(np.argmin(finite))
        raise SegmentationError(
            f'{head} has a non-finite coordinate ({arr[j]} at index {j}); '
            'expected finite numbers')
    for axis, size, vals in (('x', width, arr[0::2]),
                             ('y', height, arr[1::2])):
        lo, hi = -COORD_MARGIN * size, (COORD_MARGIN + 1) * size
        if vals.min() < lo or vals.max() > hi:
            raise SegmentationError(
                f'{head} has {axis} coordinates in [{vals.min()}, '
                f'{vals.max()}], far outside the image ({axis} size '
                f'{size}; expected within [{lo}, {hi}])')


def _check_polygons(polys: Sequence[Any], height: int, width: int,
                    where: str) -> List[Any]:
    """The polygons to rasterise: ``polys`` without those of < 3 points.

    Raises ValueError unless every polygon is a flat list of finite numbers
    with an even count, within :data:`COORD_MARGIN` image sizes of the image,
    and at least one has 3 points or more. Polygons of 0 - 2 points (0, 2
    or 4 numbers) have no area: they are dropped, logged once per ``where``
    and polygon index.
    """
    kept, dropped = [], []
    for i, poly in enumerate(polys):
        head = f'{where}: cannot decode segmentation: polygon {i}'
        arr = polygon_array(poly, head)
        n = arr.size
        if n % 2:
            raise SegmentationError(
                f'{head} has {n} coordinates, an odd number; '
                'expected x, y pairs [x1, y1, x2, y2, ...]')
        if n == 0:
            dropped.append((i, n))
            continue
        check_polygon_range(arr, head, height, width)
        if n < 6:
            dropped.append((i, n))
        else:
            kept.append(poly)
    if not kept:
        i, n = dropped[0]
        raise SegmentationError(
            f'{where}: cannot decode segmentation: no polygon '
            f'has 3 points or more (polygon {i} has {n} '
            'coordinates); expected at least 6 coordinates')
    for i, n in dropped:
        if (where, i) not in _LOGGED_DROPS:
            _LOGGED_DROPS.add((where, i))
            points = f'{n // 2} point' + ('' if n == 2 else 's')
            print_log(
                f'{where}: polygon {i} has {n} coordinates ({points}, no '
                'area): dropped (pycocotools rasterises it to no pixel, so '
                'the mask is the official one)',
                logger='current',
                level=logging.WARNING)
    return kept


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

    Valid inputs decode exactly as above. Invalid ones raise instead of
    reaching pycocotools, which would misread, crash or return garbage:

    * an empty list or another type; a list mixing polygons and RLE dicts;
    * a polygon that is not a flat list of numbers, has an odd number of
      coordinates (pycocotools would drop the last one), a non-finite
      coordinate (pycocotools crashes), or one more than
      :data:`COORD_MARGIN` image sizes outside the image; no polygon of 3
      points or more;
    * an RLE without ``counts`` / ``size``, whose ``size`` is not
      ``[height, width]``, whose ``counts`` are malformed or whose runs do
      not cover exactly ``height * width`` pixels.

    Polygons of fewer than 3 points (0, 2 or 4 numbers: a point or a line,
    as some COCO-style tools write) are **dropped** with a warning logged
    once per ``where`` and polygon, when another polygon remains: they have
    no area, and pycocotools rasterises them to no pixel, so the mask is
    the official one (except that the official code fails on a 4-number
    *first* polygon, which pycocotools takes for a box).

    A valid segmentation may decode to zero area (e.g. a polygon thinner
    than a pixel, or two identical polygons under the ``== 1`` rule): the
    zero mask is returned; :class:`LoadReferringMask` decides what to do.

    Args:
        segmentation: polygons or RLE as stored in ``instances.json``.
        height (int): image height (``instances.json`` ``images.height``).
        width (int): image width.
        where (str): context for error messages (file / ref / field).

    Returns:
        np.ndarray: uint8 mask of shape (height, width) with values {0, 1}.

    Raises:
        ValueError: see above; the message starts with ``where`` and, for
            a malformed polygon / RLE, ``cannot decode segmentation``.
    """
    if not (isinstance(height, (int, np.integer))
            and isinstance(width,
                           (int, np.integer)) and height > 0 and width > 0):
        raise SegmentationError(
            f'{where}: the image size must be positive '
            f'integers, got height={height!r}, width={width!r}')
    height, width = int(height), int(width)
    is_seq = isinstance(segmentation, (list, tuple))
    if isinstance(segmentation, dict):
        rles = [segmentation]
    elif is_seq and not segmentation:
        raise SegmentationError(f'{where}: the segmentation is empty ([]): '
                                'expected polygons or RLE')
    elif is_seq and all(isinstance(s, dict) for s in segmentation):
        rles = list(segmentation)
    elif is_seq and any(isinstance(s, dict) for s in segmentation):
        raise SegmentationError(
            f'{where}: cannot decode segmentation: the list '
            'mixes RLE dicts and polygons')
    elif is_seq:
        rles = None  # polygons
        polygons = _check_polygons(segmentation, height, width, where)
    else:
        raise SegmentationError(f'{where}: expected polygons or RLE, got '
                                f'{type(segmentation).__name__} '
                                f'({repr(segmentation)[:60]})')
    for rle in rles or []:
        _check_rle(rle, height, width, where)
    try:
        if rles is None:
            rles = mask_utils.frPyObjects(polygons, height, width)
        # Uncompressed RLE (list counts, used for COCO crowd regions) ->
        # compressed, which is what ``decode`` takes.
        rles = [
            mask_utils.frPyObjects(r, height, width) if isinstance(
                r['counts'], list) else r for r in rles
        ]
        masks = mask_utils.decode(rles)  # (H, W, N) uint8
    except Exception as e:  # pycocotools raises bare Exception/TypeError
        raise SegmentationError(f'{where}: cannot decode segmentation '
                                f'({type(e).__name__}: {e})') from e
    if masks.shape[2] == 1:
        return np.ascontiguousarray(masks[..., 0])
    counts = masks.sum(axis=2, dtype=np.uint8)
    return (counts == 1).astype(np.uint8)


@TRANSFORMS.register_module()
class LoadReferringMask(BaseTransform):
    """Decode the referred object's mask into ``gt_seg_map``.

    Required keys: ``segmentation``, ``height``, ``width`` (from
    ``RefCOCODataset``); ``img`` and ``ori_shape`` (optional, used to check
    the size and to fit the mask to the image); ``img_path``, ``image_id``,
    ``ref_id``, ``ann_id`` (optional, named in the errors).

    Added keys: ``gt_seg_map`` (np.uint8, (h, w), {0, 1}) at the size of
    ``img`` (the recorded size without one); ``'gt_seg_map'`` is appended
    to ``seg_fields`` so mmseg's ``Resize`` resizes it with nearest
    interpolation.

    The mask is decoded at the size stated in ``instances.json`` by
    :func:`decode_refer_mask` (a malformed segmentation raises
    :class:`SegmentationError`, a ValueError, naming the file, image_id,
    ref_id, ann_id and the field), then resized (nearest) to the loaded
    ``img`` when the loader downscaled it (``max_size``: ``img_shape``
    smaller than ``ori_shape``). If the image's own size (``ori_shape``,
    else the ``img`` array's) differs from the recorded one a
    :class:`SegmentationError` is raised (the
    :class:`LoadReferImageFromFile` of the configs already checks it; this
    covers mmcv's ``LoadImageFromFile``): load images with
    ``imdecode_backend='pillow', color_type='color_ignore_orientation'``
    (the official loader ignores the EXIF orientation, as do the
    annotations).

    Zero-area masks: a mask without foreground is no target (training on
    it teaches "nothing is referred", which REFER never asks; it usually
    means a broken annotation: a degenerate polygon, or the same polygon
    twice under the official ``== 1`` rule). The official REFER data has
    none as far as known, nor does the generated dataset (every object keeps
    40% of its area visible). By default a ValueError naming the file,
    image_id, ref_id and ann_id is raised (training and testing); with
    ``allow_empty=True`` the empty mask is kept and a warning is logged for
    each such ann_id the first time, with the running count.

    Args:
        allow_empty (bool): keep zero-area masks (see above). Defaults to
            False.
    """

    def __init__(self, allow_empty: bool = False) -> None:
        self.allow_empty = allow_empty
        self._empty_ann_ids: set = set()

    def transform(self, results: dict) -> dict:
        height, width = int(results['height']), int(results['width'])
        where = (f'{results.get("img_path", "<image>")} image_id='
                 f'{results.get("image_id")} ref_id={results.get("ref_id")} '
                 f'ann_id={results.get("ann_id")}: "segmentation"')
        img = results.get('img')
        # the image's own size: 'ori_shape' when the loader downscaled it
        # (LoadReferImageFromFile's max_size), else the loaded array's
        real = results.get('ori_shape') if img is not None else None
        real = tuple(real[:2]) if real is not None else (
            None if img is None else img.shape[:2])
        if real is not None and real != (height, width):
            raise SegmentationError(
                f'{where}: the loaded image is {real[0]}x{real[1]}'
                f' (height x width) but instances.json records '
                f'{height}x{width}; was the image rotated by its EXIF '
                'orientation? use color_type="color_ignore_orientation" in '
                'LoadImageFromFile')
        mask = decode_refer_mask(results['segmentation'], height, width, where)
        if not mask.any():
            self._empty(where, results.get('ann_id'))
        if img is not None and img.shape[:2] != mask.shape:
            # the image was downscaled at load: the mask follows it
            # (nearest, as mmseg's Resize does for seg maps)
            h, w = img.shape[:2]
            mask = mmcv.imresize(mask, (w, h), interpolation='nearest')
        results['gt_seg_map'] = mask
        seg_fields = results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in seg_fields:
            seg_fields.append('gt_seg_map')
        return results

    def _empty(self, where: str, ann_id: Any) -> None:
        if not self.allow_empty:
            raise SegmentationError(
                f'{where}: the mask decodes to zero area (no foreground '
                'pixel): a broken annotation (degenerate or duplicated '
                'polygons?); fix or remove the ref, or set '
                'LoadReferringMask(allow_empty=True) to keep empty targets')
        if ann_id not in self._empty_ann_ids:
            self._empty_ann_ids.add(ann_id)
            print_log(
                f'{where}: the mask decodes to zero area; kept as an empty '
                f'target (allow_empty=True); {len(self._empty_ann_ids)} '
                'annotation(s) with an empty mask so far in this process',
                logger='current',
                level=logging.WARNING)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(allow_empty={self.allow_empty})'
