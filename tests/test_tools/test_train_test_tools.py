"""tools/train.py and tools/test.py end to end on a tiny generated dataset
(2 training iterations, CPU config), plus resume."""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from projects.magnet.compat import load_weights

from ..conftest import REPO_ROOT, tiny_refer_data

CONFIG = osp.join(REPO_ROOT, 'configs', 'magnet',
                  'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py')


def _data_options(root):
    opts = [f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}']
    opts += [f'test_dataloader.dataset.datasets.{i}.data_root={root}'
             for i in range(3)]
    return opts


def _schedule(iters):
    return [f'max_iters={iters}', f'train_cfg.max_iters={iters}',
            f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={iters}',
            'param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
            f'param_scheduler.1.end={iters}',
            'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
            'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.persistent_workers=False',
            'test_dataloader.persistent_workers=False',
            'default_hooks.logger.interval=1']


def _run(args):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    proc = subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return tiny_refer_data(tmp_path_factory, 'refsynth', 4, 2, 2, seed=3)


def test_train_then_test_then_resume(tiny_data, tmp_path):
    work = str(tmp_path / 'work')
    out = _run([osp.join('tools', 'train.py'), CONFIG, '--work-dir', work,
                '--cfg-options'] + _data_options(tiny_data) + _schedule(2))
    assert 'Iter(train) [2/2]' in out and 'oIoU' in out
    # all three parts train: segmentation, Mask Grounding, alignment loss
    for key in ('decode.loss_mask', 'loss_mg', 'acc_mg', 'loss_cal_p2p',
                'loss_cal_p2t'):
        assert key in out, key
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)

    # stock test tool: val / testA / testB in one run, per-split metrics
    out = _run([osp.join('tools', 'test.py'), CONFIG, ckpt, '--work-dir',
                work, '--show-dir', 'vis', '--cfg-options'] +
               _data_options(tiny_data) + _schedule(2) +
               ['default_hooks.visualization.interval=1'])
    for split in ('val', 'testA', 'testB'):
        assert f'refsynth_unc_{split}/oIoU' in out
    results = sorted(glob.glob(osp.join(work, '*', '*.json')))
    metrics = json.load(open(results[-1]))
    assert 0 <= metrics['refsynth_unc_val/oIoU'] <= 100
    assert glob.glob(osp.join(work, 'vis', '**', '*.png'), recursive=True)

    # resume from the last checkpoint of the work dir, one more iteration
    out = _run([osp.join('tools', 'train.py'), CONFIG, '--work-dir', work,
                '--resume', '--cfg-options'] + _data_options(tiny_data) +
               _schedule(3))
    assert 'resumed' in out.lower() or 'Resumed' in out
    assert 'Iter(train) [3/3]' in out

    # inference weights: training-only modules stripped, still testable
    out = _run([osp.join('tools', 'model_converters', 'publish_model.py'),
                osp.join(work, 'iter_3.pth'), str(tmp_path / 'pub.pth')])
    published = out.strip().splitlines()[-1]
    assert re.fullmatch(r'.*pub-[0-9a-f]{8}\.pth', published)
    state = torch.load(published, weights_only=True)['state_dict']
    assert not any(k.startswith('mask_grounding.') for k in state)
    assert any(k.startswith('decode_head.') for k in state)
    full = load_weights(osp.join(work, 'iter_3.pth'))  # allowlisted
    assert any(k.startswith('mask_grounding.') for k in full['state_dict'])
    out = _run([osp.join('tools', 'test.py'), CONFIG, published,
                '--work-dir', str(tmp_path / 'pub'), '--cfg-options'] +
               _data_options(tiny_data) + _schedule(3))
    assert 'refsynth_unc_val/oIoU' in out
    assert 'mask_grounding: not in the loaded weights' in out


def test_torchrun_trains_mask_grounding_on_the_lavt_style_model(
        tiny_data, tmp_path):
    """Two processes (gloo), and Mask Grounding attached by config alone
    to the model without the alignment module. DDP runs with
    find_unused_parameters=False (the default runtime): every trainable
    parameter takes part in every step, which the gradient-health hook
    confirms."""
    config = osp.join(REPO_ROOT, 'configs', 'magnet', 'ablations',
                      'lavt-style-mg_' + osp.basename(CONFIG).split('_', 1)[1])
    work = str(tmp_path / 'ddp')
    out = _run(['-m', 'torch.distributed.run', '--nproc_per_node=2',
                '--master_port=29531', osp.join('tools', 'train.py'), config,
                '--launcher', 'pytorch', '--work-dir', work,
                '--cfg-options'] + _data_options(tiny_data) + _schedule(2) +
               ['env_cfg.dist_cfg.backend=gloo',
                'default_hooks.gradient_health.check_iters=2'])
    assert 'Iter(train) [2/2]' in out
    assert 'Expected to have finished reduction' not in out  # DDP is happy
    assert 'trainable parameters received a gradient in the first 2 ' \
        'iterations' in out
    assert 'loss_mg' in out and 'loss_cal' not in out
    assert osp.isfile(osp.join(work, 'iter_2.pth'))
