"""RefCOCO / RefCOCO+ / RefCOCOg (REFER format) for referring segmentation.

The REFER rules, files and indexing live in :mod:`.refer`; this module is
the mmseg dataset on top (and keeps the names other modules import from
here).
"""
from __future__ import annotations

import logging
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence

from mmengine.dataset import BaseDataset
from mmengine.fileio import join_path
from mmengine.logging import print_log
from mmengine.utils import is_abs
from mmseg.registry import DATASETS

from ..utils.errors import InvalidInputError, InvalidTypeError

from .refer.files import (REFS_FORMATS, Instances, default_refs_file,
                          load_refs_file, read_instances, read_refs,
                          refs_file_name, warn_stale_json)
from .refer.index import (REFER_SPLITS, EmptySplitError, build_items,
                          check_split_joins, empty_split_hint, gc_paused,
                          load_split_refs, select_refer_split, split_counts)
from .refer.schema import BYTES_HINT, Problems, ReferFormatError

__all__ = [
    'RefCOCODataset', 'ReferFormatError', 'select_refer_split',
    'refs_file_name', 'default_refs_file', 'load_refs_file', 'split_counts',
    'REFS_FORMATS', 'REFER_SPLITS'
]

# Kept for modules that import the old private names.
_gc_paused = gc_paused
_BYTES_HINT = BYTES_HINT

#: Keys of the items that ``sentence_keys`` may not overwrite.
_RESERVED_KEYS = frozenset(
    ('raw', 'sent_id', 'text', 'sentences', 'img_path', 'ref_id', 'ann_id',
     'image_id', 'category_id', 'height', 'width', 'segmentation',
     'split_tag', 'seg_fields', 'reduce_zero_label'))


