"""Benchmark tools: ``benchmark.py`` in its three modes, ``get_flops.py``
and ``.dev_scripts/profile_model.py --mode inference`` (JSON keys, no timing
assertions), and the speed switches (same outputs)."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from projects.magnet.engine.benchmarking import (BENCHMARK_KEYS,
                                                 apply_switches, dummy_batch)
from projects.magnet.engine.profiling import matrix_split
from projects.magnet.utils.errors import InvalidInputError

from ..conftest import REPO_ROOT, load_tool, tiny_magnet_cfg

CPU_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'magnet',
    'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py')
TOOLS = osp.join(REPO_ROOT, 'tools', 'analysis_tools')
BENCHMARK = osp.join(TOOLS, 'benchmark.py')


def _run_json(args):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    proc = subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout[proc.stdout.index('{'):])


def test_benchmark_json(tmp_path):
    out = tmp_path / 'bench.json'
    res = _run_json([
        BENCHMARK, CPU_CONFIG, '--shape', '64', '64',
        '--batch', '2', '--repeat', '2', '--warmup', '1', '--threads', '1',
        '--out', str(out)
    ])
    assert set(BENCHMARK_KEYS) <= set(res)
    assert res['mode'] == 'inference' and res['checkpoint'] is None
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
        osp.join(REPO_ROOT, '.dev_scripts', 'profile_model.py'),
        CPU_CONFIG, '--shape', '64', '64', '--threads', '1', '--repeat', '1',
        '--top', '5'
    ])
    assert res['mode'] == 'inference'  # the default mode
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
    split = matrix_split(matrix_s=1.5, other_s=0.5, gflop=300.0,
                         peak_gflop_s=150.0)
    assert split['matrix_share'] == 0.75
    assert split['matrix_gflop_s'] == 200.0  # faster than the square peak
    assert split['matrix_at_peak_s'] == 2.0


def test_benchmark_train_json():
    res = _run_json([
        BENCHMARK, CPU_CONFIG, '--mode', 'train', '--shape', '64',
        '64', '--batch', '2', '--repeat', '1', '--warmup', '0',
        '--threads', '1', '--channels-last'
    ])
    assert res['mode'] == 'train' and len(res['times_s']) == 1
    assert res['images_per_s'] > 0 and res['peak_memory_mib'] > 0
    assert res['batch'] == 2 and res['channels_last'] is True


def test_benchmark_train_takes_batch_and_shape_from_the_config():
    """Without --batch / --shape: the config (with --cfg-options) decides;
    the training modes time random weights only."""
    tool = load_tool('tools/analysis_tools/benchmark.py')
    args = tool.parse_args([CPU_CONFIG, '--mode', 'train', '--repeat', '1',
                            '--warmup', '0', '--cfg-options',
                            'train_dataloader.batch_size=1',
                            'img_scale=(96,64)'])
    assert args.repeat == 1 and args.checkpoint is None
    res = tool.run_train(args)
    assert res['batch'] == 1 and res['shape'] == [64, 96]  # img_scale: W, H
    assert tool.parse_args([CPU_CONFIG]).repeat == 5  # inference default
    assert tool.parse_args([CPU_CONFIG, '--mode', 'train']).repeat == 3
    for mode in ('train', 'memory'):
        with pytest.raises(InvalidInputError, match='w.pth.*inference only'):
            tool.parse_args([CPU_CONFIG, 'w.pth', '--mode', mode])


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


def test_benchmark_memory_reports_checkpointing_savings():
    """Each variant in its own process; ratios to plain in the same run;
    checkpointing both encoders keeps fewer activations for backward."""
    result = _run_json([BENCHMARK, CPU_CONFIG, '--mode', 'memory',
                        '--batch', '2', '--shape', '64', '64',
                        '--threads', '1', '--variants', 'plain', 'both'])
    assert result['mode'] == 'memory'
    assert list(result['variants']) == ['plain', 'both']
    plain, both = result['variants']['plain'], result['variants']['both']
    for r in (plain, both):
        for key in ('step_peak_mib', 'saved_activations_mib', 'loss',
                    'saved_activations_ratio', 'step_peak_ratio'):
            assert key in r, key
        assert r['batch'] == 2 and r['shape'] == [64, 64]
    assert plain['saved_activations_ratio'] == 1.0
    assert 0 < both['saved_activations_mib'] < plain['saved_activations_mib']
    assert both['loss'] == plain['loss']  # same step, recomputed


@pytest.mark.parametrize('argv, message', [
    (['--batch', '0'], '--batch 0: expected values >= 1'),
    (['--shape', '0', '64'], '--shape [0, 64]: expected values >= 1'),
    (['--threads', '0'], '--threads 0: expected values >= 1'),
    (['--num-tokens', '4', '--real-tokens', '6'],
     '--real-tokens 6 is more than --num-tokens 4'),
    (['--out', 'OUTDIR'], 'is a folder'),
    (['--out', 'OUTDIR/result.txt'], "has extension '.txt'"),
])
def test_benchmark_refuses_bad_options_before_any_work(tmp_path, argv,
                                                        message):
    """Counts and sizes below 1 and an unusable --out end in one error
    line, before the model is built (no traceback, nothing written)."""
    argv = [a.replace('OUTDIR', str(tmp_path)) for a in argv]
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    proc = subprocess.run(
        [sys.executable, BENCHMARK, CPU_CONFIG, '--repeat', '1'] + argv,
        cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith('error: ') and message in lines[-1]
    assert 'Traceback' not in proc.stderr
    assert 'num_parameters' not in proc.stdout  # no result: no work done
    assert list(tmp_path.iterdir()) == []
