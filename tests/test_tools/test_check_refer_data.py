"""tools/misc/check_refer_data.py on small REFER layouts."""
import os
import os.path as osp
import re
import shutil
import subprocess

import pytest
from PIL import Image

from projects.magnet.utils import run_cli
from tests.test_datasets.utils import make_ref, write_instances, write_refs

from ..conftest import load_tool

crd = load_tool('tools/misc/check_refer_data.py')

IMG_DIR = 'images/mscoco/images/train2014'


def _name(k):
    return f'COCO_train2014_{k:012d}.jpg'


def make_layout(root, dataset='refcocog', split_by='umd',
                splits=('train', 'val', 'test'), per_split=2, fmt='pickle',
                img_dir=IMG_DIR):
    """``per_split`` refs (two sentences each, one image each) per split,
    their annotations and 16x12 JPEG images."""
    images, anns, refs = [], [], []
    k = 0
    for split in splits:
        for _ in range(per_split):
            k += 1
            images.append(dict(id=k, file_name=_name(k), height=12,
                               width=16))
            anns.append(dict(id=100 + k, image_id=k,
                             segmentation=[[1, 1, 8, 1, 8, 8]]))
            refs.append(make_ref(k, 100 + k, k, split,
                                 [(f'thing {k}', 2 * k),
                                  (f'the thing {k}', 2 * k + 1)]))
    folder = osp.join(root, dataset)
    write_refs(folder, refs, split_by=split_by, fmt=fmt)
    write_instances(folder, images=images, annotations=anns,
                    categories=[dict(id=1, name='thing')])
    os.makedirs(osp.join(root, img_dir))
    for image in images:
        Image.new('RGB', (16, 12), (image['id'] * 20, 90, 40)).save(
            osp.join(root, img_dir, image['file_name']), quality=90)
    return str(root)


def run(argv, capsys):
    """(exit status, stdout lines, stderr) as run from a shell."""
    status = run_cli(lambda: crd.main([str(a) for a in argv]))
    out = capsys.readouterr()
    return status, out.out.splitlines(), out.err


def test_correct_layout(tmp_path, capsys):
    root = make_layout(tmp_path / 'data')
    status, lines, err = run([root, '--dataset', 'refcocog'], capsys)
    assert (status, err) == (0, '')
    folder = osp.join(root, 'refcocog')
    assert lines == [
        f'check_refer_data: {root} (dataset refcocog, split_by umd)',
        f'  refs:      {folder}/refs(umd).p: 6 refs',
        f'  instances: {folder}/instances.json: 6 images, 6 annotations, 1 '
        'categories',
        '  split         refs  published  sentences  published     images'
        '  published',
        '  train            2   (42226)*          4   (80512)*          2'
        '   (21899)*',
        '  val              2    (2573)*          4    (4896)*          2'
        '    (1300)*',
        '  test             2    (5023)*          4    (9602)*          2'
        '    (2600)*',
        f'  images: 6 referenced, 6 found in {root}/{IMG_DIR}, 6 decoded '
        '(all), 0 unusable',
        'warning: counts differ from the published ones of refcocog (umd), '
        'marked *: a partial, older or modified copy? (--strict makes this '
        'fail)',
        'OK: no problem found',
    ]
    status, lines, _ = run([root, '--dataset', 'refcocog', '--strict'],
                           capsys)
    assert status == 1 and lines[-1] == 'FAILED: 1 problem or warning found'


def test_python2_pickle_and_own_dataset(tmp_path, capsys):
    root = make_layout(tmp_path / 'data', dataset='mine', split_by='unc',
                       splits=('train', 'val'), fmt='py2')
    status, lines, _ = run([root, '--dataset', 'mine', '--check-images',
                            '1'], capsys)
    assert status == 0
    assert lines[3:6] == ['  split         refs  sentences     images',
                          '  train            2          4          2',
                          '  val              2          4          2']
    assert lines[6].endswith('4 found in '
                             f'{root}/{IMG_DIR}, 1 decoded (a random sample '
                             'of 1), 0 unusable')
    assert lines[7] == (
        "note: refs(unc).p is a Python-2 pickle (protocol 2): a Python-2 "
        "pickle must be opened in binary mode ('rb') and loaded with "
        "encoding='latin1' (plain pickle.load fails with a "
        'UnicodeDecodeError or gives bytes); RefCOCODataset and the data '
        'tools do this, with the restricted unpickler')
    # an unpublished dataset without the usual unc test splits: warned
    assert lines[8] == (
        'warning: refs(unc).p has no ref of the split(s) testA, testB that '
        'a unc partition usually has (found: train, val); a config that '
        'trains or evaluates on them will stop there')
    assert lines[9:] == ['OK: no problem found']


