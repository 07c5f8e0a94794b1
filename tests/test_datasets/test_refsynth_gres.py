"""The generated GRES (gRefCOCO-format) dataset: set semantics, parse-back
of every sentence, the files' format, determinism."""
import hashlib
import json
import os
import os.path as osp

import numpy as np
import pytest

from projects.magnet.datasets.refer_pickle import load_refer_pickle
from projects.magnet.datasets.refsynth import (
    COLOURS, SHAPES, TARGET_KINDS, SceneObject, generate_gres_dataset,
    generate_refer_dataset, generate_scene, image_gres_refs, parse_gres,
    render_gres, resolve_gres)
from projects.magnet.datasets.refsynth.gres import SIDE_MARGIN
from projects.magnet.utils.errors import UserError

from ..conftest import tree_digest

EVEN = {'single': 1, 'multi': 1, 'no-target': 1}
TINY = dict(num_train_images=6, num_val_images=2, num_test_images=2,
            img_size=48, progress=False)
COUNTS = {'both': 2, 'two': 2, 'three': 3}
SIZE_OF = {'small': 'small', 'little': 'small', 'big': 'large',
           'large': 'large'}


def _words_desc(words):
    """(size, colour, shape) of a noun phrase, read from its words
    without the generator's parser (plural or singular nouns)."""
    size = colour = shape = None
    for w in words:
        if w in SIZE_OF:
            size = SIZE_OF[w]
        elif w in COLOURS:
            colour = w
        elif w.rstrip('s') in SHAPES:
            shape = w.rstrip('s')
    return size, colour, shape


def _fits(obj, desc):
    return all(v is None or getattr(obj, k) == v
               for k, v in zip(('size', 'colour', 'shape'), desc))


def _scene_refs(n_scenes=40, size=96, occlusion=0.25, mix=EVEN):
    for seed in range(n_scenes):
        rng = np.random.default_rng([123, seed])
        objects, masks = generate_scene(rng, size, occlusion_prob=occlusion)
        for targets, kind, sents in image_gres_refs(objects, size, rng, 4, 3,
                                                    mix):
            yield objects, masks, targets, kind, sents


@pytest.fixture(scope='module')
def gres_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('gres'))
    summary = generate_gres_dataset(root, seed=4, target_mix=EVEN,
                                    **dict(TINY, num_train_images=16))
    return root, summary


def test_every_sentence_denotes_exactly_its_set():
    """Parse-back: the written sentence resolves on the scene to exactly
    the target set (empty for no-target), with nothing borderline; the
    recorded kind is the size of that set."""
    kinds, expr_kinds, count_words = set(), set(), set()
    for objects, _, targets, kind, sents in _scene_refs():
        for sent, expr_kind in sents:
            definite, border = resolve_gres(parse_gres(sent), objects, 96)
            assert definite == set(targets) and not border, sent
            assert kind == ('no-target', 'single', 'multi')[
                min(len(targets), 2)], sent
            kinds.add(kind)
            expr_kinds.add((kind, expr_kind))
            count_words |= set(sent.split()) & set(COUNTS)
    assert kinds == set(TARGET_KINDS)
    assert {('multi', 'position'), ('multi', 'relation'),
            ('no-target', 'attribute'), ('no-target', 'relation'),
            ('single', 'ordinal')} <= expr_kinds
    assert count_words == set(COUNTS)


def test_count_words_and_plurals_match_the_scene():
    """Read from the words alone: a count word equals the number of
    targets; an unfiltered plural names every object of its description
    (and 2+ of them)."""
    checked = 0
    for objects, _, targets, kind, sents in _scene_refs():
        for sent, expr_kind in sents:
            words = sent.split()
            if kind == 'multi':
                assert len(targets) >= 2
                for w, n in COUNTS.items():
                    if w in words:
                        assert len(targets) == n, sent
                if expr_kind == 'attribute':
                    desc = _words_desc(words)
                    fits = {i for i, o in enumerate(objects)
                            if _fits(o, desc)}
                    assert fits == set(targets), sent
                    checked += 1
    assert checked > 10


