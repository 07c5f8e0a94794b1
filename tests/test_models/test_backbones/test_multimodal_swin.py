"""MultimodalSwin: shapes, fusion wiring and pretrained Swin formats."""
from collections import OrderedDict

import pytest
import torch
from mmseg.models.backbones import SwinTransformer
from mmseg.registry import MODELS

from projects.magnet.models.utils.swin_checkpoint import (
    load_swin_pretrained, mmseg_convert_swin)

TINY = dict(type='MultimodalSwin', embed_dims=16, depths=(1, 2, 1, 1),
            num_heads=(1, 2, 2, 4), window_size=4, text_channels=12,
            drop_path_rate=0.1)


def _words(B, N=5, L=12):
    mask = torch.ones(B, N, dtype=torch.long)
    mask[0, 3:] = 0
    return torch.randn(B, N, L), mask


@pytest.mark.parametrize('hw', [(64, 64), (72, 104), (50, 38)])
def test_shapes_non_square_and_padded_windows(hw):
    torch.manual_seed(0)
    model = MODELS.build(TINY)
    model.init_weights()
    model.eval()
    H, W = hw
    words, mask = _words(2)
    outs = model(torch.randn(2, 3, H, W), words, mask)
    assert len(outs) == 4
    h, w = -(-H // 4), -(-W // 4)
    for s, out in enumerate(outs):
        assert out.shape == (2, 16 * 2**s, h, w)
        h, w = -(-h // 2), -(-w // 2)


def _fusion_model(gate_init):
    torch.manual_seed(1)
    model = MODELS.build(dict(TINY, gate_init=gate_init))
    model.init_weights()
    model.eval()
    for m in model.pwams.modules():  # strong fusion, so effects are visible
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.3)
    return model


def test_words_reach_every_stage_and_gate_feeds_next_stage():
    img = torch.randn(1, 3, 64, 64)
    words, mask = _words(1)
    words2 = words.clone()
    words2[0, 0] += 1
    per_stage = [words, words2, words2, words2]
    out = {}
    for gate_init in ('zeros', 'trunc_normal'):
        model = _fusion_model(gate_init)
        with torch.no_grad():
            base = model(img, words, mask)
            moved = model(img, words2, mask)
            mixed = model(img, per_stage, mask)  # stage 1 sees other words
        assert all(not torch.allclose(a, b) for a, b in zip(base, moved))
        out[gate_init] = (moved[1] - mixed[1]).abs().max()
    # closed (zero) gates: stage 2 does not depend on the stage-1 words
    assert out['zeros'] == 0
    # the default gates, as built: stage-1 words reach stage 2
    assert out['trunc_normal'] > 1e-7


def test_without_alignment_module_uses_stage_norms():
    model = MODELS.build(dict(TINY, use_alignment=False))
    assert model.alignments is None
    model.init_weights()
    words, mask = _words(2)
    outs = model(torch.randn(2, 3, 64, 64), words, mask)
    # LayerNorm output: zero mean over channels
    torch.testing.assert_close(outs[0].mean(1), torch.zeros_like(
        outs[0][:, 0]), atol=1e-5, rtol=0)


def test_train_mode_backward_reaches_fusion_modules():
    torch.manual_seed(2)
    model = MODELS.build(TINY)
    model.init_weights()
    model.train()
    words, mask = _words(2)
    outs = model(torch.randn(2, 3, 64, 64), words.requires_grad_(), mask)
    sum(o.mean() for o in outs).backward()
    assert words.grad.abs().sum() > 0
    assert model.pwams[0].attn.key_proj.weight.grad.abs().sum() > 0
    assert model.alignments[3].mixer[0].weight.grad.abs().sum() > 0
    assert model.stages[0].blocks[0].attn.w_msa.qkv.weight.grad is not None


def test_invalid_out_indices():
    with pytest.raises(ValueError, match='out_indices'):
        MODELS.build(dict(TINY, out_indices=(3, )))


# -------------------------------------------------------------------------
# pretrained Swin formats
# -------------------------------------------------------------------------
def _reference_swin(window=4):
    torch.manual_seed(3)
    swin = SwinTransformer(embed_dims=16, depths=(1, 2, 1, 1),
                           num_heads=(1, 2, 2, 4), window_size=window)
    for p in swin.parameters():
        torch.nn.init.normal_(p)
    return swin.state_dict()


def _to_official(mmseg_state):
    """Invert mmseg's swin2mmseg rules (test helper)."""
    out = OrderedDict()
    for k, v in mmseg_state.items():
        if 'relative_position_index' in k:
            continue
        k2 = k.replace('stages', 'layers', 1).replace('attn.w_msa.', 'attn.')
        k2 = k2.replace('ffn.layers.0.0.', 'mlp.fc1.').replace(
            'ffn.layers.1.', 'mlp.fc2.').replace('patch_embed.projection',
                                                 'patch_embed.proj')
        if 'downsample.reduction' in k:
            o, i = v.shape
            v = v.reshape(o, i // 4, 4).transpose(1, 2)[:, [0, 2, 1, 3]]
            v = v.reshape(o, i)
        elif 'downsample.norm' in k:
            v = v.reshape(-1, 4).transpose(0, 1)[[0, 2, 1, 3]].reshape(-1)
        out[k2] = v
    out['head.weight'] = torch.zeros(10, 128)
    return out


def _target():
    model = MODELS.build(TINY)
    return model, model.state_dict()


@pytest.mark.parametrize('fmt', ['official', 'mmseg', 'mmpretrain'])
def test_pretrained_formats(tmp_path, fmt):
    ref = _reference_swin()
    if fmt == 'official':
        ckpt = {'model': _to_official(ref)}
        assert mmseg_convert_swin(_to_official(ref)).keys() >= {
            k for k in ref if 'index' not in k}
    elif fmt == 'mmseg':
        ckpt = {'state_dict': {'backbone.' + k: v for k, v in ref.items()},
                'meta': {}}
    else:
        state = {'backbone.' + k: v for k, v in ref.items()
                 if not k.startswith('norm')}
        state['backbone.norm.weight'] = ref['norm3.weight']
        state['backbone.norm.bias'] = ref['norm3.bias']
        state['head.fc.weight'] = torch.zeros(3, 128)
        ckpt = {'state_dict': state}
    path = str(tmp_path / f'{fmt}.pth')
    torch.save(ckpt, path)
    model = MODELS.build(dict(
        TINY, init_cfg=dict(type='Pretrained', checkpoint=path)))
    model.init_weights()
    got = model.state_dict()
    for k, v in ref.items():
        if fmt == 'mmpretrain' and k.startswith('norm') and '3' not in k:
            continue
        torch.testing.assert_close(got[k], v, msg=k)


def test_pretrained_bias_table_resized(tmp_path):
    ref = _reference_swin(window=3)
    path = str(tmp_path / 'w3.pth')
    torch.save({'model': _to_official(ref)}, path)
    _, target = _target()
    state = load_swin_pretrained(path, target)
    key = 'stages.0.blocks.0.attn.w_msa.relative_position_bias_table'
    assert state[key].shape == target[key].shape == (49, 1)


def test_pretrained_without_swin_keys_is_refused(tmp_path):
    path = str(tmp_path / 'bert.pth')
    torch.save({'embeddings.word_embeddings.weight': torch.zeros(2, 2)},
               path)
    _, target = _target()
    with pytest.raises(ValueError, match='no Swin weights'):
        load_swin_pretrained(path, target)


def test_init_cfg_must_be_pretrained():
    model = MODELS.build(dict(TINY, init_cfg=dict(type='Kaiming')))
    with pytest.raises(ValueError, match="type='Pretrained'"):
        model.init_weights()


def test_conv_stem_and_absolute_positions():
    torch.manual_seed(0)
    model = MODELS.build(dict(TINY, stem_channels=(8, 16),
                              use_abs_pos_embed=True, pretrain_img_size=64))
    model.init_weights()
    stem = model.patch_embed.projection
    assert isinstance(stem, torch.nn.Sequential) and len(stem) == 3
    # the position table is initialised (not left at zeros) and trained
    assert model.absolute_pos_embed.std() > 0.005
    words, mask = _words(2)
    outs = model(torch.randn(2, 3, 64, 64), words, mask)
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 16), (8, 8), (4, 4),
                                                  (2, 2)]
    sum(o.sum() for o in outs).backward()
    assert stem[0].conv.weight.grad.abs().sum() > 0
    assert model.absolute_pos_embed.grad.abs().sum() > 0
    # the absolute positions make the output depend on where things are:
    # a shifted image no longer gives a (nearly) shifted feature map
    model.eval()
    img = torch.zeros(1, 3, 64, 64)
    img[..., 8:24, 8:24] = 1

    def shift_error():
        with torch.no_grad():
            a = model(img, words[:1], mask[:1])[0][..., 2:6, 2:6]
            b = model(torch.roll(img, (32, 32), (2, 3)), words[:1],
                      mask[:1])[0][..., 10:14, 10:14]
        return float((a - b).abs().max() / a.abs().max())

    with_positions = shift_error()
    with torch.no_grad():
        model.absolute_pos_embed.mul_(10)
    assert shift_error() > 2 * with_positions
    with torch.no_grad():
        model.absolute_pos_embed.zero_()
    assert shift_error() < with_positions


