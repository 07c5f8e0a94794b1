"""Properties of ``decode_refer_mask`` against independent references.

* polygons: an independent rasteriser (matplotlib's even-odd point in
  polygon test on pixel centres ``(x + 0.5, y + 0.5)``) of random simple
  (star-shaped) polygons. pycocotools rasterises on a 5x finer grid, so the
  two may differ only at pixels whose centre is close to an edge: every
  disagreeing pixel is within :data:`BOUNDARY_TOL` px of the boundary, and
  a compact polygon of area >= :data:`MIN_AREA` px gets IoU > 0.9;
* several polygons of one object: the official "covered by exactly one
  polygon" rule, checked against the independent rasteriser away from the
  boundaries;
* RLE: masks run-length encoded by an encoder written here (COCO's
  column-major uncompressed ``counts``, starting with a run of zeros) and
  by ``pycocotools.mask.encode`` (compressed, bytes or str counts) decode
  to exactly the mask.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from matplotlib.path import Path
from pycocotools import mask as mask_utils

from projects.magnet.datasets.transforms import decode_refer_mask

from ..test_datasets.utils import uncompressed_rle

#: max distance (px) from a disagreeing pixel centre to the polygon
#: boundary (pycocotools' 5x supersampling errs by ~0.2 px)
BOUNDARY_TOL = 0.5
#: polygons at least this big (and compact) must reach IoU > 0.9
MIN_AREA = 150.0
#: compactness bound: perimeter^2 / area (a disc: 12.6, a square: 16)
MAX_COMPACTNESS = 40.0


@st.composite
def star_polygons(draw, height: int, width: int, min_radius: float = 0.5,
                  min_fraction: float = 0.1) -> np.ndarray:
    """(N, 2) vertices (x, y) of a simple polygon inside the image: sorted
    angles around a centre, every angular gap < pi (star-shaped about the
    centre), radii in ``[min_fraction, 1] * r_max`` with ``r_max >=
    min_radius``, the centre at least ``r_max`` away from the borders."""
    n = draw(st.integers(3, 12))
    r_max = draw(st.floats(min_radius, min(height, width) / 2))
    cx = draw(st.floats(r_max, width - r_max))
    cy = draw(st.floats(r_max, height - r_max))
    weights = draw(st.lists(st.floats(0.2, 1.0), min_size=n, max_size=n))
    start = draw(st.floats(0, 2 * math.pi))
    gaps = np.asarray(weights) / sum(weights) * 2 * math.pi
    assume(gaps.max() < 0.95 * math.pi)
    angles = start + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    radii = np.asarray(draw(st.lists(st.floats(min_fraction, 1.0),
                                     min_size=n,
                                     max_size=n))) * r_max
    return np.stack([cx + radii * np.cos(angles),
                     cy + radii * np.sin(angles)], 1)


def _rasterise(poly: np.ndarray, height: int, width: int) -> np.ndarray:
    """Independent reference: pixel centres inside the polygon."""
    yy, xx = np.mgrid[:height, :width]
    centres = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], 1)
    return Path(poly).contains_points(centres).reshape(height, width)


def _boundary_distance(poly: np.ndarray, height: int,
                       width: int) -> np.ndarray:
    """(H, W) distance of every pixel centre to the polygon's edges."""
    yy, xx = np.mgrid[:height, :width]
    px, py = (xx.ravel() + 0.5)[:, None], (yy.ravel() + 0.5)[:, None]
    ax, ay = poly[:, 0], poly[:, 1]
    dx, dy = np.roll(ax, -1) - ax, np.roll(ay, -1) - ay
    t = ((px - ax) * dx + (py - ay) * dy) / np.maximum(dx**2 + dy**2, 1e-12)
    t = np.clip(t, 0.0, 1.0)
    dist = np.hypot(px - (ax + t * dx), py - (ay + t * dy)).min(1)
    return dist.reshape(height, width)


