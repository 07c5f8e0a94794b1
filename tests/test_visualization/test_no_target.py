"""Drawings of no-target predictions: the legend / caption says so."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from projects.magnet.utils.errors import InvalidInputError
from projects.magnet.visualization import RefSegLocalVisualizer
from projects.magnet.visualization import prediction_panels
from projects.magnet.visualization.mask_drawing import expression_labels


def _spy_texts(vis, monkeypatch):
    seen = []
    original = vis._render_texts

    def spy(canvas, texts, *args, **kwargs):
        seen.extend(texts)
        return original(canvas, texts, *args, **kwargs)
    monkeypatch.setattr(vis, '_render_texts', spy)
    return seen


def test_expression_labels():
    assert expression_labels(['a', 'b'], None) == ['a', 'b']
    assert expression_labels(['a', 'b'], np.array([False, True])) == [
        'a', 'b (no target)']
    with pytest.raises(InvalidInputError, match='1 no-target flags but 2'):
        expression_labels(['a', 'b'], [True])


def test_expression_masks_legend(monkeypatch):
    vis = RefSegLocalVisualizer(name='nt_legend')
    seen = _spy_texts(vis, monkeypatch)
    image = np.full((64, 96, 3), 120, np.uint8)
    masks = np.zeros((2, 64, 96), bool)
    masks[0, 10:30, 10:40] = True
    with_flag = vis.draw_expression_masks(image, masks, ['man', 'dog'],
                                          no_target=[False, True])
    assert seen == ['man', 'dog (no target)']
    seen.clear()
    without = vis.draw_expression_masks(image, masks, ['man', 'dog'])
    assert seen == ['man', 'dog']
    assert with_flag.shape == without.shape == (64, 96, 3)
    assert (with_flag != without).any()  # the drawn text differs


def test_datasample_captions(monkeypatch):
    vis = RefSegLocalVisualizer(name='nt_sample')
    seen = _spy_texts(vis, monkeypatch)
    image = np.full((32, 32, 3), 90, np.uint8)
    sample = SegDataSample(metainfo=dict(text='a dog', no_target=True))
    sample.gt_sem_seg = PixelData(data=torch.zeros(1, 32, 32).long())
    sample.pred_sem_seg = PixelData(data=torch.zeros(1, 32, 32).long())
    sample.set_data(dict(pred_no_target=True, no_target_score=0.9))
    vis.draw_datasample(image, sample)
    assert 'ground truth: no target' in seen
    assert 'prediction: no target' in seen
    assert not any('IoU' in t for t in seen)
    # a target sample keeps the plain labels and its IoU
    seen.clear()
    sample = SegDataSample(metainfo=dict(text='a man', no_target=False))
    gt = torch.zeros(1, 32, 32).long()
    gt[:, 4:20, 4:20] = 1
    sample.gt_sem_seg = PixelData(data=gt)
    sample.pred_sem_seg = PixelData(data=gt.clone())
    sample.set_data(dict(pred_no_target=False))
    vis.draw_datasample(image, sample)
    assert 'ground truth' in seen
    assert 'prediction  IoU 100.0%' in seen


def test_legend_below(monkeypatch):
    seen = _spy_texts(prediction_panels._text_drawer(), monkeypatch)
    image = np.full((40, 40, 3), 90, np.uint8)
    prediction_panels.legend_below(image, ['cat', 'dog'],
                                   no_target=[True, False])
    assert seen == ['cat (no target)', 'dog']