def test_absolute_positions_at_another_input_size():
    model = MODELS.build(dict(TINY, use_abs_pos_embed=True,
                              pretrain_img_size=64))
    model.init_weights()
    model.eval()
    words, mask = _words(1)
    outs = model(torch.randn(1, 3, 96, 64), words, mask)
    assert outs[0].shape[-2:] == (24, 16)
    # at the table's own size the table is added as it is
    assert model._position_table((16, 16)) is model.absolute_pos_embed


def test_conv_stem_stride_must_match_patch_size():
    with pytest.raises(ValueError, match='patch_size'):
        MODELS.build(dict(TINY, stem_channels=(8, 16, 32)))


def test_vision_path_alone_is_the_closed_gate_stream():
    """``forward(img)`` (no words): the Swin blocks with the stream passed
    on as through closed gates, ``norm{s}`` maps out; the PWAMs, gates and
    alignment modules play no part."""
    torch.manual_seed(2)
    model = MODELS.build(dict(TINY, gate_init='zeros'))
    model.init_weights()
    model.eval()
    img = torch.randn(2, 3, 64, 64)
    seen = {}

    def grab(stage):
        def hook(module, args, output):
            seen[stage] = output
        return hook

    for s, stage in enumerate(model.stages):
        stage.blocks[-1].register_forward_hook(grab(s))
    with torch.no_grad():
        words, mask = _words(2)
        model(img, words, mask)  # gates closed: the same stream
        fused_stream = dict(seen)
        alone = model(img)
        for s, out in enumerate(alone):
            torch.testing.assert_close(seen[s], fused_stream[s])
            norm = getattr(model, f'norm{s}')(seen[s])
            expect = norm.transpose(1, 2).reshape(out.shape)
            torch.testing.assert_close(out, expect)
        for m in list(model.pwams.modules()) + list(
                model.alignments.modules()) + list(model.gates.modules()):
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, std=1.0)
        again = model(img)
    for a, b in zip(alone, again):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match='without word_mask'):
        model(img, words)


