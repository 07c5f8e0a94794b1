"""RefCOCODataset on generated and hand-made REFER files."""
import json
import os.path as osp
import pickle

import numpy as np
import pytest
from mmseg.registry import DATASETS
from pycocotools import mask as mask_utils

from projects.magnet.datasets import (
    RefCOCODataset,
    select_refer_split,
)
from projects.magnet.datasets.transforms import decode_refer_mask

from .utils import (
    TOKENIZER_DIR,
    make_ref,
    write_refer,
)


def _dataset(root, **kwargs):
    kwargs.setdefault('dataset', 'refsynth')
    return RefCOCODataset(data_root=root, **kwargs)


def _official_mask(ann, img):
    """REFER getMask + dataset rule (sum over polygons, keep == 1)."""
    seg = ann['segmentation']
    if type(seg) == list and type(seg[0]) == list:  # noqa: E721
        rle = mask_utils.frPyObjects(seg, img['height'], img['width'])
    elif isinstance(seg['counts'], list):
        rle = [mask_utils.frPyObjects(seg, img['height'], img['width'])]
    else:
        rle = [seg]
    m = np.sum(mask_utils.decode(rle), axis=2).astype(np.uint8)
    return (m == 1).astype(np.uint8)


def test_item_counts_per_split(refer_root):
    root, summary = refer_root
    for split, stats in summary['splits'].items():
        train_like = _dataset(root, split=split)
        assert len(train_like) == stats['refs']
        evaluation = _dataset(root, split=split, test_mode=True)
        assert len(evaluation) == stats['sentences']
    test = _dataset(root, split='test', test_mode=True)
    s = summary['splits']
    assert len(test) == s['testA']['sentences'] + s['testB']['sentences']


def test_items_match_the_files(refer_root):
    root, _ = refer_root
    refs = pickle.load(open(osp.join(root, 'refsynth', 'refs(unc).p'), 'rb'))
    inst = json.load(open(osp.join(root, 'refsynth', 'instances.json')))
    imgs = {i['id']: i for i in inst['images']}
    val_refs = [r for r in refs if r['split'] == 'val']

    ds = _dataset(root, split='val', test_mode=True)
    expected = [(r['ref_id'], s['sent_id'], s['raw'], s['kind'])
                for r in val_refs for s in r['sentences']]
    got = [(ds.get_data_info(i)['ref_id'], ds.get_data_info(i)['sent_id'],
            ds.get_data_info(i)['text'], ds.get_data_info(i)['kind'])
           for i in range(len(ds))]
    assert got == expected
    info = ds.get_data_info(0)
    ref = val_refs[0]
    img = imgs[ref['image_id']]
    assert info['img_path'] == osp.join(root, 'images/mscoco/images/train2014',
                                        img['file_name'])
    assert (info['height'], info['width']) == (img['height'], img['width'])
    assert info['ann_id'] == ref['ann_id'] and info['seg_fields'] == []
    assert info['reduce_zero_label'] is False
    assert info['split_tag'] == 'refsynth_unc_val'

    train = _dataset(root, split='train')
    first = train.get_data_info(0)
    tref = next(r for r in refs if r['split'] == 'train')
    assert first['sentences'] == [
        dict(raw=s['raw'], sent_id=s['sent_id'], kind=s['kind'])
        for s in tref['sentences']
    ]
    assert 'text' not in first and 'kind' not in first
    # sentence_keys=(): only the REFER fields
    plain = _dataset(root, split='val', test_mode=True, sentence_keys=())
    assert 'kind' not in plain.get_data_info(0)


def test_masks_match_an_independent_decode(refer_root):
    root, _ = refer_root
    inst = json.load(open(osp.join(root, 'refsynth', 'instances.json')))
    anns = {a['id']: a for a in inst['annotations']}
    imgs = {i['id']: i for i in inst['images']}
    kinds = set()
    for split in ('train', 'val', 'test'):
        ds = _dataset(root, split=split)
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            ann = anns[info['ann_id']]
            seg = ann['segmentation']
            kinds.add('crowd' if ann['iscrowd'] else 'rle' if isinstance(
                seg, dict) else f'polygons{min(len(seg), 2)}')
            got = decode_refer_mask(info['segmentation'], info['height'],
                                    info['width'])
            np.testing.assert_array_equal(
                got, _official_mask(ann, imgs[info['image_id']]))
            if isinstance(seg, list) and len(seg) > 1:
                # generated multi-polygons: occluders lying inside the
                # object; the overlap rule removes them from its mask
                first = decode_refer_mask(seg[:1], info['height'],
                                          info['width'])
                others = decode_refer_mask(seg[1:], info['height'],
                                           info['width'])
                assert (got[others == 1] == 0).all()
                assert got.sum() == first.sum() - (first & others).sum()
    assert {'polygons1', 'polygons2', 'rle'} <= kinds


