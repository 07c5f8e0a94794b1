"""Mask Grounding and the alignment loss inside the segmentor: gradient
routing, absence at inference, plug-in use, loss decrease, weights."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from ...conftest import load_tool, make_data_samples, tiny_magnet_cfg
from .utils import CAL, MG

masked_token_logits = load_tool(
    '.dev_scripts/probe_mask_grounding.py').masked_token_logits


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _model(seed=0, **overrides):
    torch.manual_seed(seed)
    cfg = tiny_magnet_cfg(mask_grounding=MG, alignment_loss=CAL,
                          lang_proj_dim=32)
    cfg.update(overrides)
    model = MODELS.build(cfg)
    model.init_weights()  # the real initial state: nothing opened by hand
    return model


def _batch(model, batch=2, hw=(64, 64), seed=0):
    g = torch.Generator().manual_seed(seed)
    samples = make_data_samples(batch, hw=hw, lengths=[6, 4], seed=seed)
    imgs = [torch.randint(0, 255, (3, *hw), dtype=torch.uint8, generator=g)
            for _ in range(batch)]
    return model.data_preprocessor(
        dict(inputs=imgs, data_samples=samples), True)


def _grads(model, data, key):
    model.zero_grad()
    torch.manual_seed(1)
    losses = model.loss(data['inputs'], data['data_samples'])
    losses[key].backward()
    return {n for n, p in model.named_parameters()
            if p.grad is not None and p.grad.abs().sum() > 0}


def _any(names, prefix):
    return any(n.startswith(prefix) for n in names)


def test_loss_keys():
    model = _model()
    data = _batch(model)
    losses = model.loss(data['inputs'], data['data_samples'])
    for key in ('decode.loss_mask', 'decode.loss_dice', 'decode.loss_cls',
                'decode.d0.loss_mask', 'loss_mg', 'acc_mg', 'loss_cal_p2p',
                'loss_cal_p2t'):
        assert key in losses
    total, log = model.parse_losses(losses)
    assert 'acc_mg' in log  # logged, not optimised
    expect = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.allclose(total, expect)


def test_gradients_reach_the_intended_parameters_only():
    model = _model()
    data = _batch(model)
    mg = _grads(model, data, 'loss_mg')
    assert _any(mg, 'mask_grounding.')
    assert 'text_encoder.bert.embeddings.word_embeddings.weight' in mg
    assert _any(mg, 'backbone.patch_embed')  # vision is used
    assert _any(mg, 'text_encoder.fusions.3')  # the last language fusion
    assert not _any(mg, 'decode_head.') and not _any(mg, 'lang_proj')

    p2t = _grads(model, data, 'loss_cal_p2t')
    assert _any(p2t, 'lang_proj') and _any(p2t, 'decode_head.pixel_decoder')
    assert _any(p2t, 'text_encoder.fusions.3')
    assert not _any(p2t, 'decode_head.transformer_decoder')
    assert not _any(p2t, 'mask_grounding.')

    p2p = _grads(model, data, 'loss_cal_p2p')
    assert _any(p2p, 'decode_head.pixel_decoder') and _any(p2p, 'backbone.')
    assert not _any(p2p, 'lang_proj')
    assert not _any(p2p, 'decode_head.transformer_decoder')

    seg = _grads(model, data, 'decode.loss_mask')
    assert _any(seg, 'decode_head.transformer_decoder')
    assert not _any(seg, 'mask_grounding.') and not _any(seg, 'lang_proj')
    assert not _any(seg, 'text_encoder.fusions.3')  # dead for the masks


def test_training_objectives_are_absent_at_inference():
    model = _model().eval()
    calls = []
    model.mask_grounding.register_forward_hook(
        lambda *a: calls.append('mg'))
    model.alignment_loss.register_forward_hook(
        lambda *a: calls.append('cal'))
    data = _batch(model)
    data = model.data_preprocessor(
        dict(inputs=[torch.zeros(3, 64, 64, dtype=torch.uint8)] * 2,
             data_samples=data['data_samples']), False)
    with torch.no_grad():
        with_heads = model.predict(data['inputs'], data['data_samples'])
        probs = torch.stack([s.seg_logits.data for s in with_heads])
    assert calls == []

    # the same weights without the training-only modules: same output
    plain = MODELS.build(tiny_magnet_cfg(lang_proj_dim=32)).eval()
    plain.load_state_dict(
        {k: v for k, v in model.state_dict().items()
         if not k.startswith(('mask_grounding.', 'alignment_loss.'))},
        strict=True)
    with torch.no_grad():
        out = plain.predict(data['inputs'], data['data_samples'])
    assert torch.equal(probs, torch.stack([s.seg_logits.data for s in out]))


def test_inference_weights_load_strictly_into_a_training_model():
    src = _model(seed=1)
    state = {k: v for k, v in src.state_dict().items()
             if not k.startswith('mask_grounding.')}
    dst = _model(seed=2)
    dst.load_state_dict(state, strict=True)  # training-only keys may miss
    assert torch.equal(dst.lang_proj.weight, src.lang_proj.weight)
    # a partially missing training module is still an error
    state['mask_grounding.decoder_bias'] = src.state_dict()[
        'mask_grounding.decoder_bias']
    with pytest.raises(RuntimeError, match='mask_grounding'):
        dst.load_state_dict(state, strict=True)


def test_inference_build_leaves_out_training_modules_and_loads_them():
    from projects.magnet.models.segmentors import inference_model_cfg
    src = _model(seed=1)
    cfg = tiny_magnet_cfg(mask_grounding=MG, alignment_loss=CAL,
                          lang_proj_dim=32)
    lean_cfg = inference_model_cfg(cfg)
    assert cfg['mask_grounding'] is not None  # the input is not modified
    lean = MODELS.build(lean_cfg)
    assert lean.mask_grounding is None and lean.alignment_loss is None
    assert sum(p.numel() for p in lean.parameters()) < sum(
        p.numel() for p in src.parameters())
    # training weights (with the objectives' modules) load strictly
    lean.load_state_dict(src.state_dict(), strict=True)
    lean.eval()
    src.eval()
    data = _batch(src)
    with torch.no_grad():
        ref = src.predict(data['inputs'], data['data_samples'])
        out = lean.predict(data['inputs'], data['data_samples'])
    for a, b in zip(ref, out):
        assert torch.equal(a.seg_logits.data, b.seg_logits.data)
    # other unexpected keys are still an error
    state = dict(src.state_dict(), **{'decode_head.extra': torch.zeros(1)})
    with pytest.raises(RuntimeError, match='decode_head.extra'):
        lean.load_state_dict(state, strict=True)


def test_mask_grounding_plugs_into_the_lavt_style_model():
    model = _model(backbone=dict(
        tiny_magnet_cfg()['backbone'], use_alignment=False),
        alignment_loss=None)
    assert model.backbone.alignments is None
    data = _batch(model)
    mg = _grads(model, data, 'loss_mg')
    assert _any(mg, 'mask_grounding.') and _any(mg, 'backbone.norm3')
    assert 'loss_cal_p2p' not in model.loss(data['inputs'],
                                            data['data_samples'])


def test_switches_remove_losses():
    model = _model(mask_grounding=None, alignment_loss=None)
    data = _batch(model)
    keys = set(model.loss(data['inputs'], data['data_samples']))
    assert not {'loss_mg', 'loss_cal_p2p', 'loss_cal_p2t'} & keys
    with pytest.raises(ValueError, match='lang_proj'):
        _model(lang_proj_dim=None)


def test_a_few_iterations_reduce_every_loss():
    model = _model()
    data = _batch(model, batch=2)
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3)
    keys = ('decode.loss_mask', 'decode.loss_dice', 'loss_mg',
            'loss_cal_p2p', 'loss_cal_p2t')
    history = []
    for _ in range(12):
        torch.manual_seed(0)  # same masked tokens and dropout every step
        losses = model.loss(data['inputs'], data['data_samples'])
        history.append({k: losses[k].item() for k in keys})
        total, _ = model.parse_losses(losses)
        opt.zero_grad()
        total.backward()
        opt.step()
    for k in keys:
        assert history[-1][k] < 0.95 * history[0][k], (k, history[0][k],
                                                       history[-1][k])


def test_blank_controls_change_the_prediction_inputs():
    model = _model().eval()
    data = _batch(model)
    outs = {}
    for name, flags in dict(real={}, image=dict(blank_image=True),
                            mask=dict(blank_mask=True)).items():
        with torch.no_grad():
            logits, target = masked_token_logits(
                model, data['inputs'], data['data_samples'],
                generator=torch.Generator().manual_seed(0), **flags)
        outs[name] = (logits, target)
    for name in ('image', 'mask'):
        assert torch.equal(outs[name][1], outs['real'][1])  # same tokens
        assert not torch.allclose(outs[name][0], outs['real'][0])


def test_frozen_bert_layers_get_no_gradient():
    enc = dict(tiny_magnet_cfg()['text_encoder'], frozen_layers=(3, ),
               freeze_embeddings=True)
    model = _model(text_encoder=enc)
    data = _batch(model)
    names = _grads(model, data, 'loss_mg')
    assert not _any(names, 'text_encoder.bert.encoder.layer.3.')
    assert not _any(names, 'text_encoder.bert.embeddings.')
    assert _any(names, 'text_encoder.bert.encoder.layer.2.')
    with pytest.raises(ValueError, match='frozen_layers'):
        _model(text_encoder=dict(enc, frozen_layers=(4, )))


def test_mismatched_mask_grounding_widths_are_reported():
    with pytest.raises(ValueError, match='visual_channels=64'):
        _model(mask_grounding=dict(MG, visual_channels=64))
    with pytest.raises(ValueError, match='text_channels'):
        _model(mask_grounding=dict(MG, text_channels=16, hidden_channels=16))
    with pytest.raises(ValueError, match='visual_level'):
        _model(mask_grounding=dict(MG, visual_level=7))


def test_mask_grounding_on_a_fraction_of_the_batch():
    model = _model(mask_grounding=dict(MG, sample_ratio=0.25))
    data = _batch(model, batch=2)
    seen = []
    head = model.mask_grounding
    original = head.loss

    def spy(words, *args, **kwargs):
        seen.append(words.shape[0])
        return original(words, *args, **kwargs)

    head.loss = spy
    losses = model.loss(data['inputs'], data['data_samples'])
    assert seen == [1]  # ceil(0.25 * 2)
    assert torch.isfinite(losses['loss_mg'])
    with pytest.raises(ValueError, match='sample_ratio'):
        _model(mask_grounding=dict(MG, sample_ratio=0.0))
