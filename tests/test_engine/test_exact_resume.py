"""Exact resume through the real tools: N iterations straight vs N/2, a
SIGKILL of the training process after its checkpoint, ``--resume`` and the
rest. Same weights, optimizer and scheduler state, the same samples, drawn
sentences, masked tokens and generator states at every iteration; and the
same comparison with the random state *not* restored differs (the test can
fail)."""
from __future__ import annotations

import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

from projects.magnet.compat import load_weights
from projects.magnet.datasets.refsynth import generate_refer_dataset

from ..conftest import REPO_ROOT

CONFIG = osp.join(REPO_ROOT, 'configs', 'magnet',
                  'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py')
N = 6  # iterations; checkpoint and kill at N // 2; val every 2


def _config(tmp, root: str, extra: str = '') -> str:
    text = f'''
_base_ = [{CONFIG!r}]
custom_imports = dict(imports=['tests.test_engine.probe_hooks'],
                      allow_failed_imports=False)
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={N},
                 val_begin=1, val_interval=2)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
    dict(type='PolyLR', eta_min=0., power=0.9, by_epoch=False, begin=2,
         end={N})]
train_dataloader = dict(batch_size=4, num_workers=0,
                        dataset=dict(data_root={root!r}))
val_dataloader = dict(batch_size=2, num_workers=0,
                      dataset=dict(data_root={root!r}))
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(_delete_=True, type='CheckpointHook', by_epoch=False,
                    interval={N // 2}))
custom_hooks = [dict(type='ResumeTraceHook')]
{extra}
'''
    path = osp.join(str(tmp), f'cfg_{abs(hash(extra))}.py')
    with open(path, 'w') as f:
        f.write(text)
    return path


def _env():
    return {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}


def _train(config, work, *extra):
    proc = subprocess.run(
        [sys.executable, osp.join('tools', 'train.py'), config,
         '--work-dir', work, *extra], cwd=REPO_ROOT, env=_env(),
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _train_killed_then_resumed(config_killed, config, work):
    """Train until the checkpoint of N/2, SIGKILL, resume to N."""
    marker = osp.join(work, f'at_{N // 2}')
    proc = subprocess.Popen(
        [sys.executable, osp.join('tools', 'train.py'), config_killed,
         '--work-dir', work], cwd=REPO_ROOT, env=_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while not osp.exists(marker):
        if proc.poll() is not None:
            raise AssertionError('training ended before the kill point: ' +
                                 proc.stderr.read()[-3000:])
        assert time.time() < deadline, 'kill point never reached'
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert osp.isfile(osp.join(work, f'iter_{N // 2}.pth'))
    assert not osp.exists(osp.join(work, f'iter_{N}.pth'))
    return _train(config, work, '--resume')


def _trace(work):
    with open(osp.join(work, 'trace.jsonl')) as f:
        return [json.loads(line) for line in f]


def _assert_same_state(a: dict, b: dict, where: str = ''):
    """Nested dicts/lists of tensors and plain values, exactly equal."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same_state(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_state(x, y, f'{where}[{i}]')
    else:
        assert a == b, (where, a, b)


@pytest.fixture(scope='module')
def data_and_straight(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('resume')
    root = str(tmp / 'data')
    generate_refer_dataset(root, num_train_images=6, num_val_images=2,
                           num_test_images=2, img_size=64, seed=5,
                           progress=False)
    work = str(tmp / 'straight')
    _train(_config(tmp, root), work)
    return tmp, root, work


def test_killed_and_resumed_run_equals_the_straight_run(data_and_straight):
    tmp, root, straight = data_and_straight
    work = str(tmp / 'resumed')
    kill = f'custom_hooks = [dict(type="ResumeTraceHook"), dict(type=' \
           f'"StopAfterCheckpointHook", at={N // 2})]'
    out = _train_killed_then_resumed(_config(tmp, root, kill),
                                     _config(tmp, root), work)
    assert f'random state restored for iteration {N // 2}' in out

    a, b = _trace(straight), _trace(work)
    assert [t['iter'] for t in b] == list(range(N))
    # at least one masked-token draw and one sentence choice per iteration
    assert all(t['masked'] for t in a)
    for ta, tb in zip(a, b):
        assert ta == tb, f'iteration {ta["iter"]} differs'

    ca = load_weights(osp.join(straight, f'iter_{N}.pth'))
    cb = load_weights(osp.join(work, f'iter_{N}.pth'))
    _assert_same_state(ca['state_dict'], cb['state_dict'], 'state_dict')
    _assert_same_state(ca['optimizer'], cb['optimizer'], 'optimizer')
    _assert_same_state(ca['param_schedulers'], cb['param_schedulers'],
                       'param_schedulers')
    _assert_same_state(ca['random_state'], cb['random_state'],
                       'random_state')


def test_without_restoring_the_random_state_the_runs_differ(
        data_and_straight):
    """The comparison above can fail: with RandomStateHook(restore=False)
    (mmengine's behaviour: a fresh seed after resume) it does."""
    tmp, root, straight = data_and_straight
    work = str(tmp / 'unrestored')
    off = 'default_hooks.update(random_state=dict(type="RandomStateHook", ' \
          'restore=False))'
    kill = off + f'\ncustom_hooks = [dict(type="ResumeTraceHook"), dict(' \
                 f'type="StopAfterCheckpointHook", at={N // 2})]'
    _train_killed_then_resumed(_config(tmp, root, kill),
                               _config(tmp, root, off), work)
    a, b = _trace(straight), _trace(work)
    assert a[:N // 2] == b[:N // 2]  # identical up to the kill
    assert a[N // 2:] != b[N // 2:]
    ca = load_weights(osp.join(straight, f'iter_{N}.pth'))['state_dict']
    cb = load_weights(osp.join(work, f'iter_{N}.pth'))['state_dict']
    assert any(not torch.equal(ca[k], cb[k]) for k in ca)


def _train_status(config, work):
    proc = subprocess.run(
        [sys.executable, osp.join('tools', 'train.py'), config,
         '--work-dir', work], cwd=REPO_ROOT, env=_env(),
        capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr, proc.stderr


def test_injected_nan_stops_the_run_naming_the_samples(data_and_straight):
    tmp, root, _ = data_and_straight
    inject = 'custom_hooks = [dict(type="InjectNaNHook", at=2)]'
    code, _, err = _train_status(_config(tmp, root, inject),
                                 str(tmp / 'nan_error'))
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith('error: NonFiniteError: non-finite loss '
                                '(nan) at iteration 2; samples: [img_path=')
    assert 'ref_id=' in lines[-1] and 'text=' in lines[-1]
    assert 'Traceback' not in err
    assert not osp.exists(osp.join(str(tmp / 'nan_error'), 'iter_3.pth'))


def test_injected_nan_is_skipped_and_counted_when_configured(
        data_and_straight):
    tmp, root, _ = data_and_straight
    work = str(tmp / 'nan_skip')
    inject = ('custom_hooks = [dict(type="InjectNaNHook", at=2)]\n'
              'optim_wrapper = dict(nonfinite="skip")')
    code, out, _ = _train_status(_config(tmp, root, inject), work)
    assert code == 0, out[-3000:]
    assert 'skipped step 1: non-finite loss (nan) at iteration 2' in out
    assert 'nonfinite_skipped: 1' in out
    state = load_weights(osp.join(work, f'iter_{N}.pth'))['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())
