"""A synthetic referring-segmentation dataset written in the REFER format.

Scenes of coloured shapes on (optionally textured) backgrounds, with
referring expressions that need attributes ("the small red circle"),
relations ("the square left of the blue triangle", "the circle between the
red star and the green square"), ordinals ("the second circle from the
left") and comparisons ("the largest red shape"). Every expression is
verified to denote exactly its object by *parsing the written sentence
back* (:func:`parse_expression`) and resolving it against the scene
(:func:`resolve_expression`), with safety margins so that no other object is
a borderline match.

Output layout (the layout ``RefCOCODataset`` reads)::

    <out>/images/mscoco/images/train2014/SYN_train2014_<image_id>.jpg
    <out>/<name>/refs(<split_by>).p    # pickled list of plain ref dicts
    <out>/<name>/instances.json        # COCO images/annotations/categories

Each sentence dict of the refs has REFER's ``raw``, ``sent``, ``tokens`` and
``sent_id``, plus ``kind``: its expression kind (:data:`KIND_NAMES`).

Masks in ``instances.json``:

* an object drawn on top of nothing: one polygon;
* an object occluded only by objects lying entirely inside it: its own
  polygon followed by the occluders' polygons (multi-polygon). REFER's
  ``sum == 1`` rule turns the covered pixels into background, so the GT is
  exactly the visible region;
* an object partly occluded by others: compressed RLE of the visible region,
  or (half of them) uncompressed RLE with ``iscrowd=1`` (COCO's crowd form);
* a few unoccluded objects are stored as compressed RLE too.

Splits: ``train``, ``val``, and ``testA`` / ``testB``, which are the two
halves of the test images (no semantic difference, unlike RefCOCO's
people/objects). Generation is deterministic for a given seed (each image has
its own RNG stream ``default_rng([seed, image_index])``).
"""
from __future__ import annotations

import json
import math
import os
import os.path as osp
import pickle
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

__all__ = [
    'SHAPES', 'COLOURS', 'KIND_NAMES', 'SceneObject', 'parse_expression',
    'resolve_expression', 'render_expression', 'generate_scene',
    'generate_refer_dataset'
]

SHAPES = ('circle', 'square', 'triangle', 'diamond', 'star', 'hexagon')
COLOURS: Dict[str, Tuple[int, int, int]] = {
    'red': (215, 40, 40),
    'green': (40, 165, 60),
    'blue': (40, 80, 220),
    'yellow': (235, 205, 35),
    'purple': (145, 55, 185),
    'orange': (245, 135, 25),
}
SIZE_WORDS = {'small': ('small', 'little'), 'large': ('big', 'large')}
REL_WORDS = {
    'left': ('left of', 'to the left of'),
    'right': ('right of', 'to the right of'),
    'above': ('above', ),
    'below': ('below', 'under'),
}
ORDINALS = ('first', 'second', 'third', 'fourth')
EXTREME_WORDS = {
    'left': 'leftmost',
    'right': 'rightmost',
    'top': 'topmost',
    'bottom': 'bottommost'
}
CMP_WORDS = {'largest': ('largest', 'biggest'), 'smallest': ('smallest', )}
GENERIC_NOUNS = ('shape', 'object')
#: ``kind`` field of the written sentences, by program kind (ordinals and
#: extreme words such as "leftmost" are both 'ord' programs).
KIND_NAMES = {
    'attr': 'attribute',
    'rel': 'relation',
    'between': 'between',
    'ord': 'ordinal',
    'cmp': 'comparison',
}

# Margins, as fractions of the image size / area ratios.
POS_MARGIN = 0.05
AREA_RATIO = 1.3


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


# --------------------------------------------------------------------------
# Expressions: program <-> text, and resolution against a scene.
# A desc is (size | None, colour | None, shape | None).
# Programs: ('attr', D), ('rel', D, relation, L), ('between', D, L1, L2),
#           ('ord', D, rank, direction), ('cmp', D, 'largest' | 'smallest').
# --------------------------------------------------------------------------
Desc = Tuple[Optional[str], Optional[str], Optional[str]]


def _desc_text(desc: Desc, rng: np.random.Generator) -> str:
    size, colour, shape = desc
    words = []
    if size:
        words.append(rng.choice(SIZE_WORDS[size]))
    if colour:
        words.append(colour)
    words.append(shape or rng.choice(GENERIC_NOUNS))
    return ' '.join(words)


