"""Bad masks in the data transforms: polygons, RLE and zero-area masks
(an error naming the image, ref and annotation ids and the field, or a
documented rule)."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from projects.magnet.datasets.transforms import (LoadReferringMask,
                                                 decode_refer_mask)
from projects.magnet.datasets.transforms import mask_loading



WHERE = r'imgs/a\.jpg image_id=3 ref_id=7 ann_id=11: "segmentation"'


def _mask(segmentation, height=10, width=10, ann_id=11,
          **kwargs) -> np.ndarray:
    results = dict(img_path='imgs/a.jpg', image_id=3, ref_id=7, ann_id=ann_id,
                   segmentation=segmentation, height=height, width=width)
    return LoadReferringMask(**kwargs)(results)['gt_seg_map']


SQUARE = [1, 1, 8, 1, 8, 8, 1, 8]


def _official(seg, h, w):
    """The official decoding (REFER getMask + ``== 1``), pycocotools only."""
    if isinstance(seg, list) and not isinstance(seg[0], dict):
        rle = mask_utils.frPyObjects(seg, h, w)
    elif isinstance(seg, dict) and isinstance(seg['counts'], list):
        rle = mask_utils.frPyObjects(seg, h, w)
    else:
        rle = seg
    m = mask_utils.decode(rle)
    if m.ndim == 3:
        m = np.sum(m, axis=2).astype(np.uint8)
    return (m == 1).astype(np.uint8)


def test_valid_segmentations_decode_as_the_official_code():
    rng = np.random.default_rng(0)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(5, 40, 2))
        polys = []
        for _ in range(int(rng.integers(1, 4))):
            n = int(rng.integers(3, 9))
            pts = rng.uniform(-0.6, 0.6, (n, 2)) * [w, h] + [w / 2, h / 2]
            polys.append(pts.ravel().tolist())
        np.testing.assert_array_equal(decode_refer_mask(polys, h, w),
                                      _official(polys, h, w))
        m = (rng.random((h, w)) > rng.random()).astype(np.uint8)
        rle = mask_utils.encode(np.asfortranarray(m))
        rle_json = dict(rle, counts=rle['counts'].decode())
        for seg in (rle, rle_json):
            np.testing.assert_array_equal(decode_refer_mask(seg, h, w), m)
        runs = [int(len(list(g))) for g in _runs(m.ravel(order='F'))]
        crowd = dict(counts=runs, size=[h, w])
        np.testing.assert_array_equal(decode_refer_mask(crowd, h, w),
                                      _official(crowd, h, w))
        np.testing.assert_array_equal(
            decode_refer_mask([rle, rle_json], h, w),
            np.zeros_like(m))  # the same RLE twice: sum 2 -> background


def _runs(flat):
    """Uncompressed COCO runs (first run: zeros) as groups."""
    import itertools
    groups = [list(g) for _, g in itertools.groupby(flat)]
    if flat[0] == 1:
        groups.insert(0, [])
    return groups


@pytest.mark.parametrize('segmentation, message', [
    ([SQUARE, [1, 1, 8, 1, 8, 8, 1]],
     'polygon 1 has 7 coordinates, an odd number; expected x, y pairs'),
    ([[1, 1, 8, 8]], r'no polygon has 3 points or more \(polygon 0 has 4 '
     r'coordinates\); expected at least 6 coordinates'),
    ([[], [1, 2]], r'no polygon has 3 points or more \(polygon 0 has 0 '
     r'coordinates\)'),
    ([[1, 1, float('nan'), 1, 8, 8]],
     r'polygon 0 has a non-finite coordinate \(nan at index 2\); expected '
     'finite numbers'),
    ([SQUARE, [1, 1, 8, float('inf'), 8, 8]],
     r'polygon 1 has a non-finite coordinate \(inf at index 3\)'),
    ([[1, 1, 8, 1, -1e12, 8]],
     r'polygon 0 has x coordinates in \[-1000000000000\.0, 8\.0\], far '
     r'outside the '
     r'image \(x size 10; expected within \[-40, 50\]\)'),
    ([[1, 1, 'a', 1, 8, 8]], 'polygon 0 must be a flat list of numbers'),
    ([[1, 1, float('nan'), 2]], r'polygon 0 has a non-finite coordinate'),
    ([[1, 1, None, 1, 8, 8]], 'polygon 0 must be a flat list of numbers'),
    ([[[1, 1], [8, 1], [8, 8]]], 'polygon 0 must be a flat list of numbers'),
    ([SQUARE, dict(counts='T3', size=[10, 10])],
     'the list mixes RLE dicts and polygons'),
])
def test_bad_polygons(segmentation, message):
    with pytest.raises(ValueError,
                       match=f'{WHERE}: cannot decode segmentation: '
                       f'{message}'):
        _mask(segmentation)


def test_polygons_of_fewer_than_3_points_are_dropped_and_logged(logged):
    """0 - 2 points: no area; the rest is decoded as the official code does
    (pycocotools rasterises such polygons to no pixel)."""
    line, point = [1, 1, 8, 8], [3, 3]
    cases = (([SQUARE, line], ['1 has 4 coordinates (2 points']),
             ([line, SQUARE, point], ['0 has 4 coordinates (2 points',
                                      '2 has 2 coordinates (1 point,']),
             ([SQUARE, []], ['1 has 0 coordinates (0 points']))
    for ann_id, (seg, dropped) in enumerate(cases):
        logged.clear()
        np.testing.assert_array_equal(_mask(seg, ann_id=ann_id),
                                      _official([SQUARE], 10, 10))
        assert len(logged) == len(dropped)
        for msg, what in zip(logged, dropped):
            assert msg.startswith(
                f'imgs/a.jpg image_id=3 ref_id=7 ann_id={ann_id}: '
                f'"segmentation": polygon {what}')
            assert 'no area): dropped' in msg
        _mask(seg, ann_id=ann_id)  # logged once per annotation and polygon
        assert len(logged) == len(dropped)
    # not the first: exactly the official decoding, line included
    np.testing.assert_array_equal(
        decode_refer_mask([SQUARE, line], 10, 10),
        _official([SQUARE, line], 10, 10))


def test_why_polygons_are_checked_before_pycocotools():
    """What pycocotools does with them (the checks prevent it)."""
    # a first polygon of 4 numbers is taken for a box [x, y, w, h] (which
    # then fails for lists); as an array it *is* decoded as a box
    with pytest.raises(TypeError, match="'bb'"):
        mask_utils.frPyObjects([[1, 1, 8, 8], SQUARE], 10, 10)
    box = mask_utils.decode(
        mask_utils.frPyObjects(np.array([[1., 1., 8., 8.]]), 10, 10))
    assert box.sum() == 64
    # a polygon of 2 points later in the list rasterises to no pixel
    two = mask_utils.decode(mask_utils.frPyObjects([SQUARE, [1, 1, 8, 8]],
                                                   10, 10))
    assert two[..., 0].sum() == 49 and two[..., 1].sum() == 0
    # an odd coordinate is silently dropped
    odd = mask_utils.decode(mask_utils.frPyObjects([SQUARE[:7]], 10, 10))
    six = mask_utils.decode(mask_utils.frPyObjects([SQUARE[:6]], 10, 10))
    np.testing.assert_array_equal(odd, six)


def test_empty_and_wrong_type_segmentations():
    with pytest.raises(ValueError,
                       match=rf'{WHERE}: the segmentation is empty \(\[\]\): '
                       'expected polygons or RLE'):
        _mask([])
    with pytest.raises(ValueError,
                       match=rf'{WHERE}: expected polygons or RLE, got str'):
        _mask('1 1 8 1 8 8')
    with pytest.raises(ValueError,
                       match=r'the image size must be positive integers, got '
                       'height=0, width=10'):
        decode_refer_mask([SQUARE], 0, 10)


_CD = 'cannot decode segmentation: '


@pytest.mark.parametrize('rle, message', [
    (dict(counts='T3', size=[10, 12]),
     r'RLE "size" \[10, 12\] differs from the image size \[10, 10\] '
     r'\(height, width recorded in instances\.json\)'),
    (dict(counts='T3'), r'an RLE segmentation needs "counts" and "size", '
     r"got keys \['counts'\]"),
    (dict(counts='<?', size=[10, 10]),
     'cannot decode segmentation: the RLE runs cover 27 pixels, expected '
     'height x width = 10 x 10 = 100'),
    (dict(counts=[10, 20], size=[10, 10]),
     'cannot decode segmentation: the RLE runs cover 30 pixels, expected '
     'height x width = 10 x 10 = 100'),
    (dict(counts=[10, 20, 30, 40, 50], size=[10, 10]),
     _CD + 'the RLE runs cover 150 pixels'),
    (dict(counts=[50.0, 50.0], size=[10, 10]),
     _CD + 'the RLE "counts" list must hold non-negative integers'),
    (dict(counts=[-3, 103], size=[10, 10]),
     _CD + 'the RLE "counts" list must hold non-negative integers'),
    (dict(counts='0T3~', size=[10, 10]),
     _CD + r"the RLE \"counts\" string has the character '~' at 3 \(expected "
     r"'0'..'o'\)"),
    (dict(counts='0T', size=[10, 10]),
     _CD + 'the RLE "counts" string ends inside a run'),
    (dict(counts='0H', size=[10, 10]),  # second run: 24 - 32 = -8
     _CD + r'RLE run 1 is negative \(-8\)'),
    (dict(counts=1234, size=[10, 10]),
     _CD + r'RLE "counts" must be a str \(compressed\) or a list of '
     'integers, got int'),
])
def test_bad_rle(rle, message):
    with pytest.raises(ValueError, match=f'{WHERE}: {message}'):  # whole
        _mask(rle)
    with pytest.raises(ValueError, match=message):  # also inside a list
        _mask([dict(counts='T3', size=[10, 10]), rle])


def test_short_rle_would_decode_uninitialised_memory():
    """Why the runs are counted: pycocotools trusts them."""
    rle = dict(counts='<?', size=[10, 10])  # 27 of 100 pixels
    assert list(mask_loading._rle_string_counts(rle['counts'], '')) == [12,
                                                                        15]
    np.testing.assert_array_equal(
        decode_refer_mask(dict(counts='T3', size=[10, 10]), 10, 10),
        np.zeros((10, 10), np.uint8))  # 100 zeros: complete


def test_rle_string_parser_matches_pycocotools():
    rng = np.random.default_rng(5)
    for i in range(80):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        m = (rng.random((h, w)) > rng.random()).astype(np.uint8)
        if i % 4 == 0:
            m[:] = i % 8 == 0
        counts = mask_utils.encode(np.asfortranarray(m))['counts'].decode()
        runs = [len(g) for g in _runs(m.ravel(order='F'))]
        assert list(mask_loading._rle_string_counts(counts, '')) == runs


# ------------------------------------------------------------- zero area
def test_zero_area_mask_raises_by_default():
    sliver = [[2, 2, 7, 2.1, 2, 2.2]]  # thinner than a pixel
    twice = [SQUARE, SQUARE]  # the "sum == 1" rule removes both
    empty_rle = dict(counts='T3', size=[10, 10])
    for seg in (sliver, twice, empty_rle):
        assert not decode_refer_mask(seg, 10, 10).any()  # decoded: zeros
        with pytest.raises(ValueError,
                           match=rf'{WHERE}: the mask decodes to zero area '
                           r'\(no foreground pixel\): a broken annotation'):
            _mask(seg)


def test_zero_area_mask_kept_and_logged_with_allow_empty(logged):
    t = LoadReferringMask(allow_empty=True)
    base = dict(img_path='imgs/a.jpg', image_id=3, ref_id=7, height=10,
                width=10, segmentation=[SQUARE, SQUARE])
    for ann_id in (11, 11, 12):  # once per ann_id, with the running count
        out = t(dict(base, ann_id=ann_id))
        np.testing.assert_array_equal(out['gt_seg_map'],
                                      np.zeros((10, 10), np.uint8))
    assert len(logged) == 2
    assert 'ann_id=11' in logged[0] and '1 annotation(s)' in logged[0]
    assert 'ann_id=12' in logged[1] and '2 annotation(s)' in logged[1]
    assert 'kept as an empty target (allow_empty=True)' in logged[0]
    assert t(dict(base, ann_id=13, segmentation=[SQUARE]))['gt_seg_map'].sum(
    ) == 49
    assert len(logged) == 2
    assert repr(t) == 'LoadReferringMask(allow_empty=True)'
