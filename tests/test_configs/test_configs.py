"""Every runnable config parses and builds its model and datasets offline."""
import glob
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from ..conftest import REPO_ROOT

CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'magnet', '*.py')))


def test_there_are_configs():
    names = [osp.basename(c) for c in CONFIGS]
    assert any('refcoco-480x480' in n for n in names)
    assert any('refsynth' in n for n in names)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_offline(path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('TRANSFORMERS_OFFLINE', '1')
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'MagNet'
    assert cfg.custom_imports['imports'] == ['projects.magnet']
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)  # no weights, no network
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params > 1e6
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert loader in cfg
    pipeline = cfg.train_dataloader.dataset.pipeline
    types = [t['type'] for t in pipeline]
    assert types.index('TokenizeText') < types.index('PackSegInputs')
    assert 'input_ids' in pipeline[-1]['meta_keys']
    del model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    assert os.environ['HF_HUB_OFFLINE'] == '1'
