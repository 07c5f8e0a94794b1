"""The REFER rules in both modes, on the same broken layouts:
``RefCOCODataset`` raises on the first problem, ``check_refer_data``
reports the same problem (and every problem when there are several)."""
import json
import os
import os.path as osp

import pytest
from PIL import Image

from projects.magnet.datasets import RefCOCODataset
from projects.magnet.utils import run_cli
from projects.magnet.utils.errors import UserError
from tests.conftest import load_tool

from .utils import make_ref, write_instances, write_refs

crd = load_tool('tools/misc/check_refer_data.py')
IMG_DIR = 'images/mscoco/images/train2014'


def _layout(root, edit=None, n=3):
    """``n`` val refs (one sentence, own image and annotation) in
    ``root/mine``; ``edit(refs, images, anns)`` breaks them in place and
    may return the top-level object of instances.json."""
    images = [dict(id=k, file_name=f'{k}.jpg', height=12, width=16)
              for k in range(1, n + 1)]
    anns = [dict(id=100 + k, image_id=k, segmentation=[[1, 1, 8, 1, 8, 8]])
            for k in range(1, n + 1)]
    refs = [make_ref(k, 100 + k, k, 'val', [(f'thing {k}', 10 + k)])
            for k in range(1, n + 1)]
    top = edit(refs, images, anns) if edit else None
    folder = osp.join(root, 'mine')
    write_refs(folder, refs)
    if top is None:
        write_instances(folder, images=images, annotations=anns,
                        categories=[dict(id=1, name='thing')])
    else:
        with open(osp.join(folder, 'instances.json'), 'w') as f:
            f.write(top if isinstance(top, str) else json.dumps(top))
    os.makedirs(osp.join(root, IMG_DIR), exist_ok=True)
    for k in range(1, n + 1):
        Image.new('RGB', (16, 12)).save(osp.join(root, IMG_DIR, f'{k}.jpg'))
    return str(root)


def _dataset(root, **kwargs):
    return RefCOCODataset(data_root=root, dataset='mine', split='val',
                          **kwargs)


def _check(root, capsys):
    status = run_cli(lambda: crd.main([root, '--dataset', 'mine']))
    lines = capsys.readouterr().out.splitlines()
    return status, [ln for ln in lines if ln.startswith('problem:')]


def _top(text):
    """instances.json cut 30 characters into "annotations"."""
    return text[:text.index('"annotations"') + 30]


def _del(obj, key):
    del obj[key]