_HEAD_END = ('left', 'right', 'above', 'below', 'under', 'to', 'on', 'at',
             'between', 'from')


def _head_words(words):
    """The described objects' words: before the first relation / side /
    'between' / 'from' word."""
    cut = next((i for i, w in enumerate(words) if w in _HEAD_END),
               len(words))
    return words[:cut]


def test_no_target_sentences_have_no_referent():
    """Independently of the resolver: either the described objects'
    description fits no object, or (relation / position) every object it
    fits is on the other side of the landmark (or of the middle line, by
    SIDE_MARGIN)."""
    seen, absent_kind = set(), 0
    size = 96
    for objects, _, targets, kind, sents in _scene_refs():
        if kind != 'no-target':
            continue
        assert targets == ()
        for sent, expr_kind in sents:
            words = sent.split()
            seen.add(expr_kind)
            head = _words_desc(_head_words(words))
            xs = [o for o in objects if _fits(o, head)]
            if not xs:  # the described kind is absent
                absent_kind += 1
                continue
            assert expr_kind in ('relation', 'position'), sent
            side = next(w for w in ('left', 'right', 'above', 'below',
                                    'under', 'top', 'bottom') if w in words)
            axis = 'cx' if side in ('left', 'right') else 'cy'
            sign = -1 if side in ('left', 'above', 'top') else 1
            if expr_kind == 'position':
                assert all(sign * (getattr(o, axis) - size / 2) <=
                           -SIDE_MARGIN * size for o in xs), sent
            else:
                cut = len(words) - 1 - words[::-1].index('the')
                lms = [o for o in objects
                       if _fits(o, _words_desc(words[cut:]))]
                assert len(lms) == 1, sent
                assert all(sign * (getattr(o, axis) - getattr(lms[0], axis))
                           <= 0 for o in xs if o is not lms[0]), sent
    assert absent_kind > 0
    assert seen == {'attribute', 'relation', 'position', 'ordinal',
                    'comparison', 'between'}


def _form(sent):
    """A sentence's form: each description (its size, colour and noun
    words) replaced by one '_'."""
    blank = set(SIZE_OF) | set(COLOURS) | {'shape', 'object'} | set(SHAPES)
    blank |= {'shapes', 'objects'} | {s + 's' for s in SHAPES}
    out = []
    for w in sent.split():
        if w not in blank:
            out.append(w)
        elif not out or out[-1] != '_':
            out.append('_')
    return ' '.join(out)


def test_no_target_sentences_have_the_forms_of_target_sentences():
    """A no-target sentence is written with the forms of target sentences
    (quantifiers, ordinals, comparisons, 'between'): the words alone do not
    tell that it refers to nothing. Every no-target form is also a target
    form, and the no-target forms cover singular and plural ones."""
    target_forms, no_target_forms = set(), []
    for _, _, _, kind, sents in _scene_refs(n_scenes=80):
        for sent, _ in sents:
            (no_target_forms.append if kind == 'no-target' else
             target_forms.add)(_form(sent))
    assert no_target_forms
    unseen = [f for f in no_target_forms if f not in target_forms]
    assert len(unseen) <= 0.05 * len(no_target_forms), unseen[:10]
    words = {w for f in no_target_forms for w in f.split()}
    assert {'all', 'both', 'two', 'largest', 'between', 'from'} <= words


def test_overlapping_objects_can_be_targets_together():
    found = 0
    for objects, masks, targets, kind, _ in _scene_refs(occlusion=0.9):
        if kind == 'multi':
            found += any((masks[a] & masks[b]).any() for a in targets
                         for b in targets if a < b)
    assert found > 0


def _obj(shape, colour, size, cx, cy, r=8.0):
    return SceneObject(shape, colour, size, cx, cy, r, [], np.pi * r * r)


