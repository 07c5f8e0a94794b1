"""prediction_panels: image | GT | prediction panels with the caption below,
grids of them, the legend strip below an image, and ``tools/main_job.py``'s
``write_overlays`` that writes them."""
from __future__ import annotations

import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample
from PIL import Image

from projects.magnet.datasets.refsynth import (COLOURS, annotate,
                                              generate_scene, paint)
from projects.magnet.visualization import (EXPRESSION_COLORS, MASK_COLOR,
                                           legend_below, mask_view,
                                           panel_scale, prediction_grid,
                                           prediction_panel)
from projects.magnet.visualization.prediction_panels import (
    CAPTION_BG, GRID_GAP_COLOR, _text_drawer)

from ..conftest import load_tool

#: The generator paints an object with its colour times U(0.85, 1.1) plus
#: noise; every shade of that range counts as a scene colour.
SCENE_SHADES = np.array([np.clip(np.array(c) * f, 0, 255)
                         for c in COLOURS.values()
                         for f in np.linspace(0.85, 1.1, 11)])
#: Smallest RGB distance a mask pixel keeps from every scene shade.
MARGIN = 60.0


def _kron(arr, s):
    if arr.ndim == 3:
        return np.kron(arr, np.ones((s, s, 1), arr.dtype))
    return np.kron(arr, np.ones((s, s), arr.dtype))


@pytest.fixture(scope='module')
def scene():
    """A real generated 128x128 scene, one object's visible mask, and a
    prediction that is another object's mask."""
    rng = np.random.default_rng([3, 1])
    objects, masks = generate_scene(rng, 128)
    img = paint(objects, masks, rng, 128, textured=True)
    anns = annotate(objects, masks, rng)
    gt, pred = anns[0]['visible'], anns[1]['visible']
    assert gt.any() and pred.any() and not (gt & pred).all()
    return img, gt, pred


def _distance_to_scene_colours(pixels):
    pixels = np.asarray(pixels, np.float32).reshape(-1, 1, 3)
    return np.sqrt(((pixels - SCENE_SHADES[None]) ** 2).sum(-1)).min(1)


def test_mask_colour_is_no_scene_colour():
    assert _distance_to_scene_colours([MASK_COLOR]).min() > 150
    # ... and the demo's red / green are (they were the old overlay colours)
    assert _distance_to_scene_colours([(215, 40, 40)]).min() < 1


def test_panel_layout_image_region_and_masks(scene):
    img, gt, pred = scene
    drawn = prediction_panel(img, gt, pred, 'the big red star', scale=2)
    assert drawn.dtype == np.uint8
    assert drawn.shape[1] == 3 * 256 and drawn.shape[0] > 256
    assert panel_scale((128, 128)) == 2  # the default for 128x128
    np.testing.assert_array_equal(
        prediction_panel(img, gt, pred, 'the big red star'), drawn)
    big = _kron(img, 2)
    # panel 1: the upscaled image, untouched
    np.testing.assert_array_equal(drawn[:256, :256], big)
    # panels 2 and 3: mask_view of the upscaled GT / prediction
    np.testing.assert_array_equal(
        drawn[:256, 256:512], mask_view(big, _kron(gt, 2)))
    np.testing.assert_array_equal(
        drawn[:256, 512:], mask_view(big, _kron(pred, 2)))
    for panel, mask in ((drawn[:256, 256:512], gt),
                        (drawn[:256, 512:], pred)):
        m = _kron(mask, 2)
        # the mask pixels are far from every colour the generator paints
        assert _distance_to_scene_colours(panel[m]).min() > MARGIN
        # the rest of the scene is grey: no scene colour is left there
        rest = panel[~m].astype(int)
        assert (rest[:, 0] == rest[:, 1]).all() and \
            (rest[:, 1] == rest[:, 2]).all()
    # masks differ -> the two mask panels differ where the masks do
    assert (drawn[:256, 256:512] != drawn[:256, 512:]).any()


def test_default_and_explicit_scales():
    img = np.full((40, 50, 3), 120, np.uint8)
    m = np.zeros((40, 50), bool)
    m[5:20, 5:30] = True
    auto = prediction_panel(img, m, m, 'the square')
    s = panel_scale((40, 50))
    assert s == 6  # ceil(256 / 50)
    assert auto.shape[1] == 3 * 50 * s and auto.shape[0] > 40 * s
    three = prediction_panel(img, m, m, 'the square', scale=3)
    assert three.shape[1] == 3 * 150
    np.testing.assert_array_equal(three[:120, :150], _kron(img, 3))
    with pytest.raises(ValueError, match='differ in size'):
        prediction_panel(img, m[:30], m, 'x')
    with pytest.raises(ValueError, match='scale'):
        prediction_panel(img, m, m, 'x', scale=0)