def test_full_pipeline_packs_text_and_tokens(refer_root):
    root, _ = refer_root
    meta_keys = ('img_path', 'ori_shape', 'img_shape', 'scale_factor',
                 'text', 'input_ids', 'attention_mask', 'ref_id', 'sent_id',
                 'split_tag')
    pipeline = [
        dict(type='LoadImageFromFile', imdecode_backend='pillow',
             color_type='color_ignore_orientation'),
        dict(type='LoadReferringMask'),
        dict(type='SampleSentence'),
        dict(type='TokenizeText', tokenizer=TOKENIZER_DIR),
        dict(type='Resize', scale=(48, 40), keep_ratio=False,
             backend='pillow', interpolation='bilinear'),
        dict(type='PackSegInputs', meta_keys=meta_keys),
    ]
    for test_mode in (False, True):
        ds = DATASETS.build(
            dict(type='RefCOCODataset', data_root=root, dataset='refsynth',
                 split='val', test_mode=test_mode, pipeline=pipeline))
        out = ds[1]
        assert tuple(out['inputs'].shape) == (3, 40, 48)
        sample = out['data_samples']
        assert tuple(sample.gt_sem_seg.data.shape) == (1, 40, 48)
        assert set(np.unique(sample.gt_sem_seg.data.numpy())) <= {0, 1}
        assert sample.gt_sem_seg.data.sum() > 0
        meta = sample.metainfo
        assert meta['input_ids'].shape == (20, )
        assert meta['input_ids'][0] == 101
        assert meta['attention_mask'].sum() >= 3
        assert isinstance(meta['text'], str) and meta['ori_shape'] == (64, 64)
        info = ds.get_data_info(1)
        assert meta['ref_id'] == info['ref_id']
        if test_mode:
            assert meta['text'] == info['text']
            assert meta['sent_id'] == info['sent_id']
        else:
            assert meta['sent_id'] in [s['sent_id'] for s in info['sentences']]


def test_concat_dataset_of_splits(refer_root):
    root, summary = refer_root
    ds = DATASETS.build(
        dict(type='ConcatDataset', datasets=[
            dict(type='RefCOCODataset', data_root=root, dataset='refsynth',
                 split=s, test_mode=True) for s in ('val', 'testA')]))
    s = summary['splits']
    assert len(ds) == s['val']['sentences'] + s['testA']['sentences']
    tags = {ds.get_data_info(i)['split_tag'] for i in range(len(ds))}
    assert tags == {'refsynth_unc_val', 'refsynth_unc_testA'}


# ------------------------------------------------------------ split rules
def test_select_refer_split_rules():
    assert select_refer_split('train', 'train')
    assert not select_refer_split('trainval', 'train')
    assert select_refer_split('testA', 'testA')
    assert select_refer_split('testAB', 'testA')
    assert select_refer_split('testAB', 'testB')
    assert not select_refer_split('testB', 'testA')
    assert select_refer_split('testB', 'test')
    assert select_refer_split('testAB', 'testAB')
    assert not select_refer_split('testA', 'testAB')
    assert not select_refer_split('val', 'test')


def _handmade(tmp_path, splits=('train', 'val', 'testA', 'testB', 'testAB',
                                 'test')):
    images = [dict(id=1, file_name='a.jpg', height=20, width=30)]
    anns, refs = [], []
    for i, split in enumerate(splits):
        anns.append(dict(id=10 + i, image_id=1, category_id=1,
                         segmentation=[[1, 1, 9, 1, 9, 9, 1, 9]]))
        refs.append(make_ref(100 + i, 10 + i, 1, split,
                             [(f'{split} one', 2 * i), (f'{split} two',
                                                        2 * i + 1)]))
    write_refer(str(tmp_path), refs, images, anns)
    return str(tmp_path)


