"""What an expression denotes in a scene: resolution with safety margins,
uniqueness, and every unambiguous program for an object."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Set, Tuple

from .grammar import (AREA_RATIO, CMP_WORDS, ORDINALS, POS_MARGIN,
                      REL_WORDS, Desc)
from .scene import SceneObject

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


def is_unique(program: tuple, objects: Sequence[SceneObject], target: int,
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
            if is_unique(('attr', d), objects, i, img_size)]
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
        k: [p for p in v if is_unique(p, objects, target, img_size)]
        for k, v in progs.items()
    }
