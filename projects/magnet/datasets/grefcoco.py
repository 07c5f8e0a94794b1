"""gRefCOCO (GRES): referring expressions naming several objects or none.

The REFER machinery of :class:`~.refcoco.RefCOCODataset` (files, rules,
lazy init, items per sentence or per ref) with gRefCOCO's refs: ``ann_id``
and ``category_id`` are lists, ``ann_id == [-1]`` marks an expression with
no target (:mod:`.refer.gref`).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from mmengine.logging import print_log
from mmseg.registry import DATASETS

from projects.magnet.utils.errors import InvalidInputError

from .refcoco import RefCOCODataset
from .refer.files import (REFS_FORMATS, Instances, default_refs_file,
                          read_instances, read_refs, warn_stale_json)
from .refer.gref import GREF_SPLITS, build_gref_items, check_gref_joins
from .refer.index import gc_paused, load_split_refs
from .refer.schema import Problems

__all__ = ['GRefCOCODataset', 'GREF_SPLITS']


@DATASETS.register_module()
class GRefCOCODataset(RefCOCODataset):
    """gRefCOCO for generalised referring segmentation (GRES).

    Layout (gRefCOCO's; images as for RefCOCO)::

        data_root/images/mscoco/images/train2014/*.jpg
        data_root/<dataset>/grefs(<split_by>).json   (or grefs(<split_by>).p)
        data_root/<dataset>/instances.json

    The refs file is read as ``RefCOCODataset`` reads ``refs(...)``: with
    ``refs_format='auto'`` and no ``ann_file``, the JSON form when it
    exists, else the pickle (through the restricted unpickler). Refs may
    come in any order: they are indexed by id.

    A ref has ``ref_id``, ``image_id``, ``split`` (``train``, ``val``,
    ``testA``, ``testB``), ``ann_id`` (a list of annotation ids, ``[-1]``
    for an expression with no target), ``category_id`` (a list of int) and
    ``sentences`` (dicts with a str ``raw`` and an int ``sent_id``;
    ``sent_ids``, when present, is used as REFER's). Bad input raises a
    :class:`~.refer.schema.ReferFormatError` naming the file, the ref and
    the field: a missing or mistyped field, an empty ``ann_id``, ``-1``
    next to other ids, an id listed twice, ids that are not in
    ``instances.json`` (named) or on another image. Sentences without a
    word are skipped with a warning, as by ``RefCOCODataset``.

    Items (one per sentence with ``per_sentence``, the default in
    ``test_mode``; else one per ref with its ``sentences``): those of
    ``RefCOCODataset`` with list-valued ``ann_id`` / ``category_id``,
    plus ``no_target`` (bool), ``segmentations`` and ``seg_ann_ids`` (the
    referred annotations that are not crowd regions: crowd regions are left
    out of the official ground truth), and no ``segmentation``. The
    :class:`~.transforms.LoadGRefMask` transform makes the union mask.

    Args:
        dataset (str): annotation folder under ``data_root``. Defaults to
            ``'grefcoco'``.
        split (str): one of ``'train'``, ``'val'``, ``'testA'``,
            ``'testB'``.
        ann_file (str, optional): refs file; defaults to
            ``'<dataset>/grefs(<split_by>).json'`` if it exists (and
            ``refs_format`` is not ``'pickle'``), else
            ``'<dataset>/grefs(<split_by>).p'``.
        **kwargs: the other arguments of :class:`RefCOCODataset`
            (``data_root``, ``split_by``, ``img_dir``, ``refs_format``,
            ``instances_file``, ``per_sentence``, ``split_tag``,
            ``sentence_keys``, ``pipeline``, ``test_mode``, ``lazy_init``,
            ``serialize_data``...).
    """

    #: RefCOCO's reserved item keys and the gRefCOCO fields
    RESERVED_KEYS = RefCOCODataset.RESERVED_KEYS | frozenset(
        ('no_target', 'segmentations', 'seg_ann_ids'))

    def __init__(self,
                 data_root: str = '',
                 dataset: str = 'grefcoco',
                 split_by: str = 'unc',
                 split: str = 'train',
                 ann_file: Optional[str] = None,
                 refs_format: str = 'auto',
                 **kwargs) -> None:
        if split not in GREF_SPLITS:
            raise InvalidInputError(
                f'GRefCOCODataset: unknown split "{split}"; expected one of '
                f'{GREF_SPLITS}')
        if refs_format not in REFS_FORMATS:
            raise InvalidInputError(
                f'GRefCOCODataset: unknown refs_format "{refs_format}"; '
                f'expected one of {REFS_FORMATS}')
        if ann_file is None:
            ann_file = default_refs_file(data_root, dataset, split_by,
                                         refs_format, stem='grefs')
        super().__init__(data_root=data_root, dataset=dataset,
                         split_by=split_by, split=split, ann_file=ann_file,
                         refs_format=refs_format, **kwargs)

    def _read_refs(self) -> list:
        if self.refs_format == 'auto':
            warn_stale_json(self.ann_file, 'GRefCOCODataset')
        return read_refs(self.ann_file, self.refs_format, Problems())

    def _load_refs(self) -> List[Dict[str, Any]]:
        return load_split_refs(self._read_refs(), self.ann_file, self.split,
                               self.sentence_keys, 'GRefCOCODataset',
                               multi_target=True)

    def _load_instances(self, image_ids: set, ann_ids: set) -> Instances:
        inst = read_instances(self.instances_file, Problems(), image_ids,
                              ann_ids, read_crowd=True)
        if inst.categories is None:
            print_log(
                f'GRefCOCODataset: {self.instances_file} has no top-level '
                '"categories" key; indexing does not need it, the items '
                'keep the refs\' category_id', logger='current',
                level=logging.WARNING)
        return inst

    def load_data_list(self) -> List[dict]:
        """One item per ref (training) or per sentence (evaluation)."""
        with gc_paused():
            refs = self._load_refs()
            inst = self._load_instances(
                image_ids={r['image_id'] for r in refs},
                ann_ids={a for r in refs for a in r['ann_id'] if a != -1})
            check_gref_joins(refs, inst.images, inst.anns, self.ann_file,
                             self.instances_file, self.split)
            return build_gref_items(refs, inst.images, inst.anns,
                                    inst.crowd,
                                    self.data_prefix.get('img_path', ''),
                                    self.split_tag, self.per_sentence,
                                    self.sentence_keys)
