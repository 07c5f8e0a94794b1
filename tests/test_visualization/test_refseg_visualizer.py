"""RefSegLocalVisualizer: GT | prediction panels with the expression and
the IoU, vis backends, the visualization hook, the demo's legend drawing."""
from __future__ import annotations

import os.path as osp
import warnings
from types import SimpleNamespace

import mmcv
import numpy as np
import pytest
import torch
from mmengine.registry import VISBACKENDS
from mmengine.structures import PixelData
from mmengine.visualization import LocalVisBackend
from mmseg.engine.hooks import SegVisualizationHook
from mmseg.structures import SegDataSample

from projects.magnet.visualization import (EXPRESSION_COLORS,
                                           RefSegLocalVisualizer, blend_mask,
                                           expression_of, mask_outline,
                                           sample_iou)

_count = [0]


def _name() -> str:
    _count[0] += 1
    return f'test_refseg_vis_{_count[0]}'


def _square(hw, y0, x0, side):
    m = torch.zeros(1, *hw, dtype=torch.long)
    m[:, y0:y0 + side, x0:x0 + side] = 1
    return m


def _sample(text='the red circle left of the triangle', hw=(64, 64)):
    """GT: 30x30 square at (10, 10); prediction: 30x30 at (20, 20):
    I = 400, U = 1400 -> IoU 28.6%."""
    s = SegDataSample(metainfo=dict(text=text))
    s.gt_sem_seg = PixelData(data=_square(hw, 10, 10, 30))
    s.pred_sem_seg = PixelData(data=_square(hw, 20, 20, 30))
    return s


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, (64, 64, 3),
                                             dtype=np.uint8)


def _record_texts(vis, monkeypatch):
    seen = []
    orig = vis.draw_texts

    def draw_texts(texts, *args, **kwargs):
        seen.extend([texts] if isinstance(texts, str) else texts)
        return orig(texts, *args, **kwargs)

    monkeypatch.setattr(vis, 'draw_texts', draw_texts)
    return seen


# ---------------------------------------------------------------- helpers
def test_sample_iou_follows_the_metric():
    gt = np.zeros((4, 4), int)
    gt[:2, :2] = 1
    pred = np.zeros((4, 4), int)
    pred[:2, :] = 1
    assert sample_iou(pred, gt) == pytest.approx(4 / 8)
    gt_ign = gt.copy()
    gt_ign[:2, 2:] = 255  # ignored pixels count for neither I nor U
    assert sample_iou(pred, gt_ign) == pytest.approx(1.0)
    assert sample_iou(np.zeros((4, 4)), np.zeros((4, 4))) == 0.0
    with pytest.raises(ValueError, match='differ in size'):
        sample_iou(np.zeros((4, 4)), np.zeros((4, 5)))


def test_expression_of_metainfo_keys():
    assert expression_of(dict(text='a', sentence='b')) == 'a'
    assert expression_of(dict(sentence='b')) == 'b'
    assert expression_of(dict(sentences=[dict(raw='x'), dict(raw='y')])) \
        == 'x | y'
    assert expression_of(dict()) == ''


def test_blend_and_outline():
    img = np.full((3, 3, 3), 100, np.uint8)
    m = np.zeros((3, 3), bool)
    m[1, 1] = True
    out = blend_mask(img, m, (200, 0, 50), 0.5)
    assert out[1, 1].tolist() == [150, 50, 75]
    assert (out[0, 0] == 100).all() and (img == 100).all()
    big = np.zeros((5, 5), bool)
    big[1:4, 1:4] = True
    edge = mask_outline(big)
    assert edge.sum() == 8 and not edge[2, 2]


# ------------------------------------------------------------ data sample
def test_draw_datasample_panels_caption_and_iou(image, monkeypatch):
    vis = RefSegLocalVisualizer(name=_name(), min_panel_size=64)
    texts = _record_texts(vis, monkeypatch)
    sample = _sample()
    drawn = vis.draw_datasample(image, sample)
    header = drawn.shape[0] - 64
    assert drawn.shape[1:] == (128, 3) and header > 0
    # the expression, wrapped to the width, then one label per panel
    assert ' '.join(texts[:-2]) == '"the red circle left of the triangle"'
    assert texts[-2:] == ['ground truth', 'prediction  IoU 28.6%']
    gt = sample.gt_sem_seg.data[0].numpy() == 1
    pred = sample.pred_sem_seg.data[0].numpy() == 1
    gt_panel = drawn[header:, :64]
    pred_panel = drawn[header:, 64:]
    np.testing.assert_array_equal(
        gt_panel, blend_mask(image, gt, vis.gt_color, vis.mask_alpha))
    expected = blend_mask(image, pred, vis.pred_color, vis.mask_alpha)
    expected[mask_outline(gt)] = vis.gt_color  # GT outline for comparison
    np.testing.assert_array_equal(pred_panel, expected)


