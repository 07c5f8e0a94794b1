"""Fixtures of the deployment tests: tiny MagNets exported to ONNX once per
session (a plain head with a fixed batch, a no-target head with a dynamic
batch through the command-line tool)."""
from __future__ import annotations

import pytest
import torch
from mmengine.config import Config

from ..conftest import load_tool
from ..test_apis import tiny_config, write_tiny_model

pytest.importorskip('onnxruntime', reason='pip install -r '
                    'requirements/deploy.txt')


@pytest.fixture(scope='session')
def tiny_files(tmp_path_factory, minilm_dir):
    """(config, checkpoint) of the tiny random-weights MagNet."""
    return write_tiny_model(tmp_path_factory.mktemp('deploy_tiny'),
                            minilm_dir, seed=0)


@pytest.fixture(scope='session')
def tiny_model(tiny_files):
    from projects.magnet.apis import init_model
    return init_model(*tiny_files, device='cpu')


@pytest.fixture(scope='session')
def tiny_onnx(tiny_model, tmp_path_factory):
    """The tiny model exported with the API (fixed batch 1): (path,
    describe() summary)."""
    from projects.magnet.deployment import export_onnx
    path = str(tmp_path_factory.mktemp('onnx') / 'tiny.onnx')
    info = export_onnx(tiny_model, path, (64, 64), 20)
    return path, info


@pytest.fixture(scope='session')
def gres_files(tmp_path_factory, minilm_dir):
    """(config, checkpoint) of the tiny model with a no-target head."""
    root = tmp_path_factory.mktemp('deploy_gres')
    cfg = tiny_config(minilm_dir)
    cfg['model']['decode_head']['no_target'] = dict(loss_weight=1.0)
    cfg_file = str(root / 'tiny_gres.py')
    Config(cfg).dump(cfg_file)
    from projects.magnet.apis import init_model
    torch.manual_seed(1)
    with pytest.warns(UserWarning, match='no checkpoint'):
        model = init_model(cfg_file, None)
    ckpt = str(root / 'tiny_gres.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return cfg_file, ckpt


@pytest.fixture(scope='session')
def gres_onnx(gres_files, tmp_path_factory):
    """The no-target model exported by tools/deployment/pytorch2onnx.py
    with a dynamic batch (+ its int8 copy): (path, summary, int8 path)."""
    tool = load_tool('tools/deployment/pytorch2onnx.py')
    root = tmp_path_factory.mktemp('onnx_gres')
    out, int8 = str(root / 'gres.onnx'), str(root / 'gres_int8.onnx')
    summary = tool.run([*gres_files, out, '--dynamic-batch', '--int8', int8,
                        '--json', str(root / 'summary.json')])
    return out, summary, int8
