"""Benchmark tools (JSON keys, no timing assertions) and the inference fast
paths (same function as the reference computations)."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.models.backbones.swin import ShiftWindowMSA, SwinBlock
from mmseg.registry import MODELS

from projects.magnet.benchmark import BENCHMARK_KEYS, dummy_batch
from projects.magnet.models.layers.language_fusion import WordPixelAttention
from projects.magnet.models.layers.pixel_decoder import \
    MSDeformAttnPixelDecoder
from projects.magnet.models.utils.fast_window_attention import \
    FastShiftWindowMSA

from ..conftest import REPO_ROOT, tiny_magnet_cfg

CPU_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'magnet',
    'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py')
TOOLS = osp.join(REPO_ROOT, 'tools', 'analysis_tools')


def apply_switches(model, **kwargs):
    sys.path.insert(0, TOOLS)
    try:
        from benchmark import apply_switches as apply
    finally:
        sys.path.remove(TOOLS)
    return apply(model, **kwargs)


def _run_json(args):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    proc = subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout[proc.stdout.index('{'):])


def test_benchmark_json(tmp_path):
    out = tmp_path / 'bench.json'
    res = _run_json([
        osp.join(TOOLS, 'benchmark.py'), CPU_CONFIG, '--shape', '64', '64',
        '--batch', '2', '--repeat', '2', '--warmup', '1', '--threads', '1',
        '--out', str(out)
    ])
    assert set(BENCHMARK_KEYS) <= set(res)
    assert res == json.loads(out.read_text())
    assert res['batch'] == 2 and res['shape'] == [64, 64]
    assert len(res['times_s']) == 2 and res['median_s'] > 0
    assert res['gflops'] > 0 and res['achieved_gflop_s'] > 0
    assert res['matmul_peak_gflop_s'] > 0
    assert res['peak_memory_kind'] == 'process_peak_rss'
    assert res['peak_memory_mib'] > 0


def test_get_flops_json(tmp_path):
    res = _run_json([
        osp.join(TOOLS, 'get_flops.py'), CPU_CONFIG, '--shape', '64', '64',
        '--json'
    ])
    assert res['gflops'] > 0 and res['params_m'] > 0
    assert res['by_module_gflops']
    # the table form prints the same numbers and writes the same JSON
    out = tmp_path / 'flops.json'
    proc = subprocess.run([
        sys.executable,
        osp.join(TOOLS, 'get_flops.py'), CPU_CONFIG, '--shape', '64', '64',
        '--out', str(out)
    ], cwd=REPO_ROOT, env={**os.environ, 'HF_HUB_OFFLINE': '1'},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'FLOPs: {res["gflops"]:.2f} G' in proc.stdout
    assert '{' not in proc.stdout
    assert json.loads(out.read_text()) == res


def test_profile_inference_json():
    res = _run_json([
        osp.join(TOOLS, 'profile_inference.py'), CPU_CONFIG, '--shape', '64',
        '64', '--threads', '1', '--repeat', '1', '--top', '5'
    ])
    assert res['total_s'] > 0 and res['threads'] == 1
    names = {m['module']: m for m in res['modules']}
    # repeated modules are folded and summed, nested ones are included
    from mmengine.config import Config
    depths = Config.fromfile(CPU_CONFIG).model.backbone.depths
    assert names['backbone.stages.*.blocks.*']['calls'] == sum(depths)
    assert 0 < names['decode_head.pixel_decoder']['seconds'] < res['total_s']
    assert len(res['ops']) == 5
    assert all(0 < op['share'] <= 1 for op in res['ops'])
    split = res['matrix_split']
    flops = _run_json([
        osp.join(TOOLS, 'get_flops.py'), CPU_CONFIG, '--shape', '64', '64',
        '--json'
    ])['gflops']
    # the same counter as get_flops.py, over the same call
    assert split['matrix_gflop'] == pytest.approx(flops, abs=0.01)
    assert split['matrix_s'] > 0 and split['other_s'] > 0
    assert 0 < split['matrix_share'] < 1
    assert split['matrix_at_peak_s'] == pytest.approx(
        split['matrix_gflop'] / res['matmul_peak_gflop_s'], rel=0.02,
        abs=1e-4)


def test_profile_matrix_split_arithmetic():
    sys.path.insert(0, TOOLS)
    try:
        from profile_inference import matrix_split
    finally:
        sys.path.remove(TOOLS)
    split = matrix_split(matrix_s=1.5, other_s=0.5, gflop=300.0,
                         peak_gflop_s=150.0)
    assert split['matrix_share'] == 0.75
    assert split['matrix_gflop_s'] == 200.0  # faster than the square peak
    assert split['matrix_at_peak_s'] == 2.0


def test_benchmark_train_json():
    res = _run_json([
        osp.join(TOOLS, 'benchmark_train.py'), CPU_CONFIG, '--shape', '64',
        '64', '--batch', '2', '--repeat', '1', '--warmup', '0',
        '--threads', '1', '--channels-last'
    ])
    assert res['images_per_s'] > 0 and res['peak_memory_mib'] > 0
    assert res['batch'] == 2 and res['channels_last'] is True


@pytest.mark.parametrize('hw,window,shift,batch', [
    ((8, 8), 4, False, 2), ((8, 8), 4, True, 3), ((7, 7), 4, True, 2),
    ((5, 5), 4, False, 2), ((7, 9), 4, True, 2), ((5, 13), 4, False, 1),
    ((15, 15), 12, True, 1), ((3, 3), 4, True, 1)
])
def test_fast_window_attention_matches_mmseg(hw, window, shift, batch):
    """Padding (bias rows), cyclic shift, border-window masks and batches
    give mmseg's outputs."""
    torch.manual_seed(0)
    block = SwinBlock(16, 2, 64, window_size=window, shift=shift).eval()
    with torch.no_grad():
        block.attn.w_msa.relative_position_bias_table.normal_(0, 1)
        block.attn.w_msa.qkv.bias.normal_(0, 1)
    x = torch.randn(batch, hw[0] * hw[1], 16)
    with torch.no_grad():
        block.attn.__class__ = ShiftWindowMSA
        ref = block(x, hw)
        block.attn.__class__ = FastShiftWindowMSA
        fast = block(x, hw)
    torch.testing.assert_close(fast, ref, atol=2e-6, rtol=1e-5)


