"""The synthetic REFER dataset generator."""
import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from projects.magnet.datasets.refer_pickle import load_refer_pickle
from projects.magnet.datasets.refsynth import (
    COLOURS,
    KIND_NAMES,
    generate_refer_dataset,
    SceneObject,
    image_refs,
    generate_scene,
    parse_expression,
    render_expression,
    resolve_expression,
)
from projects.magnet.datasets.transforms import decode_refer_mask

from ..conftest import load_tool
from ..conftest import tree_digest as _digest

cli_main = load_tool('tools/dataset_converters/generate_refer_dataset.py').main

TINY = dict(num_train_images=4, num_val_images=2, num_test_images=2,
            img_size=48, progress=False)


def test_deterministic_under_seed(tmp_path):
    from projects.magnet.datasets.refsynth import generate_refer_dataset
    a = generate_refer_dataset(str(tmp_path / 'a'), seed=1, **TINY)
    b = generate_refer_dataset(str(tmp_path / 'b'), seed=1, **TINY)
    c = generate_refer_dataset(str(tmp_path / 'c'), seed=2, **TINY)
    assert _digest(tmp_path / 'a') == _digest(tmp_path / 'b')
    assert _digest(tmp_path / 'a') != _digest(tmp_path / 'c')
    assert a['splits'] == b['splits']
    assert set(c['splits']) == {'train', 'val', 'testA', 'testB'}


def test_refer_format(refer_root):
    root, summary = refer_root
    refs = load_refer_pickle(osp.join(root, 'refsynth', 'refs(unc).p'))
    inst = json.load(open(osp.join(root, 'refsynth', 'instances.json')))
    assert isinstance(refs, list) and refs
    ann_ids = {a['id'] for a in inst['annotations']}
    cats = {c['id'] for c in inst['categories']}
    sent_ids = set()
    for ref in refs:
        assert set(ref) == {'ref_id', 'ann_id', 'image_id', 'category_id',
                            'split', 'sent_ids', 'sentences', 'file_name'}
        assert ref['ann_id'] in ann_ids and ref['category_id'] in cats
        assert ref['split'] in ('train', 'val', 'testA', 'testB')
        assert ref['sent_ids'] == [s['sent_id'] for s in ref['sentences']]
        for s in ref['sentences']:
            assert set(s) == {'raw', 'sent', 'tokens', 'sent_id', 'kind'}
            assert s['kind'] in KIND_NAMES.values()
            # the recorded kind is the kind of the written sentence
            assert s['kind'] == KIND_NAMES[parse_expression(s['raw'])[0]]
            assert s['tokens'] == s['sent'].split()
            assert s['raw'].lower().rstrip('.') == s['sent']
            assert s['sent_id'] not in sent_ids
            sent_ids.add(s['sent_id'])
    img_dir = osp.join(root, 'images', 'mscoco', 'images', 'train2014')
    for img in inst['images']:
        with Image.open(osp.join(img_dir, img['file_name'])) as im:
            assert im.size == (img['width'], img['height']) == (64, 64)
    assert sum(s['images'] for s in summary['splits'].values()) == len(
        inst['images'])


def test_named_colours_match_the_pixels(refer_root):
    """The GT mask of "the red ..." is red in the image."""
    root, _ = refer_root
    refs = load_refer_pickle(osp.join(root, 'refsynth', 'refs(unc).p'))
    inst = json.load(open(osp.join(root, 'refsynth', 'instances.json')))
    anns = {a['id']: a for a in inst['annotations']}
    img_dir = osp.join(root, 'images', 'mscoco', 'images', 'train2014')
    palette = np.array(list(COLOURS.values()), dtype=np.float64)
    checked = 0
    for ref in refs:
        for s in ref['sentences']:
            prog = parse_expression(s['raw'])
            colour = prog[1][1]
            if colour is None:
                continue
            ann = anns[ref['ann_id']]
            img = np.asarray(
                Image.open(osp.join(img_dir,
                                    f'SYN_train2014_{ref["image_id"]:012d}'
                                    '.jpg')).convert('RGB'), np.float64)
            mask = decode_refer_mask(ann['segmentation'], 64, 64)
            mean = np.median(img[mask == 1], axis=0)
            nearest = list(COLOURS)[int(
                np.argmin(((palette - mean)**2).sum(1)))]
            assert nearest == colour, (s['raw'], mean)
            checked += 1
    assert checked >= 10


