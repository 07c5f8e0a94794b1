"""Scenes: objects (shape, colour, size, position), their polygons and full
masks, placed free, partly overlapping or inside a larger object."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from .grammar import COLOURS, SHAPES

@dataclass
class SceneObject:
    """One shape of a scene (geometry in pixels, y pointing down)."""
    shape: str
    colour: str
    size: str  # 'small' | 'large'
    cx: float
    cy: float
    radius: float
    polygon: List[float]  # flat [x0, y0, x1, y1, ...], rounded to 0.01
    area: float  # area of the full (unoccluded) polygon


def _shape_polygon(shape: str, cx: float, cy: float, r: float,
                   angle: float) -> np.ndarray:
    """Vertices (K, 2) of a shape of circumradius ``r``."""
    if shape == 'circle':
        k, radii, start = 32, [r], 0.
    elif shape == 'square':
        k, radii, start = 4, [r], math.pi / 4 + angle
    elif shape == 'diamond':
        k, radii, start = 4, [r], angle
    elif shape == 'triangle':
        k, radii, start = 3, [r], -math.pi / 2 + angle
    elif shape == 'hexagon':
        k, radii, start = 6, [r], angle
    elif shape == 'star':
        k, radii, start = 10, [r, 0.45 * r], -math.pi / 2 + angle
    else:
        raise ValueError(f'unknown shape {shape}')
    t = start + 2 * math.pi * np.arange(k) / k
    rad = np.resize(np.asarray(radii, dtype=np.float64), k)
    return np.stack([cx + rad * np.cos(t), cy + rad * np.sin(t)], axis=1)


def _poly_area(flat: Sequence[float]) -> float:
    p = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) -
                           np.dot(y, np.roll(x, -1))))


def _raster(polygon: List[float], size: int) -> np.ndarray:
    rle = mask_utils.frPyObjects([polygon], size, size)
    return mask_utils.decode(rle)[..., 0].astype(bool)


def generate_scene(rng: np.random.Generator,
                   size: int,
                   min_objects: int = 3,
                   max_objects: int = 6,
                   occlusion_prob: float = 0.25,
                   num_shapes: Tuple[int, int] = (2, 3),
                   num_colours: Tuple[int, int] = (2, 3)
                   ) -> Tuple[List[SceneObject], List[np.ndarray]]:
    """Sample objects (in drawing order) and their full masks.

    ``num_shapes`` / ``num_colours``: inclusive range of the number of
    distinct shapes / colours a scene draws its objects from.
    """
    n_target = int(rng.integers(min_objects, max_objects + 1))
    # A few shapes/colours per scene, so attributes alone are often
    # ambiguous and relations/ordinals/comparisons are needed.
    shapes = rng.choice(
        SHAPES, size=int(rng.integers(num_shapes[0], num_shapes[1] + 1)),
        replace=False)
    colours = rng.choice(
        list(COLOURS),
        size=int(rng.integers(num_colours[0], num_colours[1] + 1)),
        replace=False)
    objects: List[SceneObject] = []
    masks: List[np.ndarray] = []
    for _ in range(n_target * 30):
        if len(objects) == n_target:
            break
        size_cls = 'large' if rng.random() < 0.4 else 'small'
        r = size * (rng.uniform(0.13, 0.17) if size_cls == 'large' else
                    rng.uniform(0.065, 0.085))
        mode = 'free'
        if objects and rng.random() < occlusion_prob:
            mode = 'inside' if size_cls == 'small' else 'partial'
        if mode == 'inside':
            hosts = [o for o in objects if o.size == 'large']
            if not hosts:
                continue
            host = hosts[int(rng.integers(len(hosts)))]
            off = rng.uniform(0, 0.35 * host.radius, 2) * rng.choice([-1, 1],
                                                                     2)
            cx, cy = host.cx + off[0], host.cy + off[1]
        else:
            cx, cy = rng.uniform(r + 1, size - r - 1, 2)
        shape = str(rng.choice(shapes))
        angle = rng.uniform(-0.25, 0.25)
        poly = np.round(_shape_polygon(shape, cx, cy, r, angle), 2)
        flat = poly.ravel().tolist()
        if poly.min() < 0 or poly.max() > size:
            continue
        new = SceneObject(shape, str(rng.choice(colours)), size_cls,
                          float(cx), float(cy), float(r), flat,
                          _poly_area(flat))
        full = _raster(flat, size)
        # Geometry checks: free objects do not touch others; partial ones
        # overlap exactly one object moderately; inside ones lie inside.
        overlaps = [i for i, m in enumerate(masks) if (m & full).any()]
        if mode == 'free' and overlaps:
            continue
        if mode == 'partial' and (len(overlaps) != 1 or not 0.05 < (
                masks[overlaps[0]] & full).sum() / full.sum() < 0.35):
            continue
        if mode == 'inside' and (overlaps != [objects.index(host)]
                                 or (full & ~masks[overlaps[0]]).any()):
            continue
        if any(objects[i].colour == new.colour for i in overlaps):
            continue  # touching shapes of one colour would merge visually
        if not _all_visible(masks + [full], min_fraction=0.4):
            continue
        objects.append(new)
        masks.append(full)
    return objects, masks


def _all_visible(masks: List[np.ndarray], min_fraction: float) -> bool:
    """Whether every mask (drawn in order) keeps ``min_fraction`` visible."""
    cover = np.zeros_like(masks[0])
    for m in reversed(masks):
        if (m & ~cover).sum() < min_fraction * m.sum():
            return False
        cover |= m
    return True
