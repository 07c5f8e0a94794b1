"""The one set of rules of the REFER format (refs + COCO-style instances).

Used by ``RefCOCODataset`` (raise mode: the first problem raises
:class:`ReferFormatError`) and by ``tools/misc/check_refer_data.py``
(collect mode: every problem is kept and summarised). The rules:

* refs file: a list of dicts; each ref has ``split`` (str), ``ref_id``,
  ``ann_id``, ``image_id`` (int, not bool), ``sentences`` (non-empty list of
  dicts with a str ``raw``), ``sent_ids`` (ints, as many as sentences); the
  listed ``sentence_keys`` of a sentence, when present, are str; ``ref_id``
  is unique. One problem per ref (the first in that order). gRefCOCO
  (``multi_target``): ``ann_id`` / ``category_id`` are lists of int,
  ``ann_id`` is ``[-1]`` (no target) or distinct ids, ``sent_ids`` optional.
* a sentence with no word (:func:`~projects.magnet.utils.expressions.
  wordless_reason`) is reported, never trained or scored: the dataset skips
  it with one warning per split, the checker lists it as a problem.
* instances: every element of ``"images"`` is an object with int ``id``,
  str ``file_name``, int ``height`` and ``width``; of ``"annotations"``,
  int ``id`` and ``image_id`` and a non-empty ``segmentation`` (polygons or
  RLE); ids are unique per array.
* joins: a ref's ``ann_id`` is in ``"annotations"``, its ``image_id`` in
  ``"images"`` and equal to its annotation's; an annotation's ``image_id``
  is in ``"images"``.

Scope: the dataset applies the rules to what its split uses (every ref's
``split``; the split's refs; their images and annotations), the checker to
everything in the files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import (Any, Callable, Dict, List, Optional, Sequence, Tuple,
                    Union)

from projects.magnet.utils.errors import UserError
from projects.magnet.utils.expressions import wordless_reason

__all__ = ['ReferFormatError', 'Problem', 'Problems', 'check_ref',
           'check_image', 'check_annotation', 'join_problem', 'Wordless',
           'BYTES_HINT']

TypeSpec = Union[type, Tuple[type, ...]]

BYTES_HINT = (" (the file has bytes where REFER has str: it was re-saved "
              "from a pickle loaded with encoding='bytes'; convert the "
              'original REFER pickle instead, which is read with '
              "encoding='latin1')")


class ReferFormatError(UserError, ValueError):
    """A REFER annotation file is malformed (message names file + field)."""


@dataclass(frozen=True)
class Problem:
    """One broken rule.

    Attributes:
        file (str): the file it is in.
        where (str): the entry, e.g. ``'refs[3] (ref_id=5)'``.
        what (str): what is wrong, e.g. ``'missing field "ann_id"'``.
        group (str): how the checker summarises problems of this kind
            (``'lack a valid "ann_id" (int)'``).
        kind (str): ``'ref'``, ``'image'``, ``'annotation'``, ``'duplicate'``
            (``ident`` and ``first`` then say which id and where it was
            first) or ``'join'``.
    """

    file: str
    where: str
    what: str
    group: str
    kind: str = 'ref'
    ident: Any = None
    first: str = ''

    def __str__(self) -> str:
        where = f'{self.where}: ' if self.where else ''
        return f'{self.file}: {where}{self.what}'


class Problems:
    """Where problems go: ``collect=False`` raises the first one as a
    :class:`ReferFormatError`, ``collect=True`` keeps them in ``items``."""

    def __init__(self, collect: bool = False) -> None:
        self.collect = collect
        self.items: List[Problem] = []

    def add(self, problem: Problem) -> None:
        if not self.collect:
            raise ReferFormatError(str(problem))
        self.items.append(problem)


def _type_names(typ: TypeSpec) -> str:
    return ' or '.join(t.__name__
                       for t in (typ if isinstance(typ, tuple) else (typ, )))


def field_problem(obj: dict, name: str, typ: TypeSpec) -> Optional[str]:
    """Why ``obj[name]`` is not a ``typ`` (bool is not an int), or None."""
    if name not in obj:
        hint = BYTES_HINT if name.encode() in obj else ''
        return f'missing field "{name}"{hint}'
    value = obj[name]
    if not isinstance(value, typ) or (isinstance(value, bool)
                                      and bool not in (typ if isinstance(
                                          typ, tuple) else (typ, ))):
        hint = BYTES_HINT if isinstance(value, bytes) else ''
        return (f'field "{name}" must be {_type_names(typ)}, got '
                f'{type(value).__name__} ({repr(value)[:60]}){hint}')
    return None


class _Bad(Exception):
    """A rule broken inside :func:`check_ref` (turned into a Problem)."""

    def __init__(self, where: str, what: str, group: str) -> None:
        super().__init__(what)
        self.where, self.what, self.group = where, what, group


def _get(obj: dict, name: str, typ: TypeSpec, where: str,
         group: Optional[str] = None) -> Any:
    what = field_problem(obj, name, typ)
    if what is not None:
        raise _Bad(where, what, group or
                   f'lack a valid "{name}" ({_type_names(typ)})')
    return obj[name]


@dataclass
class Wordless:
    """A sentence without a word (reported, never used)."""

    ref_id: int
    sent_id: int
    split: str
    reason: str

    def __str__(self) -> str:
        return f'ref_id={self.ref_id} sent_id={self.sent_id} ({self.reason})'


def check_ref(ref: Any, index: int, file: str, problems: Problems,
              seen: Dict[int, int],
              select: Optional[Callable[[str], bool]] = None,
              sentence_keys: Sequence[str] = (),
              wordless: Optional[List[Wordless]] = None,
              multi_target: bool = False) -> Optional[Dict[str, Any]]:
    """Check one ref; the fields used downstream, or None.

    Args:
        ref: ``refs[index]`` as read from ``file``.
        seen (dict): ``{ref_id: index}`` of the refs checked so far (for
            uniqueness; updated).
        select (callable, optional): which ``split`` values to check beyond
            the ``split`` field (the dataset's split); None: every ref.
        sentence_keys: optional str fields of the sentences to keep.
        wordless (list, optional): sentences without a word are appended
            here and left out of the result.
        multi_target (bool): the gRefCOCO rules (:func:`_id_list`):
            ``ann_id`` and ``category_id`` are lists of int, ``ann_id`` is
            ``[-1]`` (no target) or distinct ids; ``sent_ids`` may be left
            out (the sentences' own int ``sent_id`` are used).

    Returns:
        dict | None: ``ref_id, ann_id, image_id, category_id, split,
        sentences=[{raw, sent_id, <sentence_keys>}]`` (the sentences with a
        word: possibly none); None for a ref that is not selected or
        breaks a rule (collect mode).
    """
    where = f'refs[{index}]'
    try:
        if not isinstance(ref, dict):
            raise _Bad(where, f'is a {type(ref).__name__}, not a dict',
                       f'are not dicts ({type(ref).__name__})')
        split = _get(ref, 'split', str, where)
        if select is not None and not select(split):
            return None
        ref_id = _get(ref, 'ref_id', int, where)
        if ref_id in seen:
            problems.add(Problem(
                file, where, f'duplicate ref_id {ref_id} (also '
                f'refs[{seen[ref_id]}]); ref ids must be unique',
                'repeat a ref_id', 'duplicate', ref_id,
                f'refs[{seen[ref_id]}]'))
            return None
        seen[ref_id] = index
        where = f'refs[{index}] (ref_id={ref_id})'
        if multi_target:
            kept = dict(ref_id=ref_id, ann_id=_id_list(ref, 'ann_id', where),
                        image_id=_get(ref, 'image_id', int, where),
                        category_id=_id_list(ref, 'category_id', where),
                        split=split)
        else:
            kept = dict(ref_id=ref_id,
                        ann_id=_get(ref, 'ann_id', int, where),
                        image_id=_get(ref, 'image_id', int, where),
                        category_id=ref.get('category_id', -1), split=split)
        kept['sentences'] = _sentences(ref, where, kept, sentence_keys,
                                       wordless, multi_target)
    except _Bad as bad:
        problems.add(Problem(file, bad.where, bad.what, bad.group))
        return None
    return kept


def _id_list(ref: dict, name: str, where: str) -> List[int]:
    """gRefCOCO's list-typed ``ann_id`` / ``category_id`` of ``ref``.

    Each is a list of int (not bool); ``ann_id`` is non-empty, has no id
    twice and is either ``[-1]`` (an expression with no target) or ids of
    annotations (``-1`` never next to other ids).
    """
    ids = _get(ref, name, list, where, f'lack a valid "{name}" (list of '
               'int)')
    for j, value in enumerate(ids):
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Bad(where, f'"{name}"[{j}] must be an int, got '
                       f'{type(value).__name__} ({repr(value)[:60]})',
                       f'have a "{name}" entry that is not an int')
    if name != 'ann_id':
        return ids
    if not ids:
        raise _Bad(where, '"ann_id" is empty; expected the referred '
                   'annotation ids, or [-1] for an expression with no '
                   'target', 'have an empty "ann_id"')
    if -1 in ids and len(ids) > 1:
        raise _Bad(where, f'"ann_id" {ids} mixes -1 (no target) with other '
                   'ids; -1 may only appear alone, as [-1]',
                   'mix -1 with annotation ids in "ann_id"')
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise _Bad(where, f'"ann_id" {ids} repeats the annotation id(s) '
                   f'{repeated}; each referred annotation is listed once',
                   'repeat an id in "ann_id"')
    return ids


def _sentences(ref: dict, where: str, kept: dict,
               sentence_keys: Sequence[str],
               wordless: Optional[List[Wordless]],
               own_ids: bool = False) -> List[dict]:
    sentences = _get(ref, 'sentences', list, where)
    if own_ids and 'sent_ids' not in ref:
        # gRefCOCO: the sentences' own ids (REFER's sent_ids is optional)
        sent_ids = [
            _get(s, 'sent_id', int, f'{where}: sentences[{j}]',
                 'have a sentence without an int "sent_id"')
            if isinstance(s, dict) else None
            for j, s in enumerate(sentences)
        ]
    else:
        sent_ids = _get(ref, 'sent_ids', list, where)
    if len(sentences) != len(sent_ids):
        raise _Bad(where, f'"sentences" has {len(sentences)} entries but '
                   f'"sent_ids" has {len(sent_ids)}',
                   'have "sentences" and "sent_ids" of different lengths')
    if not sentences:
        raise _Bad(where, '"sentences" is empty', 'have no sentence')
    out = []
    for j, (sent, sent_id) in enumerate(zip(sentences, sent_ids)):
        swhere = f'{where}: sentences[{j}]'
        if not isinstance(sent, dict):
            raise _Bad(swhere, 'is not a dict', 'have a sentence that is '
                       'not a dict')
        raw = _get(sent, 'raw', str, swhere,
                   'have a sentence without a str "raw"')
        if not isinstance(sent_id, int) or isinstance(sent_id, bool):
            raise _Bad(where, f'"sent_ids"[{j}] must be an int, got '
                       f'{sent_id!r}', 'have a "sent_ids" entry that is not '
                       'an int')
        item = dict(raw=raw, sent_id=sent_id)
        for key in sentence_keys:
            if key in sent:
                item[key] = _get(sent, key, str, swhere,
                                 f'have a sentence whose "{key}" is not a '
                                 'str')
        reason = wordless_reason(raw)
        if reason is not None and wordless is not None:
            wordless.append(Wordless(kept['ref_id'], sent_id, kept['split'],
                                     reason))
            continue
        out.append(item)
    return out


def _check_item(item: Any, key: str, index: int, file: str,
                problems: Problems, seen: Dict[int, int],
                wanted: Optional[set], fields: Sequence[Tuple[str, TypeSpec]]
                ) -> Optional[Tuple[int, dict]]:
    """Shared rules of an element of ``"images"`` / ``"annotations"``."""
    where = f'"{key}"[{index}]'
    what = 'image' if key == 'images' else 'annotation'
    if not isinstance(item, dict):
        problems.add(Problem(file, where, 'is not an object',
                             f'{key} are not objects', what))
        return None
    bad = field_problem(item, 'id', int)
    if bad is not None:
        problems.add(Problem(file, where, bad, f'{key} lack a valid "id" '
                             '(int)', what))
        return None
    item_id = item['id']
    if wanted is not None and item_id not in wanted:
        return None
    where = f'{where} (id={item_id})'
    if item_id in seen:
        problems.add(Problem(
            file, where, f'duplicate {what} id {item_id} (also '
            f'"{key}"[{seen[item_id]}]); ids must be unique',
            f'{key} repeat an id', 'duplicate', item_id,
            f'"{key}"[{seen[item_id]}]'))
        return None
    seen[item_id] = index
    for name, typ in fields:
        bad = field_problem(item, name, typ)
        if bad is not None:
            problems.add(Problem(file, where, bad, f'{key} lack a valid '
                                 f'"{name}" ({_type_names(typ)})', what))
            return None
    return item_id, item


def check_image(item: Any, index: int, file: str, problems: Problems,
                seen: Dict[int, int], wanted: Optional[set] = None
                ) -> Optional[Tuple[int, Tuple[str, int, int]]]:
    """``(id, (file_name, height, width))`` of a valid ``"images"``
    element (``wanted``: the ids to check beyond ``id``; None: all)."""
    found = _check_item(item, 'images', index, file, problems, seen, wanted,
                        (('file_name', str), ('height', int),
                         ('width', int)))
    if found is None:
        return None
    image_id, item = found
    return image_id, (item['file_name'], item['height'], item['width'])


def check_annotation(item: Any, index: int, file: str, problems: Problems,
                     seen: Dict[int, int], wanted: Optional[set] = None
                     ) -> Optional[Tuple[int, Tuple[int, Any]]]:
    """``(id, (image_id, segmentation))`` of a valid ``"annotations"``
    element (``wanted`` as in :func:`check_image`)."""
    found = _check_item(item, 'annotations', index, file, problems, seen,
                        wanted, (('image_id', int),
                                 ('segmentation', (list, dict))))
    if found is None:
        return None
    ann_id, item = found
    if not item['segmentation']:
        problems.add(Problem(file, f'"annotations"[{index}] (id={ann_id})',
                             '"segmentation" is empty',
                             'annotations have an empty "segmentation"',
                             'annotation'))
        return None
    return ann_id, (item['image_id'], item['segmentation'])


def join_problem(ref: dict, images: Optional[dict],
                 ann_images: Optional[dict]) -> Optional[Tuple[str, str]]:
    """``(kind, text)`` of the first join rule ``ref`` breaks, or None.

    Args:
        ref (dict): from :func:`check_ref`.
        images (dict | None): image ids (keys) of ``"images"``; None when
            the key is missing (reported by itself).
        ann_images (dict | None): ``{ann_id: image_id}`` of
            ``"annotations"``; None when the key is missing.

    Returns:
        tuple | None: kind ``'ann'`` (ann_id not in annotations), ``'image'``
        (image_id not in images) or ``'mismatch'``, and the dataset's text.
    """
    where = f'ref_id={ref["ref_id"]}'
    if ann_images is not None and ref['ann_id'] not in ann_images:
        return 'ann', (f'{where}: "ann_id" {ref["ann_id"]} is not in '
                       '"annotations"')
    if images is not None and ref['image_id'] not in images:
        return 'image', (f'{where}: "image_id" {ref["image_id"]} is not in '
                         '"images"')
    if ann_images is not None and \
            ann_images[ref['ann_id']] != ref['image_id']:
        return 'mismatch', (f'{where}: "image_id" {ref["image_id"]} differs '
                            'from the image_id '
                            f'{ann_images[ref["ann_id"]]} of annotation '
                            f'{ref["ann_id"]}')
    return None
