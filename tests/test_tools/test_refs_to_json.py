"""tools/dataset_converters/refs_to_json.py: REFER refs pickle -> JSON."""
import json
import math
import os
import os.path as osp
import pickle
import re
import shutil

import pytest
from mmengine.registry import init_default_scope

from projects.magnet.datasets import RefCOCODataset, load_refer_pickle
from projects.magnet.utils import run_cli
from tests.test_datasets.utils import (
    Py2Unicode,
    make_ref,
    write_instances,
    write_refs,
)

from ..conftest import load_tool

refs_to_json = load_tool('tools/dataset_converters/refs_to_json.py')


@pytest.fixture(scope='module', autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


def _cli(argv, capsys):
    """(exit status, stdout, stderr) of the tool run as from a shell."""
    status = run_cli(lambda: refs_to_json.main(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def _data_list(**kwargs):
    ds = RefCOCODataset(serialize_data=False, **kwargs)
    return ds.data_list


def test_round_trip_gives_the_same_data_list(refer_root, tmp_path, capsys):
    root, summary = refer_root
    src = osp.join(root, 'refsynth', 'refs(unc).p')
    out = str(tmp_path / 'refs(unc).json')
    status, printed, _ = _cli([src, '--out', out], capsys)
    assert status == 0
    with open(out) as f:
        converted = json.load(f)
    assert converted == load_refer_pickle(src)
    total = summary['splits']
    lines = printed.splitlines()
    assert lines[0] == (
        f'{src} (protocol 2) -> {out}: '
        f'{sum(s["refs"] for s in total.values())} refs, '
        f'{sum(s["sentences"] for s in total.values())} sentences')
    assert lines[1].split() == ['testA', str(total['testA']['refs']), 'refs',
                                str(total['testA']['sentences']),
                                'sentences', str(total['testA']['images']),
                                'images']
    instances = osp.join(root, 'refsynth', 'instances.json')
    for split, test_mode in (('train', False), ('val', True),
                             ('test', True)):
        common = dict(data_root=root, dataset='refsynth', split=split,
                      test_mode=test_mode, split_tag='same')
        from_pickle = _data_list(**common)
        from_json = _data_list(ann_file=out, instances_file=instances,
                               **common)
        assert from_json == from_pickle and from_pickle


def test_json_beside_the_pickle_is_used(refer_root, tmp_path, capsys):
    root, _ = refer_root
    data = tmp_path / 'data'
    shutil.copytree(osp.join(root, 'refsynth'), data / 'refsynth')
    src = str(data / 'refsynth' / 'refs(unc).p')
    assert _cli([src], capsys)[0] == 0
    dst = str(data / 'refsynth' / 'refs(unc).json')
    assert osp.isfile(dst)
    auto = RefCOCODataset(data_root=str(data), dataset='refsynth',
                          split='val', serialize_data=False)
    assert auto.ann_file == dst
    pickled = RefCOCODataset(data_root=str(data), dataset='refsynth',
                             split='val', serialize_data=False,
                             refs_format='pickle')
    assert pickled.ann_file == src and pickled.data_list == auto.data_list
    # an existing output is kept unless --force
    status, _, err = _cli([src], capsys)
    assert status == 1
    assert err == f'error: {dst} exists (pass --force to overwrite it)\n'
    os.truncate(dst, 0)
    assert _cli([src, '--force'], capsys)[0] == 0
    assert os.path.getsize(dst) > 0


def test_python2_pickle(tmp_path, capsys):
    refs = [make_ref(1, 10, 1, 'val', [('the caf\xe9 sign', 1)]),
            make_ref(2, 11, 2, 'train', [('left', 2), ('the left one', 3)])]
    refs[0]['sentences'][0]['raw'] = Py2Unicode('the caf\xe9 sign')
    src = write_refs(str(tmp_path / 'refcocog'), refs, split_by='umd',
                     fmt='py2')
    status, printed, _ = _cli([src], capsys)
    assert status == 0
    dst = str(tmp_path / 'refcocog' / 'refs(umd).json')
    assert printed.splitlines() == [
        f'{src} (Python-2 pickle, protocol 2) -> {dst}: 2 refs, 3 sentences',
        '  train          1 refs        2 sentences       1 images',
        '  val            1 refs        1 sentences       1 images']
    with open(dst, 'rb') as f:
        data = f.read()
    assert data.isascii() and data.count(b'\n') == 4  # one ref per line
    assert json.loads(data)[0]['sentences'][0]['raw'] == 'the caf\xe9 sign'
    assert json.loads(data) == json.loads(json.dumps(refs))
    write_instances(str(tmp_path / 'refcocog'),
                    images=[dict(id=i, file_name=f'{i}.jpg', height=8,
                                 width=8) for i in (1, 2)],
                    annotations=[dict(id=a, image_id=a - 9,
                                      segmentation=[[1, 1, 5, 1, 5, 5]])
                                 for a in (10, 11)], categories=[])
    os.remove(src)
    ds = RefCOCODataset(data_root=str(tmp_path), dataset='refcocog',
                        split_by='umd', split='train', test_mode=True)
    assert [ds.get_data_info(i)['text'] for i in range(len(ds))] == [
        'left', 'the left one']


@pytest.mark.parametrize('content, message', [
    ({'refs': []}, r'expected a list of ref dicts, got dict'),
    ([make_ref(1, 2, 3, 'val', [('x', 1)]), 'oops'],
     r'refs\[1\] is a str, not a dict'),
    ([{'split': 'val', 7: 'seven'}],
     r"refs\[0\]: key 7 is not a string \(int\); JSON keys are strings"),
    ([{'split': 'val', 'score': math.nan}],
     r"refs\[0\]\['score'\]: nan has no JSON form"),
    ([{'split': 'val', 'sentences': [{'raw': b'x'}]}],
     r"refs\[0\]\['sentences'\]\[0\]\['raw'\]: a bytes \(b'x'\) has no JSON "
     'form'),
])
def test_errors_name_the_file_and_place(tmp_path, capsys, content, message):
    src = str(tmp_path / 'refs(unc).p')
    with open(src, 'wb') as f:
        pickle.dump(content, f, protocol=4)
    status, printed, err = _cli([src], capsys)
    assert status == 1 and printed == ''
    assert err.startswith(f'error: {src}: ') and err.count('\n') == 1
    assert re.search(message, err), err
    assert not osp.exists(tmp_path / 'refs(unc).json')
    assert [f for f in os.listdir(tmp_path) if f.endswith('.json')] == []


def test_unsafe_or_missing_pickle(tmp_path, capsys):
    src = str(tmp_path / 'refs(unc).p')
    with open(src, 'wb') as f:
        f.write(b"cos\nsystem\n(S'echo hi'\ntR.")
    status, _, err = _cli([src], capsys)
    assert status == 1
    assert 'refusing to load global "os.system"' in err
    assert not osp.exists(tmp_path / 'refs(unc).json')
    status, _, err = _cli([str(tmp_path / 'refs(umd).p')], capsys)
    assert (status, err) == (
        1, f'error: refs pickle not found: {tmp_path}/refs(umd).p\n')
    with pytest.raises(SystemExit):
        refs_to_json.main([src, src, '--out', 'x.json'])


def test_every_output_is_checked_before_any_conversion(tmp_path, capsys):
    """With several pickles, an output that would be refused (here: it
    exists, no --force) stops the run before the first file is converted:
    nothing is half done."""
    refs = [make_ref(1, 10, 1, 'val', [('a thing', 1)])]
    first = write_refs(str(tmp_path / 'a'), refs)
    second = write_refs(str(tmp_path / 'b'), refs)
    taken = osp.join(osp.dirname(second), 'refs(unc).json')
    with open(taken, 'w') as f:
        f.write('[]')
    status, printed, err = _cli([first, second], capsys)
    assert status == 1 and printed == ''
    assert err.strip() == (f'error: {taken} exists (pass --force to '
                           'overwrite it)')
    assert not osp.exists(osp.join(osp.dirname(first), 'refs(unc).json'))
    with open(taken) as f:
        assert f.read() == '[]'
    # --force converts both; the output is readable by others (umask)
    status, printed, _ = _cli([first, second, '--force'], capsys)
    assert status == 0 and len(json.load(open(taken))) == 1
    assert os.stat(taken).st_mode & 0o044 == 0o044 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