def render_expression(program: tuple, rng: np.random.Generator) -> str:
    """Write a program as an English sentence (lower case, no punctuation)."""
    kind, desc = program[0], program[1]
    if kind == 'attr':
        return 'the ' + _desc_text(desc, rng)
    if kind == 'rel':
        return (f'the {_desc_text(desc, rng)} '
                f'{rng.choice(REL_WORDS[program[2]])} '
                f'the {_desc_text(program[3], rng)}')
    if kind == 'between':
        return (f'the {_desc_text(desc, rng)} between the '
                f'{_desc_text(program[2], rng)} and the '
                f'{_desc_text(program[3], rng)}')
    if kind == 'ord':
        rank, direction = program[2], program[3]
        if rank == 1 and rng.random() < 0.5:
            return f'the {EXTREME_WORDS[direction]} {_desc_text(desc, rng)}'
        return (f'the {ORDINALS[rank - 1]} {_desc_text(desc, rng)} '
                f'from the {direction}')
    if kind == 'cmp':
        return (f'the {rng.choice(CMP_WORDS[program[2]])} '
                f'{_desc_text(desc, rng)}')
    raise ValueError(f'unknown expression kind {kind}')


_SIZE_OF = {w: s for s, ws in SIZE_WORDS.items() for w in ws}
_REL_OF = {w: r for r, ws in REL_WORDS.items() for w in ws}
_CMP_OF = {w: c for c, ws in CMP_WORDS.items() for w in ws}
_EXTREME_OF = {w: d for d, w in EXTREME_WORDS.items()}
_DESC_RE = (r'(?:(?P<{p}size>' + '|'.join(_SIZE_OF) + r') )?'
            r'(?:(?P<{p}colour>' + '|'.join(COLOURS) + r') )?'
            r'(?P<{p}noun>' + '|'.join(SHAPES + GENERIC_NOUNS) + r')')


def _d(prefix: str) -> str:
    return _DESC_RE.format(p=prefix)


_PATTERNS = [
    ('attr', re.compile(rf'the {_d("a")}')),
    ('rel',
     re.compile(rf'the {_d("a")} (?P<rel>' +
                '|'.join(sorted(_REL_OF, key=len, reverse=True)) +
                rf') the {_d("b")}')),
    ('between',
     re.compile(rf'the {_d("a")} between the {_d("b")} and the {_d("c")}')),
    ('ord',
     re.compile(r'the (?P<ordinal>' + '|'.join(ORDINALS) +
                rf') {_d("a")} from the (?P<dir>left|right|top|bottom)')),
    ('extreme',
     re.compile(r'the (?P<extreme>' + '|'.join(_EXTREME_OF) +
                rf') {_d("a")}')),
    ('cmp', re.compile(r'the (?P<cmp>' + '|'.join(_CMP_OF) +
                       rf') {_d("a")}')),
]


def _desc_of(m: re.Match, prefix: str) -> Desc:
    size = m.group(prefix + 'size')
    noun = m.group(prefix + 'noun')
    return (_SIZE_OF[size] if size else None, m.group(prefix + 'colour'),
            None if noun in GENERIC_NOUNS else noun)


def parse_expression(sentence: str) -> tuple:
    """Parse a generated sentence (any case, trailing '.') into a program.

    Raises:
        ValueError: the sentence is not in the generator's grammar.
    """
    text = sentence.lower().strip().rstrip('.').strip()
    for kind, pattern in _PATTERNS:
        m = pattern.fullmatch(text)
        if m is None:
            continue
        if kind == 'attr':
            return ('attr', _desc_of(m, 'a'))
        if kind == 'rel':
            return ('rel', _desc_of(m, 'a'), _REL_OF[m.group('rel')],
                    _desc_of(m, 'b'))
        if kind == 'between':
            return ('between', _desc_of(m, 'a'), _desc_of(m, 'b'),
                    _desc_of(m, 'c'))
        if kind == 'ord':
            return ('ord', _desc_of(m, 'a'),
                    ORDINALS.index(m.group('ordinal')) + 1, m.group('dir'))
        if kind == 'extreme':
            return ('ord', _desc_of(m, 'a'), 1,
                    _EXTREME_OF[m.group('extreme')])
        return ('cmp', _desc_of(m, 'a'), _CMP_OF[m.group('cmp')])
    raise ValueError(f'not a generated expression: {sentence!r}')


def _matches(obj: SceneObject, desc: Desc) -> bool:
    size, colour, shape = desc
    return ((size is None or obj.size == size)
            and (colour is None or obj.colour == colour)
            and (shape is None or obj.shape == shape))


