"""TimeBudgetTrainLoop: length from measured throughput, schedulers moved
to the new end, re-fit after a long gap, resumed runs keep their length."""
from __future__ import annotations

import pytest
import torch
from mmengine.optim.scheduler import MultiStepLR, PolyLR

from projects.magnet.engine import time_budget_loop
from projects.magnet.engine.time_budget_loop import (CALIBRATED_KEY,
                                                     rescale_schedulers)

from .toy import FakeClock, ToyModel, toy_dataloader


def make_runner(tmp_path, model, max_time, max_iters=1000, warmup=2,
                **loop):
    from mmengine.runner import Runner
    return Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=toy_dataloader(),
        train_cfg=dict(
            dict(type='TimeBudgetTrainLoop', max_time=max_time,
                 max_iters=max_iters, calibrate_iters=5, skip_iters=1),
            **loop),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False,
                 begin=0, end=warmup),
            dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False,
                 begin=warmup, end=max_iters)
        ],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=10**9, by_epoch=False)),
        default_scope='mmseg',
        log_level='WARNING')


@pytest.fixture
def clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(time_budget_loop.time, 'perf_counter', clock)
    return clock


def test_length_fills_the_budget_and_schedule_ends_there(tmp_path, clock):
    runner = make_runner(tmp_path, ToyModel(clock, step_s=0.1), max_time=3)
    runner.train()
    # 3 s of 0.1 s steps: 30 iterations (the first ones are measured too)
    assert runner.iter == 30
    poly = runner.param_schedulers[1]
    assert poly.end == 30 and poly.total_iters == 30 - 2 - 1
    # the warm-up keeps its length
    assert runner.param_schedulers[0].end == 2
    # the schedule annealed to ~0 by the end (power 1: lr of the last
    # step is base_lr / (remaining steps))
    lr = runner.optim_wrapper.get_lr()['lr'][0]
    assert lr < 0.1 / 20
    assert runner.message_hub.get_info(CALIBRATED_KEY) == 30


def test_slower_machine_gets_fewer_iterations(tmp_path, clock):
    runner = make_runner(tmp_path, ToyModel(clock, step_s=0.3), max_time=3)
    runner.train()
    assert runner.iter == 10


def test_long_gap_refits_the_remaining_length(tmp_path, clock):
    # iteration 10 takes 1 s more (an evaluation by a hook, say)
    runner = make_runner(
        tmp_path, ToyModel(clock, step_s=0.1, extra={10: 1.0}), max_time=3)
    runner.train()
    assert runner.iter == 20
    assert runner.param_schedulers[1].end == 20


def test_no_refit_when_disabled(tmp_path, clock):
    runner = make_runner(
        tmp_path, ToyModel(clock, step_s=0.1, extra={10: 1.0}), max_time=3,
        recalibrate=False)
    runner.train()
    assert runner.iter == 30  # overruns the budget by the gap


def test_bounds(tmp_path, clock):
    runner = make_runner(tmp_path, ToyModel(clock, step_s=0.1), max_time=100,
                         max_iters=40)
    runner.train()
    assert runner.iter == 40  # the upper bound
    runner = make_runner(tmp_path / 'b', ToyModel(clock, step_s=1.0),
                         max_time=3, min_iters=12)
    runner.train()
    assert runner.iter == 12  # the lower bound


def test_resumed_run_keeps_its_length(tmp_path, clock):
    runner = make_runner(tmp_path, ToyModel(clock, step_s=0.1), max_time=3)
    loop = runner.train_loop
    # what Runner.train() builds before the loop runs
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.param_schedulers = runner.build_param_scheduler(
        runner.param_schedulers)
    runner.message_hub.update_info(CALIBRATED_KEY, 17)
    loop._iter = 5  # as after loading a checkpoint at iteration 5
    loop.dataloader_iterator = iter([])  # not advanced in this test
    loop._max_iters = 1000

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    loop.run_iter = stop
    with pytest.raises(Stop):
        # IterBasedTrainLoop advances the dataloader first; give it data
        loop.dataloader_iterator = iter([None] * 10)
        loop.run()
    assert loop.max_iters == 17
    assert runner.param_schedulers[1].end == 17


def test_invalid_arguments(tmp_path, clock):
    with pytest.raises(ValueError, match='max_time'):
        make_runner(tmp_path, ToyModel(clock), max_time=0).train_loop
    with pytest.raises(ValueError, match='skip_iters'):
        make_runner(tmp_path, ToyModel(clock), max_time=1,
                    skip_iters=5).train_loop


def _optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def test_rescale_schedulers_rules():
    opt = _optimizer()
    warm = PolyLR(opt, by_epoch=False, begin=0, end=10)
    main = PolyLR(opt, by_epoch=False, begin=10, end=100)
    assert rescale_schedulers([warm, main], 100, 50, current=5) == 1
    assert (warm.end, main.end, main.total_iters) == (10, 50, 39)
    with pytest.raises(ValueError, match='begins at iteration 10'):
        rescale_schedulers([main], 50, 8, current=5)
    step = MultiStepLR(_optimizer(), milestones=[30], by_epoch=False,
                       begin=0, end=100)
    with pytest.raises(TypeError, match='MultiStepLR'):
        rescale_schedulers([step], 100, 50, current=5)
    # dict of schedulers (several optimizers)
    other = PolyLR(_optimizer(), by_epoch=False, begin=0, end=100)
    assert rescale_schedulers(dict(a=[other]), 100, 60, current=0) == 1
    assert other.end == 60
