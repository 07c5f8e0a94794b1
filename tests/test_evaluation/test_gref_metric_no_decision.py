"""GRefSegMetric with a model that makes no no-target decision (no
``pred_no_target``): every prediction counts as a target, one warning per
evaluation."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from projects.magnet.evaluation import GRefSegMetric
from projects.magnet.evaluation import gref_metric as metric_module

Z = np.zeros((4, 4), np.int64)
HALF = Z.copy()
HALF[:2] = 1  # 8 px
MID = Z.copy()
MID[1:3] = 1  # 8 px, 4 of them in HALF


def _samples(with_flag: bool):
    """A target sentence (GT HALF, predicted MID), a no-target one
    (predicted HALF) and a no-target one predicted empty."""
    rows = [(MID, HALF, False), (HALF, Z, True), (Z, Z, True)]
    out = []
    for i, (pred, gt, no_target) in enumerate(rows):
        s = SegDataSample(metainfo=dict(img_path='x.jpg', ref_id=i,
                                        sent_id=i, no_target=no_target))
        s.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
        s.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
        if with_flag:
            s.pred_no_target = False
        out.append(s)
    return out


@pytest.fixture
def logs(monkeypatch):
    seen = []
    monkeypatch.setattr(
        metric_module, 'print_log',
        lambda msg, logger=None, level=logging.INFO: seen.append(
            (level, msg)))
    return seen


def _warnings(logs):
    return [m for level, m in logs if level == logging.WARNING]


def test_missing_pred_no_target_counts_as_target(logs):
    metric = GRefSegMetric()
    metric.process({}, _samples(with_flag=False))
    res = metric.evaluate(3)
    # the same scores as predictions flagged "target" explicitly
    explicit = GRefSegMetric()
    explicit.process({}, _samples(with_flag=True))
    assert res == explicit.evaluate(3)
    # target: I=4, U=12; the no-target sentences predicted target score 0
    # and add their predicted areas (8 and 0) to U
    assert res['gIoU'] == pytest.approx(100 * (4 / 12) / 3)
    assert res['cIoU'] == pytest.approx(100 * 4 / 20)
    assert res['T_acc'] == 100 and res['N_acc'] == 0
    warned = _warnings(logs)
    assert len(warned) == 1, warned  # one line, not one per sample
    assert 'pred_no_target' in warned[0] and 'x.jpg ref_id=0' in warned[0]
    assert 'decode_head.no_target' in warned[0]


def test_one_warning_per_evaluation_and_none_with_the_flag(logs):
    metric = GRefSegMetric()
    for expected in (1, 2):  # two evaluations, each warns once
        for s in _samples(with_flag=False):
            metric.process({}, [s])  # several batches
        metric.evaluate(3)
        assert len(_warnings(logs)) == expected
    metric.process({}, _samples(with_flag=True))
    metric.evaluate(3)
    assert len(_warnings(logs)) == 2  # a model with the decision: silent


def test_other_missing_fields_still_fail():
    s = _samples(with_flag=False)[0]
    del s.gt_sem_seg
    with pytest.raises(KeyError, match='"gt_sem_seg"'):
        GRefSegMetric().process({}, [s])
    s = SegDataSample(metainfo=dict(img_path='x.jpg', ref_id=1, sent_id=1))
    s.pred_sem_seg = PixelData(data=torch.as_tensor(Z)[None])
    s.gt_sem_seg = PixelData(data=torch.as_tensor(Z)[None])
    with pytest.raises(KeyError, match='"no_target"'):
        GRefSegMetric().process({}, [s])
