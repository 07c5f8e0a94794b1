""".dev_scripts/run_ablations.py: the aggregation on hand-made
numbers, the training bookkeeping, and the whole tool on a tiny generated
dataset (2 iterations per run)."""
import json
import os
import os.path as osp
import statistics
import subprocess
import sys

import pytest

from ..conftest import REPO_ROOT, load_tool

SCRIPT = osp.join('.dev_scripts', 'run_ablations.py')
SUFFIX = 'swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py'
OBJECTIVES = ['magnet', 'magnet-wo-mg', 'lavt-style', 'lavt-style-mg']
CONDITIONS = {'real', 'blank image', 'blank mask', 'blank both'}
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1',
       'OMP_NUM_THREADS': '1'}
TINY_DATA = ['--num-train-images', '4', '--num-val-images', '2',
             '--num-test-images', '2']
# (no learning curve, no optimizer state in the checkpoints: less time)
TINY_OPTS = ['param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
             'train_dataloader.batch_size=2', 'custom_hooks=[]',
             'default_hooks.checkpoint.save_optimizer=False']


@pytest.fixture(scope='module')
def ra():
    return load_tool('.dev_scripts/run_ablations.py')


def _run(name, seed, status='ok', **metrics):
    mg = metrics.pop('mg', None)
    return dict(name=name, seed=seed, status=status,
                metrics=metrics if status == 'ok' else None,
                mg_acc=mg if status == 'ok' else None,
                log=f'/logs/{name}/seed{seed}/train.log', error='boom'
                if status != 'ok' else None)


# ----------------------------------------------------------------------
# aggregation on hand-made numbers


def test_mean_std(ra):
    assert ra.mean_std([1.0, 2.0, 6.0]) == dict(
        mean=3.0, std=pytest.approx(statistics.stdev([1, 2, 6])), n=3)
    # ddof=1: sqrt(((1-2)^2 + (3-2)^2) / 1)
    assert ra.mean_std([1.0, 3.0])['std'] == pytest.approx(2 ** 0.5)
    assert ra.mean_std([4.0]) == dict(mean=4.0, std=None, n=1)
    assert ra.mean_std([]) == dict(mean=None, std=None, n=0)
    assert ra.fmt(dict(mean=3.0, std=2 ** 0.5)) == '3.00 ± 1.41'
    assert ra.fmt(dict(mean=4.0, std=None)) == '4.00 ± -'
    assert ra.fmt(dict(mean=45.25, std=0.5), 1) == '45.2 ± 0.5'
    assert ra.fmt(None) == '-'


def test_kind_groups(ra):
    keys = ['oIoU', 'attribute/oIoU', 'attribute/mIoU', 'relation/oIoU',
            'len1-3/oIoU', 'len4/oIoU', 'len10+/oIoU', 'text=len7-9/oIoU',
            'MG acc/real']
    assert ra.kind_groups(keys) == (
        ['attribute', 'relation'], ['len1-3', 'len4', 'len10+',
                                    'text=len7-9'])


