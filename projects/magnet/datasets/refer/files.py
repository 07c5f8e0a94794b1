"""Finding and reading the REFER files: the refs (pickle or its JSON form)
and the COCO-style ``instances.json`` (streamed, checked by
:mod:`.schema`)."""
from __future__ import annotations

import logging
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from mmengine.fileio import join_path
from mmengine.logging import print_log

from projects.magnet.utils.errors import InputFileError

from ..json_stream import (JsonStreamError, iter_json_arrays, load_json_file,
                           top_level_kinds)
from ..refer_pickle import load_refer_pickle
from .schema import Problem, Problems, check_annotation, check_image

__all__ = ['REFS_FORMATS', 'refs_file_name', 'default_refs_file',
           'load_refs_file', 'read_refs', 'folder_listing',
           'warn_stale_json', 'Instances', 'read_instances',
           'instances_not_found', 'INSTANCE_KEYS']

#: ``refs_format`` values: ``'auto'`` (the JSON form when it exists, else
#: the pickle), ``'json'`` (``refs(<split_by>).json``), ``'pickle'``
#: (``refs(<split_by>).p``).
REFS_FORMATS = ('auto', 'json', 'pickle')
#: Top-level keys of a COCO-style ``instances.json`` that indexing needs.
INSTANCE_KEYS = ('images', 'annotations')


class RefsFileNotFoundError(InputFileError, FileNotFoundError):
    """A refs or instances file is not where the dataset looks."""


def refs_file_name(split_by: str, refs_format: str = 'pickle',
                   stem: str = 'refs') -> str:
    """``refs(<split_by>).p`` or, for ``refs_format='json'``, its JSON
    form ``refs(<split_by>).json`` (``tools/dataset_converters/
    refs_to_json.py``); ``stem='grefs'`` names gRefCOCO's files."""
    return f'{stem}({split_by}).json' if refs_format == 'json' \
        else f'{stem}({split_by}).p'


def default_refs_file(data_root: str, dataset: str, split_by: str,
                      refs_format: str = 'auto', stem: str = 'refs') -> str:
    """``<dataset>/refs(<split_by>).json`` or ``<dataset>/refs(<split_by>).p``
    (relative to ``data_root``): for ``refs_format='auto'`` the JSON form when
    it exists, else the pickle."""
    json_rel = osp.join(dataset, refs_file_name(split_by, 'json', stem))
    if refs_format == 'json':
        return json_rel
    if refs_format == 'auto':
        found = join_path(data_root, json_rel) if data_root else json_rel
        if osp.isfile(found):
            return json_rel
    return osp.join(dataset, refs_file_name(split_by, 'pickle', stem))


def folder_listing(folder: str) -> str:
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
    # gRefCOCO's grefs(<split_by>).json / REFER's refs(<split_by>).p
    stem = 'grefs' if osp.basename(path).startswith('grefs(') else 'refs'
    msg = (f'refs file not found: {path} (a REFER {stem}(<split_by>).p or '
           f'its JSON form; {folder_listing(folder)}')
    if osp.isdir(folder):
        others = sorted(
            f[len(stem) + 1:f.index(')')] for f in os.listdir(folder)
            if f.startswith(stem + '(') and ')' in f)
        if others:
            msg += ('; refs files exist for split_by '
                    f'{", ".join(dict.fromkeys(others))}: check split_by')
    return msg + ')'


def load_refs_file(path: str, refs_format: str = 'auto') -> Any:
    """Read a refs file: a REFER pickle (restricted unpickler, Python-2
    pickles included) or its JSON form (``refs_format='auto'``: by the
    extension, ``.json`` -> JSON).

    Raises:
        FileNotFoundError: no such file (the message lists the folder).
        pickle.UnpicklingError: not a valid or safe pickle.
        JsonStreamError: malformed or truncated JSON.
    """
    if not osp.isfile(path):
        raise RefsFileNotFoundError(_missing_refs_message(path))
    if refs_format == 'json' or (refs_format == 'auto'
                                 and path.lower().endswith('.json')):
        return load_json_file(path)
    return load_refer_pickle(path)


def read_refs(path: str, refs_format: str, problems: Problems
              ) -> Optional[list]:
    """The refs list of ``path``; a problem when it is not a list."""
    refs = load_refs_file(path, refs_format)
    if not isinstance(refs, list):
        problems.add(Problem(
            path, '', f'expected a list of ref dicts at the top '
            f'level, got {type(refs).__name__}', 'is not a list'))
        return None
    return refs


def warn_stale_json(src: str, who: str = 'RefCOCODataset') -> None:
    """Warn when the pickle beside the JSON form ``src`` is newer."""
    pickle_path = src[:-len('.json')] + '.p'
    if (src.endswith('.json') and osp.isfile(src)
            and osp.isfile(pickle_path)
            and osp.getmtime(pickle_path) > osp.getmtime(src)):
        print_log(
            f'{who}: using {src}, but {pickle_path} is newer: if the pickle '
            'changed, convert it again with tools/dataset_converters/'
            "refs_to_json.py (or set refs_format='pickle')",
            logger='current', level=logging.WARNING)


