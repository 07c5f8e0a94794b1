"""Mixed precision (CPU bf16 autocast) keeps the sensitive parts in fp32;
gradient checkpointing of the Swin stages and the BERT layers recomputes
activations and gives the same gradients."""
from __future__ import annotations


import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.models.backbones.swin import SwinBlock

from projects.magnet.models.layers.language_fusion import WordPixelAttention
from projects.magnet.models.layers.pwam import PixelWordAttention

from ...conftest import load_tool
from .test_magnet_training import _batch, _model


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _set_checkpointing(model, swin: bool, bert: bool) -> None:
    for m in model.modules():
        if isinstance(m, SwinBlock):
            m.with_cp = swin
    model.text_encoder.with_cp = bert


def _loss_and_grads(model, data):
    """Total loss, gradients, and the bytes autograd saved for backward."""
    model.zero_grad()
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    torch.manual_seed(3)  # dropout / drop-path / token masking
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    return total.detach(), {n: p.grad.clone() for n, p in
                            model.named_parameters()
                            if p.grad is not None}, saved[0]


def test_checkpointing_gives_the_same_gradients_and_keeps_less():
    model = _model()
    model.train()
    data = _batch(model)
    loss, grads, saved = _loss_and_grads(model, data)
    kept = {}
    for swin, bert in ((True, False), (False, True), (True, True)):
        _set_checkpointing(model, swin, bert)
        loss_cp, grads_cp, kept[swin, bert] = _loss_and_grads(model, data)
        # recomputation replays dropout / drop-path (the RNG state is
        # restored), so the step is the same
        assert torch.equal(loss_cp, loss)
        assert grads_cp.keys() == grads.keys()
        for name in grads:
            torch.testing.assert_close(grads_cp[name], grads[name],
                                       rtol=1e-5, atol=1e-7, msg=name)
    # activations inside the checkpointed stages / layers are not kept
    assert kept[True, False] < saved and kept[False, True] < saved
    assert kept[True, True] < min(kept[True, False], kept[False, True])


def test_checkpointing_is_off_at_inference():
    model = _model()
    _set_checkpointing(model, True, True)
    model.eval()
    data = _batch(model)
    calls = []
    model.text_encoder.bert.encoder.layer[0].register_forward_hook(
        lambda *a: calls.append(1))
    with torch.no_grad():
        model.predict(data['inputs'], data['data_samples'])
    assert len(calls) == 1


def test_cpu_bf16_autocast_keeps_the_sensitive_parts_in_fp32(monkeypatch):
    from projects.magnet.models.layers import ms_deform_attn
    core = ms_deform_attn.multi_scale_deformable_attn
    sampled = []

    def recording_core(*args, **kwargs):
        out = core(*args, **kwargs)
        sampled.append(out.dtype)
        return out

    monkeypatch.setattr(ms_deform_attn, 'multi_scale_deformable_attn',
                        recording_core)
    model = _model()
    model.train()
    data = _batch(model)
    dtypes = {}

    def record(name):
        def hook(module, args, out):
            out = out[0] if isinstance(out, (tuple, list)) else out
            dtypes.setdefault(name, set()).add(out.dtype)
        return hook

    for cls, name in ((WordPixelAttention, 'language fusion'),
                      (PixelWordAttention, 'pwam attention')):
        for m in model.modules():
            if isinstance(m, cls):
                m.register_forward_hook(record(name))
    block = next(m for m in model.modules() if isinstance(m, SwinBlock))
    block.attn.register_forward_hook(record('swin attention'))

    torch.manual_seed(3)
    fp32 = model.loss(data['inputs'], data['data_samples'])
    dtypes.clear()
    sampled.clear()
    wrapper = build_optim_wrapper(model, dict(
        type='CPUAmpOptimWrapper', optimizer=dict(type='SGD', lr=0.0)))
    torch.manual_seed(3)
    with wrapper.optim_context(model):
        amp = model.loss(data['inputs'], data['data_samples'])

    assert dtypes['swin attention'] == {torch.bfloat16}  # AMP is on
    for name in ('language fusion', 'pwam attention'):
        assert dtypes[name] == {torch.float32}, name
    assert sampled and set(sampled) == {torch.float32}  # MSDA sampling
    for key, value in amp.items():
        assert value.dtype == torch.float32, key
        assert torch.isfinite(value), key
    # bf16 matmuls (8-bit mantissa): the losses agree to a few percent
    for key in ('decode.loss_mask', 'decode.loss_dice', 'loss_mg'):
        rel = abs(float(amp[key]) - float(fp32[key])) / abs(float(fp32[key]))
        assert rel < 0.05, (key, float(amp[key]), float(fp32[key]))
    total = sum(v for k, v in amp.items() if 'loss' in k)
    wrapper.update_params(total)
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all()
               for p in model.parameters())


def _train_tool():
    return load_tool('tools/train.py')


def test_train_tool_amp_switch_picks_the_wrapper_for_the_machine(
        monkeypatch):
    tool = _train_tool()
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = Config(dict(optim_wrapper=dict(type='GuardedOptimWrapper')))
    tool.enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'CPUAmpOptimWrapper'
    with pytest.raises(ValueError, match='bfloat16 only'):
        tool.enable_amp(Config(dict(optim_wrapper=dict(
            type='GuardedOptimWrapper'))), 'float16')
    with pytest.raises(ValueError, match='without CUDA needs'):
        tool.enable_amp(Config(dict(optim_wrapper=dict(
            type='OptimWrapper'))))
    with pytest.raises(ValueError, match='needs optim_wrapper.type'):
        tool.enable_amp(Config(dict(optim_wrapper=dict(type='Mine'))))

    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = Config(dict(optim_wrapper=dict(type='GuardedOptimWrapper')))
    tool.enable_amp(cfg, 'bfloat16')
    assert cfg.optim_wrapper.type == 'GuardedAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
