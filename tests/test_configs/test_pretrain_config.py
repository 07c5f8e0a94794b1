"""The vision pre-training config: it trains through tools/train.py, and its
checkpoint initialises every Swin tensor of the CPU MagNet's backbone."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from ..conftest import REPO_ROOT

PRETRAIN = osp.join(REPO_ROOT, 'configs', 'pretrain',
                    'fpn_swin-nano_1xb16-3min_refsynth-categories-128x128.py')
CPU = osp.join(REPO_ROOT, 'configs', 'magnet',
               'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py')


def test_pretrain_configs_use_the_referring_backbone():
    paths = glob.glob(osp.join(REPO_ROOT, 'configs', 'pretrain', '*.py'))
    assert PRETRAIN in paths
    pre, cpu = Config.fromfile(PRETRAIN), Config.fromfile(CPU)
    assert pre.model.type == 'EncoderDecoder'
    backbone = dict(cpu.model.backbone)
    backbone.pop('init_cfg', None)
    # the referring backbone without its fusion modules
    assert dict(pre.model.backbone) == dict(backbone, vision_only=True)
    classes = pre.model.decode_head.num_classes
    assert len(pre.model.decode_head.loss_decode.class_weight) == classes
    assert pre.train_dataloader.dataset.split == 'train'
    assert pre.val_dataloader.dataset.split == 'val'


@pytest.mark.parametrize(
    'path', sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'pretrain',
                                      '*.py'))), ids=osp.basename)
def test_pretrain_config_builds_and_segments(path):
    cfg = Config.fromfile(path)
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 128, 128), mode='tensor')
    assert logits.shape == (1, cfg.model.decode_head.num_classes, 32, 32)


def test_pretraining_trains_and_initialises_magnet(refer_root, tmp_path):
    root, _ = refer_root
    work = str(tmp_path / 'pre')
    loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    opts = [f'{k}.dataset.data_root={root}' for k in loaders] + [
        'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
        'train_cfg.max_time=1e9', 'train_cfg.max_iters=3',
        'train_cfg.min_iters=3', 'train_cfg.calibrate_iters=2',
        'train_cfg.skip_iters=0', 'train_cfg.val_interval=3',
        'param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
        'param_scheduler.1.end=3'
    ]
    proc = subprocess.run(
        [sys.executable, osp.join('tools', 'train.py'), PRETRAIN,
         '--work-dir', work, '--cfg-options', *opts],
        cwd=REPO_ROOT, capture_output=True, text=True,
        env={**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1'})
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    # the val loop ran at the end: mIoU over the shapes of the val images
    assert 'mIoU' in log and 'circle' in log
    checkpoint = osp.join(work, 'iter_3.pth')
    saved = torch.load(checkpoint, map_location='cpu',
                       weights_only=False)['state_dict']

    cfg = Config.fromfile(CPU)
    cfg.model.backbone.init_cfg = dict(type='Pretrained',
                                       checkpoint=checkpoint)
    cfg.model.text_encoder.init_cfg = None  # not needed here
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    model.backbone.init_weights()
    state = model.backbone.state_dict()
    keys = [k for k in saved if k.startswith('backbone.')]
    # every Swin tensor loads; only the fusion modules, absent from the
    # vision-only backbone, keep their initialisation
    left = set(state) - {k[len('backbone.'):] for k in keys}
    assert left and all(k.split('.')[0] in ('pwams', 'gates', 'alignments')
                        for k in left), sorted(left)[:5]
    for key in keys:
        torch.testing.assert_close(state[key[len('backbone.'):]], saved[key])
