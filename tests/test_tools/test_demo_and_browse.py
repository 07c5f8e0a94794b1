"""demo/image_demo.py and tools/analysis_tools/browse_dataset.py."""
from __future__ import annotations

import glob
import os.path as osp

import mmcv
import numpy as np
import pytest
from PIL import Image

from projects.magnet.apis import MagNetInferencer
from projects.magnet.datasets import RefCOCODataset
from projects.magnet.datasets.transforms import decode_refer_mask
from projects.magnet.visualization import (EXPRESSION_COLORS,
                                           RefSegLocalVisualizer, blend_mask,
                                           mask_outline)

from ..conftest import REPO_ROOT, load_tool, tiny_refer_data
from ..test_apis import write_tiny_model

DEMO = osp.join(REPO_ROOT, 'demo', 'image_demo.py')
BROWSE = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'browse_dataset.py')


@pytest.fixture(scope='module')
def tiny_model_files(tmp_path_factory, minilm_dir):
    return write_tiny_model(tmp_path_factory.mktemp('demo_model'),
                            minilm_dir, seed=1)


def test_demo_writes_overlay_with_the_legend_below(tiny_model_files,
                                                   tmp_path, capsys):
    cfg_file, ckpt = tiny_model_files
    rng = np.random.default_rng(5)
    rgb = rng.integers(40, 200, (72, 100, 3), dtype=np.uint8)
    rgb[10:50, 10:45] = (220, 30, 30)
    img_path = str(tmp_path / 'scene.png')
    Image.fromarray(rgb).save(img_path)
    exprs = ['the red square', 'the rest of the picture']
    # threshold at the median probability of the first expression: about
    # half of the image is masked, whatever the random weights give
    probs = MagNetInferencer(cfg_file, ckpt, device='cpu')(
        img_path, exprs).probs
    thr = float(np.median(probs[0]))
    out_file = str(tmp_path / 'out' / 'demo.png')
    demo = load_tool('demo/image_demo.py')
    assert demo.main([img_path] + exprs + [
        '--config', cfg_file, '--checkpoint', ckpt, '--out-file', out_file,
        '--threshold', repr(thr), '--device', 'cpu']) == 0
    printed = capsys.readouterr().out
    assert 'the red square' in printed and out_file in printed
    out = np.asarray(Image.open(out_file).convert('RGB'))
    # the image on top, the legend on a strip below it; the canvas is
    # widened to 360 px so that the legend of a small image is readable
    assert out.shape[0] > 72 and out.shape[1] == 360

    masks = probs > thr
    assert 0.3 < masks[0].mean() < 0.7
    expected = blend_mask(blend_mask(rgb, masks[0], EXPRESSION_COLORS[0],
                                     0.5), masks[1], EXPRESSION_COLORS[1], 0.5)
    # the whole image region is the overlay: no legend over it
    np.testing.assert_array_equal(out[:72, :100], expected)
    only0 = masks[0] & ~masks[1]
    assert only0.sum() > 50
    # masked pixels carry the expression's colour: they moved towards it
    col0 = np.array(EXPRESSION_COLORS[0], np.float32)
    before = np.abs(rgb[only0].astype(np.float32) - col0).sum(1)
    after = np.abs(out[:72, :100][only0].astype(np.float32) - col0).sum(1)
    assert (after < before).all()
    untouched = ~masks.any(0)
    np.testing.assert_array_equal(out[:72, :100][untouched], rgb[untouched])
    # the legend: a swatch of each expression's colour, below the image,
    # in order, and text (light pixels) next to them
    legend = out[72:]
    rows = []
    for color in EXPRESSION_COLORS[:2]:
        hit = (legend == np.array(color, np.uint8)).all(axis=2)
        assert hit.sum() >= 100, color  # a square swatch, >= 10x10
        rows.append(np.flatnonzero(hit.any(axis=1)).mean())
    assert rows[0] < rows[1]
    assert (legend[:, 40:].max(axis=2) > 200).sum() > 100
    # right of the image: plain background
    assert (out[:72, 100:] == out[:72, 100:][0, 0]).all()


@pytest.mark.parametrize('threshold, expected', [(0.0, [True, True]),
                                                  (1.0, [False, False])])