@pytest.mark.parametrize('split, ref_splits', [
    ('train', ['train']), ('val', ['val']),
    ('testA', ['testA', 'testAB']), ('testB', ['testB', 'testAB']),
    ('test', ['testA', 'testB', 'testAB', 'test']), ('testAB', ['testAB']),
])
def test_split_selection_on_files(tmp_path, split, ref_splits):
    root = _handmade(tmp_path)
    ds = RefCOCODataset(data_root=root, dataset='handmade', split=split,
                        test_mode=True)
    texts = [ds.get_data_info(i)['text'] for i in range(len(ds))]
    assert texts == [f'{s} {n}' for s in ref_splits for n in ('one', 'two')]


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match='unknown split "testX"'):
        RefCOCODataset(data_root=str(tmp_path), split='testX')


def test_overridable_paths(tmp_path):
    root = _handmade(tmp_path)
    ds = RefCOCODataset(
        data_root='', dataset='whatever', img_dir=str(tmp_path / 'imgs'),
        ann_file=osp.join(root, 'handmade', 'refs(unc).p'),
        instances_file=osp.join(root, 'handmade', 'instances.json'),
        split='val', split_tag='mine')
    info = ds.get_data_info(0)
    assert info['img_path'] == osp.join(str(tmp_path / 'imgs'), 'a.jpg')
    assert info['split_tag'] == 'mine'


def test_multi_split_evaluation_end_to_end(refer_root):
    """ConcatDataset of splits -> RefSegMetric reports each split."""
    from mmengine.evaluator import Evaluator
    from mmengine.structures import PixelData

    from projects.magnet.evaluation import RefSegMetric
    root, summary = refer_root
    pipeline = [
        dict(type='LoadImageFromFile', imdecode_backend='pillow',
             color_type='color_ignore_orientation'),
        dict(type='LoadReferringMask'),
        dict(type='Resize', scale=(32, 32), keep_ratio=False,
             backend='pillow'),
        dict(type='PackSegInputs',
             meta_keys=('img_path', 'ref_id', 'sent_id', 'split_tag')),
    ]
    ds = DATASETS.build(
        dict(type='ConcatDataset', datasets=[
            dict(type='RefCOCODataset', data_root=root, dataset='refsynth',
                 split=s, test_mode=True, pipeline=pipeline)
            for s in ('val', 'testB')]))
    evaluator = Evaluator(RefSegMetric())
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        pred = sample.gt_sem_seg.data.clone()
        if sample.metainfo['split_tag'].endswith('testB'):
            pred[:] = 0  # miss every testB object
        sample.pred_sem_seg = PixelData(data=pred)
        evaluator.process([sample])
    res = evaluator.evaluate(len(ds))
    assert res['refsynth_unc_val/oIoU'] == 100
    assert res['refsynth_unc_val/Pr@0.9'] == 100
    assert res['refsynth_unc_testB/mIoU'] == 0
    assert len(res) == 14


def test_grouped_evaluation_end_to_end(refer_root):
    """kind + text meta keys -> RefSegMetric scores per kind and length."""
    from mmengine.evaluator import Evaluator
    from mmengine.structures import PixelData

    from projects.magnet.evaluation import RefSegMetric
    root, _ = refer_root
    pipeline = [
        dict(type='LoadImageFromFile', imdecode_backend='pillow',
             color_type='color_ignore_orientation'),
        dict(type='LoadReferringMask'),
        dict(type='PackSegInputs',
             meta_keys=('ref_id', 'sent_id', 'split_tag', 'text', 'kind')),
    ]
    ds = DATASETS.build(
        dict(type='RefCOCODataset', data_root=root, dataset='refsynth',
             split='val', test_mode=True, pipeline=pipeline))
    evaluator = Evaluator(
        RefSegMetric(group_keys=('kind', ), length_buckets=(1, 4, 7, 10)))
    kinds, relation = set(), []
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        kind = sample.metainfo['kind']
        kinds.add(kind)
        pred = sample.gt_sem_seg.data.clone()
        if kind == 'relation':
            pred[:] = 0  # miss every relation
            relation.append(i)
        sample.pred_sem_seg = PixelData(data=pred)
        evaluator.process([sample])
    res = evaluator.evaluate(len(ds))
    assert relation and len(kinds) > 1
    for kind in kinds:
        assert res[f'{kind}/oIoU'] == (0 if kind == 'relation' else 100)
    assert 0 < res['oIoU'] < 100
    lengths = [k for k in res if k.startswith('len') and k.endswith('/oIoU')]
    assert lengths and set(lengths) <= {
        f'{b}/oIoU' for b in ('len1-3', 'len4-6', 'len7-9', 'len10+')}
    assert len(res) == 7 * (1 + len(kinds) + len(lengths))


# ------------------------------------------ dataset-level bad inputs (files)