def test_caption_lies_below_the_panels(scene, monkeypatch):
    img, gt, pred = scene
    drawer = _text_drawer()
    seen = []
    orig = drawer.draw_texts

    def draw_texts(texts, positions, *args, **kwargs):
        seen.extend(zip(texts, np.asarray(positions)[:, 1]))
        return orig(texts, positions, *args, **kwargs)

    monkeypatch.setattr(drawer, 'draw_texts', draw_texts)
    short = prediction_panel(img, gt, pred, 'the star', iou=0.25, scale=2)
    long = prediction_panel(img, gt, pred, 'the second small blue hexagon '
                            'to the left of the big yellow diamond ' * 2,
                            iou=0.25, scale=2)
    # the panel rows are identical whatever the caption: no text on them
    np.testing.assert_array_equal(short[:256], long[:256])
    assert long.shape[0] > short.shape[0]  # the long expression wraps
    # the caption strip carries text (light pixels on the dark strip)
    strip = short[256:]
    assert (strip.max(axis=2) > 180).sum() > 100
    assert (strip == CAPTION_BG).all(axis=2).mean() > 0.5
    texts = [t for t, _ in seen]
    assert '"the star"' in texts and 'IoU 25.0%' in texts
    assert {'image', 'ground truth', 'prediction'} <= set(texts)
    assert min(y for _, y in seen) >= 256


def test_iou_is_computed_from_the_masks(monkeypatch):
    drawer = _text_drawer()
    seen = []
    orig = drawer.draw_texts
    monkeypatch.setattr(
        drawer, 'draw_texts',
        lambda texts, *a, **k: (seen.extend(texts), orig(texts, *a, **k))[1])
    img = np.zeros((64, 64, 3), np.uint8)
    gt = np.zeros((64, 64), np.int64)
    gt[10:40, 10:40] = 1
    pred = np.zeros((64, 64), np.int64)
    pred[20:50, 20:50] = 1  # I = 400, U = 1400
    prediction_panel(img, gt, pred, 'a', scale=1)
    assert 'IoU 28.6%' in seen
    # ignored pixels count for neither mask: GT 800, prediction 500,
    # I = 300, U = 1000
    gt[30:64, 30:64] = 255
    prediction_panel(img, gt, pred, 'a', scale=1)
    assert seen[-1] == 'IoU 30.0%'