@pytest.mark.parametrize('where', ['train2014', 'images/train2014'])
def test_images_in_the_wrong_folder(tmp_path, capsys, where):
    root = make_layout(tmp_path / 'data')
    shutil.move(osp.join(root, IMG_DIR), osp.join(root, where))
    shutil.rmtree(osp.join(root, 'images', 'mscoco'))
    status, lines, _ = run([root, '--dataset', 'refcocog'], capsys)
    assert status == 1
    expected = osp.join(root, IMG_DIR)
    start = lines.index(
        f'problem: 6 of 6 referenced images are missing from {expected} '
        f'(that folder does not exist), e.g. {_name(1)}, {_name(2)}, '
        f'{_name(3)}, ...')
    assert lines[start + 1:start + 4] == [
        f'  they are in {root}/{where}: link or move them to {expected}:',
        f'    mkdir -p {root}/images/mscoco/images && ln -s {root}/{where} '
        f'{expected}',
        f"  or set img_dir='{where}' in the RefCOCODataset configs (relative "
        f'to data_root; check it with --img-dir {where})']
    assert lines[-1] == 'FAILED: 1 problem found'
    assert run([root, '--dataset', 'refcocog', '--img-dir', where],
               capsys)[0] == 0
    # the printed command fixes the layout
    subprocess.run(lines[start + 2].strip(), shell=True, check=True)
    assert run([root, '--dataset', 'refcocog'], capsys)[0] == 0


