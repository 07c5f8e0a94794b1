"""Importing the package registers modules and changes nothing else."""
import json
import os
import os.path as osp
import subprocess
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

PROBE = r'''
import json, sys
import torch
from mmengine.runner.checkpoint import CheckpointLoader
before_loader = CheckpointLoader._schemes.get('')
before_load = torch.load
before_threads = torch.get_num_threads()
before_modules = set(sys.modules)
import projects.magnet
from projects.magnet.compat import checkpoint_loader_installed
from mmseg.registry import MODELS, HOOKS, LOOPS, METRICS, DATASETS, TRANSFORMS
added_ext = sorted(m for m in set(sys.modules) - before_modules
                   if m.startswith('mmcv'))
print(json.dumps(dict(
    loader_same=CheckpointLoader._schemes.get('') is before_loader,
    installed=checkpoint_loader_installed(),
    torch_load_same=torch.load is before_load,
    threads_same=torch.get_num_threads() == before_threads,
    registered=[MODELS.get('MagNet') is not None,
                MODELS.get('MagNetHead') is not None,
                HOOKS.get('CheckpointTrustHook') is not None,
                LOOPS.get('TimeBudgetTrainLoop') is not None,
                METRICS.get('RefSegMetric') is not None,
                METRICS.get('GRefSegMetric') is not None,
                DATASETS.get('GRefCOCODataset') is not None,
                TRANSFORMS.get('LoadGRefMask') is not None,
                DATASETS.get('RefCOCODataset') is not None],
    mmcv_ext='mmcv._ext' in sys.modules)))
'''


def _probe() -> dict:
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    out = subprocess.run([sys.executable, '-c', PROBE], cwd=REPO_ROOT,
                         env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_registers_and_leaves_loaders_alone():
    res = _probe()
    assert all(res['registered'])
    # the checkpoint policy is switched on by entry points, not by import
    assert res['loader_same'] and not res['installed']
    assert res['torch_load_same'] and res['threads_same']
    # the one documented install: the mmcv._ext placeholder mmseg needs
    assert res['mmcv_ext']


def test_trust_hook_installs_policy_before_loading(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader

    from projects.magnet.compat import checkpoint, checkpoint_loader_installed
    from projects.magnet.engine import CheckpointTrustHook

    class FakeRunner:
        work_dir = str(tmp_path / 'run')

    saved = CheckpointLoader._schemes.get('')
    saved_dirs = set(checkpoint._trusted_dirs)
    try:
        CheckpointLoader._schemes[''] = lambda *a, **k: None
        assert not checkpoint_loader_installed()
        assert not checkpoint.is_trusted(str(tmp_path / 'run' / 'a.pth'))
        CheckpointTrustHook().before_run(FakeRunner())
        assert checkpoint_loader_installed()
        assert checkpoint.is_trusted(str(tmp_path / 'run' / 'a.pth'))
        assert not checkpoint.is_trusted(str(tmp_path / 'other' / 'a.pth'))
    finally:
        CheckpointLoader._schemes[''] = saved
        checkpoint._trusted_dirs.clear()
        checkpoint._trusted_dirs.update(saved_dirs)


def test_base_runtime_config_has_trust_hook():
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'magnet',
                 'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py'))
    assert cfg.default_hooks.checkpoint_trust.type == 'CheckpointTrustHook'
    # the CPU config's own default_hooks merge with it
    assert cfg.default_hooks.timer.type == 'IterTimerHook'
