"""MainProcessLoggerHook: the end-of-test metrics file has one writer."""
import json
import logging
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config

import projects.magnet.engine.logger_hook as logger_hook
from projects.magnet.engine import MainProcessLoggerHook

from ..conftest import REPO_ROOT


def _runner(tmp_path):
    log_processor = SimpleNamespace(
        get_log_after_epoch=lambda runner, n, mode, with_non_scalar: (
            {'oIoU': 41.5, 'kind/oIoU': [1, 2]}, 'test oIoU 41.5'))
    return SimpleNamespace(log_processor=log_processor,
                           logger=logging.getLogger('test_logger_hook'),
                           log_dir=str(tmp_path), test_dataloader=[0, 1])


@pytest.mark.parametrize('main', [True, False])
def test_only_the_main_process_writes_the_test_metrics(tmp_path, monkeypatch,
                                                       main):
    monkeypatch.setattr(logger_hook, 'is_main_process', lambda: main)
    hook = MainProcessLoggerHook()
    hook.json_log_path = 'run.json'
    hook.after_test_epoch(_runner(tmp_path), metrics={'oIoU': 41.5})
    path = osp.join(str(tmp_path), 'run.json')
    assert osp.isfile(path) == main
    if main:
        with open(path) as f:
            assert json.load(f) == {'oIoU': 41.5, 'kind/oIoU': [1, 2]}


def test_default_runtime_uses_it():
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', '_base_', 'default_runtime.py'))
    assert cfg.default_hooks.logger.type == 'MainProcessLoggerHook'
