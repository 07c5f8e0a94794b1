"""Building the items of a REFER split from checked refs and instances."""
from __future__ import annotations

import contextlib
import gc
import logging
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional, Sequence

from mmengine.logging import print_log

from .schema import (Problems, ReferFormatError, Wordless, check_ref,
                     join_problem)

__all__ = ['REFER_SPLITS', 'select_refer_split', 'split_counts',
           'gc_paused', 'load_split_refs', 'check_split_joins',
           'build_items', 'EmptySplitError']

#: Split names understood by REFER's ``getRefIds(split=...)``.
REFER_SPLITS = ('train', 'val', 'test', 'testA', 'testB', 'testC', 'testAB',
                'testBC', 'testAC')
#: How many problems of one kind an error message lists.
MAX_EXAMPLES = 3


class EmptySplitError(ReferFormatError):
    """No usable ref belongs to the split."""


def select_refer_split(ref_split: str, split: str) -> bool:
    """Whether a ref whose ``split`` field is ``ref_split`` belongs to
    ``split``, with the rules of REFER's ``getRefIds``.

    * ``train`` / ``val`` / ``testAB`` / ``testBC`` / ``testAC``: exact match;
    * ``testA`` / ``testB`` / ``testC``: the ref's split string contains the
      last letter (so ``testAB`` refs belong to both ``testA`` and ``testB``);
    * ``test``: the ref's split string contains ``'test'``.
    """
    if split in ('testA', 'testB', 'testC'):
        return split[-1] in ref_split
    if split == 'test':
        return 'test' in ref_split
    return ref_split == split


def split_counts(refs: Sequence[dict]) -> Dict[str, Dict[str, int]]:
    """``{split: dict(refs=, sentences=, images=)}`` of a list of ref dicts,
    by their ``split`` field (distinct ``image_id`` values for ``images``);
    a ref without a field counts under ``'?'`` / as no sentence."""
    found: Dict[str, Dict[str, Any]] = {}
    for ref in refs:
        split = ref.get('split', '?')
        entry = found.setdefault(str(split),
                                 dict(refs=0, sentences=0, images=set()))
        entry['refs'] += 1
        sentences = ref.get('sentences')
        entry['sentences'] += len(sentences) if isinstance(sentences,
                                                           list) else 0
        entry['images'].add(ref.get('image_id'))
    return {
        split: dict(refs=e['refs'], sentences=e['sentences'],
                    images=len(e['images']))
        for split, e in found.items()
    }


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic garbage collector inside the block (hundreds of
    thousands of containers are allocated and none is cyclic garbage:
    pausing it saves ~20% of the indexing time)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def examples(problems: List[str]) -> str:
    """The first problems and how many more there are."""
    text = '; '.join(problems[:MAX_EXAMPLES])
    if len(problems) > MAX_EXAMPLES:
        text += f'; ... ({len(problems) - MAX_EXAMPLES} more)'
    return text


def load_split_refs(refs: list, src: str, split: str,
                    sentence_keys: Sequence[str] = (),
                    who: str = 'RefCOCODataset',
                    multi_target: bool = False) -> List[Dict[str, Any]]:
    """The checked refs of ``split`` (raise mode), without wordless
    sentences: those are skipped with one warning naming how many and a few
    ``ref_id`` / ``sent_id``; a ref left without a sentence is dropped.
    ``multi_target``: gRefCOCO's rules (see :func:`.schema.check_ref`).

    Raises:
        ReferFormatError: the first broken rule (see :mod:`.schema`).
        EmptySplitError: no ref of ``split`` (naming the splits there are).
    """
    problems = Problems(collect=False)
    seen: Dict[int, int] = {}
    splits = set()
    wordless: List[Wordless] = []
    kept = []

    def select(ref_split: str) -> bool:
        splits.add(ref_split)
        return select_refer_split(ref_split, split)

    for i, ref in enumerate(refs):
        found = check_ref(ref, i, src, problems, seen, select, sentence_keys,
                          wordless, multi_target)
        if found is not None and found['sentences']:
            kept.append(found)
    if wordless:
        dropped = len({w.ref_id for w in wordless} -
                      {r['ref_id'] for r in kept})
        print_log(
            f'{who}: {src}: skipped {len(wordless)} sentences of split '
            f'"{split}" that have no word ({dropped} refs left without a '
            f'sentence), e.g. {"; ".join(map(str, wordless[:MAX_EXAMPLES]))}',
            logger='current', level=logging.WARNING)
    if not kept:
        raise EmptySplitError(
            f'{who}: {src} has no ref of split "{split}" (its splits: '
            f'{", ".join(sorted(splits)) or "none"}).')
    return kept


def check_split_joins(refs: List[dict], images: dict, anns: dict,
                      refs_file: str, instances_file: str,
                      split: str) -> None:
    """One error listing the refs of ``split`` that do not match
    ``instances.json`` (the rules of :func:`.schema.join_problem`)."""
    problems = [
        p[1] for p in (join_problem(r, images, anns) for r in refs)
        if p is not None
    ]
    if problems:
        raise ReferFormatError(
            f'{refs_file}: {len(problems)} of {len(refs)} refs of split '
            f'"{split}" do not match {instances_file}: {examples(problems)}')


def add_ref_items(data_list: List[dict], info: dict,
                  sentences: List[dict], per_sentence: bool,
                  sentence_keys: Sequence[str]) -> None:
    """Append a ref's data items to ``data_list``: one per sentence
    (``info`` plus ``text``, ``sent_id`` and the present
    ``sentence_keys``) when ``per_sentence``, else ``info`` with all its
    ``sentences``."""
    if per_sentence:
        for sent in sentences:
            item = dict(info, text=sent['raw'], sent_id=sent['sent_id'])
            for key in sentence_keys:
                if key in sent:
                    item[key] = sent[key]
            data_list.append(item)
    else:
        info['sentences'] = sentences
        data_list.append(info)


def build_items(refs: List[dict], images: dict, anns: dict,
                img_prefix: str, split_tag: str, per_sentence: bool,
                sentence_keys: Sequence[str]) -> List[dict]:
    """Join refs with their image and annotation: one item per ref, or per
    sentence when ``per_sentence`` (see ``RefCOCODataset``)."""
    data_list = []
    for ref in refs:
        segmentation = anns[ref['ann_id']][1]
        file_name, height, width = images[ref['image_id']]
        info = dict(
            img_path=osp.join(img_prefix, file_name),
            ref_id=ref['ref_id'],
            ann_id=ref['ann_id'],
            image_id=ref['image_id'],
            category_id=ref['category_id'],
            height=height,
            width=width,
            segmentation=segmentation,
            split_tag=split_tag,
            seg_fields=[],
            reduce_zero_label=False)
        add_ref_items(data_list, info, ref['sentences'], per_sentence,
                      sentence_keys)
    return data_list


def empty_split_hint(dataset: str, split_by: str, split: str) -> Optional[str]:
    """Why a split may be absent from a published partition."""
    if dataset == 'refcocog' and split_by == 'google' and split == 'test':
        return ("RefCOCOg's google partition has no test split: use "
                "split_by='umd' for val/test.")
    return None