def test_demo_marks_no_target_expressions(tiny_model_files, tmp_path, capsys,
                                          monkeypatch, threshold, expected):
    """A model with the no-target decision: the legend lists such an
    expression as '<expression> (no target)' and its printed line says
    'no target'; the others are drawn and printed as before. (Thresholds
    0 and 1: every no-target score is above 0 and not above 1, whatever
    the random weights give.)"""
    from mmengine.config import Config

    from projects.magnet.visualization import prediction_panels
    cfg_file, ckpt = tiny_model_files
    cfg = Config.fromfile(cfg_file)
    cfg.model.decode_head.no_target = dict(loss_weight=1.0)
    cfg.model.test_cfg = dict(cfg.model.get('test_cfg') or {},
                              mode='whole', no_target_threshold=threshold)
    nt_cfg = str(tmp_path / 'tiny_no_target.py')
    cfg.dump(nt_cfg)
    labels = []
    original = prediction_panels.expression_labels

    def spy(expressions, no_target=None):
        labels.append(original(expressions, no_target))
        return labels[-1]
    monkeypatch.setattr(prediction_panels, 'expression_labels', spy)
    img_path = str(tmp_path / 'scene.png')
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(img_path)
    exprs = ['the red square', 'the green circle']
    out_file = str(tmp_path / 'nt.png')
    demo = load_tool('demo/image_demo.py')
    assert demo.main([img_path] + exprs + [
        '--config', nt_cfg, '--checkpoint', ckpt, '--out-file', out_file,
        '--device', 'cpu']) == 0
    assert labels == [[e + (' (no target)' if nt else '')
                       for e, nt in zip(exprs, expected)]]
    lines = [ln for ln in capsys.readouterr().out.splitlines()
             if ln.rstrip().endswith(tuple(exprs))]
    assert len(lines) == 2
    for line, nt in zip(lines, expected):
        assert ('no target' in line) == nt, line
        if nt:  # the decision empties the mask
            assert line.lstrip().startswith('0.0% of the image')


def test_demo_bad_inputs_fail_with_clear_messages(tmp_path, capsys):
    demo = load_tool('demo/image_demo.py')
    missing = str(tmp_path / 'missing.jpg')
    assert demo.main([missing, 'the cat']) == 1
    err = capsys.readouterr().err
    assert 'image file not found' in err and 'missing.jpg' in err
    img = str(tmp_path / 'img.png')
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    assert demo.main([img, 'the cat', '  ']) == 1
    assert 'expression 1 is empty' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        demo.main([img, 'the cat', '--threshold', '1.5'])


# ------------------------------------------------------------ browse
@pytest.fixture(scope='module')
def refer_data(tmp_path_factory):
    return tiny_refer_data(tmp_path_factory, 'browse_refer', 1, 2, 0,
                           seed=11)


def test_browse_dataset_writes_mask_and_sentences(refer_data, tmp_path,
                                                  capsys):
    browse = load_tool('tools/analysis_tools/browse_dataset.py')
    out_dir = str(tmp_path / 'browse')
    assert browse.main(['--data-root', refer_data, '--dataset', 'refsynth',
                        '--split', 'val', '--output-dir', out_dir,
                        '--max-items', '2']) == 0
    printed = capsys.readouterr().out
    refs = RefCOCODataset(data_root=refer_data, dataset='refsynth',
                          split='val', per_sentence=False, test_mode=True,
                          pipeline=[], serialize_data=False)
    assert len(refs) > 2
    files = sorted(glob.glob(osp.join(out_dir, '*.png')))
    assert len(files) == 2
    vis = RefSegLocalVisualizer(name='browse_test')
    for index in range(2):
        info = refs.get_data_info(index)
        for sent in info['sentences']:  # every sentence is listed
            assert sent['raw'] in printed
        path = osp.join(out_dir, f'val_ref{info["ref_id"]:07d}.png')
        assert path in files
        drawn = mmcv.imread(path, channel_order='rgb')
        scale = vis.min_panel_size // 64
        assert drawn.shape[1] == 64 * scale
        assert drawn.shape[0] > 64 * scale  # the caption below
        img = np.asarray(Image.open(info['img_path']).convert('RGB'))
        mask = decode_refer_mask(info['segmentation'], 64, 64)
        big_img = np.kron(img, np.ones((scale, scale, 1), np.uint8))
        big_mask = np.kron(mask, np.ones((scale, scale), np.uint8)) == 1
        expected = blend_mask(big_img, big_mask, vis.gt_color,
                              vis.mask_alpha)
        expected[mask_outline(big_mask, scale // 2)] = vis.gt_color
        np.testing.assert_array_equal(drawn[:64 * scale], expected)
    # no output and no window: refused
    with pytest.raises(SystemExit):
        browse.main(['--data-root', refer_data, '--dataset', 'refsynth'])