CASES = {
    'missing ref field': (
        lambda r, i, a: _del(r[1], 'ann_id'), ['refs[1]', '"ann_id"']),
    'wrong ref type': (
        lambda r, i, a: r[0].update(image_id='1'), ['refs[0]', '"image_id"']),
    'sentence without raw': (
        lambda r, i, a: _del(r[2]['sentences'][0], 'raw'),
        ['refs[2] (ref_id=3): sentences[0]', '"raw"']),
    'duplicate ref id': (
        lambda r, i, a: r[1].update(ref_id=1), ['refs[0]', 'refs[1]',
                                                'ref_id', '1']),
    'duplicate image id': (
        lambda r, i, a: i.append(dict(i[0])), ['"images"[0]', '"images"[3]',
                                               'image']),
    'missing image field': (
        lambda r, i, a: _del(i[1], 'height'), ['"images"[1] (id=2)',
                                               '"height"']),
    'empty segmentation': (
        lambda r, i, a: a[2].update(segmentation=[]),
        ['"annotations"[2] (id=103)', '"segmentation"']),
    'ref to a missing annotation': (
        lambda r, i, a: r[1].update(ann_id=999), ['ref_id=2', 'ann_id',
                                                  '999']),
    'ref to a missing image': (
        lambda r, i, a: i.pop(1) and None,
        ['ref_id=2', 'image_id', '2', 'not in']),
    'annotation to a missing image': (
        lambda r, i, a: a[1].update(image_id=77), ['image_id', '77']),
    'truncated instances.json': (
        lambda r, i, a: _top(json.dumps(dict(images=i, annotations=a))),
        ['instances.json: the file ends too early', '(in "annotations"[0])']),
    'wrong top-level type': (
        lambda r, i, a: i, ['instances.json: expected a JSON object at the '
                            'top level', 'but the top level is an array']),
    'annotations not an array': (
        lambda r, i, a: dict(images=i, annotations={'1': a[0]}),
        ['top-level key "annotations" must be an array, got an object']),
    'no ref at all': (
        lambda r, i, a: r.clear(), ['refs(unc).p']),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_dataset_raises_and_checker_reports_the_same(tmp_path, capsys, case):
    edit, fragments = CASES[case]
    root = _layout(tmp_path / 'data', edit)
    with pytest.raises(UserError) as e:
        _dataset(root)
    assert isinstance(e.value, ValueError)
    for fragment in fragments:
        assert fragment in str(e.value), (fragment, str(e.value))
    status, problems = _check(root, capsys)
    assert status == 1
    assert any(all(f in p for f in fragments) for p in problems), problems


def test_refs_file_not_a_list_both_modes(tmp_path, capsys):
    root = _layout(tmp_path / 'data')
    write_refs(osp.join(root, 'mine'), {'refs': []}, fmt='json')
    message = 'refs(unc).json: expected a list of ref dicts'
    with pytest.raises(UserError, match=r'refs\(unc\)\.json: expected a '
                       'list of ref dicts'):
        _dataset(root)
    status, problems = _check(root, capsys)
    assert status == 1 and any(message in p for p in problems)


def test_checker_collects_every_problem_dataset_stops_at_first(tmp_path,
                                                              capsys):
    def edit(refs, images, anns):
        del refs[0]['ann_id']                      # 1: a ref field
        refs[2]['sentences'][0]['raw'] = '?!'      # 2: a wordless sentence
        refs[3]['ref_id'] = 2                      # 3: a duplicate ref id
        del images[4]['file_name']                 # 4: an image field
        anns[5]['image_id'] = 66                   # 5: annotation -> nothing

    root = _layout(tmp_path / 'data', edit, n=6)
    with pytest.raises(UserError) as e:
        _dataset(root)
    assert str(e.value).endswith('refs[0] (ref_id=1): missing field '
                                 '"ann_id"')
    status, problems = _check(root, capsys)
    assert status == 1
    text = '\n'.join(problems)
    assert 'lack a valid "ann_id" (int), e.g. refs[0]' in text
    assert 'ref_id=3 sent_id=13' in text and 'no word' in text
    assert 'ref_id=2 (2 times: refs[1], refs[3])' in text
    assert '"images"[4] (id=5)' in text and '"file_name"' in text
    assert 'id=106 (image_id 66)' in text
    assert len(problems) >= 5


def test_wordless_sentences_skipped_with_one_warning(tmp_path, capsys,
                                                     logged):
    def edit(refs, images, anns):
        refs[0]['sentences'].append(dict(raw='\U0001F600 !', sent_id=20))
        refs[0]['sent_ids'].append(20)
        refs[1]['sentences'][0]['raw'] = '   '   # its only sentence

    root = _layout(tmp_path / 'data', edit)
    ds = _dataset(root, test_mode=True)
    items = [(ds.get_data_info(i)['ref_id'], ds.get_data_info(i)['sent_id'])
             for i in range(len(ds))]
    assert items == [(1, 11), (3, 13)]  # never trained or scored
    per_ref = _dataset(root)
    assert [per_ref.get_data_info(i)['ref_id']
            for i in range(len(per_ref))] == [1, 3]  # no empty item
    assert per_ref.get_data_info(0)['sentences'] == [
        dict(raw='thing 1', sent_id=11)]
    mine = [w for w in logged if 'no word' in w]
    assert len(mine) == 2  # one line per dataset built
    assert 'skipped 2 sentences of split "val"' in mine[0]
    assert '1 refs left without a sentence' in mine[0]
    assert 'ref_id=1 sent_id=20' in mine[0] and 'ref_id=2 sent_id=12' in \
        mine[0]
    status, problems = _check(root, capsys)
    assert status == 1
    assert any('2 sentences have no word' in p and 'ref_id=1 sent_id=20' in p
               and 'ref_id=2 sent_id=12' in p for p in problems), problems


def test_split_of_wordless_sentences_only_is_empty(tmp_path, capsys):
    def edit(refs, images, anns):
        for ref in refs:
            ref['sentences'][0]['raw'] = '...'

    root = _layout(tmp_path / 'data', edit)
    with pytest.raises(ValueError, match='has no ref of split "val"'):
        _dataset(root)
    status, problems = _check(root, capsys)
    assert status == 1 and any('3 sentences have no word' in p
                               for p in problems)
