"""Set semantics for the generated GRES (gRefCOCO-format) dataset.

An expression denotes a *set* of objects: one (single-target), several
(multi-target) or none (no-target). Beside the singular programs of
:mod:`.grammar`, plural programs::

    ('plural', quant, D, filter)
    quant:  'the' ("the red circles"), 'all' ("all the red circles"),
            2 ("both circles" / "the two circles"), 3 ("the three ...")
    filter: None | ('side', 'left' | 'right' | 'top' | 'bottom')
            ("on the left", "at the top": the half of the image)
            | ('rel', relation, L) ("left of the blue square", L singular)

Resolution (:func:`resolve_gres`) gives ``(definite, borderline)`` like
:func:`.resolve.resolve_expression`; an expression is usable for the
target set ``T`` (possibly empty) iff ``definite == T`` and ``borderline``
is empty. Presuppositions are strict, so that no expression is read two
ways: a singular "the X" matching several objects, a plural matching one
object, a count word ("both", "two", "three") not equal to the number of
matches, are all ambiguous (borderline), never no-target. An expression
whose description or relation holds for no object denotes the empty set.
"""
from __future__ import annotations

import math
import re
from typing import Dict, List, Sequence, Set, Tuple

import numpy as np

from ...utils.errors import InvalidInputError
from .grammar import (COLOURS, GENERIC_NOUNS, KIND_NAMES, REL_WORDS,
                      SHAPES, SIZE_WORDS, Desc, _d, _desc_text,
                      parse_expression, render_expression)
from .resolve import _descs, _matches, candidate_programs, resolve_expression
from .scene import SceneObject

#: ``kind`` of a GRES sentence: how many objects it denotes.
TARGET_KINDS = ('single', 'multi', 'no-target')
#: count words and the number each one requires ("both" is 2 too)
COUNT_WORDS = {2: 'two', 3: 'three'}
SIDE_WORDS = {
    'left': 'on the left',
    'right': 'on the right',
    'top': 'at the top',
    'bottom': 'at the bottom'
}
#: "on the left" = centre at least this fraction of the image size left
#: of the vertical middle line; closer to the line is borderline.
SIDE_MARGIN = 0.1

_SIZE_OF = {w: s for s, ws in SIZE_WORDS.items() for w in ws}
_REL_OF = {w: r for r, ws in REL_WORDS.items() for w in ws}
_SIDE_OF = {w: s for s, w in SIDE_WORDS.items()}
_QUANT_OF = {'all the': 'all', 'both': 2, 'the': 'the'}
_QUANT_OF.update({f'the {w}': n for n, w in COUNT_WORDS.items()})
_PLURAL_NOUNS = {n + 's': n for n in SHAPES + GENERIC_NOUNS}
_PLURAL_RE = re.compile(
    r'(?P<quant>' + '|'.join(sorted(_QUANT_OF, key=len, reverse=True)) +
    r') (?:(?P<size>' + '|'.join(_SIZE_OF) + r') )?'
    r'(?:(?P<colour>' + '|'.join(COLOURS) + r') )?'
    r'(?P<noun>' + '|'.join(_PLURAL_NOUNS) + r')'
    r'(?: (?P<side>' + '|'.join(_SIDE_OF) + r')| (?P<rel>' +
    '|'.join(sorted(_REL_OF, key=len, reverse=True)) + rf') the {_d("b")})?')


def _plural_text(desc: Desc, rng: np.random.Generator) -> str:
    size, colour, shape = desc
    words = [str(rng.choice(SIZE_WORDS[size]))] if size else []
    if colour:
        words.append(colour)
    words.append((shape or str(rng.choice(GENERIC_NOUNS))) + 's')
    return ' '.join(words)


def render_gres(program: tuple, rng: np.random.Generator) -> str:
    """Write a singular or plural program as a sentence (lower case)."""
    if program[0] != 'plural':
        return render_expression(program, rng)
    _, quant, desc, filt = program
    noun_phrase = _plural_text(desc, rng)
    if quant == 'the':
        text = f'the {noun_phrase}'
    elif quant == 'all':
        text = f'all the {noun_phrase}'
    elif quant == 2 and rng.random() < 0.5:
        text = f'both {noun_phrase}'
    elif quant in COUNT_WORDS:
        text = f'the {COUNT_WORDS[quant]} {noun_phrase}'
    else:
        raise ValueError(f'unknown quantifier {quant!r}')
    if filt is None:
        return text
    if filt[0] == 'side':
        return f'{text} {SIDE_WORDS[filt[1]]}'
    return (f'{text} {rng.choice(REL_WORDS[filt[1]])} '
            f'the {_desc_text(filt[2], rng)}')