def test_set_semantics_on_a_hand_made_scene():
    s = 100  # side margin 10 px
    objs = [
        _obj('circle', 'red', 'small', 20, 30),
        _obj('circle', 'red', 'small', 30, 70),
        _obj('square', 'blue', 'large', 75, 50, 12),
        _obj('circle', 'green', 'small', 55, 20),
    ]
    assert resolve_gres(parse_gres('both red circles'), objs, s) == (
        {0, 1}, set())
    assert resolve_gres(parse_gres('all the circles'), objs, s) == (
        {0, 1, 3}, set())
    # a count word that does not match: ambiguous, never no-target
    assert resolve_gres(parse_gres('the two circles'), objs, s) == (
        set(), {0, 1, 3})
    assert resolve_gres(parse_gres('the three red circles'), objs, s)[1]
    # a plural of one object, a singular of two: ambiguous
    assert resolve_gres(parse_gres('the squares'), objs, s)[1] == {2}
    assert resolve_gres(parse_gres('the red circle'), objs, s)[1] == {0, 1}
    # absent: the empty set, nothing borderline
    for sent in ('the green triangle', 'the yellow shapes',
                 'the circles right of the square'):
        assert resolve_gres(parse_gres(sent), objs, s) == (set(), set())
    assert resolve_gres(parse_gres('the two red circles on the left'),
                        objs, s) == ({0, 1}, set())
    # the green circle is 5 px right of the middle line: borderline for
    # either side, so neither expression is used
    assert resolve_gres(parse_gres('the circles on the right'), objs,
                        s) == (set(), {3})
    assert resolve_gres(parse_gres('the two circles on the left'), objs,
                        s) == (set(), {0, 1, 3})
    assert resolve_gres(parse_gres('all the circles left of the square'),
                        objs, s) == ({0, 1, 3}, set())


def test_plural_render_parse_round_trip():
    rng = np.random.default_rng(0)
    progs = [
        ('plural', 'the', (None, 'red', None), None),
        ('plural', 'all', ('small', None, 'star'), ('side', 'top')),
        ('plural', 2, (None, None, 'circle'), None),
        ('plural', 3, (None, 'blue', None),
         ('rel', 'below', ('large', None, 'hexagon'))),
        ('plural', 'the', (None, None, None), ('rel', 'left',
                                               (None, 'green', None))),
        ('attr', (None, 'green', 'triangle')),
    ]
    for prog in progs:
        for _ in range(6):
            sent = render_gres(prog, rng)
            assert parse_gres(sent.capitalize() + '.') == prog, sent
    with pytest.raises(ValueError, match='not a generated expression'):
        parse_gres('the four circles')


def test_gres_files_format(gres_root):
    root, summary = gres_root
    ann_dir = osp.join(root, 'grefsynth')
    refs = json.load(open(osp.join(ann_dir, 'grefs(unc).json')))
    assert load_refer_pickle(osp.join(ann_dir, 'grefs(unc).p')) == refs
    inst = json.load(open(osp.join(ann_dir, 'instances.json')))
    anns = {a['id']: a for a in inst['annotations']}
    sent_ids, kinds, sets = set(), set(), set()
    for ref in refs:
        assert set(ref) == {'ref_id', 'ann_id', 'image_id', 'category_id',
                            'split', 'sent_ids', 'sentences', 'file_name'}
        assert ref['split'] in ('train', 'val', 'testA', 'testB')
        ann_ids, cat_ids = ref['ann_id'], ref['category_id']
        assert isinstance(ann_ids, list) and isinstance(cat_ids, list)
        assert all(type(i) is int for i in ann_ids + cat_ids)
        assert len(ann_ids) == len(cat_ids) >= 1
        if -1 in ann_ids:
            assert ann_ids == [-1] and cat_ids == [-1]
            kind = 'no-target'
        else:
            assert ann_ids == sorted(set(ann_ids))
            assert cat_ids == [anns[i]['category_id'] for i in ann_ids]
            assert all(anns[i]['image_id'] == ref['image_id']
                       for i in ann_ids)
            kind = 'single' if len(ann_ids) == 1 else 'multi'
            assert (ref['image_id'], tuple(ann_ids)) not in sets
            sets.add((ref['image_id'], tuple(ann_ids)))
        assert ref['sent_ids'] == [s['sent_id'] for s in ref['sentences']]
        for s in ref['sentences']:
            assert set(s) == {'raw', 'sent', 'tokens', 'sent_id', 'kind',
                              'expr_kind'}
            assert s['kind'] == kind
            kinds.add(kind)
            assert s['tokens'] == s['sent'].split()
            assert s['raw'].lower().rstrip('.') == s['sent']
            assert s['sent_id'] not in sent_ids
            sent_ids.add(s['sent_id'])
    assert kinds == set(TARGET_KINDS)
    assert sum(summary['sentences_per_kind'].values()) == len(sent_ids)
    assert sum(v['refs'] for v in summary['splits'].values()) == len(refs)
    stamp = json.load(open(osp.join(ann_dir, 'generator.json')))
    assert stamp['gres'] is True and stamp['target_mix'] == {
        k: 1.0 for k in TARGET_KINDS}