@DATASETS.register_module()
class RefCOCODataset(BaseDataset):
    """A REFER-format referring segmentation dataset.

    Layout (REFER's, see the project's data docs)::

        data_root/images/mscoco/images/train2014/*.jpg
        data_root/<dataset>/refs(<split_by>).p     (or refs(<split_by>).json)
        data_root/<dataset>/instances.json

    Refs file: the REFER pickle, or its JSON form written by
    ``tools/dataset_converters/refs_to_json.py`` (same list of ref dicts;
    needs no unpickling). With ``refs_format='auto'`` (default) and no
    explicit ``ann_file``, ``refs(<split_by>).json`` is used when it exists,
    else ``refs(<split_by>).p`` (a warning is logged when the pickle is newer
    than the JSON). ``refs_format='pickle'`` / ``'json'`` choose one.

    Indexing reads the refs pickle with a restricted unpickler (plain data
    only), keeps the refs of ``split``, then *streams* ``instances.json``
    keeping only the images and annotations those refs use. With
    ``serialize_data=True`` (default) the data infos end up packed in one
    numpy byte buffer shared by workers (``.dev_scripts/
    benchmark_refer_indexing.py`` compares this with REFER's loading).
    The rules are those of :mod:`projects.magnet.datasets.refer.schema`,
    applied to what the split uses (the checker
    ``tools/misc/check_refer_data.py`` applies them to everything).

    Items:

    * ``per_sentence=True`` (default in ``test_mode``): one item per
      sentence, in REFER ref order then sentence order, with ``text``
      (the sentence's ``raw`` string, as the official code tokenises) and
      ``sent_id``. This is the official evaluation protocol.
    * ``per_sentence=False`` (default for training): one item per referred
      object with all its ``sentences`` (``[{'raw', 'sent_id'}, ...]``);
      the ``SampleSentence`` transform picks one at random.

    Extra per-sentence fields (``sentence_keys``, e.g. the ``kind`` of the
    generated dataset's expressions): every listed key present in a
    sentence dict of the refs pickle (it must be a str) is copied into that
    sentence's item (``per_sentence``) or into its entry of ``sentences``;
    a sentence without it simply lacks it (RefCOCO has no ``kind``). Add the
    key to ``PackSegInputs.meta_keys`` to make it reach ``RefSegMetric``
    (``group_keys``).

    Bad inputs end with an error naming the file, the field or key and what
    was expected: a missing file (:class:`FileNotFoundError`, listing the
    folder), malformed or truncated JSON (``JsonStreamError``), an unsafe,
    invalid or truncated pickle (``pickle.UnpicklingError``), and
    :class:`ReferFormatError` for a refs file that is not a list of ref
    dicts, a missing or mistyped field, duplicate ids, an ``instances.json``
    without ``"images"`` or ``"annotations"``, refs whose ``ann_id`` /
    ``image_id`` is not in ``instances.json`` or whose ``image_id`` differs
    from their annotation's, and for a split without any ref (naming the
    splits the file has). Every error a user can fix is a
    :class:`~projects.magnet.utils.errors.UserError`. An ``instances.json``
    without ``"categories"`` only logs a warning: indexing does not need
    it.

    Each data info has ``img_path``, ``ref_id``, ``ann_id``, ``image_id``,
    ``category_id``, ``height``, ``width`` (from ``instances.json``),
    ``segmentation`` (the annotation's polygons or RLE, as stored),
    ``split_tag`` (see below), ``seg_fields=[]`` and
    ``reduce_zero_label=False``.

    Args:
        data_root (str): REFER data root.
        dataset (str): annotation folder under ``data_root``: ``'refcoco'``,
            ``'refcoco+'``, ``'refcocog'`` or any other folder name.
        split_by (str): ``'unc'``, ``'umd'`` or ``'google'`` (any string:
            selects ``refs(<split_by>).p`` / ``.json``).
        split (str): ``'train'``, ``'val'``, ``'test'``, ``'testA'``,
            ``'testB'`` (also ``'testC'``, ``'testAB'``...), selected with
            REFER's ``getRefIds`` rules (:func:`select_refer_split`).
        img_dir (str): image folder, relative to ``data_root`` unless
            absolute. Defaults to ``'images/mscoco/images/train2014'``.
        ann_file (str, optional): refs file; defaults to
            ``'<dataset>/refs(<split_by>).json'`` if it exists (and
            ``refs_format`` is not ``'pickle'``), else
            ``'<dataset>/refs(<split_by>).p'`` (relative to ``data_root``).
        refs_format (str): ``'auto'`` (default: the JSON form when it exists;
            an explicit ``ann_file`` is read by its extension), ``'json'`` or
            ``'pickle'``.
        instances_file (str, optional): COCO-style instances; defaults to
            ``'<dataset>/instances.json'`` (relative to ``data_root``).
        per_sentence (bool, optional): see above; defaults to ``test_mode``.
        split_tag (str, optional): name of this split carried by every item
            (``results['split_tag']``), used by ``RefSegMetric`` to report
            several splits evaluated in one run separately. Defaults to
            ``'<dataset>_<split_by>_<split>'``.
        sentence_keys (Sequence[str]): optional str fields of the sentence
            dicts kept in the items (see above). Defaults to ``('kind',)``.
        **kwargs: other :class:`mmengine.dataset.BaseDataset` arguments
            (``pipeline``, ``test_mode``, ``serialize_data``, ``lazy_init``,
            ``indices``, ``metainfo``...).
    """

    #: item keys that ``sentence_keys`` may not overwrite
    RESERVED_KEYS = _RESERVED_KEYS

    METAINFO = dict(
        classes=('background', 'object'),
        palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self,
                 data_root: str = '',
                 dataset: str = 'refcoco',
                 split_by: str = 'unc',
                 split: str = 'train',
                 img_dir: str = 'images/mscoco/images/train2014',
                 ann_file: Optional[str] = None,
                 refs_format: str = 'auto',
                 instances_file: Optional[str] = None,
                 per_sentence: Optional[bool] = None,
                 split_tag: Optional[str] = None,
                 sentence_keys: Sequence[str] = ('kind', ),
                 test_mode: bool = False,
                 **kwargs) -> None:
        if split not in REFER_SPLITS:
            raise InvalidInputError(
                f'{type(self).__name__}: unknown split "{split}"; expected '
                f'one of {REFER_SPLITS}')
        if isinstance(sentence_keys, str) or not all(
                isinstance(k, str) for k in sentence_keys):
            raise InvalidTypeError(
                f'{type(self).__name__}: sentence_keys must be a sequence of '
                f'str (e.g. ("kind",)), got {sentence_keys!r}')
        clash = sorted(set(sentence_keys) & self.RESERVED_KEYS)
        if clash:
            raise InvalidInputError(
                f'{type(self).__name__}: sentence_keys {clash} would '
                'overwrite fields of the items')
        if refs_format not in REFS_FORMATS:
            raise InvalidInputError(
                f'{type(self).__name__}: unknown refs_format "{refs_format}"; '
                f'expected one of {REFS_FORMATS}')
        self.refs_format = refs_format
        self.sentence_keys = tuple(sentence_keys)
        self.dataset = dataset
        self.split_by = split_by
        self.split = split
        self.per_sentence = test_mode if per_sentence is None \
            else per_sentence
        self.split_tag = split_tag or f'{dataset}_{split_by}_{split}'
        if ann_file is None:
            ann_file = default_refs_file(data_root, dataset, split_by,
                                         refs_format)
        if instances_file is None:
            instances_file = osp.join(dataset, 'instances.json')
        if not is_abs(instances_file) and data_root:
            instances_file = join_path(data_root, instances_file)
        self.instances_file = instances_file
        kwargs.setdefault('data_prefix', dict(img_path=img_dir))
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            test_mode=test_mode,
            **kwargs)

    # ------------------------------------------------------------------ refs
    def _read_refs(self) -> list:
        """The refs file's content (warns about a stale JSON form)."""
        if self.refs_format == 'auto':
            warn_stale_json(self.ann_file)
        return read_refs(self.ann_file, self.refs_format, Problems())

    def _load_refs(self) -> List[Dict[str, Any]]:
        """Checked refs of ``self.split`` with the fields used downstream
        (wordless sentences skipped with a warning)."""
        try:
            return load_split_refs(self._read_refs(), self.ann_file,
                                   self.split, self.sentence_keys)
        except EmptySplitError as e:
            hint = empty_split_hint(self.dataset, self.split_by, self.split)
            if hint is None:
                raise
            raise EmptySplitError(f'{e} {hint}') from None

    # ------------------------------------------------------------- instances
    def _load_instances(self, image_ids: set, ann_ids: set) -> Instances:
        """Stream ``instances.json``; keep (and check) only the images and
        annotations of ``image_ids`` / ``ann_ids``."""
        inst = read_instances(self.instances_file, Problems(), image_ids,
                              ann_ids)
        if inst.categories is None:
            print_log(
                f'{type(self).__name__}: {self.instances_file} has no '
                'top-level "categories" key (the REFER instances.json has '
                'one); indexing does not need it, the items keep the refs\' '
                'category_id', logger='current', level=logging.WARNING)
        return inst

    # -------------------------------------------------------------- indexing
    def load_data_list(self) -> List[dict]:
        """Build one item per ref (training) or per sentence (evaluation)."""
        with gc_paused():
            refs = self._load_refs()
            inst = self._load_instances(
                image_ids={r['image_id'] for r in refs},
                ann_ids={r['ann_id'] for r in refs})
            check_split_joins(refs, inst.images,
                              {k: v[0] for k, v in inst.anns.items()},
                              self.ann_file, self.instances_file, self.split)
            return build_items(refs, inst.images, inst.anns,
                               self.data_prefix.get('img_path', ''),
                               self.split_tag, self.per_sentence,
                               self.sentence_keys)
