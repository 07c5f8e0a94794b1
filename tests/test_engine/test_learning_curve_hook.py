"""LearningCurveHook: points at fractions of the (run-time) length, a fixed
val subset, the losses since the previous point, JSON + PNG written."""
from __future__ import annotations

import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from projects.magnet.engine import LearningCurveHook, plot_learning_curve
from projects.magnet.engine import time_budget_loop

from .toy import FakeClock, ToyModel, toy_dataloader


def make_runner(tmp_path, model, train_cfg, hook):
    from mmengine.runner import Runner
    loader = toy_dataloader('DefaultSampler', shuffle=False)
    return Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=toy_dataloader(),
        val_dataloader=loader,
        val_evaluator=dict(type='ToyEngineMetric'),
        val_cfg=dict(type='ValLoop'),
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05)),
        custom_hooks=[hook],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=10**9, by_epoch=False)),
        default_scope='mmseg',
        log_level='WARNING')


def test_points_files_and_subset(tmp_path):
    hook = dict(type='LearningCurveHook', fractions=(0.25, 0.5, 1.0),
                num_samples=6, metric='score', losses=('loss', 'absent'))
    runner = make_runner(
        tmp_path, ToyModel(),
        dict(type='IterBasedTrainLoop', max_iters=40, val_interval=10**9),
        hook)
    runner.train()
    with open(osp.join(tmp_path, 'learning_curve.json')) as f:
        curve = json.load(f)
    points = curve['points']
    assert [p['iter'] for p in points] == [10, 20, 40]
    # a fixed subset of 6 of the 16 val items at every point
    assert all(p['metrics']['count'] == 6 for p in points)
    # the model learns y = x0 - x1: the score rises, the loss falls
    scores = [p['metrics']['score'] for p in points]
    losses = [p['losses']['loss'] for p in points]
    assert scores[-1] > scores[0] and losses[-1] < losses[0]
    assert all(set(p['losses']) == {'loss'} for p in points)
    png = np.asarray(Image.open(osp.join(tmp_path, 'learning_curve.png')))
    assert png.ndim == 3 and png.shape[1] > png.shape[0] > 200


def test_follows_a_length_set_at_run_time(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(time_budget_loop.time, 'perf_counter', clock)
    hook = dict(type='LearningCurveHook', fractions=(0.5, 1.0),
                num_samples=4, metric='score')
    runner = make_runner(
        tmp_path, ToyModel(clock, step_s=0.1),
        dict(type='TimeBudgetTrainLoop', max_time=2.0, max_iters=1000,
             calibrate_iters=4, skip_iters=1),
        hook)
    runner.train()
    points = json.load(open(osp.join(tmp_path, 'learning_curve.json')))
    assert [p['iter'] for p in points['points']] == [10, 20]
    assert all(p['max_iters'] == 20 for p in points['points'])


def test_invalid_arguments():
    with pytest.raises(ValueError, match='fractions'):
        LearningCurveHook(fractions=(0.0, 0.5))
    with pytest.raises(ValueError, match='fractions'):
        LearningCurveHook(fractions=(0.5, 1.5))
    with pytest.raises(ValueError, match='num_samples'):
        LearningCurveHook(num_samples=0)


def test_plot_groups(tmp_path):
    points = [
        dict(iter=i, losses=dict(loss=1.0 / i),
             metrics={'oIoU': 10.0 * i, 'relation/oIoU': 5.0 * i,
                      'mIoU': 3.0})
        for i in (1, 2, 3)
    ]
    path = str(tmp_path / 'c.png')
    plot_learning_curve(points, path)
    assert Image.open(path).size[0] > 500