def test_draw_datasample_sizes_and_enlargement(monkeypatch):
    """Masks at the model size, image at another size: the image is resized
    to the masks; small panels are enlarged by an integer factor; a GT of
    another size than the prediction is resized (nearest)."""
    vis = RefSegLocalVisualizer(name=_name(), min_panel_size=128)
    texts = _record_texts(vis, monkeypatch)
    img = np.full((90, 120, 3), 77, np.uint8)
    s = SegDataSample(metainfo=dict(sentence='the blue one'))
    s.pred_sem_seg = PixelData(data=_square((64, 64), 0, 0, 32))
    s.gt_sem_seg = PixelData(data=_square((32, 32), 0, 0, 16))
    drawn = vis.draw_datasample(img, s)
    assert drawn.shape[1] == 2 * 128
    assert 'prediction  IoU 100.0%' in texts and '"the blue one"' in texts
    # prediction only
    s2 = SegDataSample(metainfo=dict(text='x'))
    s2.pred_sem_seg = PixelData(data=_square((64, 64), 0, 0, 32))
    assert vis.draw_datasample(img, s2).shape[1] == 128
    assert texts[-1] == 'prediction'  # no GT: no IoU


def test_add_datasample_local_backend_and_out_file(image, tmp_path):
    vis = RefSegLocalVisualizer.get_instance(
        _name(), vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path / 'vis'), min_panel_size=64)
    sample = _sample()
    expected = vis.draw_datasample(image, sample)
    vis.add_datasample('val_img.jpg', image, sample, step=3)
    saved = osp.join(tmp_path, 'vis', 'vis_data', 'vis_image',
                     'val_img.jpg_3.png')
    assert osp.isfile(saved)
    np.testing.assert_array_equal(mmcv.imread(saved, channel_order='rgb'),
                                  expected)
    out = str(tmp_path / 'one.png')
    vis.add_datasample('x', image, sample, out_file=out)
    np.testing.assert_array_equal(mmcv.imread(out, channel_order='rgb'),
                                  expected)
    # draw_gt=False: the prediction panel alone
    vis.add_datasample('pred_only', image, sample, draw_gt=False, step=0)
    pred_only = mmcv.imread(
        osp.join(tmp_path, 'vis', 'vis_data', 'vis_image',
                 'pred_only_0.png'))
    assert pred_only.shape[1] == 64


@VISBACKENDS.register_module(force=True)
class _RecordingVisBackend(LocalVisBackend):
    """Any vis backend gets the drawing through ``add_image``."""

    images: list = []

    def add_image(self, name, image, step=0, **kwargs):
        type(self).images.append((name, image.copy(), step))


def test_any_vis_backend_receives_the_drawing(image, tmp_path):
    _RecordingVisBackend.images = []
    vis = RefSegLocalVisualizer.get_instance(
        _name(), vis_backends=[dict(type='_RecordingVisBackend')],
        save_dir=str(tmp_path), min_panel_size=64)
    vis.add_datasample('img', image, _sample(), step=7)
    (name, drawn, step), = _RecordingVisBackend.images
    assert name == 'img' and step == 7
    np.testing.assert_array_equal(drawn, vis.draw_datasample(image,
                                                             _sample()))


def test_tensorboard_backend(image, tmp_path):
    pytest.importorskip('tensorboard')
    import glob
    vis = RefSegLocalVisualizer.get_instance(
        _name(), vis_backends=[dict(type='TensorboardVisBackend')],
        save_dir=str(tmp_path), min_panel_size=64)
    vis.add_datasample('img', image, _sample(), step=1)
    vis.close()
    events = glob.glob(str(tmp_path / '**' / 'events.out.tfevents.*'),
                       recursive=True)
    assert events
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    acc = EventAccumulator(osp.dirname(events[0]))
    acc.Reload()
    (event, ) = acc.Images('img')
    drawn = vis.draw_datasample(image, _sample())
    assert (event.step, event.height, event.width) == (1, ) + drawn.shape[:2]


