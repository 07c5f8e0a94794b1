# Over 400 lines: one harness (runs, training, evaluation, table) whose
# parts only make sense together; the table itself is ablation_report.py.
"""Train ablation configs at an equal budget over seeds; tabulate mean+-std.

For every config (``--set all``: the six CPU ablation configs on the
generated dataset; ``--set objectives``: magnet, magnet-wo-mg, lavt-style,
lavt-style-mg; or ``--configs``) and every seed of ``--seeds``:

1. train it with ``tools/train.py`` in ``<work-dir>/<name>/seed<S>``
   (``randomness.seed=S``; same data, batch and budget for all), output in
   ``<work-dir>/<name>/seed<S>/train.log``; up to ``--parallel`` trainings
   run at once, as subprocesses;
2. once every training has finished, evaluate each last checkpoint on the
   val split: oIoU, mIoU, Pr@0.5-0.9, overall, per expression kind
   (``<kind>/oIoU``...) and per expression length (``len4-6/oIoU``...);
3. for models with a Mask Grounding head: masked-token accuracy on val with
   the real image and mask, a blank image, a blank mask, and both blank -
   the same tokens are masked in every condition (one seeded generator per
   condition, ``--mg-seed``). Vision is used when "real" beats "blank
   image".

Then, per config, the mean and the sample standard deviation (ddof=1; '-'
with one seed) over the seeds of every number, and the paired differences
magnet - magnet-wo-mg and lavt-style-mg - lavt-style (per seed, same seed
paired, then mean +- std over seeds). Writes ``<work-dir>/ablations.json``
(per-run raw numbers, including the length buckets, and the aggregates) and
``<work-dir>/ablations.md`` (one table of configs, one of the paired
differences, the budget).

Budget. Fixed iterations is the fair default for an ablation: every config
sees the same training samples in the same order (per seed), whatever its
speed. So with neither ``--max-iters`` nor ``--max-time``, a config with a
wall-time loop (``TimeBudgetTrainLoop``, the CPU configs) trains
``DEFAULT_MAX_ITERS`` iterations; other configs keep their own length (the
ablation configs of a set have equal lengths by design). ``--max-time S``
trains every run for S seconds instead (the number of iterations then
depends on each model's speed and on the machine's load, ``--parallel``
included). Both go through ``tools/main_job.py``'s ``length_overrides``.

Parallel runs. ``--parallel N`` runs up to N trainings at once. With
N > 1 each training gets ``OMP_NUM_THREADS=1`` (and ``MKL_NUM_THREADS=1``):
on a 2-core machine two single-thread runs finish the set about 2x sooner
than one run after the other (two OpenMP threads per run would spin
against each other). Evaluation runs afterwards, in this process, one run
at a time (nothing else competes for the cores then).

A failed training (or evaluation) is reported with its log and stays in the
table: its config row says which seeds failed (all cells 'failed' when no
seed succeeded) and under "Failed runs" with its log; the exit status is
then 1. ``--skip-existing`` reuses a finished training of the same (config,
seed) and the same overrides (the list is kept in the run's
``ablation_run.json``).

Usage:
    python .dev_scripts/run_ablations.py [--set {all,objectives}]
        [--configs CFG ...] [--seeds S ...] [--work-dir DIR]
        [--max-iters N | --max-time SECONDS] [--parallel N]
        [--data-root DIR] [--skip-existing] [--cfg-options KEY=VALUE ...]
"""
import argparse
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
import traceback
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools'))
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # its siblings

import main_job  # noqa: E402  (the main job's data/train helpers)

from ablation_report import (MG_PREFIX, aggregate, fmt,  # noqa: E402,F401
                             kind_groups, markdown, mean_std,
                             paired_differences)  # (this folder)
from probe_mask_grounding import (CONDITIONS,  # noqa: E402  (this folder)
                                  masked_token_logits)

CPU_SUFFIX = 'swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py'


def _cpu_config(name):
    if name == 'magnet':
        return osp.join(ROOT, 'configs', 'magnet', f'magnet_{CPU_SUFFIX}')
    return osp.join(ROOT, 'configs', 'magnet', 'ablations',
                    f'{name}_{CPU_SUFFIX}')


SETS = OrderedDict(
    all=[_cpu_config(n) for n in ('magnet', 'magnet-wo-mg', 'magnet-wo-cal',
                                  'magnet-wo-cam', 'lavt-style',
                                  'lavt-style-mg')],
    objectives=[_cpu_config(n) for n in ('magnet', 'magnet-wo-mg',
                                         'lavt-style', 'lavt-style-mg')])