def test_window_layout_is_a_permutation():
    from projects.magnet.models.utils.fast_window_attention import \
        window_layout
    source, slot, mask, n_inner = window_layout(7, 9, 4, 2, 'cpu')
    real = source[source < 63]
    assert sorted(real.tolist()) == list(range(63))  # every token once
    assert torch.equal(source[slot], torch.arange(63))  # inverse
    # 2 x 3 windows; only the last window row / column see the shift mask
    assert n_inner == 2 and mask.shape == (4, 16, 16)
    assert set(mask.unique().tolist()) == {0.0, -100.0}


def test_backbone_uses_fast_window_attention():
    init_default_scope('mmseg')
    model = MODELS.build(tiny_magnet_cfg())
    attns = [b.attn for s in model.backbone.stages for b in s.blocks]
    assert all(type(a) is FastShiftWindowMSA for a in attns)
    # parameter names are mmseg's
    assert any(k.endswith('attn.w_msa.qkv.weight')
               for k in model.state_dict())


@pytest.mark.parametrize('mask_mode,heads', [('official', 1),
                                             ('official', 2),
                                             ('fixed', 2)])
def test_factored_word_pixel_attention(mask_mode, heads):
    torch.manual_seed(0)
    attn = WordPixelAttention(32, 16, heads, mask_mode).eval()
    pixels = torch.randn(2, 50, 16) * 2 + 1
    words = torch.randn(2, 8, 32)
    additive = torch.zeros(2, 1, 1, 8)
    additive[0, ..., 5:] = -10000.0
    with torch.no_grad():
        fast = attn(pixels, words, additive)
        ref = attn.forward_direct(pixels, words, additive)
    torch.testing.assert_close(fast, ref, atol=2e-5, rtol=1e-4)


def test_factored_word_pixel_attention_gradients():
    torch.manual_seed(0)
    attn = WordPixelAttention(32, 16, 2)
    pixels = torch.randn(2, 30, 16, requires_grad=True)
    words = torch.randn(2, 6, 32)
    additive = torch.zeros(2, 1, 1, 6)
    additive[1, ..., 4:] = -10000.0
    grads = []
    for fn in (attn.forward, attn.forward_direct):
        pixels.grad = None
        fn(pixels, words, additive).square().sum().backward()
        grads.append(pixels.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-3, rtol=1e-3)


def test_chunked_encoder_matches_unchunked():
    torch.manual_seed(0)
    decoder = MSDeformAttnPixelDecoder(
        in_channels=(8, 16, 32, 64), feat_channels=32, out_channels=32,
        num_heads=4, num_encoder_layers=2, feedforward_channels=64).eval()
    decoder.init_weights()
    feats = [torch.randn(2, c, 32 // 2**i, 24 // 2**i)
             for i, c in enumerate((8, 16, 32, 64))]
    outs = []
    for chunk in (0, 100):
        for layer in decoder.encoder.layers:
            layer.inference_chunk = chunk
        with torch.no_grad():
            outs.append(decoder(feats))
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=1e-5, rtol=0)
    for a, b in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def _outputs_before_and_after(batch, switch):
    """First-sample probabilities of the tiny model before and after
    ``switch(model, inputs) -> (model, inputs)``."""
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(tiny_magnet_cfg()).eval()
    inputs, samples = dummy_batch(batch, (64, 64), 8, 5)
    with torch.inference_mode():
        ref = model.predict(inputs, samples)[0].seg_logits.data.clone()
        model, inputs = switch(model, inputs)
        out = model.predict(inputs, samples)[0].seg_logits.data
    return out, ref


def test_channels_last_same_outputs():
    out, ref = _outputs_before_and_after(2, lambda model, inputs: (
        model.to(memory_format=torch.channels_last),
        inputs.contiguous(memory_format=torch.channels_last)))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_compiled_same_outputs():
    out, ref = _outputs_before_and_after(1, lambda model, inputs: (
        apply_switches(model, compile=True), inputs))
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=0)