def parse_gres(sentence: str) -> tuple:
    """Parse a generated GRES sentence (any case, trailing '.').

    Raises:
        ValueError: the sentence is not in the generator's grammar.
    """
    text = sentence.lower().strip().rstrip('.').strip()
    m = _PLURAL_RE.fullmatch(text)
    if m is None:
        return parse_expression(sentence)
    size = m.group('size')
    desc = (_SIZE_OF[size] if size else None, m.group('colour'),
            None if _PLURAL_NOUNS[m.group('noun')] in GENERIC_NOUNS else
            _PLURAL_NOUNS[m.group('noun')])
    filt = None
    if m.group('side'):
        filt = ('side', _SIDE_OF[m.group('side')])
    elif m.group('rel'):
        bsize, bnoun = m.group('bsize'), m.group('bnoun')
        landmark = (_SIZE_OF[bsize] if bsize else None, m.group('bcolour'),
                    None if bnoun in GENERIC_NOUNS else bnoun)
        filt = ('rel', _REL_OF[m.group('rel')], landmark)
    return ('plural', _QUANT_OF[m.group('quant')], desc, filt)


def expression_kind(program: tuple) -> str:
    """``expr_kind`` of a sentence: the singular kinds of
    :data:`.grammar.KIND_NAMES`; plurals are 'attribute', 'position'
    ("on the left") or 'relation' by their filter."""
    if program[0] != 'plural':
        return KIND_NAMES[program[0]]
    filt = program[3]
    if filt is None:
        return 'attribute'
    return 'position' if filt[0] == 'side' else 'relation'


def _side_sets(desc: Desc, side: str, objects: Sequence[SceneObject],
               img_size: int) -> Tuple[Set[int], Set[int]]:
    margin, half = SIDE_MARGIN * img_size, img_size / 2
    axis, sign = {'left': ('cx', -1), 'right': ('cx', 1),
                  'top': ('cy', -1), 'bottom': ('cy', 1)}[side]
    definite, border = set(), set()
    for i, obj in enumerate(objects):
        if not _matches(obj, desc):
            continue
        d = sign * (getattr(obj, axis) - half)
        if d >= margin:
            definite.add(i)
        elif d > -margin:
            border.add(i)
    return definite, border


def _base_sets(desc: Desc, filt, objects: Sequence[SceneObject],
               img_size: int) -> Tuple[Set[int], Set[int]]:
    """``(definite, borderline)`` objects of a plural's description and
    filter, before its quantifier."""
    if filt is None:
        return resolve_expression(('attr', desc), objects, img_size)
    if filt[0] == 'side':
        return _side_sets(desc, filt[1], objects, img_size)
    return resolve_expression(('rel', desc, filt[1], filt[2]), objects,
                              img_size)


def _quantify(quant, found: Set[int],
              border: Set[int]) -> Tuple[Set[int], Set[int]]:
    """Apply a plural quantifier: none found -> the empty set; 'the' /
    'all' need 2+, a count exactly its number, else ambiguous."""
    if border:
        return set(), found | border
    if not found:
        return set(), set()
    wanted = len(found) >= 2 if quant in ('the', 'all') else \
        len(found) == quant
    return (set(found), set()) if wanted else (set(), set(found))


def resolve_gres(program: tuple, objects: Sequence[SceneObject],
                 img_size: int) -> Tuple[Set[int], Set[int]]:
    """The set a (singular or plural) program denotes (see the module
    docstring): ``(definite, borderline)`` object indices."""
    if program[0] != 'plural':
        definite, border = resolve_expression(program, objects, img_size)
        if len(definite) > 1:  # a singular "the" needs exactly one
            return set(), definite | border
        return definite, border
    _, quant, desc, filt = program
    return _quantify(quant, *_base_sets(desc, filt, objects, img_size))


def _touches(a: SceneObject, b: SceneObject) -> bool:
    return math.hypot(a.cx - b.cx, a.cy - b.cy) <= a.radius + b.radius