def test_visualization_hook_writes_panels(image, tmp_path):
    """The tools/test.py --show-dir path: SegVisualizationHook reads the
    image file and calls add_datasample of the current visualizer."""
    img_path = str(tmp_path / 'scene.png')
    mmcv.imwrite(mmcv.rgb2bgr(image), img_path)
    vis = RefSegLocalVisualizer.get_instance(
        _name(), vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path / 'show'), min_panel_size=64)
    hook = SegVisualizationHook(draw=True, interval=1)
    assert hook._visualizer is vis
    sample = _sample()
    sample.set_metainfo(dict(img_path=img_path))
    hook.after_test_iter(SimpleNamespace(iter=0), 0, {}, [sample])
    saved = osp.join(tmp_path, 'show', 'vis_data', 'vis_image',
                     'test_scene.png_0.png')
    np.testing.assert_array_equal(mmcv.imread(saved, channel_order='rgb'),
                                  vis.draw_datasample(image, sample))
    # evaluation has one item per sentence: two sentences of one image give
    # two pictures
    a, b = _sample('the left one'), _sample('the right one')
    for s, sent_id in ((a, 11), (b, 12)):
        s.set_metainfo(dict(img_path=img_path, ref_id=5, sent_id=sent_id))
    hook.after_test_iter(SimpleNamespace(iter=0), 1, {}, [a, b])
    for sent_id in (11, 12):
        assert osp.isfile(
            osp.join(tmp_path, 'show', 'vis_data', 'vis_image',
                     f'test_scene.png_ref5_sent{sent_id}_0.png'))


def test_non_ascii_caption(image):
    vis = RefSegLocalVisualizer(name=_name(), min_panel_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # missing CJK glyphs
        drawn = vis.draw_datasample(image, _sample('左边的 chat à gauche 🐶'))
    assert drawn.shape[1] == 128


# ------------------------------------------------------------------- demo
def test_draw_expression_masks_colours_and_legend(image):
    vis = RefSegLocalVisualizer(name=_name())
    img = np.random.default_rng(1).integers(0, 256, (96, 128, 3),
                                            dtype=np.uint8)
    masks = np.zeros((2, 96, 128), bool)
    masks[0, 40:90, 10:70] = True
    masks[1, 60:95, 50:120] = True  # overlaps mask 0
    exprs = ['the red circle', 'the big blue square on the right']
    drawn = vis.draw_expression_masks(img, masks, exprs)
    assert drawn.shape == img.shape and drawn.dtype == np.uint8
    expected = blend_mask(blend_mask(img, masks[0], EXPRESSION_COLORS[0],
                                     0.5), masks[1], EXPRESSION_COLORS[1], 0.5)
    y1 = vis.legend_box((96, 128), 2)[3]
    assert 0 < y1 < 48
    np.testing.assert_array_equal(drawn[y1:], expected[y1:])
    assert (drawn[:y1] != expected[:y1]).any()  # the legend is drawn
    plain = vis.draw_expression_masks(img, masks, exprs, legend=False,
                                      colors=[(0, 0, 0), (255, 255, 255)],
                                      alpha=1.0)
    assert (plain[masks[1]] == 255).all()
    assert (plain[masks[0] & ~masks[1]] == 0).all()
    np.testing.assert_array_equal(plain[~masks.any(0)], img[~masks.any(0)])
    with pytest.raises(ValueError, match='2 masks but 1 expressions'):
        vis.draw_expression_masks(img, masks, exprs[:1])
    with pytest.raises(ValueError, match='differ in size'):
        vis.draw_expression_masks(img[:50], masks, exprs)


def test_legend_with_more_rows_than_fit():
    vis = RefSegLocalVisualizer(name=_name())
    img = np.zeros((40, 60, 3), np.uint8)
    masks = np.zeros((12, 40, 60), bool)
    drawn = vis.draw_expression_masks(img, masks, [f'e{i}' for i in
                                                   range(12)])
    assert drawn.shape == img.shape
    x0, y0, x1, y1, _ = vis.legend_box((40, 60), 12)
    assert y1 <= 40
