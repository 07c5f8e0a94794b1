"""Category segmentation of a REFER split's images (vision pre-training)."""
from __future__ import annotations

import os.path as osp
from typing import Any, Dict, List, Tuple

from mmseg.registry import DATASETS

from .refcoco import RefCOCODataset, ReferFormatError, _gc_paused

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
        with _gc_paused():
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
        annotations as ``(label, segmentation)`` and the category names."""
        src = self.instances_file
        if not osp.isfile(src):
            raise FileNotFoundError(
                f'instances file not found: {src} (the COCO-style '
                'instances.json with "images", "annotations" and '
                '"categories")')
        images: Dict[int, Tuple[str, int, int]] = {}
        raw_anns: List[Tuple[int, int, Any, str]] = []
        categories: List[Tuple[int, str]] = []
        keys: List[str] = []
        for key, item, item_id, where in self._instance_items(_KEYS, keys):
            where = f'{where} (id={item_id})'
            if key == 'categories':
                categories.append(
                    (item_id, self._field(item, 'name', str, where)))
            elif key == 'images':
                if item_id in image_ids:
                    self._check_unique(images, item_id, where, 'image')
                    images[item_id] = (
                        self._field(item, 'file_name', str, where),
                        self._field(item, 'height', int, where),
                        self._field(item, 'width', int, where))
            else:
                image_id = self._field(item, 'image_id', int, where)
                if image_id in image_ids:
                    raw_anns.append(
                        (image_id,
                         self._field(item, 'category_id', int, where),
                         self._field(item, 'segmentation', (list, dict),
                                     where), where))
        for key in _KEYS:
            if key not in keys:
                raise ReferFormatError(
                    f'{src}: the top-level key "{key}" is missing (category '
                    'segmentation needs "images", "annotations" and '
                    f'"categories"; found: {", ".join(keys) or "none"})')
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