def _landmarks(objects: Sequence[SceneObject],
               img_size: int) -> List[Tuple[int, Desc]]:
    """(index, desc) of the objects a singular desc picks out (at most
    two descs each)."""
    out = []
    for j, obj in enumerate(objects):
        unique = [d for d in _descs(obj)
                  if resolve_expression(('attr', d), objects,
                                        img_size)[0] == {j}]
        out.extend((j, d) for d in unique[:2])
    return out


def multi_programs(objects: Sequence[SceneObject], img_size: int
                   ) -> Dict[Tuple[int, ...], List[tuple]]:
    """Usable plural programs by target set (2+ objects).

    Policy (as the singular generator): no relation to a landmark that an
    object of the described kind touches (a shape lying on another is not
    "left of" it).

    Returns:
        dict: ``{sorted target indices: [program, ...]}``, in a
        deterministic order.
    """
    descs = sorted({d for o in objects for d in _descs(o)} |
                   {(None, None, None)}, key=repr)
    landmarks = _landmarks(objects, img_size)
    filters: List = [None] + [('side', s) for s in SIDE_WORDS]
    filters += [('rel', rel, ld) for _, ld in landmarks for rel in REL_WORDS]
    lm_index = {ld: j for j, ld in landmarks}
    multi: Dict[Tuple[int, ...], List[tuple]] = {}
    for desc in descs:
        members = [i for i, o in enumerate(objects) if _matches(o, desc)]
        for filt in filters:
            if filt is not None and filt[0] == 'rel':
                landmark = lm_index[filt[2]]
                if any(_touches(objects[i], objects[landmark])
                       for i in members if i != landmark):
                    continue
            base = _base_sets(desc, filt, objects, img_size)
            for quant in ('the', 'all') + tuple(COUNT_WORDS):
                definite, _ = _quantify(quant, *base)
                if definite:
                    multi.setdefault(tuple(sorted(definite)), []).append(
                        ('plural', quant, desc, filt))
    return multi


def absent_descs(objects: Sequence[SceneObject]) -> List[Desc]:
    """Descriptions no object matches, each a scene object's description
    with one attribute changed ("the green triangle" beside a red one), in
    a deterministic order."""
    absent = set()
    for obj in objects:
        for size, colour, shape in _descs(obj):
            alts = []
            if size:
                alts += [(s, colour, shape) for s in SIZE_WORDS]
            if colour:
                alts += [(size, c, shape) for c in COLOURS]
            if shape:
                alts += [(size, colour, s) for s in SHAPES]
            absent.update(a for a in alts
                          if not any(_matches(o, a) for o in objects))
    return sorted(absent, key=repr)


def _near(desc: Desc, absent: Sequence[Desc]) -> List[Desc]:
    """The absent descriptions with ``desc``'s attributes, one of them
    changed."""
    return [
        a for a in absent
        if [x is None for x in a] == [x is None for x in desc]
        and sum(x != y for x, y in zip(a, desc)) == 1
    ]


def no_target_variants(program: tuple, objects: Sequence[SceneObject],
                       img_size: int, absent: Sequence[Desc]) -> List[tuple]:
    """No-target programs of the same form as a target's ``program``.

    Its described objects are replaced by an absent description one
    attribute away ("the second green circle from the left" where "the
    second red circle from the left" was a target and no circle is green),
    or its relation or side by one that holds for none of them ("the
    circles on the right" when every circle is on the left). A no-target
    expression is then written with the words and forms of the target
    expressions, so the sentence alone does not tell that it refers to
    nothing: only the image does. Only programs that denote the empty set
    with nothing borderline are returned.

    Args:
        program (tuple): a singular or plural program (a target's).
        objects (Sequence[SceneObject]): the scene.
        img_size (int): the image size.
        absent (Sequence[Desc]): :func:`absent_descs` of the scene.
    """
    head = 2 if program[0] == 'plural' else 1
    out = [program[:head] + (alt, ) + program[head + 1:]
           for alt in _near(program[head], absent)]
    if program[0] == 'rel':
        out += [program[:2] + (rel, ) + program[3:]
                for rel in REL_WORDS if rel != program[2]]
    elif program[0] == 'plural' and program[3] is not None:
        filt = program[3]
        if filt[0] == 'side':
            alts = [('side', s) for s in SIDE_WORDS if s != filt[1]]
        else:
            alts = [('rel', r, filt[2]) for r in REL_WORDS if r != filt[1]]
        out += [program[:3] + (f, ) for f in alts]
    return [p for p in out
            if resolve_gres(p, objects, img_size) == (set(), set())]