DEFAULT_CONFIGS = SETS['all']
#: fixed length of a TimeBudgetTrainLoop config when neither --max-iters
#: nor --max-time is given
DEFAULT_MAX_ITERS = 300
RUN_MARKER = 'ablation_run.json'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--set', choices=list(SETS), default='all',
                        help='the configs: all six CPU ablation configs, or '
                        'the four of the objectives (magnet, magnet-wo-mg, '
                        'lavt-style, lavt-style-mg)')
    parser.add_argument('--configs', nargs='+', default=None,
                        help='these configs instead of --set')
    parser.add_argument('--work-dir', default='work_dirs/ablations')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the generated dataset, and the '
                        'training seed when --seeds is not given')
    parser.add_argument('--seeds', type=int, nargs='+', default=None,
                        help='train every config once per seed '
                        '(randomness.seed; default: --seed)')
    parser.add_argument('--max-iters', type=int, default=None,
                        help='train exactly N iterations (default for '
                        'TimeBudgetTrainLoop configs: '
                        f'{DEFAULT_MAX_ITERS}; other configs: their own '
                        'length)')
    parser.add_argument('--max-time', type=float, default=None,
                        help='train every run for this many seconds '
                        '(TimeBudgetTrainLoop configs) instead of a fixed '
                        'number of iterations')
    parser.add_argument('--parallel', type=int, default=1,
                        help='trainings run at once (each single-threaded '
                        'when > 1)')
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--num-train-images', type=int, default=2000)
    parser.add_argument('--num-val-images', type=int, default=200)
    parser.add_argument('--num-test-images', type=int, default=200)
    parser.add_argument('--mg-seed', type=int, default=0,
                        help='seed of the token masking used to measure '
                        'masked-token accuracy')
    parser.add_argument('--mg-repeats', type=int, default=3,
                        help='masking draws per val sample')
    parser.add_argument('--skip-existing', action='store_true',
                        help='reuse a finished training of the same '
                        '(config, seed) and overrides')
    parser.add_argument('--cfg-options', nargs='+', default=[])
    args = parser.parse_args(argv)
    if args.parallel < 1:
        parser.error('--parallel must be >= 1')
    if args.max_iters is not None and args.max_iters < 1:
        parser.error('--max-iters must be >= 1')
    if args.max_time is not None and args.max_time <= 0:
        parser.error('--max-time must be > 0')
    if args.configs is None:
        args.configs = list(SETS[args.set])
    if args.seeds is None:
        args.seeds = [args.seed]
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds has duplicates: {args.seeds}')
    return args


# ----------------------------------------------------------------------
# configuration of the runs


def display_path(path):
    """``path`` relative to the repository when inside it."""
    rel = osp.relpath(path, ROOT)
    return path if rel.startswith('..') else rel


def config_name(config):
    return osp.basename(config).split('_')[0]


def load_cfg(config, overrides=()):
    """The config with ``key=value`` overrides merged (tools/train.py's
    syntax)."""
    from mmengine.config import Config

    from projects.magnet.utils import CfgOptionsAction
    cfg = Config.fromfile(config)
    if overrides:
        parser = argparse.ArgumentParser()
        parser.add_argument('--cfg-options', nargs='+',
                            action=CfgOptionsAction)
        cfg.merge_from_dict(
            parser.parse_args(['--cfg-options'] +
                              list(overrides)).cfg_options)
    return cfg


def budget_args(args, config):
    """``(max_iters, max_time)`` of ``config``'s runs (see the docstring:
    fixed iterations unless ``--max-time`` is given)."""
    max_iters, max_time = args.max_iters, args.max_time
    if max_iters is None and max_time is None:
        train_cfg = load_cfg(config).train_cfg
        if train_cfg.get('type') == 'TimeBudgetTrainLoop':
            max_iters = DEFAULT_MAX_ITERS
    return max_iters, max_time


def run_overrides(args, config, seed):
    """Every override of one run: length, no in-training validation (each
    run is evaluated once, after training), data root, seed, then the
    user's ``--cfg-options``."""
    max_iters, max_time = budget_args(args, config)
    job = argparse.Namespace(config=config, max_iters=max_iters,
                             max_time=max_time, data_root=args.data_root)
    overrides = main_job.length_overrides(job)
    overrides.append('train_cfg.val_begin=1000000000')
    overrides += main_job.data_root_overrides(job)[1]
    overrides.append(f'randomness.seed={seed}')
    return overrides + list(args.cfg_options)


def switches(config):
    model = load_cfg(config).model
    on = lambda x: 'yes' if x else 'no'
    return (on(model.get('mask_grounding')),
            on(model.get('alignment_loss')),
            on(model.backbone.get('use_alignment', True)))


