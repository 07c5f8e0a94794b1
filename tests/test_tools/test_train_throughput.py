"""``tools/analysis_tools/train_throughput.py``: the table's structure (JSON
and Markdown) on a tiny run, and clear errors for bad options / configs."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from ..conftest import REPO_ROOT

CPU_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'magnet',
    'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py')
TOOL = osp.join(REPO_ROOT, 'tools', 'analysis_tools', 'train_throughput.py')


def _run(argv):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    return subprocess.run([sys.executable, TOOL] + argv, cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True)


def test_table_json_and_markdown(tmp_path):
    """Two batch sizes, one variant, each in its own process: positive
    images/s and peak memory, a Markdown row per cell, the matmul peak."""
    out = tmp_path / 'table.json'
    proc = _run([CPU_CONFIG, '--batches', '1', '2', '--shape', '32', '32',
                 '--checkpointing', 'off', '--amp', 'off', '--threads', '1',
                 '--repeat', '1', '--warmup', '0', '--out', str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result['device'] == 'cpu' and result['threads'] == 1
    assert len(result['matmul_peak_gflop_s']) == 2
    assert all(p > 0 for p in result['matmul_peak_gflop_s'])
    cells = result['cells']
    assert [c['batch'] for c in cells] == [1, 2]
    for cell in cells:
        assert cell['error'] is None
        assert cell['shape'] == [32, 32] and cell['variant'] == 'plain'
        assert cell['checkpointing'] == 'off' and cell['amp'] == 'off'
        assert cell['images_per_s'] > 0 and cell['median_s'] > 0
        assert cell['peak_memory_mib'] > 0
        assert cell['peak_memory_kind'] == 'process_peak_rss'
    rows = [line for line in proc.stdout.splitlines()
            if line.startswith('| magnet_swin-nano')]
    assert len(rows) == 2
    assert '| grad. checkpointing | AMP | images/s' in proc.stdout


@pytest.mark.parametrize('argv, message', [
    ([CPU_CONFIG, '--batches', '0', '2'], '--batches [0, 2]: expected'),
    ([CPU_CONFIG, '--repeat', '0'], '--repeat 0: expected values >= 1'),
    (['configs/magnet/no_such_config.py'], 'no_such_config.py'),
    ([CPU_CONFIG, '--out', 'OUTDIR/table.txt'], "has extension '.txt'"),
])
def test_bad_options_fail_clearly_before_any_work(tmp_path, argv, message):
    argv = [a.replace('OUTDIR', str(tmp_path)) for a in argv]
    proc = _run(argv + ['--batches', '1'] if '--batches' not in argv
                else argv)
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: ') and message in last, last
    assert 'Traceback' not in proc.stderr
    assert '| magnet' not in proc.stdout + proc.stderr  # no cell ran


def test_keep_freed_memory_applies_on_linux():
    from projects.magnet.engine.benchmarking import keep_freed_memory
    assert keep_freed_memory() is sys.platform.startswith('linux')


def test_train_step_ab_same_code_gives_equal_losses_and_grads(tmp_path):
    """``.dev_scripts/train_step_ab.py`` on one tree against itself:
    losses and every gradient identical, images/s of both sides and their
    ratio."""
    out = tmp_path / 'ab.json'
    script = osp.join(REPO_ROOT, '.dev_scripts', 'train_step_ab.py')
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    proc = subprocess.run(
        [sys.executable, script, CPU_CONFIG, '--old-root', REPO_ROOT,
         '--batch', '2', '--shape', '32', '32', '--rounds', '2', '--steps',
         '1', '--out', str(out)], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result['batch'] == 2 and result['shape'] == [32, 32]
    assert result['max_loss_rel_diff'] == 0.0
    assert result['max_grad_rel_diff'] == 0.0
    assert result['grad_only_old'] == [] == result['grad_only_new']
    assert 'loss' in result['losses_new']
    for side in ('old', 'new'):
        assert len(result[side]['times_s']) == 2
        assert result[side]['images_per_s'] > 0
    assert result['ratio'] > 0 and len(result['matmul_peak_gflop_s']) == 2


def test_train_step_ab_reads_each_sides_own_config(tmp_path):
    """A relative CONFIG is read from each side's root (its optimizer
    settings are part of that code version), from this checkout where the
    root lacks it; an absolute path stays as it is."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'train_step_ab',
        osp.join(REPO_ROOT, '.dev_scripts', 'train_step_ab.py'))
    ab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ab)
    rel = osp.relpath(CPU_CONFIG, REPO_ROOT)
    own = tmp_path / rel
    own.parent.mkdir(parents=True)
    own.write_text('')
    assert ab.config_path(rel, str(tmp_path)) == str(own)
    assert ab.config_path(rel, str(tmp_path / 'empty')) == osp.join(
        REPO_ROOT, rel)
    assert ab.config_path(CPU_CONFIG, str(tmp_path)) == CPU_CONFIG


def test_train_py_keeps_freed_memory(monkeypatch):
    """``tools/train.py`` applies ``keep_freed_memory`` before building the
    Runner, so real training (and the demo's) gets what the benchmarks
    measure."""
    sys.path.insert(0, osp.join(REPO_ROOT, 'tools'))
    try:
        import train
    finally:
        sys.path.remove(osp.join(REPO_ROOT, 'tools'))
    calls = []

    class Runner:
        def train(self):
            calls.append('train')

    monkeypatch.setattr(train, 'keep_freed_memory',
                        lambda: calls.append('keep') or True)
    monkeypatch.setattr(train, 'build_runner', lambda cfg, source: Runner())
    monkeypatch.setattr(train, 'runner_config', lambda args: type(
        'Cfg', (), {})())
    monkeypatch.setattr(sys, 'argv', ['train.py', CPU_CONFIG])
    train.main()
    assert calls == ['keep', 'train']