def resolve_expression(program: tuple, objects: Sequence[SceneObject],
                       img_size: int) -> Tuple[Set[int], Set[int]]:
    """Objects a program denotes.

    Returns:
        tuple[set, set]: ``(definite, borderline)`` object indices; an
        expression is unambiguous iff ``definite`` has one element and
        ``borderline`` is empty. Positions/areas too close to a decision
        boundary (``POS_MARGIN`` of the image size, ``AREA_RATIO``) are
        borderline.
    """
    margin = POS_MARGIN * img_size
    kind, desc = program[0], program[1]
    cands = [i for i, o in enumerate(objects) if _matches(o, desc)]

    def unique(d: Desc) -> Optional[int]:
        found = [i for i, o in enumerate(objects) if _matches(o, d)]
        return found[0] if len(found) == 1 else None

    if kind == 'attr':
        return set(cands), set()
    if kind == 'rel':
        lm = unique(program[3])
        if lm is None:
            return set(), set(cands)
        axis, sign = {
            'left': ('cx', -1),
            'right': ('cx', 1),
            'above': ('cy', -1),
            'below': ('cy', 1)
        }[program[2]]
        definite, border = set(), set()
        for i in cands:
            if i == lm:
                continue
            d = sign * (getattr(objects[i], axis) - getattr(objects[lm], axis))
            if d >= margin:
                definite.add(i)
            elif d > 0:
                border.add(i)
        return definite, border
    if kind == 'between':
        l1, l2 = unique(program[2]), unique(program[3])
        if l1 is None or l2 is None or l1 == l2:
            return set(), set(cands)
        a, b = objects[l1], objects[l2]
        axis = 'cx' if abs(a.cx - b.cx) >= abs(a.cy - b.cy) else 'cy'
        lo, hi = sorted((getattr(a, axis), getattr(b, axis)))
        definite, border = set(), set()
        for i in cands:
            if i in (l1, l2):
                continue
            t = getattr(objects[i], axis)
            if lo + margin <= t <= hi - margin:
                definite.add(i)
            elif lo < t < hi:
                border.add(i)
        return definite, border
    if kind == 'ord':
        rank, direction = program[2], program[3]
        axis = 'cx' if direction in ('left', 'right') else 'cy'
        order = sorted(cands, key=lambda i: getattr(objects[i], axis),
                       reverse=direction in ('right', 'bottom'))
        if len(order) < rank:
            return set(), set()
        coords = [getattr(objects[i], axis) for i in order]
        gaps = [abs(coords[j + 1] - coords[j])
                for j in range(min(rank, len(order) - 1))]
        if any(g < margin for g in gaps):
            return set(), {order[rank - 1]}
        return {order[rank - 1]}, set()
    if kind == 'cmp':
        order = sorted(cands, key=lambda i: objects[i].area,
                       reverse=program[2] == 'largest')
        if not order:
            return set(), set()
        if len(order) > 1:
            big, small = sorted(
                (objects[order[0]].area, objects[order[1]].area),
                reverse=True)
            if big < AREA_RATIO * small:
                return set(), {order[0]}
        return {order[0]}, set()
    raise ValueError(f'unknown expression kind {kind}')


def _is_unique(program: tuple, objects: Sequence[SceneObject], target: int,
               img_size: int) -> bool:
    definite, border = resolve_expression(program, objects, img_size)
    return definite == {target} and not border


def _descs(obj: SceneObject) -> List[Desc]:
    """All 7 non-empty attribute subsets describing ``obj``."""
    out = []
    for use_size in (False, True):
        for use_colour in (False, True):
            for use_shape in (False, True):
                if use_size or use_colour or use_shape:
                    out.append((obj.size if use_size else None,
                                obj.colour if use_colour else None,
                                obj.shape if use_shape else None))
    return out


