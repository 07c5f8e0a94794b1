"""gRefCOCO's additions to the REFER rules: refs naming several annotations
(``ann_id`` a list) or none (``ann_id == [-1]``).

The refs themselves are checked by :func:`.schema.check_ref` with
``multi_target=True``; this module holds the joins with ``instances.json``
and the items of a split (see ``GRefCOCODataset``).
"""
from __future__ import annotations

import logging
import os.path as osp
from typing import Dict, List, Optional, Sequence, Set, Tuple

from mmengine.logging import print_log

from .index import add_ref_items, examples
from .schema import ReferFormatError

__all__ = ['GREF_SPLITS', 'NO_TARGET', 'gref_join_problem',
           'check_gref_joins', 'build_gref_items']

#: The splits of gRefCOCO's ``grefs(unc).json``.
GREF_SPLITS = ('train', 'val', 'testA', 'testB')
#: ``ann_id`` of an expression that refers to no object.
NO_TARGET = [-1]


def gref_join_problem(ref: dict, images: dict,
                      anns: Dict[int, Tuple[int, object]]) -> Optional[str]:
    """The first join rule a checked gRefCOCO ref breaks, or None: its
    ``image_id`` is in ``"images"``, every id of its ``ann_id`` (but the
    no-target ``[-1]``) is in ``"annotations"`` and on that image.

    Args:
        ref (dict): from :func:`.schema.check_ref` (``multi_target=True``).
        images (dict): ``{image_id: ...}`` of ``"images"``.
        anns (dict): ``{ann_id: (image_id, segmentation)}``.
    """
    where = f'ref_id={ref["ref_id"]}'
    if ref['ann_id'] != NO_TARGET:
        unknown = [a for a in ref['ann_id'] if a not in anns]
        if unknown:
            return (f'{where}: "ann_id" {ref["ann_id"]}: the id(s) '
                    f'{unknown} are not in "annotations"')
    if ref['image_id'] not in images:
        return f'{where}: "image_id" {ref["image_id"]} is not in "images"'
    if ref['ann_id'] == NO_TARGET:
        return None
    other = [(a, anns[a][0]) for a in ref['ann_id']
             if anns[a][0] != ref['image_id']]
    if other:
        return (f'{where}: "image_id" {ref["image_id"]} differs from the '
                'image_id of annotation(s) ' +
                ', '.join(f'{a} (image_id {i})' for a, i in other))
    return None


def check_gref_joins(refs: List[dict], images: dict, anns: dict,
                     refs_file: str, instances_file: str, split: str) -> None:
    """One :class:`ReferFormatError` listing the refs of ``split`` that do
    not match ``instances.json`` (:func:`gref_join_problem`)."""
    problems = [
        p for p in (gref_join_problem(r, images, anns) for r in refs)
        if p is not None
    ]
    if problems:
        raise ReferFormatError(
            f'{refs_file}: {len(problems)} of {len(refs)} refs of split '
            f'"{split}" do not match {instances_file}: {examples(problems)}')


def build_gref_items(refs: List[dict], images: dict, anns: dict,
                     crowd: Set[int], img_prefix: str, split_tag: str,
                     per_sentence: bool, sentence_keys: Sequence[str],
                     who: str = 'GRefCOCODataset') -> List[dict]:
    """One item per ref, or per sentence when ``per_sentence``.

    Each item has ``img_path``, ``ref_id``, ``ann_id`` (the list, as in
    the file), ``category_id`` (list), ``image_id``, ``height``, ``width``,
    ``no_target`` (``ann_id == [-1]``), ``segmentations`` and
    ``seg_ann_ids`` (the segmentations of the referred non-crowd
    annotations and their ids, in ``ann_id`` order: crowd regions are not
    part of the official ground truth), ``split_tag``, ``seg_fields=[]``,
    ``reduce_zero_label=False``, and ``text`` / ``sent_id`` (per sentence,
    plus the present ``sentence_keys``) or ``sentences``.

    A ref whose annotations are all crowd regions keeps its items (an empty
    ground truth with ``no_target=False``, as in the official loader); one
    warning names how many there are.
    """
    data_list = []
    only_crowd = []
    for ref in refs:
        no_target = ref['ann_id'] == NO_TARGET
        seg_ids = [] if no_target else [
            a for a in ref['ann_id'] if a not in crowd
        ]
        if not no_target and not seg_ids:
            only_crowd.append(ref['ref_id'])
        file_name, height, width = images[ref['image_id']]
        info = dict(
            img_path=osp.join(img_prefix, file_name),
            ref_id=ref['ref_id'],
            ann_id=list(ref['ann_id']),
            image_id=ref['image_id'],
            category_id=list(ref['category_id']),
            height=height,
            width=width,
            no_target=no_target,
            segmentations=[anns[a][1] for a in seg_ids],
            seg_ann_ids=seg_ids,
            split_tag=split_tag,
            seg_fields=[],
            reduce_zero_label=False)
        add_ref_items(data_list, info, ref['sentences'], per_sentence,
                      sentence_keys)
    if only_crowd:
        print_log(
            f'{who}: {len(only_crowd)} refs of split tag "{split_tag}" refer '
            'only to crowd annotations (skipped by the official union '
            'rule): their ground truth is empty although they have a '
            f'target, e.g. ref_id {only_crowd[:3]}',
            logger='current', level=logging.WARNING)
    return data_list