def test_aggregate_and_differences(ra):
    runs = [
        _run('magnet', 0, oIoU=10.0, mIoU=9.0, **{'attribute/oIoU': 20.0,
             'len1-3/oIoU': 5.0}, mg={'real': 50.0, 'blank image': 40.0}),
        _run('magnet', 1, oIoU=14.0, mIoU=11.0, **{'attribute/oIoU': 22.0,
             'len1-3/oIoU': 7.0}, mg={'real': 54.0, 'blank image': 40.0}),
        _run('magnet', 2, oIoU=18.0, mIoU=13.0, **{'attribute/oIoU': 30.0,
             'len1-3/oIoU': 9.0}, mg={'real': 58.0, 'blank image': 46.0}),
        _run('magnet-wo-mg', 0, oIoU=9.0, **{'attribute/oIoU': 21.0}),
        _run('magnet-wo-mg', 1, status='failed'),
        _run('magnet-wo-mg', 2, oIoU=12.0, **{'attribute/oIoU': 25.0}),
        _run('lavt-style', 0, status='failed'),
        _run('lavt-style-mg', 0, oIoU=7.0, mg={'real': 30.0}),
    ]
    summary = ra.aggregate(runs)
    assert list(summary) == ['magnet', 'magnet-wo-mg', 'lavt-style',
                             'lavt-style-mg']
    magnet = summary['magnet']
    assert (magnet['n'], magnet['seeds'], magnet['failed_seeds']) == (
        3, [0, 1, 2], [])
    assert magnet['stats']['oIoU']['mean'] == pytest.approx(14.0)
    assert magnet['stats']['oIoU']['std'] == pytest.approx(4.0)  # ddof=1
    assert magnet['stats']['oIoU']['values'] == [10.0, 14.0, 18.0]
    assert magnet['stats']['attribute/oIoU']['mean'] == pytest.approx(24.0)
    assert magnet['stats']['attribute/oIoU']['std'] == pytest.approx(
        statistics.stdev([20, 22, 30]))
    assert magnet['stats']['len1-3/oIoU']['mean'] == pytest.approx(7.0)
    assert magnet['stats']['MG acc/real']['std'] == pytest.approx(4.0)
    assert magnet['stats']['MG acc/blank image']['mean'] == pytest.approx(
        42.0)
    # a failed seed is left out of the numbers but kept in the row
    wo = summary['magnet-wo-mg']
    assert (wo['n'], wo['seeds'], wo['failed_seeds']) == (2, [0, 2], [1])
    assert wo['stats']['oIoU']['mean'] == pytest.approx(10.5)
    assert wo['stats']['oIoU']['std'] == pytest.approx(
        statistics.stdev([9, 12]))
    assert not any(k.startswith('MG acc/') for k in wo['stats'])
    assert summary['lavt-style'] == dict(seeds=[], failed_seeds=[0], n=0,
                                         stats={})
    single = summary['lavt-style-mg']
    assert single['stats']['oIoU'] == dict(mean=7.0, std=None, n=1,
                                           values=[7.0])

    diffs = ra.paired_differences(runs)
    # lavt-style-mg - lavt-style: no seed where both succeeded
    assert [(d['a'], d['b'], d['seeds']) for d in diffs] == [
        ('magnet', 'magnet-wo-mg', [0, 2]),
        ('lavt-style-mg', 'lavt-style', [])]
    d = diffs[0]['stats']
    assert list(d) == ['oIoU', 'attribute/oIoU']  # no length buckets
    assert d['oIoU']['values'] == [1.0, 6.0]  # same seed paired
    assert d['oIoU']['mean'] == pytest.approx(3.5)
    assert d['oIoU']['std'] == pytest.approx(statistics.stdev([1, 6]))
    assert d['attribute/oIoU']['values'] == [-1.0, 5.0]
    assert diffs[1]['stats']['oIoU']['n'] == 0

    switch = {n: ('yes', 'yes', 'yes') for n in summary}
    budget = dict(loop='TimeBudgetTrainLoop', batch_size=8, max_iters=300)
    table = ra.markdown(summary, diffs, switch, budget, [0, 1, 2], runs)
    lines = table.splitlines()
    assert lines[0].startswith('| config | MG | CAL | CAM | seeds | oIoU | '
                               'mIoU | Pr@0.5 | attribute oIoU | MG acc '
                               '(real) | MG acc (blank image) | MG acc '
                               '(blank mask) |')
    assert 'len1-3' not in lines[0]
    assert '| magnet | yes | yes | yes | 3 | 14.00 ± 4.00 | 11.00 ± 2.00 ' \
        '| - | 24.00 ± 5.29 | 54.0 ± 4.0 | 42.0 ± 3.5 | - |' in lines
    row = [ln for ln in lines if ln.startswith('| magnet-wo-mg |')][0]
    assert '| 2 (seed 1 failed) | 10.50 ± 2.12 |' in row
    row = [ln for ln in lines if ln.startswith('| lavt-style |')][0]
    assert row == ('| lavt-style | yes | yes | yes | 0 (seed 0 failed) | ' +
                   ' | '.join(['failed'] * 7) + ' |')
    assert '| lavt-style-mg | yes | yes | yes | 1 | 7.00 ± - |' in table
    assert '| magnet − magnet-wo-mg | 2 | 3.50 ± 3.54 | 2.00 ± 4.24 |' \
        in table
    assert '| lavt-style-mg − lavt-style | 0 | failed | failed |' in table
    assert 'Budget: 300 iterations per run (fixed length), batch 8: 2,400 ' \
        'training samples' in table
    assert '* magnet-wo-mg seed 1: boom (log: ' \
        '/logs/magnet-wo-mg/seed1/train.log)' in table
    assert '* lavt-style seed 0: boom' in table


