"""Scenes drawn by other code than the generator's: every expression picks
out exactly one object, the masks are what was drawn, and the scores are
those of the predictions (an oracle scores 100, an empty prediction 0)."""
from types import SimpleNamespace

import numpy as np
import pytest

from ..conftest import load_tool

unseen = load_tool('tools/analysis_tools/eval_unseen_scenes.py')


def _scenes(n=40, size=128, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        img, objects = unseen.draw_scene(rng, size)
        yield img, objects, unseen.expressions(objects, rng)


def test_scenes_and_masks():
    for img, objects, _ in _scenes():
        assert img.shape == (128, 128, 3) and img.dtype == np.uint8
        assert 3 <= len(objects) <= 5
        masks = np.stack([o['mask'] for o in objects])
        assert (masks.sum((1, 2)) > 20).all()
        assert masks.sum(0).max() == 1  # no overlaps
        for o in objects:  # the object is painted in its colour
            colour = np.asarray(unseen.PALETTE[o['colour']])
            assert np.abs(img[o['mask']] - colour).max() <= 1


def test_every_expression_is_unambiguous():
    kinds = set()
    for _, objects, exprs in _scenes(60):
        for kind, text, idx in exprs:
            kinds.add(kind)
            o = objects[idx]
            others = [p for i, p in enumerate(objects) if i != idx]
            if kind == 'colour':
                assert o['colour'] in text
                assert all(p['colour'] != o['colour'] for p in others)
            elif kind == 'shape':
                assert text == f"the {o['shape']}"
                assert all(p['shape'] != o['shape'] for p in others)
            elif kind == 'colour+shape':
                assert text == f"the {o['colour']} {o['shape']}"
                assert all((p['colour'], p['shape']) !=
                           (o['colour'], o['shape']) for p in others)
                assert any(p['colour'] == o['colour'] for p in others)
                assert any(p['shape'] == o['shape'] for p in others)
            elif kind == 'position':
                key, sign = {'leftmost': ('cx', 1), 'rightmost': ('cx', -1),
                             'topmost': ('cy', 1),
                             'bottommost': ('cy', -1)}[text.split()[1]]
                assert all(sign * o[key] < sign * p[key] for p in others)
            else:
                area = o['mask'].sum()
                big = 'largest' in text
                assert all((area > p['mask'].sum()) == big for p in others)
    assert kinds == set(unseen.KINDS)


def _empty(img_bgr, texts):
    """Predicts nothing."""
    return SimpleNamespace(masks=np.zeros((len(texts), *img_bgr.shape[:2]),
                                          dtype=bool))


def test_scores_follow_the_predictions(monkeypatch):
    # replay the evaluation's own draws to answer with the ground truth
    truth = []
    real_expressions = unseen.expressions

    def spy(objects, rng):
        out = real_expressions(objects, rng)
        truth.append([objects[i]['mask'] for _, _, i in out])
        return out

    monkeypatch.setattr(unseen, 'expressions', spy)

    def oracle(img, texts):
        return SimpleNamespace(masks=np.stack(truth[-1]))

    scores, kept = unseen.evaluate(oracle, 10, 96, seed=3, keep=2)
    assert scores['overall']['oIoU'] == pytest.approx(100)
    assert len(kept) == 2 and kept[0][-1] == pytest.approx(1.0)
    scores, _ = unseen.evaluate(_empty, 10, 96, seed=3)
    assert scores['overall']['oIoU'] == 0
    assert scores['overall']['count'] == sum(len(t) for t in truth[10:])
