"""Rendering: backgrounds, painting the objects, and the COCO annotations of
their visible regions (polygons, multi-polygons, RLE, crowd RLE)."""
from __future__ import annotations

import math
from typing import List

import numpy as np
from pycocotools import mask as mask_utils

from .grammar import COLOURS
from .scene import SceneObject

def _background(rng: np.random.Generator, size: int,
                textured: bool) -> np.ndarray:
    """Muted (low saturation) background, plain or textured, float HxWx3."""

    def muted():
        grey = rng.uniform(70, 190)
        return np.clip(grey + rng.uniform(-25, 25, 3), 0, 255)

    c1 = muted()
    img = np.empty((size, size, 3), dtype=np.float64)
    img[:] = c1
    if not textured:
        return img
    kind = rng.choice(['gradient', 'noise', 'stripes', 'checker'])
    yy, xx = np.mgrid[0:size, 0:size] / size
    if kind == 'gradient':
        t = (xx * math.cos(rng.uniform(0, 2 * math.pi)) +
             yy * math.sin(rng.uniform(0, 2 * math.pi)))
        t = (t - t.min()) / max(np.ptp(t), 1e-6)
        img = (1 - t[..., None]) * c1 + t[..., None] * muted()
    elif kind == 'noise':
        img = img + rng.normal(0, 14, (size, size, 1))
    else:
        period = rng.uniform(0.06, 0.2)
        band = (xx // period).astype(int)
        if kind == 'checker':
            band = band + (yy // period).astype(int)
        img = np.where((band % 2 == 1)[..., None], muted(), img)
    return img


def _encode_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO crowd-style RLE: column-major run lengths starting with 0s."""
    flat = mask.astype(np.uint8).ravel(order='F')
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {'counts': counts, 'size': list(mask.shape)}


def annotate(objects: List[SceneObject], masks: List[np.ndarray],
                 rng: np.random.Generator) -> List[dict]:
    """Segmentation of each object (see the module docstring)."""
    anns = []
    for i, (obj, full) in enumerate(zip(objects, masks)):
        above = [j for j in range(i + 1, len(objects)) if (masks[j]
                                                           & full).any()]
        visible = full.copy()
        for j in above:
            visible &= ~masks[j]
        iscrowd = 0
        if not above:
            seg = ([obj.polygon] if rng.random() > 0.1 else
                   _encode_rle(visible))
        elif all(not (masks[j] & ~full).any() for j in above):
            seg = [obj.polygon] + [objects[j].polygon for j in above]
        elif rng.random() < 0.5:
            seg = _encode_rle(visible)
        else:
            seg, iscrowd = _uncompressed_rle(visible), 1
        rle = mask_utils.encode(np.asfortranarray(visible.astype(np.uint8)))
        x, y, w, h = mask_utils.toBbox(rle).tolist()
        anns.append(
            dict(
                segmentation=seg,
                area=float(mask_utils.area(rle)),
                bbox=[x, y, w, h],
                iscrowd=iscrowd,
                visible=visible))
    return anns


def paint(objects: List[SceneObject], masks: List[np.ndarray],
           rng: np.random.Generator, size: int,
           textured: bool) -> np.ndarray:
    img = _background(rng, size, textured)
    for obj, full in zip(objects, masks):
        colour = np.asarray(COLOURS[obj.colour], dtype=np.float64)
        colour = colour * rng.uniform(0.85, 1.1)
        noise = rng.normal(0, 6, (int(full.sum()), 3))
        img[full] = colour + noise
    return np.clip(np.round(img), 0, 255).astype(np.uint8)
