"""RefCOCO / RefCOCO+ / RefCOCOg (REFER format) for referring segmentation."""
from __future__ import annotations

import contextlib
import gc
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from mmengine.dataset import BaseDataset
from mmengine.fileio import join_path
from mmengine.utils import is_abs
from mmseg.registry import DATASETS

from .json_stream import iter_json_object
from .refer_pickle import load_refer_pickle

__all__ = ['RefCOCODataset', 'ReferFormatError', 'select_refer_split']

#: Split names understood by REFER's ``getRefIds(split=...)``.
REFER_SPLITS = ('train', 'val', 'test', 'testA', 'testB', 'testC', 'testAB',
                'testBC', 'testAC')

#: Keys of the items that ``sentence_keys`` may not overwrite.
_RESERVED_KEYS = frozenset(
    ('raw', 'sent_id', 'text', 'sentences', 'img_path', 'ref_id', 'ann_id',
     'image_id', 'category_id', 'height', 'width', 'segmentation',
     'split_tag', 'seg_fields', 'reduce_zero_label'))


class ReferFormatError(ValueError):
    """A REFER annotation file is malformed (message names file + field)."""


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


@contextlib.contextmanager
def _gc_paused():
    """Disable the cyclic garbage collector inside the block."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@DATASETS.register_module()
class RefCOCODataset(BaseDataset):
    """A REFER-format referring segmentation dataset.

    Layout (REFER's, see the project's data docs)::

        data_root/images/mscoco/images/train2014/*.jpg
        data_root/<dataset>/refs(<split_by>).p
        data_root/<dataset>/instances.json

    Indexing reads the refs pickle with a restricted unpickler (plain data
    only), keeps the refs of ``split``, then *streams* ``instances.json``
    keeping only the images and annotations those refs use. With
    ``serialize_data=True`` (default) the data infos end up packed in one
    numpy byte buffer shared by workers (``tools/analysis_tools/
    benchmark_refer_indexing.py`` compares this with REFER's loading).

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
            selects ``refs(<split_by>).p``).
        split (str): ``'train'``, ``'val'``, ``'test'``, ``'testA'``,
            ``'testB'`` (also ``'testC'``, ``'testAB'``...), selected with
            REFER's ``getRefIds`` rules (:func:`select_refer_split`).
        img_dir (str): image folder, relative to ``data_root`` unless
            absolute. Defaults to ``'images/mscoco/images/train2014'``.
        ann_file (str, optional): refs pickle; defaults to
            ``'<dataset>/refs(<split_by>).p'`` (relative to ``data_root``).
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
                 instances_file: Optional[str] = None,
                 per_sentence: Optional[bool] = None,
                 split_tag: Optional[str] = None,
                 sentence_keys: Sequence[str] = ('kind', ),
                 test_mode: bool = False,
                 **kwargs) -> None:
        if split not in REFER_SPLITS:
            raise ValueError(f'RefCOCODataset: unknown split "{split}"; '
                             f'expected one of {REFER_SPLITS}')
        if isinstance(sentence_keys, str) or not all(
                isinstance(k, str) for k in sentence_keys):
            raise TypeError(
                'RefCOCODataset: sentence_keys must be a sequence of str '
                f'(e.g. ("kind",)), got {sentence_keys!r}')
        clash = sorted(set(sentence_keys) & _RESERVED_KEYS)
        if clash:
            raise ValueError(
                f'RefCOCODataset: sentence_keys {clash} would overwrite '
                'fields of the items')
        self.sentence_keys = tuple(sentence_keys)
        self.dataset = dataset
        self.split_by = split_by
        self.split = split
        self.per_sentence = test_mode if per_sentence is None \
            else per_sentence
        self.split_tag = split_tag or f'{dataset}_{split_by}_{split}'
        if ann_file is None:
            ann_file = osp.join(dataset, f'refs({split_by}).p')
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
    def _load_refs(self) -> List[Dict[str, Any]]:
        """Refs of ``self.split`` with only the fields used downstream."""
        src = self.ann_file
        refs = load_refer_pickle(src)
        if not isinstance(refs, list):
            raise ReferFormatError(
                f'{src}: expected a list of ref dicts, got '
                f'{type(refs).__name__}')
        kept = []
        for i, ref in enumerate(refs):
            where = f'{src}: refs[{i}]'
            if not isinstance(ref, dict):
                raise ReferFormatError(
                    f'{where} is a {type(ref).__name__}, not a dict')
            ref_split = self._field(ref, 'split', str, where)
            if not select_refer_split(ref_split, self.split):
                continue
            ref_id = self._field(ref, 'ref_id', int, where)
            where = f'{src}: refs[{i}] (ref_id={ref_id})'
            sentences = self._field(ref, 'sentences', list, where)
            sent_ids = self._field(ref, 'sent_ids', list, where)
            if len(sentences) != len(sent_ids):
                raise ReferFormatError(
                    f'{where}: "sentences" has {len(sentences)} entries but '
                    f'"sent_ids" has {len(sent_ids)}')
            if not sentences:
                raise ReferFormatError(f'{where}: "sentences" is empty')
            sents = []
            for j, (sent, sent_id) in enumerate(zip(sentences, sent_ids)):
                swhere = f'{where}: sentences[{j}]'
                if not isinstance(sent, dict):
                    raise ReferFormatError(f'{swhere} is not a dict')
                raw = self._field(sent, 'raw', str, swhere)
                if not isinstance(sent_id, int):
                    raise ReferFormatError(
                        f'{where}: "sent_ids"[{j}] must be an int, got '
                        f'{sent_id!r}')
                kept_sent = dict(raw=raw, sent_id=sent_id)
                for key in self.sentence_keys:
                    if key in sent:
                        kept_sent[key] = self._field(sent, key, str, swhere)
                sents.append(kept_sent)
            kept.append(
                dict(
                    ref_id=ref_id,
                    ann_id=self._field(ref, 'ann_id', int, where),
                    image_id=self._field(ref, 'image_id', int, where),
                    category_id=ref.get('category_id', -1),
                    sentences=sents))
        return kept

    @staticmethod
    def _field(obj: dict, name: str, typ: Union[type, Tuple[type, ...]],
               where: str) -> Any:
        """``obj[name]`` checked against ``typ`` (bool is not an int)."""
        if name not in obj:
            raise ReferFormatError(f'{where}: missing field "{name}"')
        value = obj[name]
        if not isinstance(value, typ) or (typ is int
                                          and isinstance(value, bool)):
            names = ' or '.join(
                t.__name__ for t in (typ if isinstance(typ, tuple) else
                                     (typ, )))
            raise ReferFormatError(
                f'{where}: field "{name}" must be {names}, got '
                f'{type(value).__name__} ({repr(value)[:60]})')
        return value

    # ------------------------------------------------------------- instances
    def _load_instances(
        self, image_ids: set, ann_ids: set
    ) -> Tuple[Dict[int, Tuple[str, int, int]], Dict[int, Tuple[int, Any]]]:
        """Stream ``instances.json``; keep only the needed images/anns.

        Returns:
            tuple: ``{image_id: (file_name, height, width)}`` and
            ``{ann_id: (image_id, segmentation)}``.
        """
        src = self.instances_file
        images: Dict[int, Tuple[str, int, int]] = {}
        anns: Dict[int, Tuple[int, Any]] = {}
        counters = dict(images=0, annotations=0)
        for key, item in iter_json_object(src, ('images', 'annotations')):
            if key not in counters:
                continue
            where = f'{src}: "{key}"[{counters[key]}]'
            counters[key] += 1
            if not isinstance(item, dict):
                raise ReferFormatError(f'{where} is not an object')
            item_id = self._field(item, 'id', int, where)
            if key == 'images':
                if item_id in image_ids:
                    where = f'{where} (id={item_id})'
                    images[item_id] = (
                        self._field(item, 'file_name', str, where),
                        self._field(item, 'height', int, where),
                        self._field(item, 'width', int, where))
            elif item_id in ann_ids:
                where = f'{where} (id={item_id})'
                seg = self._field(item, 'segmentation', (list, dict), where)
                if not seg:
                    raise ReferFormatError(f'{where}: "segmentation" is empty')
                anns[item_id] = (self._field(item, 'image_id', int, where),
                                 seg)
        return images, anns

    # -------------------------------------------------------------- indexing
    def load_data_list(self) -> List[dict]:
        """Build one item per ref (training) or per sentence (evaluation)."""
        # Hundreds of thousands of containers are allocated and none is
        # cyclic garbage: pausing the cyclic GC saves ~20% of the time.
        with _gc_paused():
            refs = self._load_refs()
            images, anns = self._load_instances(
                image_ids={r['image_id'] for r in refs},
                ann_ids={r['ann_id'] for r in refs})
            return self._build_items(refs, images, anns)

    def _join_error(self, ref: dict, msg: str) -> ReferFormatError:
        return ReferFormatError(
            f'{self.ann_file}: ref_id={ref["ref_id"]} (checked against '
            f'{self.instances_file}): {msg}')

    def _build_items(self, refs: List[dict], images: dict,
                     anns: dict) -> List[dict]:
        """Join refs with their image and annotation (see class doc)."""
        img_prefix = self.data_prefix.get('img_path', '')
        data_list = []
        for ref in refs:
            if ref['ann_id'] not in anns:
                raise self._join_error(
                    ref, f'"ann_id" {ref["ann_id"]} is not in "annotations"')
            if ref['image_id'] not in images:
                raise self._join_error(
                    ref, f'"image_id" {ref["image_id"]} is not in "images"')
            ann_image_id, segmentation = anns[ref['ann_id']]
            if ann_image_id != ref['image_id']:
                raise self._join_error(
                    ref, f'"image_id" {ref["image_id"]} differs from the '
                    f'image_id {ann_image_id} of annotation {ref["ann_id"]}')
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
                split_tag=self.split_tag,
                seg_fields=[],
                reduce_zero_label=False)
            if self.per_sentence:
                for sent in ref['sentences']:
                    item = dict(info, text=sent['raw'],
                                sent_id=sent['sent_id'])
                    for key in self.sentence_keys:
                        if key in sent:
                            item[key] = sent[key]
                    data_list.append(item)
            else:
                info['sentences'] = ref['sentences']
                data_list.append(info)
        return data_list
