"""Helpers: hand-made gRefCOCO files (grefs(unc).json / .p +
instances.json) and an independent union decode with pycocotools."""

import numpy as np
from pycocotools import mask as mask_utils

from .utils import uncompressed_rle, write_refer

H, W = 40, 60  # the image size of the hand-made layouts


def make_gref(ref_id, ann_id, image_id, split, sentences, category_id=None):
    """A gRefCOCO ref; ``sentences`` is a list of (raw, sent_id)."""
    if category_id is None:
        category_id = [-1] if ann_id == [-1] else [1] * len(ann_id)
    return dict(
        ref_id=ref_id,
        image_id=image_id,
        split=split,
        file_name=f'COCO_train2014_{image_id:012d}_{ref_id}.jpg',
        ann_id=ann_id,
        category_id=category_id,
        sent_ids=[s for _, s in sentences],
        sentences=[
            dict(raw=r, sent=r.lower(), tokens=r.lower().split(), sent_id=s)
            for r, s in sentences
        ])


def box(x0, y0, x1, y1):
    """A rectangle as one COCO polygon."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def crowd_rle(x0, y0, x1, y1):
    """An uncompressed RLE (as COCO writes crowd regions) of a box."""
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return dict(counts=uncompressed_rle(m), size=[H, W])


def images_and_annotations():
    """Two images; on image 1: objects 10 and 11 (overlapping boxes), 12
    (two overlapping polygons), 13 (a crowd RLE), 14 (one valid polygon, one
    of odd length, one of 2 points), 15 (only invalid polygons); on image
    2: object 20."""
    images = [dict(id=i, file_name=f'COCO_train2014_{i:012d}.jpg',
                   height=H, width=W) for i in (1, 2)]
    anns = [
        dict(id=10, image_id=1, iscrowd=0, category_id=1,
             segmentation=[box(2, 2, 20, 20)]),
        dict(id=11, image_id=1, iscrowd=0, category_id=1,
             segmentation=[box(10, 10, 30, 30)]),
        dict(id=12, image_id=1, iscrowd=0, category_id=1,
             segmentation=[box(35, 2, 50, 15), box(40, 5, 55, 20)]),
        dict(id=13, image_id=1, iscrowd=1, category_id=1,
             segmentation=crowd_rle(0, 30, 60, 40)),
        dict(id=14, image_id=1, iscrowd=0, category_id=1,
             segmentation=[box(40, 25, 58, 38),
                           [0, 0, 59, 0, 59, 39, 0],  # odd: dropped
                           [0, 0, 59, 39]]),  # 2 points: dropped
        dict(id=15, image_id=1, iscrowd=0, category_id=1,
             segmentation=[[1, 1, 50, 1, 50]]),  # nothing valid
        dict(id=20, image_id=2, iscrowd=0, category_id=1,
             segmentation=[box(5, 5, 25, 25)]),
    ]
    return images, anns


def default_refs():
    """Refs of every kind, deliberately out of ``ref_id`` order."""
    return [
        make_gref(7, [10, 11], 1, 'train', [('the two boxes', 71)]),
        make_gref(3, [-1], 1, 'val', [('the dog', 31), ('a cat', 32)]),
        make_gref(5, [12, 13, 10], 1, 'val', [('stuff on top', 51)]),
        make_gref(1, [20], 2, 'val', [('the square', 11)]),
        make_gref(9, [14], 1, 'testA', [('the box on the right', 91)]),
        make_gref(8, [11, 10], 1, 'testB', [('both', 81), ('all two', 82)]),
        make_gref(2, [13], 1, 'testB', [('the crowd', 21)]),
    ]


def write_gref(root, refs=None, images=None, annotations=None,
               dataset='grefcoco', split_by='unc', fmt='json'):
    """Write ``grefs(<split_by>).json`` (``fmt='json'``) or ``.p``
    (``'pickle'``, protocol 2) and ``instances.json``; the folder."""
    if refs is None:
        refs = default_refs()
    if images is None or annotations is None:
        images, annotations = images_and_annotations()
    return write_refer(root, refs, images, annotations, dataset=dataset,
                       split_by=split_by, refs_name='grefs', fmt=fmt)


def reference_union(ann_ids, annotations, height=H, width=W):
    """The union ground truth decoded straight with pycocotools: crowd
    annotations skipped, polygons with an odd count or < 6 numbers left
    out, every polygon of every object OR-ed; (H, W) uint8."""
    if ann_ids == [-1]:
        return np.zeros((height, width), np.uint8)
    by_id = {a['id']: a for a in annotations}
    out = np.zeros((height, width), bool)
    for ann_id in ann_ids:
        ann = by_id[ann_id]
        if ann['iscrowd']:
            continue
        seg = ann['segmentation']
        if isinstance(seg, dict):
            rle = mask_utils.frPyObjects(seg, height, width)
            out |= mask_utils.decode(rle).astype(bool)
            continue
        polys = [p for p in seg if len(p) % 2 == 0 and len(p) >= 6]
        if polys:
            rles = mask_utils.frPyObjects(polys, height, width)
            out |= mask_utils.decode(rles).any(axis=2)
    return out.astype(np.uint8)
