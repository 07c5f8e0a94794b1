"""GRefCOCODataset and LoadGRefMask on hand-made gRefCOCO files."""
import json
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.dataset import Compose
from mmseg.registry import DATASETS, TRANSFORMS
from PIL import Image
from pycocotools import mask as mask_utils

from projects.magnet.datasets import GRefCOCODataset, ReferFormatError
from projects.magnet.datasets.transforms import (LoadGRefMask,
                                                 SegmentationError,
                                                 decode_gref_mask,
                                                 decode_refer_mask)
from projects.magnet.utils.errors import UserError

from .gref_utils import (H, W, box, default_refs, images_and_annotations,
                         make_gref, reference_union, write_gref)
from .utils import TOKENIZER_DIR

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _dataset(root, **kwargs):
    return GRefCOCODataset(data_root=str(root), **kwargs)


def _items(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


def _masks(ds):
    """{(ref_id, sent_id): LoadGRefMask's gt_seg_map} of every item."""
    load = LoadGRefMask()
    return {(it['ref_id'], it['sent_id']): load(dict(it))['gt_seg_map']
            for it in _items(ds)}


# ------------------------------------------------------------ items, splits
@pytest.mark.parametrize('fmt', ['json', 'pickle'])
def test_items_per_sentence_match_the_refs(tmp_path, fmt):
    write_gref(tmp_path, fmt=fmt)
    ds = _dataset(tmp_path, split='val', test_mode=True)
    got = [(it['ref_id'], it['sent_id'], it['text'], it['ann_id'],
            it['no_target'], it['seg_ann_ids']) for it in _items(ds)]
    # file order (the refs are not sorted by id), then sentence order;
    # the crowd annotation 13 has no segmentation in the item
    assert got == [(3, 31, 'the dog', [-1], True, []),
                   (3, 32, 'a cat', [-1], True, []),
                   (5, 51, 'stuff on top', [12, 13, 10], False, [12, 10]),
                   (1, 11, 'the square', [20], False, [20])]
    _, anns = images_and_annotations()
    segs = {a['id']: a['segmentation'] for a in anns}
    for it in _items(ds):
        assert it['segmentations'] == [segs[a] for a in it['seg_ann_ids']]
        assert it['img_path'] == osp.join(
            str(tmp_path), 'images/mscoco/images/train2014',
            f'COCO_train2014_{it["image_id"]:012d}.jpg')
        assert (it['height'], it['width']) == (H, W)
        assert it['split_tag'] == 'grefcoco_unc_val'
        assert 'segmentation' not in it  # LoadReferringMask cannot misread


def test_splits_and_per_ref_items(tmp_path):
    write_gref(tmp_path)
    counts = {s: (len(_dataset(tmp_path, split=s)),
                  len(_dataset(tmp_path, split=s, test_mode=True)))
              for s in ('train', 'val', 'testA', 'testB')}
    assert counts == dict(train=(1, 1), val=(3, 4), testA=(1, 1),
                          testB=(2, 3))
    per_ref = _items(_dataset(tmp_path, split='testB'))
    assert [(it['ref_id'], it['sentences']) for it in per_ref] == [
        (8, [dict(raw='both', sent_id=81), dict(raw='all two', sent_id=82)]),
        (2, [dict(raw='the crowd', sent_id=21)])]
    with pytest.raises(UserError, match='unknown split "test"'):
        _dataset(tmp_path, split='test')


def test_unsorted_refs_load_exactly(tmp_path):
    refs = default_refs()
    write_gref(tmp_path / 'a', refs=refs)
    write_gref(tmp_path / 'b', refs=sorted(refs, key=lambda r: r['ref_id']))
    write_gref(tmp_path / 'c', refs=refs[::-1], fmt='pickle')
    by_ref = {r['ref_id']: r for r in refs}
    views = []
    for sub in 'abc':
        items = _items(_dataset(tmp_path / sub, split='val',
                                test_mode=True))
        for it in items:  # every item carries its own ref's ids
            ref = by_ref[it['ref_id']]
            assert it['ann_id'] == ref['ann_id']
            assert it['image_id'] == ref['image_id']
            assert it['sent_id'] in ref['sent_ids']
        views.append(sorted(
            (it['ref_id'], it['sent_id'], tuple(it['seg_ann_ids']))
            for it in items))
    assert views[0] == views[1] == views[2]
    masks = [_masks(_dataset(tmp_path / s, split='val', test_mode=True))
             for s in 'ab']
    assert masks[0].keys() == masks[1].keys()
    for key in masks[0]:
        assert np.array_equal(masks[0][key], masks[1][key])


def test_json_form_is_preferred_and_pickle_can_be_chosen(tmp_path):
    write_gref(tmp_path, fmt='pickle')
    refs = default_refs()
    refs[1]['sentences'][0]['raw'] = 'only in the json'
    write_gref(tmp_path, refs=refs)  # grefs(unc).json beside .p
    auto = _items(_dataset(tmp_path, split='val', test_mode=True))
    assert auto[0]['text'] == 'only in the json'
    pick = _items(_dataset(tmp_path, split='val', test_mode=True,
                           refs_format='pickle'))
    assert pick[0]['text'] == 'the dog'
    with pytest.raises(FileNotFoundError, match=r'grefs\(umd\).p.*grefs'
                       r'\(unc\)'):
        _dataset(tmp_path, split='val', split_by='umd')


def test_registered_and_lazy(tmp_path):
    write_gref(tmp_path)
    ds = DATASETS.build(dict(type='GRefCOCODataset', data_root=str(tmp_path),
                             split='val', lazy_init=True))
    assert isinstance(ds, GRefCOCODataset) and not ds._fully_initialized
    assert len(ds) == 3
    assert isinstance(TRANSFORMS.build(dict(type='LoadGRefMask')),
                      LoadGRefMask)


# --------------------------------------------------------------- the masks
def test_union_masks_match_an_independent_decode(tmp_path, logged):
    write_gref(tmp_path)
    _, anns = images_and_annotations()
    refs = {r['ref_id']: r for r in default_refs()}
    for split in ('train', 'val', 'testA', 'testB'):
        for (ref_id, _), mask in _masks(
                _dataset(tmp_path, split=split, test_mode=True)).items():
            assert mask.dtype == np.uint8 and mask.shape == (H, W)
            assert np.array_equal(
                mask, reference_union(refs[ref_id]['ann_id'], anns)), ref_id
    masks = _masks(_dataset(tmp_path, split='val', test_mode=True))
    # overlaps stay foreground: between objects (10, 11) ...
    two = _masks(_dataset(tmp_path, split='train', test_mode=True))[7, 71]
    assert two[15, 15] == 1 and two[5, 5] == 1 and two[25, 25] == 1
    # ... and between the polygons of one object (12), which RefCOCO's
    # "== 1" rule would make background
    top = masks[5, 51]
    assert top[10, 45] == 1
    refer = decode_refer_mask(anns[2]['segmentation'], H, W)
    assert refer[10, 45] == 0
    # the crowd region (rows 30-39) is not foreground
    assert not top[31:, :].any()
    # no target: empty
    assert not masks[3, 31].any() and not masks[3, 32].any()


def test_overlap_is_counted_once(tmp_path):
    write_gref(tmp_path)
    _, anns = images_and_annotations()
    a = reference_union([10], anns).astype(bool)
    b = reference_union([11], anns).astype(bool)
    assert (a & b).any()  # the fixture's objects do overlap
    two = _masks(_dataset(tmp_path, split='train', test_mode=True))[7, 71]
    assert int(two.sum()) == int((a | b).sum())
    assert set(np.unique(two)) == {0, 1}


def test_invalid_polygons_are_dropped_and_logged(tmp_path, logged):
    write_gref(tmp_path)
    _, anns = images_and_annotations()
    mask = _masks(_dataset(tmp_path, split='testA', test_mode=True))[9, 91]
    valid_only = reference_union([14], anns)
    assert np.array_equal(mask, valid_only)
    assert mask.sum() < (H * W) // 2  # the odd / 2-point ones added nothing
    drops = [w for w in logged if 'dropped' in w]
    assert any('polygon 1 has 7 coordinates (an odd number)' in w and
               'ann_id=14' in w for w in drops)
    assert any('polygon 2 has 4 coordinates (fewer than 3 points)' in w
               for w in drops)
    # an object with no valid polygon adds nothing, with a warning
    square = [box(0, 0, 4, 4)]
    both = decode_gref_mask([anns[5]['segmentation'], square], H, W, 'x',
                            [15, 99])
    assert reference_union([15], anns).sum() == 0
    assert np.array_equal(both, decode_gref_mask([square], H, W))
    assert both.sum() > 0
    assert any('ann_id=15' in w and 'adds nothing' in w
               for w in logged)


def test_crowd_only_ref_warns_and_has_a_target(tmp_path, logged):
    write_gref(tmp_path)
    items = _items(_dataset(tmp_path, split='testB', test_mode=True))
    crowd = [it for it in items if it['ref_id'] == 2][0]
    assert crowd['no_target'] is False and crowd['segmentations'] == []
    assert not LoadGRefMask()(dict(crowd))['gt_seg_map'].any()
    assert any('refer only to crowd annotations' in w and '[2]' in w
               for w in logged)


def test_malformed_segmentation_names_the_ref_and_ann(tmp_path):
    images, anns = images_and_annotations()
    anns[0]['segmentation'] = [[1, 2, 'x', 4, 5, 6]]
    write_gref(tmp_path, images=images, annotations=anns)
    item = _items(_dataset(tmp_path, split='train', test_mode=True))[0]
    with pytest.raises(SegmentationError, match=r'ref_id=7 ann_id=10: '
                       '"segmentation": cannot decode segmentation: polygon '
                       '0 must be a flat list'):
        LoadGRefMask()(dict(item))
    with pytest.raises(UserError, match='lack.*segmentations'):
        LoadGRefMask()(dict(ref_id=1, height=H, width=W))


def test_config_pipeline_packs_no_target(tmp_path):
    write_gref(tmp_path)
    folder = tmp_path / 'images/mscoco/images/train2014'
    folder.mkdir(parents=True)
    for i in (1, 2):
        Image.new('RGB', (W, H), (i * 50, 0, 0)).save(
            folder / f'COCO_train2014_{i:012d}.jpg')
    cfg = Config.fromfile(osp.join(REPO, 'configs/_base_/datasets/'
                                   'grefcoco.py'))
    assert cfg.val_evaluator.type == 'GRefSegMetric'
    splits = [d.split for d in cfg.test_dataloader.dataset.datasets]
    assert splits == ['val', 'testA', 'testB']
    assert cfg.train_dataloader.dataset.type == 'GRefCOCODataset'
    pipeline = [dict(t) for t in cfg.test_pipeline]
    for t in pipeline:
        if t['type'] == 'TokenizeText':
            t['tokenizer'] = TOKENIZER_DIR
    ds = _dataset(tmp_path, split='val', test_mode=True)
    run = Compose([TRANSFORMS.build(t) for t in pipeline])
    _, anns = images_and_annotations()
    for i, it in enumerate(_items(ds)):
        sample = run(ds.get_data_info(i))['data_samples']
        assert sample.metainfo['no_target'] is it['no_target']
        assert sample.metainfo['ann_id'] == it['ann_id']
        seg = sample.gt_sem_seg.data.numpy()[0]
        assert seg.shape == (480, 480)
        assert bool(seg.any()) == (reference_union(it['ann_id'],
                                                   anns).any())


# ------------------------------------------------------------------ errors
def _broken(tmp_path, edit, fmt='json'):
    refs = default_refs()
    images, anns = images_and_annotations()
    edit(refs, images, anns)
    write_gref(tmp_path, refs, images, anns, fmt=fmt)
    return osp.join(str(tmp_path), 'grefcoco', 'grefs(unc).json' if fmt ==
                    'json' else 'grefs(unc).p')


@pytest.mark.parametrize('edit, pattern', [
    (lambda r: r[2].pop('ann_id'), r'refs\[2\] \(ref_id=5\): missing field '
     '"ann_id"'),
    (lambda r: r[2].update(ann_id=[-1, 12]), r'ref_id=5\): "ann_id" '
     r'\[-1, 12\] mixes -1 \(no target\)'),
    (lambda r: r[2].update(ann_id=12), r'ref_id=5\): field "ann_id" must be '
     'list, got int'),
    (lambda r: r[2].update(ann_id=[12, '10']), r'ref_id=5\): "ann_id"\[1\] '
     "must be an int, got str \\('10'\\)"),
    (lambda r: r[2].update(ann_id=[12, True]), r'"ann_id"\[1\] must be an '
     'int, got bool'),
    (lambda r: r[2].update(ann_id=[]), r'ref_id=5\): "ann_id" is empty'),
    (lambda r: r[2].update(ann_id=[12, 10, 12]), r'ref_id=5\): "ann_id" '
     r'\[12, 10, 12\] repeats the annotation id\(s\) \[12\]'),
    (lambda r: r[2].update(category_id=1), r'ref_id=5\): field '
     '"category_id" must be list'),
    (lambda r: r[2].update(category_id=[1, None]), r'"category_id"\[1\] '
     'must be an int, got NoneType'),
    (lambda r: r[3].update(image_id='2'), r'ref_id=1\): field "image_id" '
     'must be int'),
    (lambda r: r[1].pop('split'), r'refs\[1\]: missing field "split"'),
    (lambda r: r[1]['sentences'][0].pop('raw'), r'ref_id=3\): sentences\[0\]'
     ': missing field "raw"'),
])
@pytest.mark.parametrize('fmt', ['json', 'pickle'])
def test_ref_errors_name_the_ref_and_field(tmp_path, edit, pattern, fmt):
    path = _broken(tmp_path, lambda r, i, a: edit(r), fmt)
    with pytest.raises(ReferFormatError, match=pattern) as info:
        _dataset(tmp_path, split='val')
    assert str(info.value).startswith(path)
    assert isinstance(info.value, (UserError, ValueError))


def test_unknown_and_misplaced_ann_ids_are_named(tmp_path):
    _broken(tmp_path, lambda r, i, a: (r[2].update(ann_id=[12, 98, 99]),
                                       r[3].update(ann_id=[10])))
    with pytest.raises(ReferFormatError) as info:
        _dataset(tmp_path, split='val')
    msg = str(info.value)
    assert '2 of 3 refs of split "val" do not match' in msg
    assert 'ref_id=5: "ann_id" [12, 98, 99]: the id(s) [98, 99] are not ' \
        'in "annotations"' in msg
    assert 'ref_id=1: "image_id" 2 differs from the image_id of ' \
        'annotation(s) 10 (image_id 1)' in msg
    assert msg.startswith(osp.join(str(tmp_path), 'grefcoco',
                                   'grefs(unc).json'))
    # another split does not see them
    assert len(_dataset(tmp_path, split='train')) == 1


def test_other_errors(tmp_path):
    _broken(tmp_path, lambda r, i, a: a[1].update(iscrowd='no'))
    with pytest.raises(ReferFormatError, match=r'"annotations"\[1\] '
                       r'\(id=11\): field "iscrowd" must be 0 or 1'):
        _dataset(tmp_path, split='train')
    _broken(tmp_path, lambda r, i, a: r.__setitem__(3, r[2]))
    with pytest.raises(ReferFormatError, match='duplicate ref_id 5'):
        _dataset(tmp_path, split='val')
    _broken(tmp_path, lambda r, i, a: r[3].update(image_id=5))
    with pytest.raises(ReferFormatError, match=r'"image_id" 5 is not in '
                       '"images"|the id'):
        _dataset(tmp_path, split='val')
    (tmp_path / 'grefcoco' / 'grefs(unc).json').write_text(
        json.dumps({'refs': []}))
    with pytest.raises(ReferFormatError, match='expected a list of ref '
                       'dicts'):
        _dataset(tmp_path, split='val')


def test_sentences_without_word_and_own_sent_ids(tmp_path, logged):
    def edit(refs, images, anns):
        refs[1]['sentences'][1]['raw'] = '!!'  # ref 3: one left
        refs[3]['sentences'][0]['raw'] = '\U0001F600'  # ref 1: none left
        for ref in refs:  # gRefCOCO refs may lack REFER's sent_ids
            del ref['sent_ids']

    _broken(tmp_path, edit)
    items = _items(_dataset(tmp_path, split='val', test_mode=True))
    assert [(it['ref_id'], it['sent_id']) for it in items] == [(3, 31),
                                                               (5, 51)]
    assert any('skipped 2 sentences of split "val"' in w and
               'GRefCOCODataset' in w for w in logged)
    _broken(tmp_path, lambda r, i, a: r[1]['sentences'][0].pop('sent_id')
            and r[1].pop('sent_ids'))
    with pytest.raises(ReferFormatError, match=r'ref_id=3\): sentences\[0\]'
                       ': missing field "sent_id"'):
        _dataset(tmp_path, split='val')


def test_single_object_refs_need_a_list(tmp_path):
    # a RefCOCO-style int ann_id is refused, not silently wrapped
    refs = [make_gref(1, [20], 2, 'val', [('x', 1)])]
    refs[0]['ann_id'] = 20
    write_gref(tmp_path, refs=refs)
    with pytest.raises(ReferFormatError, match='"ann_id" must be list'):
        _dataset(tmp_path, split='val')


def test_rle_objects_and_image_size(tmp_path):
    _, anns = images_and_annotations()
    crowd = anns[3]['segmentation']  # uncompressed RLE of rows 30-39
    packed = mask_utils.frPyObjects(crowd, H, W)
    packed = dict(size=packed['size'], counts=packed['counts'].decode())
    poly = [box(2, 2, 20, 20)]
    want = reference_union([10], anns) | mask_utils.decode(packed)
    for rle in (crowd, packed, [packed]):  # RLE objects are OR-ed too
        got = decode_gref_mask([poly, rle], H, W)
        assert np.array_equal(got, want)
    with pytest.raises(SegmentationError, match=r'ann_id=4: "segmentation":'
                       '.*differs from the image size'):
        decode_gref_mask([dict(packed, size=[H, W + 1])], H, W, 'x', [4])
    item = dict(no_target=False, segmentations=[poly], seg_ann_ids=[10],
                height=H, width=W, ref_id=1)
    small = LoadGRefMask()(dict(item, img=np.zeros((H // 2, W // 2, 3)),
                                ori_shape=(H, W)))['gt_seg_map']
    assert small.shape == (H // 2, W // 2) and small[5, 5] == 1
    with pytest.raises(SegmentationError, match='the loaded image is 41x60'):
        LoadGRefMask()(dict(item, img=np.zeros((H + 1, W, 3))))


@pytest.mark.parametrize('key', ['no_target', 'segmentations',
                                 'seg_ann_ids', 'ann_id'])
def test_sentence_keys_cannot_overwrite_the_gref_fields(tmp_path, key):
    """A sentence field named like an item field would silently replace it
    (a str ``no_target`` would read as True): refused up front."""
    write_gref(str(tmp_path))
    with pytest.raises(ValueError, match=rf"\['{key}'\] would overwrite"):
        _dataset(tmp_path, dataset='grefcoco', split='val',
                 sentence_keys=('kind', key))
    # without the clash the same layout loads
    assert len(_dataset(tmp_path, dataset='grefcoco', split='val',
                        sentence_keys=('kind', ))) > 0