# ----------------------------------------------------------------------
# command line and training bookkeeping (no training)


def test_cli_sets_seeds_and_budget(ra):
    args = ra.parse_args(['--set', 'objectives', '--seeds', '0', '1', '2'])
    assert [ra.config_name(c) for c in args.configs] == OBJECTIVES
    assert args.seeds == [0, 1, 2]
    args = ra.parse_args(['--seed', '5'])
    assert len(args.configs) == 6 and args.seeds == [5]
    args = ra.parse_args(['--set', 'objectives', '--configs', 'a_b.py'])
    assert args.configs == ['a_b.py']
    with pytest.raises(SystemExit):
        ra.parse_args(['--seeds', '1', '1'])

    config = ra.SETS['objectives'][0]
    # default: a fixed number of iterations for a wall-time config
    over = ra.run_overrides(ra.parse_args([]), config, 3)
    n = ra.DEFAULT_MAX_ITERS
    assert f'train_cfg.max_iters={n}' in over
    assert f'train_cfg.min_iters={n}' in over
    assert 'train_cfg.max_time=1e9' in over
    assert over[-1] == 'randomness.seed=3'
    over = ra.run_overrides(
        ra.parse_args(['--max-iters', '7', '--cfg-options', 'a=1']),
        config, 0)
    assert 'train_cfg.min_iters=7' in over and over[-1] == 'a=1'
    over = ra.run_overrides(ra.parse_args(['--max-time', '60']), config, 0)
    assert 'train_cfg.max_time=60.0' in over
    assert not any('min_iters' in o for o in over)
    budget = ra.describe_budget(ra.load_cfg(config, over))
    assert budget == dict(loop='TimeBudgetTrainLoop', batch_size=8,
                          max_time=60.0)


def test_train_run_bookkeeping(ra, tmp_path, monkeypatch):
    """Environment of parallel runs, the marker, failures, reuse."""
    calls = []

    def fake_run(cmd, cwd, env, stdout, stderr):
        work = cmd[cmd.index('--work-dir') + 1]
        calls.append(env)
        if 'fail=1' in cmd:
            stdout.write('Traceback: boom\n')
            return subprocess.CompletedProcess(cmd, 1)
        ckpt = osp.join(work, 'iter_2.pth')
        open(ckpt, 'w').close()
        with open(osp.join(work, 'last_checkpoint'), 'w') as f:
            f.write(ckpt)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(ra.subprocess, 'run', fake_run)
    monkeypatch.setenv('OMP_NUM_THREADS', '4')

    def make(name, seed, overrides):
        return dict(name=name, seed=seed, config='/cfg.py',
                    work_dir=str(tmp_path / name / f'seed{seed}'),
                    overrides=overrides)

    runs = [make('a', 0, ['x=1']), make('a', 1, ['x=1', 'fail=1']),
            make('b', 0, ['x=1'])]
    ra.train_all(runs, parallel=2, skip_existing=False)
    assert [c['OMP_NUM_THREADS'] for c in calls] == ['1'] * 3
    assert [r['status'] for r in runs] == ['ok', 'failed', 'ok']
    assert runs[0]['checkpoint'] == str(tmp_path / 'a' / 'seed0' /
                                        'iter_2.pth')
    assert ra.trained_length(runs[0]['checkpoint']) == ('iter', 2)
    failed = runs[1]
    assert failed['log'] == str(tmp_path / 'a' / 'seed1' / 'train.log')
    assert 'boom' in open(failed['log']).read()
    assert 'exited with 1' in failed['error']
    assert ra.read_marker(failed['work_dir'])['status'] == 'failed'

    # one at a time: the caller's environment
    calls.clear()
    again = [make('c', 0, ['x=1'])]
    ra.train_all(again, parallel=1, skip_existing=False)
    assert calls[0]['OMP_NUM_THREADS'] == '4'

    # --skip-existing: per (config, seed), same overrides only
    calls.clear()
    runs = [make('a', 0, ['x=1']), make('a', 1, ['x=1', 'fail=1']),
            make('b', 0, ['x=2'])]
    ra.train_all(runs, parallel=1, skip_existing=True)
    assert runs[0].get('reused') and runs[0]['status'] == 'ok'
    assert len(calls) == 2  # the failed run and the changed overrides
    assert not runs[1].get('reused') and not runs[2].get('reused')


