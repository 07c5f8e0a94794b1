"""RefCOCODataset on malformed files: instances.json keys and types,
truncated or non-JSON files, missing files, Python 2 pickles, unknown and
duplicate ids, empty splits, the JSON form of the refs."""
import json
import os
import os.path as osp
import pickle

import pytest

from projects.magnet.datasets import (
    RefCOCODataset,
    ReferFormatError,
)
from projects.magnet.datasets.json_stream import JsonStreamError
from projects.magnet.datasets.refer_pickle import UnsafeReferPickleError

from .utils import (build_handmade_val, make_ref, write_refs,
                    write_instances, Py2Unicode)



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
        build_handmade_val(root)
    msg = str(e.value)
    assert msg.startswith(osp.join(root, 'handmade', 'instances.json'))
    assert f'the top-level key "{key}" is missing' in msg
    assert 'is not in' not in msg  # not reported as an unknown ann_id
    # present but empty: the refs' ids are unknown, the key is there
    root = _layout(tmp_path, **dict(present, **{key: []}))
    field = dict(annotations='ann_id', images='image_id')[key]
    with pytest.raises(ReferFormatError,
                       match=f'ref_id=5: "{field}" .* is not in "{key}"'):
        build_handmade_val(root)


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
        build_handmade_val(root)


def test_instances_without_categories_warns(tmp_path, logged):
    root = _layout(tmp_path, images=[_IMAGE], annotations=[_ANN])
    ds = build_handmade_val(root)
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
        build_handmade_val(root)
    write_instances(osp.dirname(path), images=[_IMAGE],
                    annotations={'10': _ANN}, categories=_CATS)
    with pytest.raises(JsonStreamError,
                       match=r'instances\.json: top-level key "annotations" '
                       'must be an array, got an object'):
        build_handmade_val(root)


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
        build_handmade_val(root)
    write_instances(folder, images=[_IMAGE], annotations=[_ANN],
                    categories=_CATS)
    refs_p = osp.join(folder, 'refs(unc).p')
    data = open(refs_p, 'rb').read()
    with open(refs_p, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(pickle.UnpicklingError,
                       match=r'refs\(unc\)\.p: not a valid REFER refs '
                       'pickle: the file ends too early'):
        build_handmade_val(root)
    refs_json = write_refs(folder, [make_ref(5, 10, 1, 'val', [('x', 1)])],
                           fmt='json')
    text = open(refs_json).read()
    with open(refs_json, 'w') as f:
        f.write(text[:-20])
    with pytest.raises(JsonStreamError,
                       match=r'refs\(unc\)\.json: malformed JSON at line 1 '
                       'column .*: the file ends too early'):
        build_handmade_val(root)


def test_error_missing_files(tmp_path):
    root = _layout(tmp_path)
    folder = osp.join(root, 'handmade')
    os.rename(osp.join(folder, 'refs(unc).p'),
              osp.join(folder, 'refs(umd).p'))
    with pytest.raises(FileNotFoundError) as e:
        build_handmade_val(root)
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
        build_handmade_val(root)


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
        build_handmade_val(root)
    with open(path, 'wb') as f:
        pickle.dump([dict(ref, split=b'val')], f, protocol=4)
    with pytest.raises(ReferFormatError,
                       match=r'field "split" must be str, got bytes '
                       r"\(b'val'\) \(the file has bytes"):
        build_handmade_val(root)
    with open(path, 'wb') as f:  # protocol 2: bytes need a global
        pickle.dump([dict(ref, split=b'val')], f, protocol=2)
    with pytest.raises(UnsafeReferPickleError,
                       match=r'"_codecs\.encode".*executed\. \(Python 3 '
                       'stores bytes this way'):
        build_handmade_val(root)


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
        build_handmade_val(root)
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
        build_handmade_val(_layout(tmp_path, refs=refs))
    root = _layout(tmp_path, images=[_IMAGE, dict(_IMAGE, file_name='b')],
                   annotations=[_ANN], categories=_CATS)
    with pytest.raises(ReferFormatError,
                       match=r'"images"\[1\] \(id=1\): duplicate image id 1'):
        build_handmade_val(root)


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
    ds = build_handmade_val(root)
    assert ds.ann_file == json_path
    assert ds.get_data_info(0)['sentences'][0]['raw'] == 'from json'
    assert logged == []
    pickled = RefCOCODataset(data_root=root, dataset='handmade', split='val',
                             refs_format='pickle')
    assert pickled.ann_file.endswith('refs(unc).p')
    assert pickled.get_data_info(0)['sentences'][0]['raw'] == 'a thing'
    # a pickle newer than its JSON form: still the JSON, with a warning
    os.utime(json_path, (1e9, 1e9))
    info = build_handmade_val(root).get_data_info(0)
    assert info['sentences'][0]['raw'] == 'from json'
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