def describe_budget(cfg):
    """The run length of a (merged) config, as a dict."""
    train_cfg = cfg.train_cfg
    out = dict(loop=train_cfg.get('type'),
               batch_size=cfg.train_dataloader.get('batch_size'))
    if train_cfg.get('type') == 'TimeBudgetTrainLoop':
        if train_cfg.get('min_iters') == train_cfg.get('max_iters'):
            out['max_iters'] = train_cfg.get('max_iters')
        else:
            out['max_time'] = train_cfg.get('max_time')
    elif 'max_epochs' in train_cfg:
        out['max_epochs'] = train_cfg.max_epochs
    else:
        out['max_iters'] = train_cfg.get('max_iters')
    return out


def trained_length(checkpoint):
    """Iterations (or epochs) of a checkpoint, from its file name."""
    found = re.search(r'(iter|epoch)_(\d+)\.pth$', checkpoint or '')
    return (found.group(1), int(found.group(2))) if found else (None, None)


# ----------------------------------------------------------------------
# training


def read_marker(run_dir):
    try:
        with open(osp.join(run_dir, RUN_MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def reusable(run):
    """The checkpoint of a finished training of the same run, or None."""
    marker = read_marker(run['work_dir'])
    if not marker or marker.get('status') != 'ok':
        return None
    if marker.get('config') != run['config'] or \
            marker.get('overrides') != run['overrides']:
        return None
    checkpoint = marker.get('checkpoint')
    return checkpoint if checkpoint and osp.isfile(checkpoint) else None


def train_run(run, parallel):
    """Train one (config, seed) in a subprocess; returns its outcome
    (``status`` 'ok' or 'failed', ``log``, ``checkpoint``...)."""
    work_dir = run['work_dir']
    os.makedirs(work_dir, exist_ok=True)
    log = osp.join(work_dir, 'train.log')
    for stale in (RUN_MARKER, 'last_checkpoint'):
        if osp.isfile(osp.join(work_dir, stale)):
            os.remove(osp.join(work_dir, stale))
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'),
           run['config'], '--work-dir', work_dir,
           '--cfg-options'] + run['overrides']
    env = dict(os.environ)
    if parallel > 1:
        env.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    start = time.time()
    outcome = dict(status='failed', log=log, checkpoint=None)
    try:
        with open(log, 'w') as f:
            f.write('+ ' + ' '.join(cmd) + '\n')
            f.flush()
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f,
                                  stderr=subprocess.STDOUT)
        outcome['returncode'] = proc.returncode
        last = osp.join(work_dir, 'last_checkpoint')
        if proc.returncode == 0 and osp.isfile(last):
            with open(last) as f:
                checkpoint = f.read().strip()
            if osp.isfile(checkpoint):
                outcome.update(status='ok', checkpoint=checkpoint)
            else:
                outcome['error'] = f'checkpoint {checkpoint} not found'
        else:
            outcome['error'] = (f'tools/train.py exited with '
                                f'{proc.returncode}')
    except Exception as e:  # noqa: BLE001  (reported, not raised)
        outcome['error'] = f'{type(e).__name__}: {e}'
    outcome['train_seconds'] = time.time() - start
    with open(osp.join(work_dir, RUN_MARKER), 'w') as f:
        json.dump(dict(config=run['config'], seed=run['seed'],
                       overrides=run['overrides'], **outcome), f, indent=1)
    return outcome


def train_all(runs, parallel, skip_existing):
    """Train every run, up to ``parallel`` at once; fills each run's
    ``status`` / ``checkpoint`` / ``log`` / ``train_seconds``."""
    todo = []
    for run in runs:
        checkpoint = reusable(run) if skip_existing else None
        if checkpoint:
            marker = read_marker(run['work_dir'])
            run.update(status='ok', checkpoint=checkpoint, reused=True,
                       log=marker.get('log'),
                       train_seconds=marker.get('train_seconds'))
            print(f'[reuse] {run["name"]} seed {run["seed"]}: '
                  f'{checkpoint}', flush=True)
        else:
            todo.append(run)

    def job(run):
        print(f'[train] {run["name"]} seed {run["seed"]} -> '
              f'{osp.join(run["work_dir"], "train.log")}', flush=True)
        outcome = train_run(run, parallel)
        run.update(outcome)
        note = '' if outcome['status'] == 'ok' else \
            f' ({outcome.get("error")}; see {outcome["log"]})'
        print(f'[{outcome["status"]}] {run["name"]} seed {run["seed"]} in '
              f'{outcome["train_seconds"]:.0f} s{note}', flush=True)

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for future in [pool.submit(job, run) for run in todo]:
            future.result()


