"""MagNetHead: parity with the official head, nested configs, shapes,
losses."""
from __future__ import annotations

import json
import os.path as osp

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from projects.magnet.converters.official_config import magnet_head_cfg
from projects.magnet.converters.official_head import (
    HEAD_KEY_PREFIX,
    convert_head_state_dict,
)

from ...conftest import load_fullsize_keys
from .utils import tiny_head


def _head_cfg_from_fixture(cfg: dict) -> dict:
    """MagNetHead config from the fixture's ``config.json`` head section."""
    shapes = [cfg['input_shape'][f's{i}'] for i in range(1, 5)]
    head = magnet_head_cfg(
        in_channels=[s['channel'] for s in shapes],
        strides=[s['stride'] for s in shapes],
        feat_channels=cfg['CONVS_DIM'],
        mask_channels=cfg['MASK_DIM'],
        hidden_channels=cfg['HIDDEN_DIM'],
        num_heads=cfg['NHEADS'],
        num_encoder_layers=cfg['TRANSFORMER_ENC_LAYERS'],
        encoder_ffn_channels=cfg['TRANSFORMER_DIM_FEEDFORWARD'],
        # the official builder subtracts one from DEC_LAYERS
        num_decoder_layers=cfg['DEC_LAYERS'] - 1,
        decoder_ffn_channels=cfg['DIM_FEEDFORWARD'],
        num_queries=cfg['NUM_OBJECT_QUERIES'],
        num_classes=cfg['NUM_CLASSES'],
        common_stride=cfg['COMMON_STRIDE'],
        pre_norm=cfg['PRE_NORM'])
    head['pixel_decoder']['encoder']['layer_cfg']['self_attn_cfg'][
        'dropout'] = cfg['DROPOUT']
    return head


@pytest.fixture(scope='module')
def official(official_fixture_dir):
    """(head built from config.json with converted weights, outputs.pt)."""
    with open(osp.join(official_fixture_dir, 'config.json')) as f:
        cfg = json.load(f)['model']['head']
    state = torch.load(
        osp.join(official_fixture_dir, 'official_tiny.pth'),
        map_location='cpu',
        weights_only=True)['model']
    outputs = torch.load(
        osp.join(official_fixture_dir, 'outputs.pt'),
        map_location='cpu',
        weights_only=True)
    head = MODELS.build(_head_cfg_from_fixture(cfg))
    head_state = convert_head_state_dict({
        k: v
        for k, v in state.items() if k.startswith(HEAD_KEY_PREFIX)
    })
    head.load_state_dict(head_state, strict=True)
    head.eval()
    return head, outputs


def _feats(outputs):
    return [outputs[f's{i}'] for i in range(1, 5)]


def test_fixture_parity(official):
    head, ref = official
    with torch.no_grad():
        out = head(_feats(ref))
    for key, tol in (('mask_features', 1e-4), ('pred_masks', 2e-5),
                     ('pred_logits', 1e-4)):
        assert out[key].shape == ref[key].shape, key
        diff = (out[key] - ref[key]).abs().max().item()
        assert diff <= tol, f'{key}: max abs diff {diff:.3g} > {tol}'
    # initial prediction + all but the last layer
    assert len(out['aux_outputs']) == head.transformer_decoder.num_layers


def test_fixture_predict_matches_official_rule(official):
    head, ref = official
    img_shape = tuple(ref['prob'].shape[-2:])
    with torch.no_grad():
        logits = head.predict(_feats(ref), [dict(img_shape=img_shape)] * 2)
    assert logits.shape == ref['prob'].shape
    prob = logits.sigmoid()
    assert (prob - ref['prob']).abs().max().item() <= 1e-5
    # compare the binary mask away from the threshold (float noise)
    decided = (ref['prob'] - 0.5).abs() > 1e-5
    assert torch.equal((prob > 0.5)[decided], ref['mask'][decided])


def test_converter_rejects_unknown_keys():
    with pytest.raises(ValueError, match='classifier.foo'):
        convert_head_state_dict({'classifier.foo': torch.zeros(1)})
    with pytest.raises(ValueError, match='image_model.x'):
        convert_head_state_dict({'image_model.x': torch.zeros(1)})


