"""RefCOCODataset on generated and hand-made REFER files."""
import json
import os
import os.path as osp
import pickle

import numpy as np
import pytest
from mmseg.registry import DATASETS
from pycocotools import mask as mask_utils

from projects.magnet.datasets import (
    RefCOCODataset,
    ReferFormatError,
    select_refer_split,
)
from projects.magnet.datasets.json_stream import JsonStreamError
from projects.magnet.datasets.refer_pickle import UnsafeReferPickleError
from projects.magnet.datasets.transforms import decode_refer_mask

from .utils import (
    TOKENIZER_DIR,
    Py2Unicode,
    make_ref,
    write_instances,
    write_refer,
    write_refs,
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


# ------------------------------------------------- extra sentence fields
def _with_kinds(tmp_path, kinds):
    """One val ref whose sentences have ``kind`` values (None: absent)."""
    ref = make_ref(5, 10, 1, 'val',
                   [(f's{i}', i + 1) for i in range(len(kinds))])
    for sent, kind in zip(ref['sentences'], kinds):
        if kind is not None:
            sent['kind'] = kind
    return _write_one(tmp_path, ref=ref)


def test_sentence_kind_reaches_the_items(tmp_path):
    root = _with_kinds(tmp_path, ['relation', None])
    ds = RefCOCODataset(data_root=root, dataset='handmade', split='val',
                        test_mode=True)
    first, second = ds.get_data_info(0), ds.get_data_info(1)
    assert first['kind'] == 'relation' and first['text'] == 's0'
    assert 'kind' not in second  # a missing key is simply absent
    train = RefCOCODataset(data_root=root, dataset='handmade', split='val')
    assert train.get_data_info(0)['sentences'] == [
        dict(raw='s0', sent_id=1, kind='relation'), dict(raw='s1', sent_id=2)
    ]


def test_sentence_kind_through_the_pipeline(tmp_path):
    root = _with_kinds(tmp_path, ['ordinal'])
    ds = RefCOCODataset(
        data_root=root, dataset='handmade', split='val', test_mode=True,
        pipeline=[dict(type='PackSegInputs', meta_keys=('text', 'kind'))],
        lazy_init=True)
    ds.full_init()
    results = dict(ds.get_data_info(0), img=np.zeros((20, 30, 3), np.uint8))
    meta = ds.pipeline(results)['data_samples'].metainfo
    assert meta == dict(text='s0', kind='ordinal')


def test_error_non_str_sentence_field(tmp_path):
    root = _with_kinds(tmp_path, ['attribute', 3])
    with pytest.raises(ReferFormatError,
                       match=r'refs\(unc\)\.p: refs\[0\] \(ref_id=5\): '
                       r'sentences\[1\]: field "kind" must be str, got int'):
        _build(root)
    # not kept, not checked
    ds = RefCOCODataset(data_root=root, dataset='handmade', split='val',
                        sentence_keys=())
    assert ds.get_data_info(0)['sentences'][1] == dict(raw='s1', sent_id=2)


def test_bad_sentence_keys(tmp_path):
    root = _with_kinds(tmp_path, ['attribute'])
    with pytest.raises(TypeError, match='sequence of str'):
        RefCOCODataset(data_root=root, dataset='handmade', split='val',
                       sentence_keys='kind')
    with pytest.raises(ValueError, match=r"\['ref_id'\] would overwrite"):
        RefCOCODataset(data_root=root, dataset='handmade', split='val',
                       sentence_keys=('kind', 'ref_id'))


# -------------------------------------------------------- malformed input
def _write_one(tmp_path, ref=None, ann=None, image=None):
    image = image or dict(id=1, file_name='a.jpg', height=20, width=30)
    ann = ann or dict(id=10, image_id=1, segmentation=[[1, 1, 9, 1, 9, 9]])
    ref = ref or make_ref(5, 10, 1, 'val', [('a thing', 1)])
    write_refer(str(tmp_path), [ref], [image], [ann])
    return str(tmp_path)


def _build(root):
    return RefCOCODataset(data_root=root, dataset='handmade', split='val')


def test_error_ann_id_not_in_instances(tmp_path):
    root = _write_one(tmp_path, ref=make_ref(5, 99, 1, 'val', [('x', 1)]))
    with pytest.raises(ReferFormatError) as e:
        _build(root)
    msg = str(e.value)
    assert 'refs(unc).p' in msg and 'instances.json' in msg
    assert '"ann_id" 99' in msg and 'ref_id=5' in msg


def test_error_image_mismatch(tmp_path):
    root = _write_one(
        tmp_path, ann=dict(id=10, image_id=2, segmentation=[[1, 1, 9, 1,
                                                             9, 9]]))
    with pytest.raises(ReferFormatError, match='image_id'):
        _build(root)


@pytest.mark.parametrize('field', ['sentences', 'ann_id', 'split', 'ref_id'])
def test_error_missing_ref_field(tmp_path, field):
    ref = make_ref(5, 10, 1, 'val', [('x', 1)])
    del ref[field]
    root = _write_one(tmp_path, ref=ref)
    with pytest.raises(ReferFormatError,
                       match=rf'refs\(unc\)\.p: refs\[0\].*missing field '
                       f'"{field}"'):
        _build(root)


def test_error_bad_sentences(tmp_path):
    ref = make_ref(5, 10, 1, 'val', [('x', 1)])
    del ref['sentences'][0]['raw']
    with pytest.raises(ReferFormatError, match=r'sentences\[0\].*"raw"'):
        _build(_write_one(tmp_path, ref=ref))
    ref = make_ref(5, 10, 1, 'val', [('x', 1)])
    ref['sent_ids'].append(2)
    with pytest.raises(ReferFormatError, match='"sent_ids" has 2'):
        _build(_write_one(tmp_path, ref=ref))
    ref = make_ref(5, 10, 1, 'val', [('x', 1)])
    ref['ann_id'] = '10'
    with pytest.raises(ReferFormatError, match='"ann_id" must be int'):
        _build(_write_one(tmp_path, ref=ref))


def test_error_bad_instances(tmp_path):
    root = _write_one(tmp_path, ann=dict(id=10, image_id=1))
    with pytest.raises(ReferFormatError,
                       match=r'instances\.json: "annotations"\[0\] \(id=10\)'
                       r': missing field "segmentation"'):
        _build(root)
    root = _write_one(tmp_path, image=dict(id=1, file_name='a.jpg'))
    with pytest.raises(ReferFormatError,
                       match=r'"images"\[0\].*missing field "height"'):
        _build(root)
    path = osp.join(root, 'handmade', 'instances.json')
    with open(path, 'w') as f:
        f.write('{"images": [{"id": 5}, {"id": 2,,}], "annotations": []}')
    with pytest.raises(JsonStreamError,
                       match=r'instances\.json: malformed JSON in '
                       r'"images"\[1\]'):
        _build(root)


def test_error_refs_not_a_list_or_unsafe(tmp_path):
    root = _write_one(tmp_path)
    path = osp.join(root, 'handmade', 'refs(unc).p')
    with open(path, 'wb') as f:
        pickle.dump(dict(a=1), f, protocol=2)
    with pytest.raises(ReferFormatError, match='expected a list'):
        _build(root)
    with open(path, 'wb') as f:
        pickle.dump([np.float64(1.0)], f, protocol=2)
    with pytest.raises(UnsafeReferPickleError, match='numpy'):
        _build(root)


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


_IMAGE = dict(id=1, file_name='a.jpg', height=20, width=30)
_ANN = dict(id=10, image_id=1, segmentation=[[1, 1, 9, 1, 9, 9]])
_CATS = [dict(id=1, name='thing')]


def _layout(tmp_path, refs=None, fmt='pickle', **instances):
    """handmade/ with ``refs`` (one val ref by default) and an
    instances.json with exactly the given top-level keys (default: one
    image, one annotation, the categories)."""
    folder = str(tmp_path / 'handmade')
    refs = refs if refs is not None else [
        make_ref(5, 10, 1, 'val', [('a thing', 1)])]
    write_refs(folder, refs, fmt=fmt)
    if not instances:
        instances = dict(images=[_IMAGE], annotations=[_ANN],
                         categories=_CATS)
    write_instances(folder, **instances)
    return str(tmp_path)


@pytest.mark.parametrize('key', ['annotations', 'images'])
def test_error_instances_key_missing(tmp_path, key):
    present = dict(images=[_IMAGE], annotations=[_ANN], categories=_CATS)
    del present[key]
    root = _layout(tmp_path, **present)
    with pytest.raises(ReferFormatError) as e:
        _build(root)
    msg = str(e.value)
    assert msg.startswith(osp.join(root, 'handmade', 'instances.json'))
    assert f'the top-level key "{key}" is missing' in msg
    assert 'is not in' not in msg  # not reported as an unknown ann_id
    # present but empty: the refs' ids are unknown, the key is there
    root = _layout(tmp_path, **dict(present, **{key: []}))
    field = dict(annotations='ann_id', images='image_id')[key]
    with pytest.raises(ReferFormatError,
                       match=f'ref_id=5: "{field}" .* is not in "{key}"'):
        _build(root)


def test_error_instances_not_json_text(tmp_path):
    import gzip
    root = _layout(tmp_path)
    path = osp.join(root, 'handmade', 'instances.json')
    data = gzip.compress(open(path, 'rb').read())
    with open(path, 'wb') as f:
        f.write(data)
    with pytest.raises(JsonStreamError,
                       match=r'instances\.json: not a UTF-8 JSON text file '
                       r'\(.*is it compressed or in another format\?\)'):
        _build(root)


def test_instances_without_categories_warns(tmp_path, logged):
    root = _layout(tmp_path, images=[_IMAGE], annotations=[_ANN])
    ds = _build(root)
    assert len(ds) == 1 and ds.get_data_info(0)['category_id'] == 1
    assert len(logged) == 1
    assert 'instances.json has no top-level "categories" key' in logged[0]


def test_error_instances_top_level_and_key_types(tmp_path):
    root = _layout(tmp_path)
    path = osp.join(root, 'handmade', 'instances.json')
    with open(path, 'w') as f:
        json.dump([_IMAGE], f)
    with pytest.raises(JsonStreamError,
                       match=r'instances\.json: expected a JSON object at '
                       'the top level .* but the top level is an array'):
        _build(root)
    write_instances(osp.dirname(path), images=[_IMAGE],
                    annotations={'10': _ANN}, categories=_CATS)
    with pytest.raises(JsonStreamError,
                       match=r'instances\.json: top-level key "annotations" '
                       'must be an array, got an object'):
        _build(root)


def test_error_truncated_files(tmp_path):
    root = _layout(tmp_path)
    folder = osp.join(root, 'handmade')
    inst = osp.join(folder, 'instances.json')
    text = open(inst).read()
    with open(inst, 'w') as f:
        f.write(text[:text.index('"annotations"') + 30])
    with pytest.raises(JsonStreamError,
                       match=r'instances\.json: the file ends too early '
                       r'\(truncated .*\) \(in "annotations"\[0\]\)'):
        _build(root)
    write_instances(folder, images=[_IMAGE], annotations=[_ANN],
                    categories=_CATS)
    refs_p = osp.join(folder, 'refs(unc).p')
    data = open(refs_p, 'rb').read()
    with open(refs_p, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(pickle.UnpicklingError,
                       match=r'refs\(unc\)\.p: not a valid REFER refs '
                       'pickle: the file ends too early'):
        _build(root)
    refs_json = write_refs(folder, [make_ref(5, 10, 1, 'val', [('x', 1)])],
                           fmt='json')
    text = open(refs_json).read()
    with open(refs_json, 'w') as f:
        f.write(text[:-20])
    with pytest.raises(JsonStreamError,
                       match=r'refs\(unc\)\.json: malformed JSON at line 1 '
                       'column .*: the file ends too early'):
        _build(root)


def test_error_missing_files(tmp_path):
    root = _layout(tmp_path)
    folder = osp.join(root, 'handmade')
    os.rename(osp.join(folder, 'refs(unc).p'),
              osp.join(folder, 'refs(umd).p'))
    with pytest.raises(FileNotFoundError) as e:
        _build(root)
    msg = str(e.value)
    assert f'refs file not found: {folder}/refs(unc).p' in msg
    assert 'has: instances.json, refs(umd).p' in msg
    assert 'refs files exist for split_by umd: check split_by' in msg
    os.remove(osp.join(folder, 'instances.json'))
    with pytest.raises(FileNotFoundError,
                       match=r'instances file not found: .*handmade/'
                       r'instances\.json .*has: refs\(umd\)\.p'):
        RefCOCODataset(data_root=root, dataset='handmade', split_by='umd',
                       split='val')
    with pytest.raises(FileNotFoundError, match='folder .*nope does not '
                       'exist'):
        RefCOCODataset(data_root=root, dataset='nope', split='val')


def test_error_refs_not_a_list(tmp_path):
    root = _layout(tmp_path, refs={'refs': []}, fmt='json')
    with pytest.raises(ReferFormatError,
                       match=r'refs\(unc\)\.json: expected a list of ref '
                       'dicts at the top level, got dict'):
        _build(root)


def test_python2_pickle_reads_like_python3(tmp_path):
    """A protocol-2 pickle written by Python 2 (str fields as py2 str, a
    unicode sentence): same items as the Python-3 pickle."""
    refs = [make_ref(5, 10, 1, 'val', [('the caf\xe9 sign', 1),
                                       ('left one', 2)]),
            make_ref(6, 11, 1, 'train', [('right one', 3)])]
    anns = [_ANN, dict(_ANN, id=11)]
    py3 = _layout(tmp_path / 'py3', refs=refs, images=[_IMAGE],
                  annotations=anns, categories=_CATS)
    refs[0]['sentences'][0]['raw'] = Py2Unicode('the caf\xe9 sign')
    py2 = _layout(tmp_path / 'py2', refs=refs, fmt='py2', images=[_IMAGE],
                  annotations=anns, categories=_CATS)
    data = open(osp.join(py2, 'handmade', 'refs(unc).p'), 'rb').read()
    assert data[:2] == b'\x80\x02' and b'U\x05split' in data
    for split in ('val', 'train'):
        a = RefCOCODataset(data_root=py3, dataset='handmade', split=split,
                           test_mode=True, serialize_data=False)
        b = RefCOCODataset(data_root=py2, dataset='handmade', split=split,
                           test_mode=True, serialize_data=False)
        strip = [dict(d, img_path=osp.basename(d['img_path']))
                 for d in b.data_list]
        assert strip == [dict(d, img_path=osp.basename(d['img_path']))
                         for d in a.data_list]
    assert b.data_list[0]['text'] == 'right one'
    val = RefCOCODataset(data_root=py2, dataset='handmade', split='val',
                         test_mode=True)
    assert val.get_data_info(0)['text'] == 'the caf\xe9 sign'


def test_error_bytes_fields_explain_encoding(tmp_path):
    """A file re-saved from data unpickled with encoding='bytes'."""
    ref = make_ref(5, 10, 1, 'val', [('x', 1)])
    root = _layout(tmp_path)
    path = osp.join(root, 'handmade', 'refs(unc).p')
    with open(path, 'wb') as f:
        pickle.dump([{k.encode(): v for k, v in ref.items()}], f, protocol=4)
    with pytest.raises(ReferFormatError,
                       match=r'refs\[0\]: missing field "split" \(the file '
                       "has bytes where REFER has str: .*encoding='bytes'"):
        _build(root)
    with open(path, 'wb') as f:
        pickle.dump([dict(ref, split=b'val')], f, protocol=4)
    with pytest.raises(ReferFormatError,
                       match=r'field "split" must be str, got bytes '
                       r"\(b'val'\) \(the file has bytes"):
        _build(root)
    with open(path, 'wb') as f:  # protocol 2: bytes need a global
        pickle.dump([dict(ref, split=b'val')], f, protocol=2)
    with pytest.raises(UnsafeReferPickleError,
                       match=r'"_codecs\.encode".*executed\. \(Python 3 '
                       'stores bytes this way'):
        _build(root)


def test_error_unknown_ids_name_ref_and_id(tmp_path):
    refs = [make_ref(5, 99, 1, 'val', [('a', 1)]),     # unknown ann
            make_ref(6, 10, 1, 'val', [('b', 2)]),     # fine
            make_ref(7, 12, 1, 'val', [('c', 3)]),     # ann on image 3
            make_ref(8, 13, 4, 'val', [('d', 4)]),     # unknown image
            make_ref(9, 98, 1, 'val', [('e', 5)])]     # unknown ann
    anns = [_ANN, dict(_ANN, id=12, image_id=3), dict(_ANN, id=13,
                                                      image_id=4)]
    root = _layout(tmp_path, refs=refs, images=[_IMAGE, dict(_IMAGE, id=3)],
                   annotations=anns, categories=_CATS)
    with pytest.raises(ReferFormatError) as e:
        _build(root)
    folder = osp.join(root, 'handmade')
    assert str(e.value) == (
        f'{folder}/refs(unc).p: 4 of 5 refs of split "val" do not match '
        f'{folder}/instances.json: ref_id=5: "ann_id" 99 is not in '
        '"annotations"; ref_id=7: "image_id" 1 differs from the image_id 3 '
        'of annotation 12; ref_id=8: "image_id" 4 is not in "images"; ... '
        '(1 more)')


def test_error_duplicate_ids(tmp_path):
    refs = [make_ref(5, 10, 1, 'val', [('a', 1)]),
            make_ref(5, 10, 1, 'val', [('b', 2)])]
    with pytest.raises(ReferFormatError,
                       match=r'refs\[1\]: duplicate ref_id 5 \(also '
                       r'refs\[0\]\)'):
        _build(_layout(tmp_path, refs=refs))
    root = _layout(tmp_path, images=[_IMAGE, dict(_IMAGE, file_name='b')],
                   annotations=[_ANN], categories=_CATS)
    with pytest.raises(ReferFormatError,
                       match=r'"images"\[1\] \(id=1\): duplicate image id 1'):
        _build(root)


def test_error_empty_split(tmp_path):
    refs = [make_ref(5, 10, 1, 'train', [('a', 1)]),
            make_ref(6, 10, 1, 'val', [('b', 2)])]
    folder = str(tmp_path / 'refcocog')
    write_refs(folder, refs, split_by='google')
    write_instances(folder, images=[_IMAGE], annotations=[_ANN],
                    categories=_CATS)
    for serialize_data in (True, False):
        with pytest.raises(ValueError) as e:
            RefCOCODataset(data_root=str(tmp_path), dataset='refcocog',
                           split_by='google', split='test', test_mode=True,
                           serialize_data=serialize_data)
        assert str(e.value) == (
            f'RefCOCODataset: {folder}/refs(google).p has no ref of split '
            '"test" (its splits: train, val). RefCOCOg\'s google partition '
            "has no test split: use split_by='umd' for val/test.")


# ---------------------------------------------------- the JSON refs form
def test_json_refs_preferred_and_selectable(tmp_path, logged):
    root = _layout(tmp_path)
    folder = osp.join(root, 'handmade')
    write_refs(folder, [make_ref(5, 10, 1, 'val', [('from json', 1)])],
               fmt='json')
    json_path = osp.join(folder, 'refs(unc).json')
    os.utime(json_path, (1e9, 2e9))  # newer than the pickle
    ds = _build(root)
    assert ds.ann_file == json_path
    assert ds.get_data_info(0)['sentences'][0]['raw'] == 'from json'
    assert logged == []
    pickled = RefCOCODataset(data_root=root, dataset='handmade', split='val',
                             refs_format='pickle')
    assert pickled.ann_file.endswith('refs(unc).p')
    assert pickled.get_data_info(0)['sentences'][0]['raw'] == 'a thing'
    # a pickle newer than its JSON form: still the JSON, with a warning
    os.utime(json_path, (1e9, 1e9))
    assert _build(root).get_data_info(0)['sentences'][0]['raw'] == \
        'from json'
    assert len(logged) == 1 and 'refs(unc).p is newer' in logged[0]
    os.remove(osp.join(folder, 'refs(unc).p'))
    explicit = RefCOCODataset(data_root='', ann_file=json_path,
                              instances_file=osp.join(folder,
                                                      'instances.json'),
                              split='val')
    assert explicit.get_data_info(0)['sentences'][0]['raw'] == 'from json'
    os.remove(json_path)
    with pytest.raises(FileNotFoundError, match=r'refs\(unc\)\.json'):
        RefCOCODataset(data_root=root, dataset='handmade', split='val',
                       refs_format='json')
    with pytest.raises(ValueError, match='unknown refs_format "yaml"'):
        RefCOCODataset(data_root=root, dataset='handmade', split='val',
                       refs_format='yaml')