def candidate_programs(objects: Sequence[SceneObject], target: int,
                       img_size: int) -> Dict[str, List[tuple]]:
    """All unambiguous programs for ``target``, grouped by kind."""
    obj = objects[target]
    n = len(objects)
    unique_descs = {
        i: [d for d in _descs(objects[i])
            if _is_unique(('attr', d), objects, i, img_size)]
        for i in range(n)
    }
    # Non-unique descs of the target force relations/ordinals to matter.
    shared = [d for d in _descs(obj) if d not in unique_descs[target]]
    progs: Dict[str, List[tuple]] = {
        k: []
        for k in ('attr', 'rel', 'between', 'ord', 'cmp')
    }
    progs['attr'] = [('attr', d) for d in unique_descs[target]]
    # landmarks: other uniquely describable objects not touching the target
    # (a shape lying on another is not "left of" it)
    landmarks = [
        j for j in range(n) if j != target and unique_descs[j]
        and math.hypot(objects[j].cx - obj.cx, objects[j].cy -
                       obj.cy) > objects[j].radius + obj.radius
    ]
    for d in shared:
        for j in landmarks:
            for rel in REL_WORDS:
                for ld in unique_descs[j][:2]:
                    progs['rel'].append(('rel', d, rel, ld))
            for k in landmarks:
                if k <= j:
                    continue
                progs['between'].append(
                    ('between', d, unique_descs[j][0], unique_descs[k][0]))
        for direction in ('left', 'right', 'top', 'bottom'):
            for rank in range(1, len(ORDINALS) + 1):
                progs['ord'].append(('ord', d, rank, direction))
        if d[0] is None:
            for cmp in CMP_WORDS:
                progs['cmp'].append(('cmp', d, cmp))
    return {
        k: [p for p in v if _is_unique(p, objects, target, img_size)]
        for k, v in progs.items()
    }


# --------------------------------------------------------------------------
# Scenes.
# --------------------------------------------------------------------------
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


def generate_scene(rng: np.random.Generator,
                   size: int,
                   min_objects: int = 3,
                   max_objects: int = 6,
                   occlusion_prob: float = 0.25
                   ) -> Tuple[List[SceneObject], List[np.ndarray]]:
    """Sample objects (in drawing order) and their full masks."""
    n_target = int(rng.integers(min_objects, max_objects + 1))
    # A few shapes/colours per scene, so attributes alone are often
    # ambiguous and relations/ordinals/comparisons are needed.
    shapes = rng.choice(SHAPES, size=int(rng.integers(2, 4)), replace=False)
    colours = rng.choice(
        list(COLOURS), size=int(rng.integers(2, 4)), replace=False)
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


