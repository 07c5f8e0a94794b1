"""ReferCategorySegDataset + LoadCategoryMap: category maps of a split's
images for vision pre-training."""
import json
import os.path as osp

import numpy as np
import pytest
from mmseg.registry import DATASETS, TRANSFORMS

from projects.magnet.datasets import ReferFormatError

from .utils import make_ref, write_instances, write_refs


def _square(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _layout(root, categories=None, extra_ann=None):
    """Two images of 'train' (one referred twice), one of 'val'; image 2
    has an object that no ref mentions; COCO-style category ids with
    gaps (3, 17)."""
    folder = osp.join(root, 'cats')
    refs = [
        make_ref(1, 10, 1, 'train', [('the red one', 1)]),
        make_ref(2, 11, 1, 'train', [('the blue one', 2)]),
        make_ref(3, 20, 2, 'train', [('the square', 3)]),
        make_ref(4, 30, 3, 'val', [('the thing', 4)]),
    ]
    write_refs(folder, refs)
    images = [dict(id=i, file_name=f'img_{i}.jpg', height=16, width=20)
              for i in (1, 2, 3)]
    anns = [
        # image 1: a large square, then a smaller one drawn over it
        dict(id=10, image_id=1, category_id=17,
             segmentation=_square(2, 2, 14, 14)),
        dict(id=11, image_id=1, category_id=3,
             segmentation=_square(6, 6, 10, 10)),
        dict(id=20, image_id=2, category_id=3,
             segmentation=_square(0, 0, 4, 4)),
        # not referred by any ref: still painted
        dict(id=21, image_id=2, category_id=17,
             segmentation=_square(12, 8, 18, 14)),
        dict(id=30, image_id=3, category_id=3,
             segmentation=_square(1, 1, 5, 5)),
    ] + ([extra_ann] if extra_ann else [])
    if categories is None:
        categories = [dict(id=3, name='cat'), dict(id=17, name='dog')]
    top = dict(images=images, annotations=anns)
    if categories is not False:
        top['categories'] = categories
    write_instances(folder, **top)
    return folder


def _build(root, split='train', **kwargs):
    return DATASETS.build(
        dict(type='ReferCategorySegDataset', data_root=root, dataset='cats',
             split=split, pipeline=[dict(type='LoadCategoryMap')], **kwargs))


def test_items_are_the_split_images_with_all_their_annotations(tmp_path):
    _layout(str(tmp_path))
    ds = _build(str(tmp_path))
    assert len(ds) == 2  # images 1 and 2; image 1 is referred twice
    assert ds.metainfo['classes'] == ('background', 'cat', 'dog')
    assert len(ds.metainfo['palette']) == 3
    info = ds.get_data_info(1)
    assert info['image_id'] == 2
    # the unreferred object 21 is there, labels follow the category order
    assert [label for label, _ in info['instances']] == [1, 2]
    assert [d['image_id'] for d in (ds.get_data_info(i)
                                     for i in range(2))] == [1, 2]
    val = _build(str(tmp_path), split='val')
    assert [val.get_data_info(i)['image_id'] for i in range(len(val))] == [3]


def test_category_map_paints_later_annotations_over_earlier(tmp_path):
    _layout(str(tmp_path))
    seg = _build(str(tmp_path))[0]['gt_seg_map']
    assert seg.shape == (16, 20) and seg.dtype == np.uint8
    assert seg[4, 4] == 2  # the large 'dog' square (id 17 -> label 2)
    assert seg[8, 8] == 1  # the small 'cat' square drawn over it
    assert seg[0, 19] == 0
    assert set(np.unique(seg)) == {0, 1, 2}
    # the 4x4 cat square covers part of the 12x12 dog square
    assert (seg == 1).sum() == 16 and (seg == 2).sum() == 144 - 16


def test_category_map_checks_the_image_size():
    t = TRANSFORMS.build(dict(type='LoadCategoryMap'))
    with pytest.raises(ValueError, match=r'x.jpg image_id=5.*8x8.*16x20'):
        t(dict(img=np.zeros((8, 8, 3), np.uint8), height=16, width=20,
               instances=[], img_path='x.jpg', image_id=5))
    # after a Resize (test pipelines): the loaded size is ori_shape, the map
    # keeps the size of instances.json
    out = t(dict(img=np.zeros((8, 8, 3), np.uint8), ori_shape=(16, 20),
                 height=16, width=20, instances=[]))
    assert out['gt_seg_map'].shape == (16, 20)
    with pytest.raises(ValueError, match='12x20'):
        t(dict(img=np.zeros((16, 20, 3), np.uint8), ori_shape=(12, 20),
               height=16, width=20, instances=[]))


def test_bad_segmentation_names_the_image_and_instance(tmp_path):
    _layout(str(tmp_path), extra_ann=dict(id=22, image_id=2, category_id=3,
                                          segmentation=[[0, 0, 1]]))
    ds = _build(str(tmp_path))
    with pytest.raises(ValueError, match=r'image_id=2: instances\[2\]'):
        ds[1]


def test_unknown_category_is_an_error_naming_the_annotation(tmp_path):
    _layout(str(tmp_path), extra_ann=dict(id=22, image_id=1, category_id=99,
                                          segmentation=_square(0, 0, 2, 2)))
    with pytest.raises(ReferFormatError,
                       match=r'"annotations"\[5\] \(id=22\).*category_id 99'):
        _build(str(tmp_path))


def test_missing_categories_is_an_error(tmp_path):
    _layout(str(tmp_path), categories=False)
    with pytest.raises(ReferFormatError, match='"categories" is missing'):
        _build(str(tmp_path))


def test_duplicate_category_id_is_an_error(tmp_path):
    _layout(str(tmp_path), categories=[dict(id=3, name='a'),
                                       dict(id=3, name='b')])
    with pytest.raises(ReferFormatError, match='id 3 twice'):
        _build(str(tmp_path))


def test_split_image_missing_from_instances(tmp_path):
    folder = _layout(str(tmp_path))
    path = osp.join(folder, 'instances.json')
    with open(path) as f:
        top = json.load(f)
    top['images'] = [im for im in top['images'] if im['id'] != 2]
    with open(path, 'w') as f:
        json.dump(top, f)
    with pytest.raises(ReferFormatError, match=r'image_id\(s\).*\[2\]'):
        _build(str(tmp_path))


def test_generated_dataset_labels_are_its_shapes(refer_root):
    """On the generator's output: the category map under each referred
    object is that object's shape wherever it is visible."""
    from mmseg.registry import DATASETS as D
    root, _ = refer_root
    cats = D.build(dict(
        type='ReferCategorySegDataset', data_root=root, dataset='refsynth',
        split='train', pipeline=[dict(type='LoadCategoryMap')]))
    refs = D.build(dict(
        type='RefCOCODataset', data_root=root, dataset='refsynth',
        split='train', pipeline=[dict(type='LoadReferringMask')]))
    with open(osp.join(root, 'refsynth', 'instances.json')) as f:
        names = {c['id']: c['name'] for c in json.load(f)['categories']}
    maps = {cats.get_data_info(i)['image_id']: cats[i]['gt_seg_map']
            for i in range(len(cats))}
    classes = cats.metainfo['classes']
    checked = 0
    for i in range(len(refs)):
        item = refs[i]
        mask = item['gt_seg_map'].astype(bool)
        labels = np.unique(maps[item['image_id']][mask])
        assert [classes[v] for v in labels] == [names[item['category_id']]]
        checked += 1
    assert checked == len(refs) > 10