# ----------------------------------------------------------------------
# the whole tool, 2 iterations per run


def _ablate(tmp_path, *extra, opts=()):
    work = tmp_path / 'abl'
    cmd = [sys.executable, SCRIPT, '--work-dir', str(work), '--max-iters',
           '2', '--data-root', str(tmp_path / 'data'), *TINY_DATA,
           '--mg-repeats', '1', *extra, '--cfg-options', *TINY_OPTS, *opts]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True,
                          text=True, env=ENV)
    return proc, work


def check_objectives(work, seeds):
    """The JSON / markdown of ``--set objectives --seeds ...``."""
    result = json.load(open(work / 'ablations.json'))
    assert result['iters'] == 2 and result['seeds'] == seeds
    runs = result['runs']
    assert [(r['name'], r['seed']) for r in runs] == [
        (n, s) for n in OBJECTIVES for s in seeds]
    assert all(r['status'] == 'ok' and r['trained'] == 2 for r in runs)
    for r in runs:
        assert r['work_dir'] == str(work / r['name'] / f'seed{r["seed"]}')
        assert f'randomness.seed={r["seed"]}' in r['overrides']
        # no in-training validation: one evaluation per run, afterwards
        assert 'Iter(val)' not in open(r['log']).read()
        assert 0 <= r['metrics']['oIoU'] <= 100
        with_mg = r['name'] in ('magnet', 'lavt-style-mg')
        assert (r['mg_acc'] is not None) == with_mg
        if with_mg:
            assert set(r['mg_acc']) == CONDITIONS and r['mg_tokens'] > 0
    kinds = [k.split('/')[0] for k in runs[0]['metrics']
             if k.endswith('/oIoU') and not k.startswith('len')]
    lengths = [k.split('/')[0] for k in runs[0]['metrics']
               if k.startswith('len') and k.endswith('/oIoU')]
    assert kinds and lengths

    summary = {row['name']: row for row in result['summary']}
    assert list(summary) == OBJECTIVES
    assert (summary['magnet']['mg'], summary['magnet']['cam']) == ('yes',
                                                                   'yes')
    assert (summary['lavt-style']['mg'], summary['lavt-style']['cam']) == (
        'no', 'no')
    for name, row in summary.items():
        assert row['n'] == len(seeds) and row['failed_seeds'] == []
        mine = [r for r in runs if r['name'] == name]
        keys = ['oIoU', 'mIoU', 'Pr@0.5'] + [f'{k}/oIoU' for k in kinds] + [
            f'{k}/oIoU' for k in lengths]
        if mine[0]['mg_acc']:
            keys += [f'MG acc/{c}' for c in CONDITIONS]
        for key in keys:
            if key.startswith('MG acc/'):
                raw = [r['mg_acc'][key[7:]] for r in mine]
            else:
                raw = [r['metrics'][key] for r in mine]
            stat = row['stats'][key]
            assert stat['values'] == raw, (name, key)
            assert stat['mean'] == pytest.approx(statistics.fmean(raw))
            assert stat['std'] == pytest.approx(statistics.stdev(raw))

    by = {(r['name'], r['seed']): r['metrics'] for r in runs}
    diffs = result['differences']
    assert [(d['a'], d['b'], d['seeds']) for d in diffs] == [
        ('magnet', 'magnet-wo-mg', seeds),
        ('lavt-style-mg', 'lavt-style', seeds)]
    for d in diffs:
        assert list(d['stats']) == ['oIoU'] + [f'{k}/oIoU' for k in kinds]
        for key, stat in d['stats'].items():
            raw = [by[d['a'], s][key] - by[d['b'], s][key] for s in seeds]
            assert stat['values'] == pytest.approx(raw)
            assert stat['mean'] == pytest.approx(statistics.fmean(raw))
            assert stat['std'] == pytest.approx(statistics.stdev(raw))

    table = (work / 'ablations.md').read_text()
    head = table.splitlines()[0]
    for k in kinds:
        assert f'| {k} oIoU |' in head
    assert 'len' not in head
    assert '| magnet | yes | yes | yes | 2 |' in table
    assert '| lavt-style | no | no | no | 2 |' in table
    assert '| magnet − magnet-wo-mg | 2 |' in table
    assert '| lavt-style-mg − lavt-style | 2 |' in table
    assert 'Budget: 2 iterations per run (fixed length), batch 2: 4 ' \
        'training samples' in table
    return result