def test_every_expression_denotes_only_its_object():
    kinds, names, extremes = set(), set(), 0
    for seed in range(30):
        rng = np.random.default_rng([99, seed])
        objects, _ = generate_scene(rng, 96)
        for target, sents in image_refs(objects, 96, rng, 6, 5):
            for sent, kind in sents:
                prog = parse_expression(sent)
                kinds.add(prog[0])
                names.add(kind)
                assert kind == KIND_NAMES[prog[0]], sent
                extremes += sent.split()[1].endswith('most')
                definite, border = resolve_expression(prog, objects, 96)
                assert definite == {target} and not border, sent
    assert kinds == {'attr', 'rel', 'between', 'ord', 'cmp'}
    assert names == set(KIND_NAMES.values())
    assert extremes > 0  # "the leftmost ..." sentences are 'ordinal' too


def test_kind_names():
    assert KIND_NAMES == {
        'attr': 'attribute', 'rel': 'relation', 'between': 'between',
        'ord': 'ordinal', 'cmp': 'comparison'
    }
    # extreme words parse to 'ord' programs, hence the 'ordinal' kind
    assert parse_expression('the leftmost red circle')[0] == 'ord'
    assert parse_expression('the second star from the top')[0] == 'ord'


def _obj(shape, colour, size, cx, cy, r=8.0):
    return SceneObject(shape, colour, size, cx, cy, r, [], np.pi * r * r)


def test_resolver_detects_ambiguity():
    s = 100  # margin = 5 px
    objs = [
        _obj('circle', 'red', 'small', 20, 50),
        _obj('circle', 'red', 'small', 70, 50),
        _obj('square', 'blue', 'large', 50, 50, 12),
        _obj('circle', 'red', 'small', 52, 20, 9.0),
    ]
    red_circle = ('attr', (None, 'red', 'circle'))
    assert resolve_expression(red_circle, objs, s) == ({0, 1, 3}, set())
    left = ('rel', (None, None, 'circle'), 'left', (None, None, 'square'))
    assert resolve_expression(left, objs, s) == ({0}, set())
    # circle 3 is 2 px right of the square: borderline for "right of"
    right = ('rel', (None, None, 'circle'), 'right', (None, None, 'square'))
    assert resolve_expression(right, objs, s) == ({1}, {3})
    # ordinal: circles at x = 20, 52, 70 -> gaps 32, 18: unambiguous
    second = ('ord', (None, None, 'circle'), 2, 'left')
    assert resolve_expression(second, objs, s) == ({3}, set())
    objs[3].cx = 22  # now 2 px from the first circle
    assert resolve_expression(second, objs, s)[0] == set()
    # comparisons need a 1.3x area ratio
    largest = ('cmp', (None, 'red', None), 'largest')
    assert resolve_expression(largest, objs, s) == (set(), {3})
    objs[3].area = 2 * objs[0].area
    assert resolve_expression(largest, objs, s) == ({3}, set())
    between = ('between', (None, None, 'circle'), (None, None, 'square'),
               (None, None, 'circle'))
    # the second landmark "the circle" is not unique: nothing is denoted
    assert resolve_expression(between, objs, s)[0] == set()


