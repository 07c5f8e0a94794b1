"""MagNet with stock mmseg decode / auxiliary heads, through tools/train.py
and tools/test.py (README "Mixing with mmseg heads")."""
import glob
import json
import os.path as osp

import pytest

from .test_train_test_tools import (CONFIG, _data_options, _run,  # noqa: F401
                                    _schedule, tiny_data)

WIDTHS = (32, 64, 128, 256)  # the CPU backbone's stage widths


def _head(kind: str, channels: int) -> str:
    loss = (f"dict(type='CrossEntropyLoss', use_sigmoid={channels == 1}, "
            "loss_weight=1.0)")
    if kind == 'fcn':
        return (f"dict(_delete_=True, type='FCNHead', in_channels={WIDTHS[0]}"
                f", in_index=0, channels=32, num_convs=1, concat_input=False,"
                f" num_classes=2, out_channels={channels}, "
                f"norm_cfg=dict(type='BN'), align_corners=False, "
                f"loss_decode={loss})")
    return (f"dict(_delete_=True, type='UPerHead', in_channels={WIDTHS}, "
            f"in_index=(0, 1, 2, 3), pool_scales=(1, 2), channels=32, "
            f"num_classes=2, out_channels={channels}, "
            f"norm_cfg=dict(type='BN'), align_corners=False, "
            f"loss_decode={loss})")


def _config(tmp_path, kind: str, channels: int, aux: bool) -> str:
    lines = [f"_base_ = [{CONFIG!r}]",
             f"model = dict(decode_head={_head(kind, channels)},",
             "             alignment_loss=None,"]
    if aux:
        lines.append(
            f"             auxiliary_head=dict(type='FCNHead', in_channels="
            f"{WIDTHS[2]}, in_index=2, channels=16, num_convs=1, "
            f"num_classes=2, out_channels=1, norm_cfg=dict(type='BN'), "
            f"loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True, "
            f"loss_weight=0.4)),")
    lines.append(")")
    lines.append("custom_hooks = []")
    path = tmp_path / f'magnet-{kind}{channels}.py'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


@pytest.mark.parametrize('kind,channels,aux', [('fcn', 1, False),
                                               ('fcn', 2, True),
                                               ('uper', 1, True),
                                               ('uper', 2, False)])
def test_stock_head_trains_and_tests(tiny_data, tmp_path, kind,  # noqa: F811
                                     channels, aux):
    cfg = _config(tmp_path, kind, channels, aux)
    work = str(tmp_path / 'work')
    out = _run([osp.join('tools', 'train.py'), cfg, '--work-dir', work,
                '--cfg-options'] + _data_options(tiny_data) + _schedule(2))
    assert 'Iter(train) [2/2]' in out
    assert 'decode.loss_ce' in out and 'loss_mg' in out
    assert ('aux.loss_ce' in out) == aux
    assert 'loss_cal' not in out
    out = _run([osp.join('tools', 'test.py'), cfg,
                osp.join(work, 'iter_2.pth'), '--work-dir', work,
                '--cfg-options'] + _data_options(tiny_data) + _schedule(2))
    metrics = json.load(open(sorted(glob.glob(
        osp.join(work, '*', '*.json')))[-1]))
    for split in ('val', 'testA', 'testB'):
        assert 0 <= metrics[f'refsynth_unc_{split}/oIoU'] <= 100


def test_stock_head_with_alignment_loss_is_refused_at_build(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = Config.fromfile(_config(tmp_path, 'fcn', 2, False))
    model = cfg.model.to_dict()
    model['alignment_loss'] = dict(type='CrossModalAlignmentLoss')
    model['text_encoder'].pop('init_cfg', None)
    init_default_scope('mmseg')
    with pytest.raises(ValueError, match=r'alignment_loss needs the decode '
                       r"head's pixel embeddings.*FCNHead gives none.*"
                       r'alignment_loss=None'):
        MODELS.build(model)
