"""The inference API with a no-target head: ``RefSegResult.no_target`` /
``no_target_scores``, empty masks, the legend of the drawing."""
from __future__ import annotations

import numpy as np
import pytest

from projects.magnet.apis import MagNetInferencer

EXPRESSIONS = ['the red blob', 'a dog']


def _inferencer(tiny_files, threshold=None):
    cfg_file, ckpt = tiny_files
    options = {'model.decode_head.no_target': dict(loss_weight=1.0)}
    if threshold is not None:
        options['model.test_cfg.no_target_threshold'] = threshold
    return MagNetInferencer(cfg_file, ckpt, device='cpu',
                            cfg_options=options)


@pytest.fixture(scope='module')
def plain(inferencer, image_bgr):
    return inferencer(image_bgr, EXPRESSIONS)


def _legend_texts(inferencer, monkeypatch):
    seen = []
    vis = inferencer.visualizer
    original = vis._draw_legend

    def spy(canvas, texts, colors):
        seen.append(list(texts))
        return original(canvas, texts, colors)
    monkeypatch.setattr(vis, '_draw_legend', spy)
    return seen


def test_model_without_decision_has_none(plain):
    assert plain.no_target is None and plain.no_target_scores is None
    assert 'pred_no_target' not in plain.data_samples[0]


def test_all_no_target(tiny_files, image_bgr, plain, tmp_path, monkeypatch):
    inferencer = _inferencer(tiny_files, threshold=0.0)
    seen = _legend_texts(inferencer, monkeypatch)
    result = inferencer(image_bgr, EXPRESSIONS,
                        out_file=str(tmp_path / 'out.png'))
    assert result.no_target.dtype == bool
    assert result.no_target.tolist() == [True, True]
    assert result.no_target_scores.shape == (2, )
    assert ((result.no_target_scores > 0) &
            (result.no_target_scores <= 1)).all()
    assert not result.masks.any()  # empty masks
    # the same weights: the mask probabilities are the plain model's
    np.testing.assert_allclose(result.probs, plain.probs, atol=1e-5)
    assert seen == [[f'{e} (no target)' for e in EXPRESSIONS]]
    assert (tmp_path / 'out.png').is_file()


def test_never_no_target(tiny_files, image_bgr, plain, monkeypatch):
    inferencer = _inferencer(tiny_files, threshold=1.0)
    seen = _legend_texts(inferencer, monkeypatch)
    result = inferencer(image_bgr, EXPRESSIONS, show=False,
                        out_file=None)
    assert result.no_target.tolist() == [False, False]
    np.testing.assert_array_equal(result.masks, plain.masks)
    assert seen == []  # nothing drawn without out_file / show
    result = inferencer(image_bgr, EXPRESSIONS)
    np.testing.assert_allclose(result.no_target_scores,
                               [s.no_target_score
                                for s in result.data_samples])


def test_threshold_splits_by_score(tiny_files, image_bgr):
    scores = _inferencer(tiny_files, threshold=1.0)(
        image_bgr, EXPRESSIONS).no_target_scores
    if abs(scores[0] - scores[1]) < 1e-6:
        pytest.skip('equal scores: the tiny model does not tell them apart')
    middle = float(scores.mean())
    result = _inferencer(tiny_files, threshold=middle)(image_bgr,
                                                       EXPRESSIONS)
    assert result.no_target.tolist() == (scores > middle).tolist()
    assert not result.masks[result.no_target].any()