def test_objectives_two_seeds_parallel(tmp_path):
    proc, work = _ablate(tmp_path, '--set', 'objectives', '--seeds', '0',
                         '1', '--parallel', '2')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = check_objectives(work, [0, 1])
    assert result['parallel'] == 2

    # the probe of a trained checkpoint agrees with the table
    magnet = result['runs'][0]
    probe = tmp_path / 'probe.json'
    data_root = str(tmp_path / 'data')
    proc = subprocess.run(
        [sys.executable,
         osp.join('.dev_scripts', 'probe_mask_grounding.py'),
         osp.join('configs', 'magnet', 'magnet_' + SUFFIX),
         magnet['checkpoint'], '--out', str(probe),
         '--cfg-options', f'val_dataloader.dataset.data_root={data_root}',
         'val_dataloader.num_workers=0',
         'val_dataloader.persistent_workers=False'],
        cwd=REPO_ROOT, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    probed = json.load(open(probe))
    assert probed['tokens'] == magnet['mg_tokens']
    for k, v in magnet['mg_acc'].items():
        assert abs(probed['accuracy'][k] - v) < 1e-6, k
    assert set(probed['feature_maps']) == {'Y1', 'Y2', 'Y3', 'Y4'}
    assert sum(w['n'] for w in probed['per_word'].values()) <= probed[
        'tokens']


@pytest.mark.slow
def test_objectives_two_seeds_sequential(tmp_path):
    proc, work = _ablate(tmp_path, '--set', 'objectives', '--seeds', '0',
                         '1')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = check_objectives(work, [0, 1])
    assert result['parallel'] == 1

    # --skip-existing, per (config, seed): seed 1 is reused, nothing trains
    proc, _ = _ablate(tmp_path, '--configs',
                      osp.join('configs', 'magnet', 'magnet_' + SUFFIX),
                      '--seeds', '1', '--skip-existing')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '[reuse] magnet seed 1' in proc.stdout
    assert '[train]' not in proc.stdout
    again = json.load(open(work / 'ablations.json'))
    first = [r for r in result['runs'] if r['name'] == 'magnet'][1]
    assert again['runs'][0]['metrics'] == pytest.approx(first['metrics'])
    assert again['summary'][0]['stats']['oIoU']['std'] is None
    assert '| magnet | yes | yes | yes | 1 | ' in (
        work / 'ablations.md').read_text()


def test_failed_training_stays_in_the_table(tmp_path):
    proc, work = _ablate(
        tmp_path, '--configs',
        osp.join('configs', 'magnet', 'ablations', 'lavt-style_' + SUFFIX),
        '--seeds', '3', opts=['model.type=NoSuchSegmentor'])
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.load(open(work / 'ablations.json'))
    run, = result['runs']
    assert run['status'] == 'failed' and run['seed'] == 3
    assert run['log'] == str(work / 'lavt-style' / 'seed3' / 'train.log')
    assert 'NoSuchSegmentor' in open(run['log']).read()
    assert result['summary'][0]['failed_seeds'] == [3]
    table = (work / 'ablations.md').read_text()
    assert '| lavt-style | no | no | no | 0 (seed 3 failed) | failed |' \
        in table
    assert f'(log: {run["log"]})' in table