def test_grid_places_panel_k_at_its_offset():
    rng = np.random.default_rng(0)
    panels = [rng.integers(0, 200, (30, 50, 3), dtype=np.uint8)
              for _ in range(5)]
    grid = prediction_grid(panels, cols=2, gap=4)
    assert grid.shape == (3 * 30 + 2 * 4, 2 * 50 + 4, 3)
    for k, panel in enumerate(panels):
        y, x = (k // 2) * 34, (k % 2) * 54
        np.testing.assert_array_equal(grid[y:y + 30, x:x + 50], panel)
    assert (grid[30:34] == GRID_GAP_COLOR).all()  # gap between rows
    assert (grid[:, 50:54] == GRID_GAP_COLOR).all()  # between columns
    assert (grid[68:, 54:] == GRID_GAP_COLOR).all()  # no 6th panel
    # 16 panels in a 4x4 grid; fewer panels than columns: one row
    assert prediction_grid((panels * 4)[:16], cols=4, gap=8).shape == \
        (4 * 30 + 24, 4 * 50 + 24, 3)
    assert prediction_grid(panels[:3], cols=4, gap=8).shape == (30, 166, 3)
    # different sizes: cells of the largest, the rest is caption colour
    mixed = prediction_grid([panels[0], panels[1][:20, :40]], cols=2, gap=2)
    assert mixed.shape == (30, 102, 3)
    np.testing.assert_array_equal(mixed[:20, 52:92], panels[1][:20, :40])
    assert (mixed[20:, 52:] == CAPTION_BG).all()
    with pytest.raises(ValueError):
        prediction_grid([], cols=4)
    with pytest.raises(ValueError):
        prediction_grid(panels, cols=0)


def test_grid_draws_items(scene):
    img, gt, pred = scene
    item = dict(image=img, gt_mask=gt, pred_mask=pred, text='the star')
    grid = prediction_grid([item, (img, pred, gt, 'the other', 0.5)],
                           cols=2, gap=6, scale=1)
    first = prediction_panel(**item, scale=1)
    second = prediction_panel(img, pred, gt, 'the other', 0.5, scale=1)
    assert grid.shape == (first.shape[0], 2 * 384 + 6, 3)
    np.testing.assert_array_equal(grid[:, :384], first)
    np.testing.assert_array_equal(grid[:, 390:], second)


def test_legend_below_leaves_the_image_untouched():
    img = np.random.default_rng(2).integers(0, 256, (50, 80, 3),
                                            dtype=np.uint8)
    exprs = ['the red circle', 'the big blue square on the right ' * 3]
    out = legend_below(img, exprs)
    assert out.shape[0] > 50 and out.shape[1] == 360
    np.testing.assert_array_equal(out[:50, :80], img)
    assert (out[:50, 80:] == CAPTION_BG).all()
    ys = []
    for color in EXPRESSION_COLORS[:2]:
        hit = (out == np.array(color, np.uint8)).all(axis=2)
        hit[:50, :80] = False
        assert hit.sum() >= 144  # a 12x12 swatch at least
        ys.append(np.flatnonzero(hit.any(axis=1)))
    assert ys[0].min() >= 50 and ys[0].max() < ys[1].min()
    wide = legend_below(np.zeros((20, 500, 3), np.uint8), exprs[:1],
                        colors=[(0, 0, 255)])
    assert wide.shape[1] == 500
    with pytest.raises(ValueError, match='colours'):
        legend_below(img, exprs, colors=[(0, 0, 0)])


# ------------------------------------------------------- tools/main_job.py
class _FakeModel:
    """Predicts the ground truth moved 3 pixels to the right."""

    def eval(self):
        return self

    def data_preprocessor(self, data):
        return dict(inputs=torch.stack(data['inputs']).float(),
                    data_samples=data['data_samples'])

    def predict(self, inputs, data_samples):
        out = []
        for s in data_samples:
            r = s.clone()
            r.pred_sem_seg = PixelData(
                data=torch.roll(s.gt_sem_seg.data, 3, dims=2))
            out.append(r)
        return out


def _fake_item(k):
    rng = np.random.default_rng(k)
    bgr = rng.integers(0, 256, (3, 16, 16), dtype=np.uint8)
    gt = torch.zeros(1, 16, 16, dtype=torch.long)
    gt[:, 2 + k % 5:10, 3:12] = 1
    sample = SegDataSample(metainfo=dict(text=f'object {k}'))
    sample.gt_sem_seg = PixelData(data=gt)
    return dict(inputs=torch.from_numpy(bgr), data_samples=sample)


def test_main_job_write_overlays(tmp_path):
    main_job = load_tool('tools/main_job.py')
    val = [_fake_item(k) for k in range(20)]
    other = [_fake_item(100 + k) for k in range(20)]  # testA: not drawn
    dataset = SimpleNamespace(datasets=[val, other])
    runner = SimpleNamespace(model=_FakeModel(),
                             test_dataloader=SimpleNamespace(dataset=dataset))
    out_dir = str(tmp_path / 'work' / 'overlays')
    paths = main_job.write_overlays(runner, out_dir, 3)
    assert paths[:-1] == [osp.join(out_dir, f'overlay_{i:05d}.png')
                          for i in (0, 6, 12)]
    assert paths[-1] == str(tmp_path / 'work' / 'predictions_grid.png')
    assert all(osp.isfile(p) for p in paths)

    def expected(k):
        item = val[k]
        rgb = item['inputs'].numpy().transpose(1, 2, 0)[..., ::-1]
        gt = item['data_samples'].gt_sem_seg.data[0].numpy()
        return prediction_panel(rgb, gt, np.roll(gt, 3, axis=1),
                                f'object {k}')

    first = np.asarray(Image.open(paths[1]).convert('RGB'))
    np.testing.assert_array_equal(first, expected(6))
    grid = np.asarray(Image.open(paths[-1]).convert('RGB'))
    panels = [expected(k) for k in range(16)]
    h = max(p.shape[0] for p in panels)
    w = panels[0].shape[1]
    assert grid.shape == (4 * h + 3 * 8, 4 * w + 3 * 8, 3)
    for k in (0, 5, 15):
        y, x = (k // 4) * (h + 8), (k % 4) * (w + 8)
        p = panels[k]
        np.testing.assert_array_equal(
            grid[y:y + p.shape[0], x:x + p.shape[1]], p)
