"""tools/model_converters/magnet2mmseg.py: converts and refuses."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

from projects.magnet.compat import UntrustedCheckpointError
from projects.magnet.converters import (ConversionError,
                                        convert_official_checkpoint,
                                        model_cfg_from_official_args)
from projects.magnet.converters.validate import check_converted
from projects.magnet.models.segmentors import TRAINING_ONLY_MODULES

from ..conftest import REPO_ROOT, load_fullsize_keys, load_tool

TOOL = osp.join(REPO_ROOT, 'tools', 'model_converters', 'magnet2mmseg.py')
FULLSIZE_CONFIG = osp.join(REPO_ROOT, 'configs', '_base_', 'models',
                           'magnet_swin-b_bert-base.py')


def _tool():
    return load_tool('tools/model_converters/magnet2mmseg.py')


@pytest.fixture(scope='module')
def official_state(official_fixture_dir):
    return torch.load(osp.join(official_fixture_dir, 'official_tiny.pth'),
                      weights_only=True)['model']


def test_cli_converts_and_result_loads_strictly(official_fixture_dir,
                                                tmp_path):
    src = osp.join(official_fixture_dir, 'official_tiny.pth')
    dst = str(tmp_path / 'out' / 'magnet_tiny.pth')
    proc = subprocess.run([sys.executable, TOOL, src, dst],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert 'official keys' in proc.stdout and 'saved' in proc.stdout
    init_default_scope('mmseg')
    with open(osp.join(official_fixture_dir, 'config.json')) as f:
        cfg = model_cfg_from_official_args(json.load(f)['model'])
    model = MODELS.build(cfg)
    load_checkpoint(model, dst, strict=True)
    # also into a model that trains Mask Grounding and the alignment loss:
    # the training-only modules keep their initialisation
    text = cfg['text_encoder']['bert_cfg']['hidden_size']
    train_model = MODELS.build(dict(
        cfg,
        mask_grounding=dict(type='MaskGroundingHead', text_channels=text,
                            visual_channels=cfg['decode_head'][
                                'in_channels'][-1],
                            num_heads=1),
        alignment_loss=dict(type='CrossModalAlignmentLoss')))
    load_checkpoint(train_model, dst, strict=True)
    raw = torch.load(dst, weights_only=True)  # plain tensors + meta
    n_official = len(torch.load(src, weights_only=True)['model'])
    assert len(raw['state_dict']) == n_official
    # values are carried over (e.g. a squeezed 1x1 conv)
    official = torch.load(src, weights_only=True)['model']
    torch.testing.assert_close(
        model.backbone.pwams[0].vis_proj.weight,
        official['image_model.layers.0.fusion.vis_project.0.weight'][..., 0])


def _expect_refusal(tool, state, tmp_path, match, name='bad.pth'):
    src, dst = str(tmp_path / name), str(tmp_path / 'dst.pth')
    torch.save(state, src)
    with pytest.raises(ConversionError, match=match):
        tool.convert(src, dst, verbose=False)
    assert not osp.exists(dst) and not osp.exists(dst + '.part')


def test_refuses_lavt_checkpoint(official_state, tmp_path):
    lavt = {k.replace('image_model.', 'backbone.'): v
            for k, v in official_state.items()
            if not k.startswith('language_model.')}
    _expect_refusal(_tool(), {'model': lavt, 'bert_model': {}}, tmp_path,
                    r'no keys under .*image_model.*backbone\.')


def test_refuses_incomplete_checkpoint(official_state, tmp_path):
    tool = _tool()
    part = {k: v for k, v in official_state.items()
            if not k.startswith('classifier.')}
    _expect_refusal(tool, {'model': part}, tmp_path, 'classifier')
    one_less = dict(official_state)
    one_less.pop('image_model.layers.1.mixer.0.weight')
    _expect_refusal(tool, one_less, tmp_path,
                    r'no source.*alignments\.1\.mixer\.0\.weight')
    unknown = dict(official_state)
    unknown['image_model.layers.0.extra.weight'] = torch.zeros(1)
    _expect_refusal(tool, unknown, tmp_path, 'layers.0.extra.weight')
    wrong = dict(official_state)
    wrong['lang_proj.weight'] = torch.zeros(3, 3)
    _expect_refusal(tool, {'model': wrong}, tmp_path, 'shape mismatch')


def test_refuses_truncated_and_unsafe_files(official_fixture_dir, tmp_path):
    tool = _tool()
    data = open(osp.join(official_fixture_dir, 'official_tiny.pth'),
                'rb').read()
    cut = str(tmp_path / 'cut.pth')
    with open(cut, 'wb') as f:
        f.write(data[:len(data) // 3])
    with pytest.raises(RuntimeError, match='cut.pth'):
        tool.convert(cut, str(tmp_path / 'x.pth'), verbose=False)
    evil = str(tmp_path / 'evil.pth')
    torch.save({'model': {}, 'x': ConversionError('boom')}, evil)
    with pytest.raises(UntrustedCheckpointError):
        tool.convert(evil, str(tmp_path / 'y.pth'), verbose=False)
    proc = subprocess.run([sys.executable, TOOL, cut,
                           str(tmp_path / 'z.pth')],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 1 and 'cut.pth' in proc.stderr


def test_fullsize_manifest_matches_paper_config():
    """Every key of the released full-size checkpoint has a parameter or
    buffer of the same shape in the paper config's model."""
    manifest = load_fullsize_keys()
    fake = {e['key']: torch.empty(e['shape'], device='meta',
                                  dtype=getattr(torch, e['dtype']))
            for e in manifest['keys']}
    assert len(fake) == manifest['num_state_dict_keys'] == 1310
    converted = convert_official_checkpoint(fake)
    init_default_scope('mmseg')
    cfg = Config.fromfile(FULLSIZE_CONFIG)
    model = MODELS.build(cfg.model)  # no weights are loaded
    # the inference weights: the training-only modules are not released
    prefixes = tuple(m + '.' for m in TRAINING_ONLY_MODULES)
    assert model.with_mask_grounding
    state = {k: v for k, v in model.state_dict().items()
             if not k.startswith(prefixes)}
    expected = {k: tuple(v.shape) for k, v in state.items()}
    check_converted(converted, expected)
    assert sum(v.numel() for v in state.values()) == \
        manifest['total_state_dict_numel']
