"""RefCOCODataset on malformed refs and sentences: extra sentence fields,
missing or mistyped fields, joins that do not hold (one error naming the
ref, the field and what was expected)."""
import os.path as osp
import pickle

import numpy as np
import pytest

from projects.magnet.datasets import (
    RefCOCODataset,
    ReferFormatError,
)
from projects.magnet.datasets.json_stream import JsonStreamError
from projects.magnet.datasets.refer_pickle import UnsafeReferPickleError

from .utils import build_handmade_val, make_ref, write_one_ref


# ------------------------------------------------- extra sentence fields
def _with_kinds(tmp_path, kinds):
    """One val ref whose sentences have ``kind`` values (None: absent)."""
    ref = make_ref(5, 10, 1, 'val',
                   [(f's{i}', i + 1) for i in range(len(kinds))])
    for sent, kind in zip(ref['sentences'], kinds):
        if kind is not None:
            sent['kind'] = kind
    return write_one_ref(tmp_path, ref=ref)


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
        build_handmade_val(root)
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
def test_error_ann_id_not_in_instances(tmp_path):
    root = write_one_ref(tmp_path, ref=make_ref(5, 99, 1, 'val', [('x', 1)]))
    with pytest.raises(ReferFormatError) as e:
        build_handmade_val(root)
    msg = str(e.value)
    assert 'refs(unc).p' in msg and 'instances.json' in msg
    assert '"ann_id" 99' in msg and 'ref_id=5' in msg


def test_error_image_mismatch(tmp_path):
    root = write_one_ref(
        tmp_path, ann=dict(id=10, image_id=2, segmentation=[[1, 1, 9, 1,
                                                             9, 9]]))
    with pytest.raises(ReferFormatError, match='image_id'):
        build_handmade_val(root)


@pytest.mark.parametrize('field', ['sentences', 'ann_id', 'split', 'ref_id'])
def test_error_missing_ref_field(tmp_path, field):
    ref = make_ref(5, 10, 1, 'val', [('x', 1)])
    del ref[field]
    root = write_one_ref(tmp_path, ref=ref)
    with pytest.raises(ReferFormatError,
                       match=rf'refs\(unc\)\.p: refs\[0\].*missing field '
                       f'"{field}"'):
        build_handmade_val(root)


def test_error_bad_sentences(tmp_path):
    ref = make_ref(5, 10, 1, 'val', [('x', 1)])
    del ref['sentences'][0]['raw']
    with pytest.raises(ReferFormatError, match=r'sentences\[0\].*"raw"'):
        build_handmade_val(write_one_ref(tmp_path, ref=ref))
    ref = make_ref(5, 10, 1, 'val', [('x', 1)])
    ref['sent_ids'].append(2)
    with pytest.raises(ReferFormatError, match='"sent_ids" has 2'):
        build_handmade_val(write_one_ref(tmp_path, ref=ref))
    ref = make_ref(5, 10, 1, 'val', [('x', 1)])
    ref['ann_id'] = '10'
    with pytest.raises(ReferFormatError, match='"ann_id" must be int'):
        build_handmade_val(write_one_ref(tmp_path, ref=ref))


def test_error_bad_instances(tmp_path):
    root = write_one_ref(tmp_path, ann=dict(id=10, image_id=1))
    with pytest.raises(ReferFormatError,
                       match=r'instances\.json: "annotations"\[0\] \(id=10\)'
                       r': missing field "segmentation"'):
        build_handmade_val(root)
    root = write_one_ref(tmp_path, image=dict(id=1, file_name='a.jpg'))
    with pytest.raises(ReferFormatError,
                       match=r'"images"\[0\].*missing field "height"'):
        build_handmade_val(root)
    path = osp.join(root, 'handmade', 'instances.json')
    with open(path, 'w') as f:
        f.write('{"images": [{"id": 5}, {"id": 2,,}], "annotations": []}')
    with pytest.raises(JsonStreamError,
                       match=r'instances\.json: malformed JSON in '
                       r'"images"\[1\]'):
        build_handmade_val(root)


def test_error_refs_not_a_list_or_unsafe(tmp_path):
    root = write_one_ref(tmp_path)
    path = osp.join(root, 'handmade', 'refs(unc).p')
    with open(path, 'wb') as f:
        pickle.dump(dict(a=1), f, protocol=2)
    with pytest.raises(ReferFormatError, match='expected a list'):
        build_handmade_val(root)
    with open(path, 'wb') as f:
        pickle.dump([np.float64(1.0)], f, protocol=2)
    with pytest.raises(UnsafeReferPickleError, match='numpy'):
        build_handmade_val(root)

