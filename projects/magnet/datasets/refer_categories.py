"""Category segmentation of a REFER split's images (vision pre-training)."""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, List, Tuple

from mmseg.registry import DATASETS

from .json_stream import JsonStreamError, iter_json_arrays, top_level_kinds
from .refcoco import RefCOCODataset
from .refer.files import instances_not_found
from .refer.index import gc_paused
from .refer.schema import (Problems, ReferFormatError, check_annotation,
                           check_image, field_problem)

_KEYS = ('images', 'annotations', 'categories')


@DATASETS.register_module()
class ReferCategorySegDataset(RefCOCODataset):
    """Semantic segmentation by object category of the images of a REFER
    split: one item per image, every annotation of that image (referred or
    not) painted with its category.

    Used to pre-train the vision side on dense labels before referring
    training (``configs/pretrain``): the images are exactly those of the refs
    of ``split`` (for RefCOCO-family data, COCO ``train2014`` holds the
    images of every REFER split, so selecting by refs keeps val/test images
    out), the labels come from the same ``instances.json``.

    Classes: ``'background'`` (label 0), then the entries of
    ``instances.json``'s ``"categories"`` in file order (label ``1 + i``;
    COCO's ids 1..90 with gaps map to 1..80). ``metainfo['classes']`` is set
    from the file, so mmseg's ``IoUMetric`` names them.

    Items: ``img_path``, ``image_id``, ``height``, ``width`` and
    ``instances``: ``[(label, segmentation), ...]`` in ``instances.json``
    order, painted in that order by :class:`LoadCategoryMap` (a later
    annotation covers an earlier one; the generated dataset writes its
    objects in drawing order).

    Args:
        **kwargs: :class:`RefCOCODataset` arguments (``data_root``,
            ``dataset``, ``split_by``, ``split``, ``img_dir``, ``ann_file``,
            ``refs_format``, ``instances_file``, ``pipeline``...);
            ``per_sentence`` and ``sentence_keys`` have no effect.

    Raises:
        ReferFormatError: ``instances.json`` without ``"categories"``, an
            annotation whose ``category_id`` is not among them, a missing or
            mistyped field (named with the file and index), or a split image
            absent from ``"images"``.
    """

    METAINFO = dict(classes=('background', ), palette=[[0, 0, 0]])

    def load_data_list(self) -> List[dict]:
        """One item per image of the split's refs (see the class doc)."""
        with gc_paused():
            refs = self._load_refs()
            image_ids = {r['image_id'] for r in refs}
            images, anns, classes = self._load_image_instances(image_ids)
        missing = sorted(image_ids - set(images))
        if missing:
            raise ReferFormatError(
                f'{self.ann_file}: {len(missing)} image_id(s) of split '
                f'"{self.split}" are not in {self.instances_file} "images" '
                f'(e.g. {missing[:5]})')
        self._metainfo['classes'] = ('background', ) + tuple(classes)
        self._metainfo['palette'] = _palette(len(classes) + 1)
        img_prefix = self.data_prefix.get('img_path', '')
        data_list = []
        for image_id in sorted(image_ids):
            file_name, height, width = images[image_id]
            data_list.append(
                dict(
                    img_path=osp.join(img_prefix, file_name),
                    image_id=image_id,
                    height=height,
                    width=width,
                    instances=anns.get(image_id, []),
                    split_tag=self.split_tag,
                    seg_fields=[],
                    reduce_zero_label=False))
        return data_list

    def _load_image_instances(
        self, image_ids: set
    ) -> Tuple[Dict[int, Tuple[str, int, int]], Dict[int, List[Tuple[int,
                                                                      Any]]],
               List[str]]:
        """Stream ``instances.json``: the split's images, all their
        annotations as ``(label, segmentation)`` and the category names
        (the rules of :mod:`.refer.schema`, raise mode)."""
        src = self.instances_file
        if not osp.isfile(src):
            raise instances_not_found(src)
        problems = Problems()
        images: Dict[int, Tuple[str, int, int]] = {}
        raw_anns: List[Tuple[int, Any, Any, str]] = []
        categories: List[Tuple[int, str]] = []
        counts = dict.fromkeys(_KEYS, 0)
        seen: Dict[str, Dict[int, int]] = {k: {} for k in _KEYS}
        for key, item in iter_json_arrays(src, _KEYS):
            index = counts[key]
            counts[key] += 1
            if key == 'images':
                found = check_image(item, index, src, problems, seen[key],
                                    image_ids)
                if found is not None:
                    images[found[0]] = found[1]
            elif key == 'annotations':
                found = check_annotation(item, index, src, problems,
                                         seen[key])
                if found is not None and found[1][0] in image_ids:
                    raw_anns.append((found[1][0], item.get('category_id'),
                                     found[1][1], f'{src}: "{key}"[{index}] '
                                     f'(id={found[0]})'))
            else:
                where = f'{src}: "categories"[{index}]'
                if not isinstance(item, dict):
                    raise ReferFormatError(f'{where} is not an object')
                for name, typ in (('id', int), ('name', str)):
                    bad = field_problem(item, name, typ)
                    if bad is not None:
                        raise ReferFormatError(f'{where}: {bad}')
                categories.append((item['id'], item['name']))
        if not all(counts.values()):
            kinds = top_level_kinds(src)
            for key in _KEYS:
                if kinds.get(key, 'an array') != 'an array':
                    raise JsonStreamError(
                        f'{src}: top-level key "{key}" must be an array, '
                        f'got {kinds[key]}')
                if key not in kinds:
                    raise ReferFormatError(
                        f'{src}: the top-level key "{key}" is missing '
                        '(category segmentation needs "images", '
                        '"annotations" and "categories"; found: '
                        f'{", ".join(kinds) or "none"})')
        label_of = {}
        for i, (cat_id, _) in enumerate(categories):
            if cat_id in label_of:
                raise ReferFormatError(
                    f'{src}: "categories" has id {cat_id} twice')
            label_of[cat_id] = i + 1
        if len(label_of) > 254:
            raise ReferFormatError(
                f'{src}: {len(label_of)} categories; the category maps are '
                'uint8 with 255 reserved for ignore (at most 254)')
        anns: Dict[int, List[Tuple[int, Any]]] = {}
        for image_id, cat_id, seg, where in raw_anns:
            if isinstance(cat_id, bool) or not isinstance(cat_id, int):
                raise ReferFormatError(
                    f'{where}: field "category_id" must be int, got '
                    f'{cat_id!r}')
            if cat_id not in label_of:
                raise ReferFormatError(
                    f'{where}: category_id {cat_id} is not in "categories" '
                    f'(ids: {sorted(label_of)[:10]}...)')
            anns.setdefault(image_id, []).append((label_of[cat_id], seg))
        return images, anns, [name for _, name in categories]


def _palette(n: int) -> List[List[int]]:
    """Fixed, distinct colours (background black)."""
    out = [[0, 0, 0]]
    for i in range(1, n):
        out.append([(i * 97) % 256, (i * 57 + 80) % 256, (i * 151 + 40) % 256])
    return out
