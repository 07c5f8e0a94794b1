"""tools/train.py and tools/test.py end to end on a tiny generated dataset
(2 training iterations, CPU config), plus resume."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from projects.magnet.datasets.synthetic import generate_refer_dataset

from ..conftest import REPO_ROOT

CONFIG = osp.join(REPO_ROOT, 'configs', 'magnet',
                  'magnet_swin-nano_minilm-l6_cpu-500it_refsynth-128x128.py')


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
    root = str(tmp_path_factory.mktemp('refsynth'))
    generate_refer_dataset(root, num_train_images=4, num_val_images=2,
                           num_test_images=2, img_size=64, seed=3,
                           progress=False)
    return root


def test_train_then_test_then_resume(tiny_data, tmp_path):
    work = str(tmp_path / 'work')
    out = _run([osp.join('tools', 'train.py'), CONFIG, '--work-dir', work,
                '--cfg-options'] + _data_options(tiny_data) + _schedule(2))
    assert 'Iter(train) [2/2]' in out and 'oIoU' in out
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