def test_missing_and_unreadable_images(tmp_path, capsys):
    root = make_layout(tmp_path / 'data')
    img_dir = osp.join(root, IMG_DIR)
    os.remove(osp.join(img_dir, _name(4)))
    with open(osp.join(img_dir, _name(2)), 'rb') as f:
        data = f.read()
    with open(osp.join(img_dir, _name(2)), 'wb') as f:
        f.write(data[:len(data) // 2])
    Image.new('RGB', (12, 16)).save(osp.join(img_dir, _name(5)))
    status, lines, _ = run([root, '--dataset', 'refcocog'], capsys)
    assert status == 1
    problems = [line for line in lines if line.startswith('problem:')]
    assert problems[0] == (
        f'problem: 1 of 6 referenced images are missing from {img_dir}, '
        f'e.g. {_name(4)}')
    assert re.fullmatch(
        'problem: 2 of 5 decoded images are unreadable or of the wrong size'
        rf', e.g. {_name(2)} \(OSError: [^()]*[Tt]runcated[^()]*\), '
        rf'{_name(5)} \(12x16, but 16x12 in instances.json\)', problems[1])
    assert len(problems) == 2
    missing = lines.index(problems[0])
    assert lines[missing + 1] == (
        '  not found elsewhere under DATA_ROOT either: an incomplete '
        'download or unzip of COCO train2014?')
    assert f'  images: 6 referenced, 5 found in {img_dir}, 5 decoded (all),' \
        ' 2 unusable' in lines
    assert lines[-1] == 'FAILED: 2 problems found'


def test_google_umd_mix_up(tmp_path, capsys):
    # a umd file (it has a test split) saved as refs(google).p
    root = make_layout(tmp_path / 'data', split_by='google')
    status, lines, _ = run([root, '--dataset', 'refcocog', '--split-by',
                            'google'], capsys)
    assert status == 1
    start = lines.index(
        'problem: refs(google).p has the splits train, val, test, but '
        'refcocog split by google has train, val')
    assert lines[start + 1:start + 3] == [
        '  these are the splits of the umd partition: is this file '
        'refs(umd).p renamed? (check it, or use --split-by umd)',
        '  refcocog is published with the partitions umd (train, val, test),'
        ' google (train, val)']
    # the default partition of refcocog is umd: no such file there
    status, lines, _ = run([root, '--dataset', 'refcocog'], capsys)
    assert status == 1
    folder = osp.join(root, 'refcocog')
    assert lines[1:4] == [
        f'problem: no refs(umd).p (nor refs(umd).json) in {folder}',
        f'  {folder} has refs for --split-by google',
        '  refcocog is published with the partitions umd (train, val, test),'
        ' google (train, val)']


def test_partition_recognised_from_published_counts():
    report = crd.Report()
    umd = {s: (c[0], 0, 0) for s, c in
           crd.PUBLISHED[('refcocog', 'umd')].items()}
    crd.check_partition('refcocog', 'google', 'refs(google).p', umd, report)
    assert report.problems == [
        'refs(google).p in refcocog/ holds the refs of refcocog split by umd'
        ' (its refs per split are exactly the published ones), not those of '
        'refcocog split by google\n  put the right file there, or use '
        '--dataset refcocog --split-by umd']
    report = crd.Report()
    crd.check_partition('refcocog', 'umd', 'refs(umd).p', umd, report)
    assert report.problems == []
    google = {s: (c[0], 0, 0) for s, c in
              crd.PUBLISHED[('refcoco', 'google')].items()}
    crd.check_partition('refcoco', 'unc', 'refs(unc).p', google, report)
    assert report.problems[0].startswith(
        'refs(unc).p in refcoco/ holds the refs of refcoco split by google')


def test_unc_google_mix_up_from_split_names():
    small = {'train': (5, 9, 3), 'val': (1, 2, 1), 'test': (1, 1, 1)}
    report = crd.Report()
    crd.check_partition('refcoco', 'unc', 'refs(unc).p', small, report)
    assert report.problems == [
        'refs(unc).p has the splits train, val, test, but refcoco split by '
        'unc has train, val, testA, testB\n  these are the splits of the '
        'google partition: is this file refs(google).p renamed? (check it, '
        'or use --split-by google)\n  refcoco is published with the '
        'partitions unc (train, val, testA, testB), google (train, val, '
        'test)']
    report = crd.Report()
    crd.check_partition('refcoco+', 'unc', 'refs(unc).p', small, report)
    assert report.problems == [
        'refs(unc).p has the splits train, val, test, but refcoco+ split by '
        'unc has train, val, testA, testB\n  these are the splits of refcoco '
        '(google), refcocog (umd): the refs of another dataset?\n  refcoco+ '
        'is published with the partitions unc (train, val, testA, testB)']


def test_refs_and_instances_inconsistent(tmp_path, capsys):
    root = make_layout(tmp_path / 'data', dataset='mine', split_by='unc',
                       splits=('val', ))
    folder = osp.join(root, 'mine')
    refs = [make_ref(1, 101, 1, 'val', [('a', 1)]),
            make_ref(2, 999, 2, 'val', [('b', 2)]),
            make_ref(3, 101, 2, 'val', [('c', 3)]),
            {'ref_id': 4, 'split': 'val'}]
    write_refs(folder, refs)
    status, lines, _ = run([root, '--dataset', 'mine'], capsys)
    assert status == 1
    refs_p = osp.join(folder, 'refs(unc).p')
    assert [line for line in lines if line.startswith('problem:')] == [
        f'problem: {refs_p}: 1 of 4 refs lack a valid "ann_id" (int), e.g. '
        'refs[3]',
        f'problem: 1 of 3 refs of {refs_p} have an ann_id that is not in '
        'instances.json "annotations", e.g. ref_id=2 (ann_id 999)',
        f'problem: 1 of 3 refs of {refs_p} have an image_id that differs '
        "from their annotation's, e.g. ref_id=3 (image_id 2, its annotation "
        '101 is on image 1)']
    # no "annotations" key: said once, not as 3 refs with unknown ann_ids
    write_instances(folder, images=[])
    status, lines, _ = run([root, '--dataset', 'mine'], capsys)
    inst = osp.join(folder, 'instances.json')
    assert status == 1
    assert lines[2] == f'  instances: {inst}: 0 images, 0 annotations, no ' \
        'categories'
    assert lines[-7:] == [
        f'warning: {inst}: no top-level "categories" key (the REFER '
        'instances.json has one; indexing does not need it)',
        'warning: refs(unc).p has no ref of the split(s) train, testA, '
        'testB that a unc partition usually has (found: val); a config that '
        'trains or evaluates on them will stop there',
        f'problem: {inst}: the top-level key "annotations" is missing '
        '(found: images)',
        f'problem: {refs_p}: 1 of 4 refs lack a valid "ann_id" (int), e.g. '
        'refs[3]',
        f'problem: 3 of 3 refs of {refs_p} have an image_id that is not in '
        'instances.json "images", e.g. ref_id=1 (image_id 1), ref_id=2 '
        '(image_id 2), ref_id=3 (image_id 2)',
        f'  no ref matches: is {inst} the instances.json of this dataset?',
        'FAILED: 3 problems found']


def test_dataset_errors_are_reported(tmp_path, capsys):
    """What RefCOCODataset checks (a sentence without "raw") fails the
    check too: the checker applies the dataset's rules itself."""
    root = make_layout(tmp_path / 'data', dataset='mine', split_by='unc',
                       splits=('val', ))
    refs = [make_ref(k, 100 + k, k, 'val', [('x', k)]) for k in (1, 2)]
    del refs[1]['sentences'][0]['raw']
    write_refs(osp.join(root, 'mine'), refs)
    status, lines, _ = run([root, '--dataset', 'mine'], capsys)
    assert status == 1
    assert lines[-2] == (
        f'problem: {root}/mine/refs(unc).p: 1 of 2 refs have a sentence '
        'without a str "raw", e.g. refs[1] (ref_id=2): sentences[0]')


def test_wrong_data_root(tmp_path, capsys):
    root = make_layout(tmp_path / 'data', dataset='refcoco', split_by='unc',
                       splits=('val', ))
    status, lines, _ = run([osp.join(root, 'refcoco'), '--dataset',
                            'refcoco'], capsys)
    assert status == 1 and lines[1] == (
        f'problem: {root}/refcoco has no refcoco/ folder but holds '
        'instances.json itself: DATA_ROOT is the folder *above* the '
        f'annotation folders (here {root}, with --dataset refcoco)')
    status, lines, _ = run([root, '--dataset', 'refcoco+'], capsys)
    assert lines[1:3] == [
        f'problem: no annotation folder {root}/refcoco+ (the REFER '
        'refcoco+/ folder with refs(<split_by>).p and instances.json)',
        f'  annotation folders in {root}: refcoco (--dataset)']
    status, _, err = run([tmp_path / 'nowhere'], capsys)
    assert (status, err) == (
        1, f'error: DATA_ROOT {tmp_path}/nowhere is not a folder\n')
    with pytest.raises(SystemExit):
        crd.main([root, '--check-images', 'some'])


def test_output_fits_one_screen(tmp_path, capsys):
    root = make_layout(tmp_path / 'data', dataset='refcoco', split_by='unc',
                       splits=('train', 'val', 'testA', 'testB'),
                       per_split=10)
    shutil.rmtree(osp.join(root, 'images'))
    refs = [make_ref(k, 100 + k, k, 'val', [('x', k)]) for k in range(1, 41)]
    refs += [{'split': 'val'}] * 30 + [make_ref(90, 999, 1, 'val',
                                                [('x', 90)])] * 30
    write_refs(osp.join(root, 'refcoco'), refs)
    status, lines, _ = run([root], capsys)
    assert status == 1 and len(lines) <= 20
    assert f'problem: {root}/refcoco/refs(unc).p: 1 ref ids appear more ' \
        'than once, e.g. ref_id=90 (30 times: refs[70], refs[71], ' \
        'refs[72], ...)' in lines
    assert f'problem: 40 of 40 referenced images are missing from {root}/' \
        f'{IMG_DIR} (that folder does not exist), e.g. {_name(1)}, ' \
        f'{_name(2)}, {_name(3)}, ...' in lines


def test_wrong_folder_missing_image_and_mix_up_in_one_screen(tmp_path,
                                                              capsys):
    """The three usual mistakes at once: each is named, in one screen."""
    root = make_layout(tmp_path / 'data', dataset='refcocog', split_by='umd',
                       splits=('train', 'val'), per_split=3)
    shutil.move(osp.join(root, IMG_DIR), osp.join(root, 'train2014'))
    shutil.rmtree(osp.join(root, 'images'))
    os.remove(osp.join(root, 'train2014', _name(2)))
    status, lines, _ = run([root, '--dataset', 'refcocog', '--split-by',
                            'umd'], capsys)
    text = '\n'.join(lines)
    assert status == 1 and len(lines) <= 24
    assert 'is this file refs(google).p renamed?' in text
    assert f'they are in {root}/train2014' in text
    assert f'1 of them are not in {root}/train2014 either, e.g. ' \
        f'{_name(2)}' in text