def test_fullsize_default_head_matches_official_keys():
    """Default MagNetHead == full-size official head: every key and shape."""
    info = load_fullsize_keys()
    official = {
        e['key']: torch.empty(e['shape'], device='meta')
        for e in info['keys'] if e['key'].startswith(HEAD_KEY_PREFIX)
    }
    converted = convert_head_state_dict(official)
    head = MODELS.build(dict(type='MagNetHead'))
    ours = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert ours == {k: tuple(v.shape) for k, v in converted.items()}


def _rand_feats(bs, height, width, channels=(16, 24, 32, 40)):
    return [
        torch.randn(bs, c, -(-height // s), -(-width // s))
        for c, s in zip(channels, (4, 8, 16, 32))
    ]


def test_shapes_batch2_non_square():
    torch.manual_seed(0)
    head = tiny_head(num_queries=3).eval()
    head.init_weights()
    with torch.no_grad():
        out = head(_rand_feats(2, 96, 160))
    assert out['pred_logits'].shape == (2, 3, 2)
    assert out['pred_masks'].shape == (2, 3, 24, 40)
    assert out['mask_features'].shape == (2, 32, 24, 40)
    assert len(out['aux_outputs']) == 4
    for aux in out['aux_outputs']:
        assert aux['pred_logits'].shape == (2, 3, 2)
        assert aux['pred_masks'].shape == (2, 3, 24, 40)


def test_pixel_decoder_needs_the_stride4_level():
    with pytest.raises(ValueError, match='common_stride=8 must be the finest'):
        tiny_head(pixel_decoder=dict(type='MSDeformAttnPixelDecoder',
                                      common_stride=8))


def test_nested_config_cannot_contradict_shared_widths():
    with pytest.raises(ValueError, match=r'pixel_decoder.feat_channels=48 '
                       r'differs from the head'):
        tiny_head(pixel_decoder=dict(type='MSDeformAttnPixelDecoder',
                                      feat_channels=48))
    with pytest.raises(ValueError, match='transformer_decoder.num_queries'):
        tiny_head(transformer_decoder=dict(type='MaskedAttentionDecoder',
                                            num_queries=2))
    # the same value, or none, is fine; the head fills it in
    head = tiny_head(transformer_decoder=dict(
        type='MaskedAttentionDecoder', num_queries=1, hidden_channels=32,
        num_heads=4, num_layers=2, feedforward_channels=64))
    assert head.transformer_decoder.num_queries == 1
    assert len(head.transformer_decoder.layers) == 2


def test_official_fpn_keys_are_not_a_magnet_head():
    """MagNet's official head has no FPN adapters (all four levels go
    through the encoder): such keys are refused, not silently mapped."""
    with pytest.raises(ValueError, match='adapter_1'):
        convert_head_state_dict(
            {'classifier.pixel_decoder.adapter_1.0.weight': torch.zeros(1)})


def _data_samples(bs, height, width, seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(bs):
        gt = (torch.rand(1, height, width, generator=g) > 0.6).long()
        gt[:, :, width - 16:] = 255  # padding
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=gt)
        samples.append(sample)
    return samples


@pytest.mark.parametrize('point_sample_cfg', [
    None,
    dict(num_points=200, oversample_ratio=3.0, importance_sample_ratio=0.75)
])
@pytest.mark.parametrize('num_queries', [1, 2])
def test_loss_finite_and_backward(point_sample_cfg, num_queries):
    torch.manual_seed(0)
    head = tiny_head(
        num_queries=num_queries, point_sample_cfg=point_sample_cfg).train()
    losses = head.loss(_rand_feats(2, 64, 96), _data_samples(2, 64, 96), None)
    expected = {'loss_cls', 'loss_mask', 'loss_dice'}
    for i in range(4):
        expected |= {f'd{i}.loss_cls', f'd{i}.loss_mask', f'd{i}.loss_dice'}
    assert set(losses) == expected
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), name
    sum(losses.values()).backward()
    no_grad = [
        n for n, p in head.named_parameters()
        if p.grad is None or not torch.isfinite(p.grad).all()
    ]
    assert not no_grad, no_grad
    for name in ('pixel_decoder.input_convs.0.conv.weight',
                 'pixel_decoder.encoder.layers.0.self_attn.value_proj.weight',
                 'pixel_decoder.mask_feature.weight',
                 'transformer_decoder.layers.3.ffn.layers.1.weight',
                 'transformer_decoder.cls_embed.weight',
                 'transformer_decoder.mask_embed.4.weight'):
        assert head.get_parameter(name).grad.abs().sum() > 0, name


def test_loss_ignores_ignored_pixels():
    torch.manual_seed(0)
    head = tiny_head(point_sample_cfg=None, loss_cls=None)
    mask_pred = torch.randn(2, 1, 16, 24, requires_grad=True)
    outputs = dict(
        pred_logits=torch.randn(2, 1, 2),
        pred_masks=mask_pred,
        aux_outputs=[])
    # GT columns 80..95 are 255 -> mask columns 20..23 (nearest resize)
    losses = head.loss_by_feat(outputs, _data_samples(2, 64, 96))
    assert set(losses) == {'loss_mask', 'loss_dice'}
    (losses['loss_mask'] + losses['loss_dice']).backward()
    assert mask_pred.grad[..., 20:].abs().max() == 0
    assert mask_pred.grad[..., :20].abs().min() > 0


def test_dense_loss_at_gt_size_sees_sub_cell_boundaries():
    """The GT boundary lies inside stride-4 cells: at the mask resolution
    (nearest) it is lost, at the GT size the loss is lower for logits whose
    upsampled edge sits where the GT edge is."""
    head_gt = tiny_head(point_sample_cfg=None, loss_cls=None,
                         dense_loss_at_gt_size=True)
    head_small = tiny_head(point_sample_cfg=None, loss_cls=None)
    gt = torch.zeros(1, 1, 32, 32, dtype=torch.long)
    gt[..., :, :14] = 1  # edge at x = 14, inside cell 3 (x 12..15)
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=gt[0])

    def loss(head, logits):
        logits = logits.clone().requires_grad_(True)
        out = dict(pred_logits=torch.zeros(1, 1, 2), pred_masks=logits,
                   aux_outputs=[])
        value = sum(head.loss_by_feat(out, [sample]).values())
        value.backward()
        return float(value), logits.grad

    # two 8x8 logit maps: edge after cell 3 vs after cell 2 (the nearest
    # resize of the GT keeps cell 3 as foreground)
    a = torch.full((1, 1, 8, 8), -6.0)
    a[..., :, :4] = 6.0
    b = torch.full((1, 1, 8, 8), -6.0)
    b[..., :, :3] = 6.0
    b[..., :, 3] = 0.0  # half-way: the upsampled edge falls inside cell 3
    (la_small, _), (lb_small, _) = loss(head_small, a), loss(head_small, b)
    (la_gt, grad), (lb_gt, _) = loss(head_gt, a), loss(head_gt, b)
    assert la_small < lb_small  # the coarse loss prefers the coarse edge
    assert lb_gt < la_gt  # the full-size loss prefers the sub-cell edge
    assert grad.abs().sum() > 0


def test_predict_shape_and_threshold_rule():
    torch.manual_seed(0)
    head = tiny_head().eval()
    feats = _rand_feats(2, 96, 160)
    metas = [dict(img_shape=(90, 150), pad_shape=(96, 160))] * 2
    with torch.no_grad():
        logits = head.predict(feats, metas, None)
        out = head(feats)
    assert logits.shape == (2, 1, 96, 160)
    assert head.out_channels == 1 and head.num_classes == 1
    assert head.align_corners is True and not hasattr(head, 'threshold')
    # official rule: bilinear (align_corners=True) upsampling, sigmoid > 0.5
    up = torch.nn.functional.interpolate(
        out['pred_masks'], size=(96, 160), mode='bilinear',
        align_corners=True)
    assert torch.equal(logits.sigmoid() > 0.5, up.sigmoid() > 0.5)
    metas = [dict(img_shape=(64, 80))] * 2
    with torch.no_grad():
        assert head.predict(feats, metas, None).shape == (2, 1, 64, 80)
