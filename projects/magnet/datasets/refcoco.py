"""RefCOCO / RefCOCO+ / RefCOCOg (REFER format) for referring segmentation."""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import os.path as osp
from typing import (Any, Dict, Iterator, List, Optional, Sequence, Set,
                    Tuple, Union)

from mmengine.dataset import BaseDataset
from mmengine.fileio import join_path
from mmengine.logging import print_log
from mmengine.utils import is_abs
from mmseg.registry import DATASETS

from .json_stream import iter_json_object, load_json_file
from .refer_pickle import load_refer_pickle

__all__ = [
    'RefCOCODataset', 'ReferFormatError', 'select_refer_split',
    'refs_file_name', 'default_refs_file', 'load_refs_file', 'split_counts',
    'REFS_FORMATS'
]

#: Split names understood by REFER's ``getRefIds(split=...)``.
REFER_SPLITS = ('train', 'val', 'test', 'testA', 'testB', 'testC', 'testAB',
                'testBC', 'testAC')

#: ``refs_format`` values: ``'auto'`` (the JSON form when it exists, else
#: the pickle), ``'json'`` (``refs(<split_by>).json``), ``'pickle'``
#: (``refs(<split_by>).p``).
REFS_FORMATS = ('auto', 'json', 'pickle')

#: Top-level keys of a COCO-style ``instances.json`` that indexing needs.
_INSTANCE_KEYS = ('images', 'annotations')
#: How many problems of one kind an error message lists.
_MAX_EXAMPLES = 3

#: Keys of the items that ``sentence_keys`` may not overwrite.
_RESERVED_KEYS = frozenset(
    ('raw', 'sent_id', 'text', 'sentences', 'img_path', 'ref_id', 'ann_id',
     'image_id', 'category_id', 'height', 'width', 'segmentation',
     'split_tag', 'seg_fields', 'reduce_zero_label'))


class ReferFormatError(ValueError):
    """A REFER annotation file is malformed (message names file + field)."""


_BYTES_HINT = (" (the file has bytes where REFER has str: it was re-saved "
               "from a pickle loaded with encoding='bytes'; convert the "
               'original REFER pickle instead, which is read with '
               "encoding='latin1')")


def refs_file_name(split_by: str, refs_format: str = 'pickle') -> str:
    """``refs(<split_by>).p`` or, for ``refs_format='json'``, its JSON
    form ``refs(<split_by>).json`` (``tools/dataset_converters/
    refs_to_json.py``)."""
    return f'refs({split_by}).json' if refs_format == 'json' \
        else f'refs({split_by}).p'


def default_refs_file(data_root: str, dataset: str, split_by: str,
                      refs_format: str = 'auto') -> str:
    """``<dataset>/refs(<split_by>).json`` or ``<dataset>/refs(<split_by>).p``
    (relative to ``data_root``): for ``refs_format='auto'`` the JSON form when
    it exists, else the pickle."""
    json_rel = osp.join(dataset, refs_file_name(split_by, 'json'))
    if refs_format == 'json':
        return json_rel
    if refs_format == 'auto':
        found = join_path(data_root, json_rel) if data_root else json_rel
        if osp.isfile(found):
            return json_rel
    return osp.join(dataset, refs_file_name(split_by, 'pickle'))


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


def _refs_format_of(path: str, refs_format: str) -> str:
    """``'json'`` or ``'pickle'``: ``refs_format`` unless ``'auto'``, then
    from the file name (``.json`` -> JSON)."""
    if refs_format != 'auto':
        return refs_format
    return 'json' if path.lower().endswith('.json') else 'pickle'


def _folder_listing(folder: str) -> str:
    """What ``folder`` holds, for a file-not-found message."""
    if not osp.isdir(folder):
        return f'the folder {folder} does not exist'
    entries = sorted(os.listdir(folder))
    if not entries:
        return f'the folder {folder} is empty'
    shown = ', '.join(entries[:12])
    more = f', ... ({len(entries)} entries)' if len(entries) > 12 else ''
    return f'{folder} has: {shown}{more}'


def _missing_refs_message(path: str) -> str:
    folder = osp.dirname(path) or '.'
    msg = (f'refs file not found: {path} (a REFER refs(<split_by>).p or its '
           f'JSON form; {_folder_listing(folder)}')
    if osp.isdir(folder):
        others = sorted(
            f[len('refs('):f.index(')')] for f in os.listdir(folder)
            if f.startswith('refs(') and ')' in f)
        if others:
            msg += ('; refs files exist for split_by '
                    f'{", ".join(dict.fromkeys(others))}: check split_by')
    return msg + ')'