def _annotations(objects: List[SceneObject], masks: List[np.ndarray],
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


def _paint(objects: List[SceneObject], masks: List[np.ndarray],
           rng: np.random.Generator, size: int,
           textured: bool) -> np.ndarray:
    img = _background(rng, size, textured)
    for obj, full in zip(objects, masks):
        colour = np.asarray(COLOURS[obj.colour], dtype=np.float64)
        colour = colour * rng.uniform(0.85, 1.1)
        noise = rng.normal(0, 6, (int(full.sum()), 3))
        img[full] = colour + noise
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _sentence_variants(sent: str, rng: np.random.Generator) -> str:
    """``raw`` form of a sentence: sometimes capitalised / with a period."""
    raw = sent
    if rng.random() < 0.3:
        raw = raw[0].upper() + raw[1:]
    if rng.random() < 0.2:
        raw += '.'
    return raw


def _image_refs(objects: List[SceneObject], size: int,
                rng: np.random.Generator, max_refs: int,
                max_sents: int) -> List[Tuple[int, List[Tuple[str, str]]]]:
    """Pick referred objects and 1..max_sents verified sentences each.

    Returns:
        list: ``(target, [(sentence, kind name), ...])`` per referred object,
        the kind name being ``KIND_NAMES[program kind]``.
    """
    order = rng.permutation(len(objects))
    refs = []
    for target in order:
        if len(refs) == max_refs:
            break
        progs = candidate_programs(objects, int(target), size)
        kinds = [k for k in progs if progs[k]]
        if not kinds:
            continue
        n = int(rng.integers(1, max_sents + 1))
        sents: List[Tuple[str, str]] = []
        for kind in rng.permutation(kinds)[:n]:
            prog = progs[kind][int(rng.integers(len(progs[kind])))]
            sent = render_expression(prog, rng)
            # independent check: the *written* sentence denotes the target
            if not _is_unique(parse_expression(sent), objects, int(target),
                              size):
                raise AssertionError(f'ambiguous expression: {sent!r}')
            if all(sent != s for s, _ in sents):
                sents.append((sent, KIND_NAMES[str(kind)]))
        refs.append((int(target), sents))
    return refs


def generate_refer_dataset(out_dir: str,
                           num_train_images: int = 2000,
                           num_val_images: int = 200,
                           num_test_images: int = 200,
                           img_size: int = 128,
                           seed: int = 0,
                           dataset_name: str = 'refsynth',
                           split_by: str = 'unc',
                           image_format: str = 'jpg',
                           textured_prob: float = 0.5,
                           occlusion_prob: float = 0.25,
                           max_refs_per_image: int = 3,
                           max_sentences_per_ref: int = 3,
                           progress: bool = True) -> dict:
    """Write a synthetic dataset in the REFER format.

    Args:
        out_dir (str): output root (becomes ``RefCOCODataset.data_root``).
        num_train_images / num_val_images / num_test_images (int): images
            per split; test images are halved into ``testA`` / ``testB``.
        img_size (int): square image side in pixels.
        seed (int): base seed; the output is a function of all arguments.
        dataset_name (str): annotation folder name (``dataset`` argument).
        split_by (str): written as ``refs(<split_by>).p``.
        image_format (str): ``'jpg'`` (quality 95) or ``'png'``.
        textured_prob (float): probability of a textured background.
        occlusion_prob (float): probability that a new object is placed
            overlapping an existing one.
        max_refs_per_image (int): referred objects per image (at most).
        max_sentences_per_ref (int): sentences per referred object (at most).
        progress (bool): show a tqdm progress bar.

    Returns:
        dict: counts of images, annotations, refs and sentences per split.
    """
    if image_format not in ('jpg', 'png'):
        raise ValueError(f'image_format must be jpg or png, got '
                         f'{image_format!r}')
    img_dir = osp.join(out_dir, 'images', 'mscoco', 'images', 'train2014')
    ann_dir = osp.join(out_dir, dataset_name)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    n_test_a = num_test_images // 2
    splits = (['train'] * num_train_images + ['val'] * num_val_images +
              ['testA'] * n_test_a + ['testB'] *
              (num_test_images - n_test_a))
    categories = [
        dict(id=i + 1, name=s, supercategory='shape')
        for i, s in enumerate(SHAPES)
    ]
    images, annotations, refs = [], [], []
    ann_id = sent_id = ref_id = 0
    summary: Dict[str, Dict[str, int]] = {}
    iterator = range(len(splits))
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc='generating', unit='img')
    for index in iterator:
        split = splits[index]
        rng = np.random.default_rng([seed, index])
        objects, masks = generate_scene(
            rng, img_size, occlusion_prob=occlusion_prob)
        textured = bool(rng.random() < textured_prob)
        pixels = _paint(objects, masks, rng, img_size, textured)
        image_id = index + 1
        stem = f'SYN_train2014_{image_id:012d}'
        file_name = f'{stem}.{image_format}'
        # 4:4:4 chroma: small shapes keep their colour up to the edges
        save_kw = dict(quality=95, subsampling=0) \
            if image_format == 'jpg' else {}
        Image.fromarray(pixels).save(osp.join(img_dir, file_name), **save_kw)
        images.append(
            dict(
                id=image_id,
                file_name=file_name,
                height=img_size,
                width=img_size))
        obj_ann_ids = []
        for obj, ann in zip(objects, _annotations(objects, masks, rng)):
            ann_id += 1
            obj_ann_ids.append(ann_id)
            ann.pop('visible')
            annotations.append(
                dict(
                    id=ann_id,
                    image_id=image_id,
                    category_id=SHAPES.index(obj.shape) + 1,
                    **ann))
        stats = summary.setdefault(split,
                                   dict(images=0, refs=0, sentences=0))
        stats['images'] += 1
        for target, sents in _image_refs(objects, img_size, rng,
                                         max_refs_per_image,
                                         max_sentences_per_ref):
            ref_id += 1
            sentences = []
            for sent, kind in sents:
                sent_id += 1
                sentences.append(
                    dict(
                        raw=_sentence_variants(sent, rng),
                        sent=sent,
                        tokens=sent.split(),
                        sent_id=sent_id,
                        kind=kind))
            refs.append(
                dict(
                    ref_id=ref_id,
                    ann_id=obj_ann_ids[target],
                    image_id=image_id,
                    category_id=SHAPES.index(objects[target].shape) + 1,
                    split=split,
                    sent_ids=[s['sent_id'] for s in sentences],
                    sentences=sentences,
                    file_name=f'{stem}_{obj_ann_ids[target]}.{image_format}'))
            stats['refs'] += 1
            stats['sentences'] += len(sentences)
    with open(osp.join(ann_dir, f'refs({split_by}).p'), 'wb') as f:
        pickle.dump(refs, f, protocol=2)  # REFER files are protocol-2
    with open(osp.join(ann_dir, 'instances.json'), 'w') as f:
        json.dump(
            dict(
                images=images, annotations=annotations,
                categories=categories), f)
    return dict(
        out_dir=out_dir,
        dataset=dataset_name,
        split_by=split_by,
        annotations=len(annotations),
        splits=summary)
