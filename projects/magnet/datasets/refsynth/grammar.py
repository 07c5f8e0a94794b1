"""The expression language of the generated dataset: vocabulary, programs,
program -> text (:func:`render_expression`) and text -> program
(:func:`parse_expression`).

A desc is ``(size | None, colour | None, shape | None)``. Programs:
``('attr', D)``, ``('rel', D, relation, L)``, ``('between', D, L1, L2)``,
``('ord', D, rank, direction)``, ``('cmp', D, 'largest' | 'smallest')``.
"""
from __future__ import annotations

import re
from typing import Dict, Optional, Tuple

import numpy as np

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