def _pick(progs: List[tuple], n: int,
          rng: np.random.Generator) -> List[tuple]:
    """Up to ``n`` programs of distinct expression kinds, kinds drawn
    uniformly (as the singular generator draws them)."""
    by_kind: Dict[str, List[tuple]] = {}
    for p in progs:
        by_kind.setdefault(expression_kind(p), []).append(p)
    kinds = rng.permutation(sorted(by_kind))[:n]
    return [by_kind[k][int(rng.integers(len(by_kind[k])))] for k in kinds]


def _target_forms(objects: Sequence[SceneObject], img_size: int,
                  multi: Dict[Tuple[int, ...], List[tuple]],
                  forms: np.ndarray, rng: np.random.Generator) -> List[tuple]:
    """The programs of a random target ref (one object with probability
    ``forms[0] / forms.sum()``, else a random set of the scene's
    ``multi``), to be turned into no-target ones."""
    if rng.random() < forms[0] / forms.sum() or not multi:
        target = int(rng.integers(len(objects)))
        return [p for ps in candidate_programs(objects, target,
                                               img_size).values() for p in ps]
    sets = sorted(multi)
    return multi[sets[int(rng.integers(len(sets)))]]


def image_gres_refs(objects: Sequence[SceneObject], img_size: int,
                    rng: np.random.Generator, max_refs: int, max_sents: int,
                    mix: Dict[str, float]
                    ) -> List[Tuple[Tuple[int, ...], str,
                                    List[Tuple[str, str]]]]:
    """Draw up to ``max_refs`` refs for one scene: each slot draws a target
    kind with probabilities proportional to ``mix`` (``{kind: weight}``
    over :data:`TARGET_KINDS`); a slot whose kind has nothing left to
    refer to (e.g. multi in a scene of distinct objects) stays empty.
    Every sentence is parsed back and resolved on the scene to exactly its
    target set.

    Returns:
        list: ``(sorted target indices, target kind, [(sentence,
        expression kind), ...])``; ``()`` for no-target refs.
    """
    weights = np.array([float(mix.get(k, 0.)) for k in TARGET_KINDS])
    if not (weights >= 0).all() or weights.sum() <= 0:
        raise InvalidInputError(
            f'mix must give weights >= 0 with a positive sum to the kinds '
            f'{list(TARGET_KINDS)}, got {mix!r}')
    multi = multi_programs(objects, img_size)
    absent = absent_descs(objects)
    # a no-target ref borrows the forms of a target ref, drawn as the
    # single / multi refs are drawn (equally when only no-target is asked)
    forms = weights[:2] if weights[:2].sum() > 0 else np.ones(2)
    singles = [int(i) for i in rng.permutation(len(objects))]
    used_sets: Set[Tuple[int, ...]] = set()
    used_sents: Set[str] = set()
    refs = []
    for _ in range(max_refs):
        kind = str(rng.choice(TARGET_KINDS, p=weights / weights.sum()))
        n = int(rng.integers(1, max_sents + 1))
        progs: List[tuple] = []
        targets: Tuple[int, ...] = ()
        if kind == 'single':
            while singles and not progs:
                targets = (singles.pop(0), )
                progs = [p for ps in candidate_programs(
                    objects, targets[0], img_size).values() for p in ps]
        elif kind == 'multi':
            free = sorted(set(multi) - used_sets)
            if free:
                targets = free[int(rng.integers(len(free)))]
                progs = multi[targets]
        else:
            progs = [
                v for p in _target_forms(objects, img_size, multi, forms,
                                         rng)
                for v in no_target_variants(p, objects, img_size, absent)
            ]
        sents = []
        for prog in _pick(progs, n, rng):
            sent = render_gres(prog, rng)
            # independent check: the *written* sentence denotes the set
            if resolve_gres(parse_gres(sent), objects, img_size) != (
                    set(targets), set()):
                raise AssertionError(f'expression {sent!r} does not denote '
                                     f'exactly the objects {targets}')
            if sent not in used_sents:
                used_sents.add(sent)
                sents.append((sent, expression_kind(prog)))
        if sents:
            used_sets.add(targets)
            refs.append((targets, kind, sents))
    return refs