def test_target_mix(tmp_path):
    for only in TARGET_KINDS:
        root = str(tmp_path / only)
        summary = generate_gres_dataset(root, target_mix={only: 1},
                                        **TINY)
        per_kind = summary['sentences_per_kind']
        assert per_kind[only] > 0
        assert sum(per_kind.values()) == per_kind[only]
    for bad, match in (({'none': 1}, 'unknown target kinds'),
                       ({'multi': -1}, 'finite number >= 0'),
                       ({'multi': 0}, 'sum to 0'), ([0.5], 'dict')):
        with pytest.raises(UserError, match=match):
            generate_gres_dataset(str(tmp_path / 'x'), target_mix=bad,
                                  **TINY)
    with pytest.raises(ValueError):
        generate_gres_dataset(str(tmp_path / 'x'), img_size=8)
    objects, _ = generate_scene(np.random.default_rng(0), 64)
    with pytest.raises(UserError, match='positive sum'):
        image_gres_refs(objects, 64, np.random.default_rng(0), 2, 2,
                        {'multi': 0})
    assert not osp.exists(tmp_path / 'x')  # refused before writing


def test_deterministic_under_seed(tmp_path):
    a = generate_gres_dataset(str(tmp_path / 'a'), seed=1, **TINY)
    generate_gres_dataset(str(tmp_path / 'b'), seed=1, **TINY)
    generate_gres_dataset(str(tmp_path / 'c'), seed=2, **TINY)
    generate_gres_dataset(str(tmp_path / 'd'), seed=1,
                          target_mix={'multi': 1}, **TINY)
    assert tree_digest(tmp_path / 'a') == tree_digest(tmp_path / 'b')
    assert tree_digest(tmp_path / 'a') != tree_digest(tmp_path / 'c')
    assert tree_digest(tmp_path / 'a') != tree_digest(tmp_path / 'd')
    # same scenes and images as the REFER variant of the same seed
    generate_refer_dataset(str(tmp_path / 'r'), seed=1, **TINY)
    img = osp.join('images', 'mscoco', 'images', 'train2014')
    assert tree_digest(tmp_path / 'a' / img) == \
        tree_digest(tmp_path / 'r' / img)
    assert a['annotations'] == len(json.load(open(
        tmp_path / 'r' / 'refsynth' / 'instances.json'))['annotations'])


def test_refer_variant_output_unchanged(tmp_path):
    """The REFER generator writes what it wrote before the GRES variant
    (refs and instances of a fixed seed; images are encoder-dependent)."""
    generate_refer_dataset(str(tmp_path), num_train_images=4,
                           num_val_images=2, num_test_images=2, img_size=48,
                           seed=3, progress=False)
    h = hashlib.sha256()
    for name in ('refs(unc).p', 'instances.json'):
        with open(tmp_path / 'refsynth' / name, 'rb') as f:
            h.update(f.read())
    assert h.hexdigest() == ('b1fa5d06062e86920986e9b2fc914d6dabb7e55804272'
                             'e0b274166c525267176')
    assert not [f for f in os.listdir(tmp_path / 'refsynth')
                if f.startswith('grefs')]
