"""demo/web_demo.py without a browser: its prediction function, its
checkpoint default and its errors."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from projects.magnet.apis import MagNetInferencer
from projects.magnet.apis.pipeline import ExpressionError
from projects.magnet.utils import InputFileError, UserError
from projects.magnet.visualization import EXPRESSION_COLORS, blend_mask

from ..test_apis import CPU_CONFIG
from .conftest import EXPRESSIONS


def test_segment_draws_the_masks_with_the_legend_and_lists_them(
        web_demo, cpu_inferencer, scene, threshold):
    text = f'  {EXPRESSIONS[0]}\n\n{EXPRESSIONS[1]}  \n'  # blank lines
    overlay, gallery = web_demo.segment(cpu_inferencer, scene, text,
                                        threshold=threshold, alpha=0.5)
    ref = cpu_inferencer(scene, list(EXPRESSIONS), threshold=threshold,
                         channel_order='rgb')
    masks = ref.masks
    assert 0.3 < masks[0].mean() < 0.7  # a mask, not all or nothing
    # the image with the masks in the expressions' colours on top, the
    # legend on a strip below (widened to 360 px: image_demo's drawing)
    assert overlay.dtype == np.uint8
    assert overlay.shape[0] > 80 and overlay.shape[1] == 360
    expected = blend_mask(blend_mask(scene, masks[0], EXPRESSION_COLORS[0],
                                     0.5), masks[1], EXPRESSION_COLORS[1], 0.5)
    np.testing.assert_array_equal(overlay[:80, :96], expected)
    for color in EXPRESSION_COLORS[:2]:  # each swatch in the legend
        assert (overlay[80:] == np.array(color, np.uint8)).all(2).sum() \
            >= 100
    # one mask per expression, in order, 255 where the referent is
    assert len(gallery) == 2
    for (image, caption), mask, expression in zip(gallery, masks,
                                                  EXPRESSIONS):
        assert image.dtype == np.uint8 and image.shape == (80, 96)
        np.testing.assert_array_equal(image, mask.astype(np.uint8) * 255)
        assert expression in caption
        assert f'{mask.mean() * 100:.1f}% of the image' in caption
        assert '(no target)' not in caption


def test_segment_with_a_no_target_model_says_no_target(
        web_demo, cpu_checkpoint, scene):
    """A model with the no-target decision (the gRefCOCO configs): with
    a no-target threshold of 0 every expression is decided to name
    nothing; its mask is empty and the caption and legend say so."""
    from projects.magnet.visualization import prediction_panels
    inferencer = MagNetInferencer(
        CPU_CONFIG, cpu_checkpoint, device='cpu',
        cfg_options={'model.decode_head.no_target': dict(loss_weight=1.0),
                     'model.test_cfg.no_target_threshold': 0.0})
    overlay, gallery = web_demo.segment(inferencer, scene,
                                        '\n'.join(EXPRESSIONS))
    assert [caption for _, caption in gallery] == [
        f'{i + 1}. {e} (no target): 0.0% of the image'
        for i, e in enumerate(EXPRESSIONS)]
    assert all(not image.any() for image, _ in gallery)
    # nothing painted; the legend's labels are the ones with the marker
    np.testing.assert_array_equal(overlay[:80, :96], scene)
    no_marker = prediction_panels.legend_below(
        scene, list(EXPRESSIONS), list(EXPRESSION_COLORS[:2]))
    marked = prediction_panels.legend_below(
        scene, list(EXPRESSIONS), list(EXPRESSION_COLORS[:2]),
        no_target=[True, True])
    assert not np.array_equal(marked, no_marker)
    np.testing.assert_array_equal(overlay, marked)


class _NoModel:
    """An inferencer that must not be called."""

    def __call__(self, *args, **kwargs):
        raise AssertionError('the model ran on a bad input')


class _NoBuild:
    """An inferencer that must not be built."""

    def __init__(self, *args, **kwargs):
        raise AssertionError('a model was built on a bad option')


@pytest.fixture
def no_model_build(monkeypatch):
    """Building the model fails the test."""
    import projects.magnet.apis
    monkeypatch.setattr(projects.magnet.apis, 'MagNetInferencer', _NoBuild)


@pytest.mark.parametrize('image, text, message', [
    (None, 'the red square', 'no image'),
    ('scene', '', 'no expression'),
    ('scene', ' \n\n  \t', 'no expression'),
    ('scene', 'the red square\n\n!!!', "line 3: '!!!' has no word"),
])
def test_segment_refuses_bad_inputs_before_the_model(web_demo, scene, image,
                                                     text, message):
    with pytest.raises(UserError, match=message):
        web_demo.segment(_NoModel(), scene if image == 'scene' else image,
                         text)


def test_segment_names_the_line_of_an_expression_of_special_tokens(
        web_demo, cpu_inferencer, scene):
    with pytest.raises(ExpressionError) as info:
        web_demo.segment(cpu_inferencer, scene,
                         'the red square\n\n[CLS] [SEP]')
    message = str(info.value)
    assert message.startswith('line 3: ') and 'no word' in message


def test_prediction_errors_are_shown_in_the_page(web_demo, scene):
    """The page's handler turns a UserError into ``gr.Error`` (shown in
    the page), with the same message."""
    gr = pytest.importorskip('gradio',
                             reason='pip install -r requirements/demo.txt')
    app = web_demo.build_app(_NoModel())
    assert app.analytics_enabled is False  # offline: no telemetry
    (handler, ) = [f.fn for f in app.fns.values()]
    with pytest.raises(gr.Error, match='no expression'):
        handler(scene, '  ')
    with pytest.raises(gr.Error, match='no image'):
        handler(None, 'the red square')


def test_default_checkpoint_is_the_main_jobs(web_demo, tmp_path,
                                             monkeypatch, capsys,
                                             no_model_build):
    work_dir = tmp_path / 'main_job'
    monkeypatch.setattr(web_demo, 'DEFAULT_WORK_DIR', str(work_dir))
    # no `make demo` yet: one error line, before any model is built
    # (said with or without gradio installed)
    monkeypatch.setattr(web_demo, 'import_gradio', lambda: None)
    assert web_demo.main(['--port', '0']) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('error: ')
    assert 'make demo' in err and '--checkpoint' in err
    # the file named by last_checkpoint, as make demo writes it (a path
    # from the repository root), found in the work dir
    work_dir.mkdir()
    (work_dir / 'iter_500.pth').write_bytes(b'weights')
    (work_dir / 'last_checkpoint').write_text(
        'work_dirs/main_job/iter_500.pth')
    assert web_demo.default_checkpoint() == str(work_dir / 'iter_500.pth')
    (work_dir / 'iter_500.pth').unlink()
    with pytest.raises(InputFileError, match='iter_500.pth'):
        web_demo.default_checkpoint()


def test_without_gradio_one_error_line_says_what_to_install(
        web_demo, monkeypatch, capsys, no_model_build):
    monkeypatch.setitem(sys.modules, 'gradio', None)  # import fails
    assert web_demo.main(['--checkpoint', 'any.pth']) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith('error: ')
    assert 'pip install -r requirements/demo.txt' in err


@pytest.mark.parametrize('argv', [['--threshold', '1.5'], ['--alpha', '-1'],
                                  ['--port', '70000']])
def test_bad_options_are_usage_errors(web_demo, argv):
    with pytest.raises(SystemExit) as info:
        web_demo.parse_args(argv)
    assert info.value.code == 2


def test_a_taken_port_is_one_error_line(web_demo, cpu_checkpoint, capsys):
    import socket
    pytest.importorskip('gradio',
                        reason='pip install -r requirements/demo.txt')
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert web_demo.main([
            '--config', CPU_CONFIG, '--checkpoint', cpu_checkpoint,
            '--device', 'cpu', '--port', str(port)]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith('error: ') and f'127.0.0.1:{port}' in err
    assert 'pass another --port' in err
