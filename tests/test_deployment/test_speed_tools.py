"""``benchmark.py --backend ort`` and ``compare_official_speed.py``: the
ONNX Runtime timing path (JSON keys and a deviation that could fail, no
timing assertions) and the official-runner protocol, driven by a stand-in
runner written from the script's docstring alone."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ..conftest import REPO_ROOT, load_tool

BENCHMARK = os.path.join(REPO_ROOT, 'tools', 'analysis_tools',
                         'benchmark.py')
COMPARE = os.path.join(REPO_ROOT, '.dev_scripts', 'compare_official_speed.py')


def _run(args, ok=True):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    proc = subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _json(proc):
    return json.loads(proc.stdout[proc.stdout.index('{'):])


def test_benchmark_ort_on_an_exported_file(tiny_files, tiny_onnx):
    res = _json(_run([BENCHMARK, tiny_files[0], '--backend', 'ort',
                      '--onnx', tiny_onnx[0], '--shape', '64', '64',
                      '--repeat', '2', '--threads', '1',
                      '--ort-level', 'basic']))
    assert res['backend'] == 'ort' and res['onnx'] == tiny_onnx[0]
    assert res['ort_graph_optimization_level'] == 'basic'
    assert len(res['times_s']) == 2 and res['median_s'] > 0
    # no PyTorch model in the process: nothing to count FLOPs on
    assert res['gflops'] is None and res['num_parameters'] is None
    assert res['peak_memory_mib'] > 0


def test_benchmark_ort_exports_and_reports_int8_deviation(tiny_files):
    """CHECKPOINT exported in the benchmark's process, quantized, timed;
    FLOPs counted on the PyTorch model, the int8 deviation reported (the
    fp32 export's equality is checked by test_onnx_export.py)."""
    q = _json(_run([BENCHMARK, *tiny_files, '--backend', 'ort', '--int8',
                    '--shape', '64', '64', '--repeat', '1', '--threads',
                    '1', '--no-matmul-peak']))
    assert q['int8'] is True and q['onnx'] is None
    assert q['gflops'] > 0 and q['num_parameters'] > 0
    assert 2e-5 < q['max_abs_diff_vs_pytorch'] < 0.5


@pytest.mark.parametrize('extra,match', [
    (['--onnx', 'x.onnx'], '--onnx / --int8 / --ort-level go with'),
    (['--int8'], '--onnx / --int8 / --ort-level go with'),
    (['--backend', 'ort', '--mode', 'train'], 'times inference only'),
    (['--backend', 'ort', '--onnx', 'missing.onnx'], 'missing.onnx'),
])
def test_benchmark_refuses_bad_ort_options(tiny_files, extra, match):
    proc = _run([BENCHMARK, tiny_files[0], *extra], ok=False)
    assert proc.returncode == 1
    assert match in proc.stderr and 'Traceback' not in proc.stderr


STAND_IN = '''
"""A stand-in official runner written from compare_official_speed.py's
docstring: it times a fixed sleep and dumps nothing useful."""
import argparse, json, resource, statistics, time
p = argparse.ArgumentParser()
p.add_argument('--mode', required=True)
p.add_argument('--threads', type=int, required=True)
p.add_argument('--size', type=int, required=True)
p.add_argument('--runs', type=int, default=1)
p.add_argument('--warmup', type=int, default=0)
p.add_argument('--flops', action='store_true')
p.add_argument('--out')
a = p.parse_args()
assert a.mode == 'time'
times, cpu = [], []
for _ in range(a.warmup + a.runs):
    t, c = time.perf_counter(), time.process_time()
    time.sleep(0.2)
    times.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
times, cpu = times[a.warmup:], cpu[a.warmup:]
res = dict(times_s=times, cpu_times_s=cpu, median_s=statistics.median(times),
           cpu_median_s=statistics.median(cpu),
           peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
           / 1024)
if a.flops:
    res['gflops'] = 1.0
print('noise before the result')
print('@@JSON@@' + json.dumps(res))
'''


@pytest.mark.parametrize('backend', ['pytorch', 'ort'])
def test_compare_driver_with_a_runner_written_from_its_docstring(
        tiny_files, tiny_onnx, tmp_path, backend):
    runner = tmp_path / 'runner.py'
    runner.write_text(textwrap.dedent(STAND_IN))
    out = tmp_path / 'r.json'
    args = [COMPARE, '--official-cmd', f'{sys.executable} {runner}',
            '--config', tiny_files[0], '--size', '64', '--threads', '1',
            '--rounds', '2', '--runs', '1', '--warmup', '0', '--skip-check',
            '--backend', backend, '--out', str(out)]
    if backend == 'ort':
        args += ['--onnx', tiny_onnx[0]]
    res = _json(_run(args))
    assert res == json.loads(out.read_text())
    assert res['backend'] == backend and res['cpu_isa']
    assert len(res['official']['per_round']) == 2
    assert res['official']['gflops'] == 1.0
    assert res['official']['median_s'] >= 0.2
    assert res['ratio_time_project_over_official'] == round(
        res['project']['median_s'] / res['official']['median_s'], 3)
    assert len(res['matmul_peak_gflop_s']) == 2


def test_compare_driver_names_a_runner_that_breaks_the_protocol(tmp_path):
    runner = tmp_path / 'bad.py'
    runner.write_text('print("no tagged line")\n')
    tool = load_tool('.dev_scripts/compare_official_speed.py')
    with pytest.raises(RuntimeError, match='no tagged line'):
        tool._run([sys.executable, str(runner)], 1)