def test_vision_path_drives_an_mmseg_encoder_decoder():
    """An mmseg EncoderDecoder + FPNHead trains on the vision path alone
    (the pre-training config's model) and gradients reach the stem."""
    from mmseg.structures import SegDataSample
    from mmengine.registry import DefaultScope
    from mmengine.structures import PixelData
    torch.manual_seed(3)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = _pretraining_model()
    model.init_weights()
    samples = []
    for _ in range(2):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 64, 64)))
        s.set_metainfo(dict(img_shape=(64, 64), ori_shape=(64, 64),
                            pad_shape=(64, 64)))
        samples.append(s)
    losses = model.loss(torch.randn(2, 3, 64, 64), samples)
    losses['decode.loss_ce'].backward()
    stem = model.backbone.patch_embed.projection[0].conv.weight
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.pwams.parameters())


def _pretraining_model():
    return MODELS.build(dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', size=(64, 64)),
        backbone=dict(TINY, stem_channels=(8, 16)),
        decode_head=dict(
            type='FPNHead', in_channels=[16, 32, 64, 128],
            in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32],
            channels=16, num_classes=3, dropout_ratio=0.,
            norm_cfg=dict(type='GN', num_groups=4),
            loss_decode=dict(type='CrossEntropyLoss')),
        train_cfg=dict(), test_cfg=dict(mode='whole')))
