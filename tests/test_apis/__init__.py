"""Tests of the inference API (``projects.magnet.apis``).

Shared by the test modules here and by ``tests/test_tools``: the tiny
model's config (:func:`tiny_config`) and its sizes.
"""
from __future__ import annotations

import os.path as osp

from ..conftest import REPO_ROOT, tiny_magnet_cfg

MODEL_SIZE = (64, 64)
META_KEYS = ('img_path', 'ori_shape', 'img_shape', 'pad_shape',
             'scale_factor', 'text', 'input_ids', 'attention_mask')
CPU_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'magnet',
    'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py')


def tiny_config(tokenizer: str) -> dict:
    """A full config: the tiny model + a refsynth-like test pipeline (in a
    ConcatDataset, as the project's test configs have it)."""
    pipeline = [
        dict(type='LoadImageFromFile', imdecode_backend='pillow',
             color_type='color_ignore_orientation'),
        dict(type='LoadReferringMask'),
        dict(type='TokenizeText', tokenizer=tokenizer, max_length=20),
        dict(type='Resize', scale=MODEL_SIZE, keep_ratio=False,
             backend='pillow', interpolation='bilinear'),
        dict(type='PackSegInputs', meta_keys=META_KEYS),
    ]
    return dict(
        default_scope='mmseg',
        model=tiny_magnet_cfg(),
        test_dataloader=dict(dataset=dict(
            type='ConcatDataset',
            datasets=[dict(type='RefCOCODataset', pipeline=pipeline)])))


def write_tiny_model(root, tokenizer: str, seed: int = 0):
    """(config file, checkpoint file) of a tiny random-weights MagNet
    written under ``root`` (a ``pathlib.Path``)."""
    import pytest
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from projects.magnet.apis import init_model
    init_default_scope('mmseg')
    cfg_file = str(root / 'tiny_magnet.py')
    Config(tiny_config(tokenizer)).dump(cfg_file)
    torch.manual_seed(seed)
    with pytest.warns(UserWarning, match='no checkpoint'):
        model = init_model(cfg_file, None)
    ckpt = str(root / 'tiny.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    return cfg_file, ckpt