def load_refs_file(path: str, refs_format: str = 'auto') -> Any:
    """Read a refs file: a REFER pickle (restricted unpickler, Python-2
    pickles included) or its JSON form.

    Args:
        path (str): ``refs(<split_by>).p`` or ``refs(<split_by>).json``.
        refs_format (str): ``'auto'`` (from the extension), ``'json'`` or
            ``'pickle'``.

    Raises:
        FileNotFoundError: no such file (the message lists the folder).
        pickle.UnpicklingError: not a valid or safe pickle.
        JsonStreamError: malformed or truncated JSON.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(_missing_refs_message(path))
    if _refs_format_of(path, refs_format) == 'json':
        return load_json_file(path)
    return load_refer_pickle(path)


def _examples(problems: List[str]) -> str:
    """The first problems and how many more there are."""
    text = '; '.join(problems[:_MAX_EXAMPLES])
    if len(problems) > _MAX_EXAMPLES:
        text += f'; ... ({len(problems) - _MAX_EXAMPLES} more)'
    return text


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

    Bad inputs end with an error naming the file, the field or key and what
    was expected: a missing file (:class:`FileNotFoundError`, listing the
    folder), malformed or truncated JSON (``JsonStreamError``), an unsafe,
    invalid or truncated pickle (``pickle.UnpicklingError``), and
    :class:`ReferFormatError` for a refs file that is not a list of ref
    dicts, a missing or mistyped field, duplicate ids, an ``instances.json``
    without ``"images"`` or ``"annotations"``, refs whose ``ann_id`` /
    ``image_id`` is not in ``instances.json`` or whose ``image_id`` differs
    from their annotation's, and a :class:`ValueError` for a split without
    any ref (naming the splits the file has). An ``instances.json`` without
    ``"categories"`` only logs a warning: indexing does not need it.

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
        if refs_format not in REFS_FORMATS:
            raise ValueError(f'RefCOCODataset: unknown refs_format '
                             f'"{refs_format}"; expected one of '
                             f'{REFS_FORMATS}')
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
    def _read_refs(self) -> Any:
        """The refs file's content (warns about a stale JSON form)."""
        src = self.ann_file
        if (self.refs_format == 'auto' and src.endswith('.json')
                and osp.isfile(src)):
            pickle_path = src[:-len('.json')] + '.p'
            if (osp.isfile(pickle_path) and osp.getmtime(pickle_path) >
                    osp.getmtime(src)):
                print_log(
                    f'RefCOCODataset: using {src}, but {pickle_path} is newer'
                    ': if the pickle changed, convert it again with tools/'
                    'dataset_converters/refs_to_json.py (or set '
                    "refs_format='pickle')", logger='current',
                    level=logging.WARNING)
        refs = load_refs_file(src, self.refs_format)
        if not isinstance(refs, list):
            raise ReferFormatError(
                f'{src}: expected a list of ref dicts at the top level, got '
                f'{type(refs).__name__}')
        return refs

    def _load_refs(self) -> List[Dict[str, Any]]:
        """Refs of ``self.split`` with only the fields used downstream."""
        src = self.ann_file
        refs = self._read_refs()
        kept = []
        splits: Set[str] = set()
        ref_ids: Dict[int, int] = {}
        for i, ref in enumerate(refs):
            where = f'{src}: refs[{i}]'
            if not isinstance(ref, dict):
                raise ReferFormatError(
                    f'{where} is a {type(ref).__name__}, not a dict')
            ref_split = self._field(ref, 'split', str, where)
            splits.add(ref_split)
            if not select_refer_split(ref_split, self.split):
                continue
            ref_id = self._field(ref, 'ref_id', int, where)
            if ref_id in ref_ids:
                raise ReferFormatError(
                    f'{where}: duplicate ref_id {ref_id} (also '
                    f'refs[{ref_ids[ref_id]}]); ref ids must be unique')
            ref_ids[ref_id] = i
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
        if not kept:
            raise self._empty_split_error(sorted(splits))
        return kept

    def _empty_split_error(self, splits: List[str]) -> ValueError:
        """No ref belongs to ``self.split``: name the splits there are."""
        hint = ''
        if self.dataset == 'refcocog' and self.split_by == 'google' \
                and self.split == 'test':
            hint = (" RefCOCOg's google partition has no test split: use "
                    "split_by='umd' for val/test.")
        return ValueError(
            f'RefCOCODataset: {self.ann_file} has no ref of split '
            f'"{self.split}" (its splits: {", ".join(splits) or "none"}).'
            f'{hint}')

    @staticmethod
    def _field(obj: dict, name: str, typ: Union[type, Tuple[type, ...]],
               where: str) -> Any:
        """``obj[name]`` checked against ``typ`` (bool is not an int)."""
        if name not in obj:
            hint = _BYTES_HINT if name.encode() in obj else ''
            raise ReferFormatError(f'{where}: missing field "{name}"{hint}')
        value = obj[name]
        if not isinstance(value, typ) or (typ is int
                                          and isinstance(value, bool)):
            names = ' or '.join(
                t.__name__ for t in (typ if isinstance(typ, tuple) else
                                     (typ, )))
            hint = _BYTES_HINT if isinstance(value, bytes) else ''
            raise ReferFormatError(
                f'{where}: field "{name}" must be {names}, got '
                f'{type(value).__name__} ({repr(value)[:60]}){hint}')
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
        if not osp.isfile(src):
            raise FileNotFoundError(
                f'instances file not found: {src} (the COCO-style '
                'instances.json of the REFER release, with "images" and '
                f'"annotations"; {_folder_listing(osp.dirname(src) or ".")})')
        images: Dict[int, Tuple[str, int, int]] = {}
        anns: Dict[int, Tuple[int, Any]] = {}
        keys: List[str] = []
        for key, item, item_id, where in self._instance_items(
                _INSTANCE_KEYS, keys):
            if key == 'images':
                if item_id in image_ids:
                    where = f'{where} (id={item_id})'
                    self._check_unique(images, item_id, where, 'image')
                    images[item_id] = (
                        self._field(item, 'file_name', str, where),
                        self._field(item, 'height', int, where),
                        self._field(item, 'width', int, where))
            elif item_id in ann_ids:
                where = f'{where} (id={item_id})'
                self._check_unique(anns, item_id, where, 'annotation')
                seg = self._field(item, 'segmentation', (list, dict), where)
                if not seg:
                    raise ReferFormatError(f'{where}: "segmentation" is empty')
                anns[item_id] = (self._field(item, 'image_id', int, where),
                                 seg)
        self._check_instance_keys(keys)
        return images, anns

    def _instance_items(self, stream_keys: Sequence[str],
                        found_keys: List[str]) -> Iterator[Tuple[str, dict,
                                                                int, str]]:
        """``(key, item, id, where)`` for every element of the arrays
        ``stream_keys`` of ``instances.json`` (streamed); every top-level key
        met is appended to ``found_keys``. Raises :class:`ReferFormatError`
        for an element that is not an object or has no int ``"id"``."""
        src = self.instances_file
        counters = dict.fromkeys(stream_keys, 0)
        for key, item in iter_json_object(src, stream_keys,
                                          on_key=found_keys.append):
            if key not in counters:
                continue
            where = f'{src}: "{key}"[{counters[key]}]'
            counters[key] += 1
            if not isinstance(item, dict):
                raise ReferFormatError(f'{where} is not an object')
            yield key, item, self._field(item, 'id', int, where), where

    @staticmethod
    def _check_unique(found: dict, item_id: int, where: str,
                      what: str) -> None:
        if item_id in found:
            raise ReferFormatError(
                f'{where}: duplicate {what} id {item_id}; ids must be unique')

    def _check_instance_keys(self, keys: List[str]) -> None:
        """Error for a missing "images" / "annotations", warning for a
        missing "categories" (not needed to index the refs)."""
        src = self.instances_file
        for key in _INSTANCE_KEYS:
            if key not in keys:
                raise ReferFormatError(
                    f'{src}: the top-level key "{key}" is missing (a '
                    'COCO-style instances file has "images", "annotations" '
                    f'and "categories"; found: {", ".join(keys) or "none"})')
        if 'categories' not in keys:
            print_log(
                f'RefCOCODataset: {src} has no top-level "categories" key '
                '(the REFER instances.json has one); indexing does not need '
                'it, the items keep the refs\' category_id',
                logger='current', level=logging.WARNING)

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

    @staticmethod
    def _join_problem(ref: dict, images: dict, anns: dict) -> Optional[str]:
        """Why ``ref`` cannot be joined with ``instances.json`` (or None)."""
        where = f'ref_id={ref["ref_id"]}'
        if ref['ann_id'] not in anns:
            return f'{where}: "ann_id" {ref["ann_id"]} is not in "annotations"'
        if ref['image_id'] not in images:
            return f'{where}: "image_id" {ref["image_id"]} is not in "images"'
        ann_image_id = anns[ref['ann_id']][0]
        if ann_image_id != ref['image_id']:
            return (f'{where}: "image_id" {ref["image_id"]} differs from the '
                    f'image_id {ann_image_id} of annotation {ref["ann_id"]}')
        return None

    def _check_joins(self, refs: List[dict], images: dict,
                     anns: dict) -> None:
        """One error listing the refs that do not match instances.json."""
        problems = [
            p for p in (self._join_problem(r, images, anns) for r in refs)
            if p is not None
        ]
        if problems:
            raise ReferFormatError(
                f'{self.ann_file}: {len(problems)} of {len(refs)} refs of '
                f'split "{self.split}" do not match {self.instances_file}: '
                f'{_examples(problems)}')

    def _build_items(self, refs: List[dict], images: dict,
                     anns: dict) -> List[dict]:
        """Join refs with their image and annotation (see class doc)."""
        self._check_joins(refs, images, anns)
        img_prefix = self.data_prefix.get('img_path', '')
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