def _area_and_perimeter(poly: np.ndarray):
    x, y = poly[:, 0], poly[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    perimeter = np.hypot(np.roll(x, -1) - x, np.roll(y, -1) - y).sum()
    return area, perimeter


SIZES = st.tuples(st.integers(8, 48), st.integers(8, 48))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@given(data=st.data(), size=SIZES)
def test_polygon_matches_an_independent_rasteriser(data, size):
    height, width = size
    poly = data.draw(star_polygons(height, width))
    out = decode_refer_mask([poly.ravel().tolist()], height, width)
    assert out.shape == (height, width) and out.dtype == np.uint8
    assert set(np.unique(out).tolist()) <= {0, 1}
    ref = _rasterise(poly, height, width)
    differ = out.astype(bool) != ref
    dist = _boundary_distance(poly, height, width)
    assert (dist[differ] <= BOUNDARY_TOL).all(), (
        f'pixels {np.argwhere(differ & (dist > BOUNDARY_TOL)).tolist()} '
        'disagree away from the boundary')
    # the numpy storage of the dataset decodes identically
    np.testing.assert_array_equal(
        decode_refer_mask([poly.ravel()], height, width), out)


@given(data=st.data(), size=st.tuples(st.integers(24, 48),
                                      st.integers(24, 48)))
def test_large_compact_polygon_iou(data, size):
    """Boundary conventions cost little on a big, compact polygon."""
    height, width = size
    poly = data.draw(star_polygons(height, width, min_radius=8.0,
                                   min_fraction=0.6))
    area, perimeter = _area_and_perimeter(poly)
    assume(area >= MIN_AREA and perimeter**2 / area <= MAX_COMPACTNESS)
    out = decode_refer_mask([poly.ravel().tolist()], height, width)
    assert _iou(out.astype(bool), _rasterise(poly, height, width)) > 0.9


@given(data=st.data(), size=SIZES, count=st.integers(2, 3))
def test_polygons_of_one_object_keep_pixels_covered_once(data, size, count):
    """Official quirk: foreground = covered by exactly one polygon."""
    height, width = size
    polys = [data.draw(star_polygons(height, width)) for _ in range(count)]
    out = decode_refer_mask([p.ravel().tolist() for p in polys], height,
                            width)
    covered = sum(_rasterise(p, height, width).astype(int) for p in polys)
    near = np.min([_boundary_distance(p, height, width) for p in polys],
                  axis=0) <= BOUNDARY_TOL
    np.testing.assert_array_equal(out[~near], (covered == 1)[~near])
    # exactly the per-polygon decodes combined by the "sum == 1" rule
    singles = sum(
        decode_refer_mask([p.ravel().tolist()], height, width).astype(int)
        for p in polys)
    np.testing.assert_array_equal(out, (singles == 1).astype(np.uint8))


#: binary masks from 1x1 to 24x24 (all-0 and all-1 ones included)
MASKS = hnp.array_shapes(min_dims=2, max_dims=2, max_side=24).flatmap(
    lambda shape: hnp.arrays(np.uint8, shape, elements=st.integers(0, 1)))


def test_own_rle_encoder_on_known_masks():
    """The test's encoder itself, on hand-checked masks."""
    assert uncompressed_rle(np.zeros((2, 3), np.uint8)) == [6]
    assert uncompressed_rle(np.ones((2, 3), np.uint8)) == [0, 6]
    m = np.array([[0, 1, 1], [1, 0, 1]], np.uint8)  # F order: 0 1 1 0 1 1
    assert uncompressed_rle(m) == [1, 2, 1, 2]


@given(mask=MASKS)
def test_uncompressed_rle_decodes_exactly(mask):
    height, width = mask.shape
    counts = uncompressed_rle(mask)
    assert sum(counts) == mask.size
    out = decode_refer_mask(dict(counts=counts, size=[height, width]),
                            height, width)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, mask)


@given(mask=MASKS)
def test_compressed_rle_round_trip(mask):
    height, width = mask.shape
    rle = mask_utils.encode(np.asfortranarray(mask))
    np.testing.assert_array_equal(decode_refer_mask(rle, height, width),
                                  mask)
    as_json = dict(rle, counts=rle['counts'].decode('ascii'))
    np.testing.assert_array_equal(
        decode_refer_mask(as_json, height, width), mask)


@given(data=st.data(), size=SIZES, count=st.integers(2, 3))
def test_list_of_rles_keeps_pixels_covered_once(data, size, count):
    height, width = size
    masks = [data.draw(hnp.arrays(np.uint8, (height, width),
                                  elements=st.integers(0, 1)))
             for _ in range(count)]
    rles = [dict(counts=uncompressed_rle(m), size=[height, width])
            if i % 2 else mask_utils.encode(np.asfortranarray(m))
            for i, m in enumerate(masks)]
    expected = (sum(m.astype(int) for m in masks) == 1).astype(np.uint8)
    np.testing.assert_array_equal(
        decode_refer_mask(rles, height, width), expected)