# ----------------------------------------------------------------------
# evaluation


def masked_token_accuracy(runner, repeats, seed):
    """``(accuracy (%) per condition, masked tokens per condition)`` over
    the val split, or None without a Mask Grounding head."""
    import torch
    model = runner.model
    if not getattr(model, 'with_mask_grounding', False):
        return None
    model.eval()
    correct = {k: 0 for k in CONDITIONS}
    total = {k: 0 for k in CONDITIONS}
    gens = {k: torch.Generator().manual_seed(seed) for k in CONDITIONS}
    with torch.no_grad():
        for _ in range(repeats):
            for data in runner.val_dataloader:
                batch = model.data_preprocessor(data, False)
                for name, flags in CONDITIONS.items():
                    logits, target = masked_token_logits(
                        model, batch['inputs'], batch['data_samples'],
                        generator=gens[name], **flags)
                    correct[name] += int(
                        (logits.argmax(-1) == target).sum())
                    total[name] += int(target.numel())
    return {k: 100.0 * correct[k] / max(total[k], 1) for k in CONDITIONS}, \
        total['real']


def evaluate_run(run, args):
    """Val metrics and masked-token accuracy of a trained run (in place);
    an error marks the run failed."""
    job = argparse.Namespace(config=run['config'],
                             work_dir=run['work_dir'])
    try:
        runner, metrics = main_job.evaluate(job, run['checkpoint'],
                                            run['overrides'],
                                            val_only=True)
        mg = masked_token_accuracy(runner, args.mg_repeats, args.mg_seed)
        run['metrics'] = {k: float(v) for k, v in metrics.items()}
        run['mg_acc'], run['mg_tokens'] = mg if mg else (None, 0)
        run['val_sentences'] = len(runner.test_dataloader.dataset)
    except Exception as e:  # noqa: BLE001  (reported in the table)
        log = osp.join(run['work_dir'], 'eval_error.log')
        with open(log, 'w') as f:
            f.write(traceback.format_exc())
        run.update(status='failed', error=f'evaluation: '
                   f'{type(e).__name__}: {e}', log=log)
        print(f'[failed] evaluation of {run["name"]} seed {run["seed"]}: '
              f'{e} (see {log})', flush=True)


def main(argv=None):
    args = parse_args(argv)
    args.work_dir = osp.abspath(args.work_dir)
    if args.data_root is not None:
        args.data_root = osp.abspath(args.data_root)
    names = [config_name(c) for c in args.configs]
    if len(set(names)) != len(names):
        raise SystemExit(f'error: two configs share a name: {names}')
    os.makedirs(args.work_dir, exist_ok=True)

    # the datasets first (one process, before any training starts)
    for config in args.configs:
        job = argparse.Namespace(**{**vars(args), 'config': config})
        data_root, _ = main_job.data_root_overrides(job)
        main_job.ensure_dataset(job, data_root)

    configs = [osp.abspath(c) for c in args.configs]
    runs = [dict(name=name, config=config, seed=seed, status='pending',
                 work_dir=osp.join(args.work_dir, name, f'seed{seed}'),
                 overrides=run_overrides(args, config, seed))
            for config, name in zip(configs, names) for seed in args.seeds]
    budget = describe_budget(load_cfg(args.configs[0], runs[0]['overrides']))

    start = time.time()
    train_all(runs, args.parallel, args.skip_existing)
    train_wall = time.time() - start
    for run in runs:
        if run['status'] == 'ok':
            run['trained'] = trained_length(run['checkpoint'])[1]
            evaluate_run(run, args)

    switch = {name: switches(config)
              for config, name in zip(configs, names)}
    summary = aggregate(runs, names)
    differences = paired_differences(runs)
    result = dict(
        budget=budget, iters=budget.get('max_iters'), seeds=args.seeds,
        parallel=args.parallel, train_wall_seconds=train_wall,
        runs=[{**r, 'config': display_path(r['config'])} for r in runs],
        summary=[dict(name=n, config=display_path(c), mg=switch[n][0],
                      cal=switch[n][1], cam=switch[n][2], **summary[n])
                 for c, n in zip(configs, names)],
        differences=differences)
    with open(osp.join(args.work_dir, 'ablations.json'), 'w') as f:
        json.dump(result, f, indent=1)
    table = markdown(summary, differences, switch, budget, args.seeds, runs)
    with open(osp.join(args.work_dir, 'ablations.md'), 'w') as f:
        f.write(table)
    print(table)
    failed = [r for r in runs if r['status'] != 'ok']
    if failed:  # the tables are written all the same
        print(f'{len(failed)} of {len(runs)} runs failed (see "Failed runs" '
              'above)', flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