def test_render_parse_round_trip():
    rng = np.random.default_rng(0)
    progs = [
        ('attr', ('small', 'red', 'circle')),
        ('attr', (None, None, 'star')),
        ('attr', ('large', None, None)),
        ('rel', (None, 'blue', None), 'below', ('small', None, 'hexagon')),
        ('rel', (None, None, 'diamond'), 'left', (None, 'green', None)),
        ('between', ('small', None, None), (None, 'red', 'star'),
         (None, 'yellow', None)),
        ('ord', (None, 'purple', 'triangle'), 3, 'bottom'),
        ('ord', (None, None, 'square'), 1, 'right'),
        ('cmp', (None, 'orange', None), 'smallest'),
        ('cmp', (None, None, 'circle'), 'largest'),
    ]
    for prog in progs:
        for _ in range(6):
            sent = render_expression(prog, rng)
            assert parse_expression(sent.capitalize() + '.') == prog, sent
    with pytest.raises(ValueError, match='not a generated expression'):
        parse_expression('the man on the left')


def test_cli(tmp_path, capsys):
    out = tmp_path / 'cli'
    cli_main(['--out', str(out), '--num-train-images', '3',
              '--num-val-images', '1', '--num-test-images', '2',
              '--img-size', '40', '--seed', '5', '--image-format', 'png',
              '--no-progress'])
    summary = json.loads(capsys.readouterr().out)
    assert summary['splits']['train']['images'] == 3
    assert osp.exists(out / 'refsynth' / 'refs(unc).p')
    assert osp.exists(out / 'images' / 'mscoco' / 'images' / 'train2014' /
                      'SYN_train2014_000000000006.png')
    with pytest.raises(SystemExit):
        cli_main(['--out', str(out), '--img-size', '8'])


def test_scene_and_kind_options(tmp_path):
    """Objects per scene and shapes/colours per scene follow the options;
    train kind weights change only the train split (val keeps every kind)."""
    import json
    root = str(tmp_path / 'opts')
    weights = {k: 0.0 for k in KIND_NAMES.values()}
    weights['attribute'] = 1.0
    generate_refer_dataset(root, num_train_images=12, num_val_images=12,
                           num_test_images=0, img_size=64, seed=5,
                           min_objects=2, max_objects=3, num_colours=(2, 2),
                           train_kind_weights=weights, progress=False)
    refs = load_refer_pickle(osp.join(root, 'refsynth', 'refs(unc).p'))
    inst = json.load(open(osp.join(root, 'refsynth', 'instances.json')))
    per_image = {}
    for ann in inst['annotations']:
        per_image[ann['image_id']] = per_image.get(ann['image_id'], 0) + 1
    assert set(per_image.values()) <= {2, 3}
    kinds = {split: {s['kind'] for r in refs if r['split'] == split
                     for s in r['sentences']} for split in ('train', 'val')}
    # weight 0: never drawn while an attribute program exists; a target
    # without one falls back to the uniform draw
    train = [[s['kind'] for s in r['sentences']] for r in refs
             if r['split'] == 'train']
    assert all(k == ['attribute'] for k in train if 'attribute' in k)
    assert sum('attribute' in k for k in train) > len(train) / 2
    assert len(kinds['val']) >= 3
    stamp = json.load(open(osp.join(root, 'refsynth', 'generator.json')))
    assert stamp['max_objects'] == 3 and stamp['num_colours'] == [2, 2]
    with pytest.raises(ValueError, match='unknown expression kinds'):
        generate_refer_dataset(str(tmp_path / 'x'), num_train_images=1,
                               num_val_images=0, num_test_images=0,
                               train_kind_weights={'relations': 1},
                               progress=False)


def test_default_settings_are_what_a_default_call_records(tmp_path):
    """``default_settings()`` has every key a stamp has, with the values a
    call records for the arguments it does not pass (the main job compares
    a found dataset's stamp with these)."""
    import json

    from projects.magnet.datasets.refsynth import (GENERATOR_FILE,
                                                   default_settings)
    passed = dict(num_train_images=1, num_val_images=1, num_test_images=0,
                  seed=5, num_shapes=(2, 2))
    generate_refer_dataset(str(tmp_path), progress=False, **passed)
    with open(tmp_path / 'refsynth' / GENERATOR_FILE) as f:
        stamp = json.load(f)
    defaults = default_settings()
    assert set(stamp) == set(defaults)
    assert {k for k in stamp if stamp[k] != defaults[k]} == set(passed)
    assert stamp['num_shapes'] == [2, 2]