def instances_not_found(src: str) -> FileNotFoundError:
    return RefsFileNotFoundError(
        f'instances file not found: {src} (the COCO-style instances.json of '
        'the REFER release, with "images" and "annotations"; '
        f'{folder_listing(osp.dirname(src) or ".")})')


@dataclass
class Instances:
    """What is kept of ``instances.json``.

    Attributes:
        images: ``{image_id: (file_name, height, width)}``.
        anns: ``{ann_id: (image_id, segmentation)}`` (segmentation None
            where not kept).
        categories: the ``"categories"`` elements (None: no such key).
        keys: top-level keys that are arrays, or all keys when read.
        crowd: ids of the kept annotations whose ``iscrowd`` is 1 (only
            with ``read_instances(read_crowd=True)``).
    """

    images: Dict[int, Tuple[str, int, int]] = field(default_factory=dict)
    anns: Dict[int, Tuple[int, Any]] = field(default_factory=dict)
    categories: Optional[List[Any]] = None
    keys: List[str] = field(default_factory=list)
    crowd: Set[int] = field(default_factory=set)

    def describe(self) -> str:
        cats = 'no' if self.categories is None else len(self.categories)
        return (f'{len(self.images)} images, {len(self.anns)} annotations, '
                f'{cats} categories')


def _is_crowd(item: dict, index: int, src: str, problems: Problems) -> bool:
    """Whether a checked annotation is a crowd region (``iscrowd`` 0 / 1;
    a missing one is 0); a problem for another value."""
    value = item.get('iscrowd', 0)
    if value in (0, 1) and not isinstance(value, (float, str)):
        return bool(value)
    problems.add(Problem(
        src, f'"annotations"[{index}] (id={item["id"]})',
        f'field "iscrowd" must be 0 or 1, got {repr(value)[:60]}',
        'annotations have an "iscrowd" that is not 0 or 1', 'annotation'))
    return False


def read_instances(src: str, problems: Problems,
                   image_ids: Optional[set] = None,
                   ann_ids: Optional[set] = None,
                   keep_segmentation: Optional[set] = None,
                   keys: Sequence[str] = INSTANCE_KEYS + ('categories', ),
                   read_crowd: bool = False) -> Instances:
    """Stream ``instances.json`` and check it with :mod:`.schema`.

    Args:
        image_ids / ann_ids (set, optional): the ids to check and keep
            (None: all, as the checker does).
        keep_segmentation (set, optional): annotation ids whose
            segmentation is kept (None: those of ``ann_ids``).
        keys: top-level keys to stream (``categories`` elements are kept
            as they are).
        read_crowd (bool): also check the kept annotations' ``iscrowd``
            (0 or 1, absent: 0, as COCO writes it on every annotation) and
            collect the crowd ones in ``Instances.crowd``.

    A missing ``"images"`` / ``"annotations"`` is a problem, a missing
    ``"categories"`` is left to the caller (``categories`` is None).
    """
    if not osp.isfile(src):
        raise instances_not_found(src)
    out = Instances()
    counts = dict.fromkeys(keys, 0)
    seen: Dict[str, Dict[int, int]] = dict(images={}, annotations={})
    keep = ann_ids if keep_segmentation is None else keep_segmentation
    for key, item in iter_json_arrays(src, keys):
        index = counts[key]
        counts[key] += 1
        if key == 'images':
            found = check_image(item, index, src, problems, seen[key],
                                image_ids)
            if found is not None:
                out.images[found[0]] = found[1]
        elif key == 'annotations':
            found = check_annotation(item, index, src, problems, seen[key],
                                     ann_ids)
            if found is not None:
                image_id, seg = found[1]
                out.anns[found[0]] = (image_id, seg if keep is None
                                      or found[0] in keep else None)
                if read_crowd and _is_crowd(item, index, src, problems):
                    out.crowd.add(found[0])
        else:
            if out.categories is None:
                out.categories = []
            out.categories.append(item)
    out.keys = [k for k in keys if counts[k]]
    if all(counts.values()):
        return out
    kinds = top_level_kinds(src)  # a key gave nothing: absent or not [...]
    out.keys = list(kinds)
    for key in keys:
        if key in kinds and kinds[key] != 'an array':
            raise JsonStreamError(
                f'{src}: top-level key "{key}" must be an array, got '
                f'{kinds[key]}')
    if 'categories' in kinds and out.categories is None:
        out.categories = []
    for key in INSTANCE_KEYS:
        if key not in kinds:
            problems.add(Problem(
                src, '', f'the top-level key "{key}" is missing (a '
                'COCO-style instances file has "images", "annotations" and '
                f'"categories"; found: {", ".join(kinds) or "none"})',
                'missing key', 'key', key))
    return out
