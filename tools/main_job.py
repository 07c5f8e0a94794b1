"""The main job on the embedded default (``make demo``).

(Over 400 lines: the job's steps and their up-front checks read best in
one file.)

1. generates the referring dataset in the REFER format if it is absent
   (``tools/dataset_converters/generate_refer_dataset.py``);
2. trains the CPU config with ``tools/train.py``;
3. evaluates the trained checkpoint on val / testA / testB with mmengine's
   Runner (the ``tools/test.py`` path) and prints the metric table;
4. writes prediction panels (image | ground truth | prediction, expression
   and IoU below) as PNG, and a 4x4 grid of them, ``predictions_grid.png``;
5. scores the model on scenes it never saw, drawn by other code than the
   generator's in the same visual vocabulary
   (``tools/analysis_tools/eval_unseen_scenes.py``: oIoU per expression
   kind, ``unseen_scenes/``).

Usage:
    python tools/main_job.py [--config CFG] [--work-dir DIR]
        [--num-overlays N] [--max-iters N] [--data-root DIR]
        [--unseen-scenes N]
        [--cfg-options KEY=VALUE ...]
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from projects.magnet.utils import (  # noqa: E402
    CfgOptionsAction, InvalidInputError, UserError, check_config_keys,
    check_config_values, check_output_dir, load_config, save_image,
    save_json)
from projects.magnet.utils.cli import check_minimum  # noqa: E402
from projects.magnet.utils.config_check import (  # noqa: E402
    check_option_shapes)

DEFAULT_CONFIG = osp.join(
    ROOT, 'configs', 'magnet',
    'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/main_job')
    parser.add_argument('--num-train-images', type=int, default=2000)
    parser.add_argument('--num-val-images', type=int, default=200)
    parser.add_argument('--num-test-images', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-iters', type=int, default=None,
                        help='train exactly this many iterations')
    parser.add_argument(
        '--max-time', type=float, default=None,
        help='training time budget in seconds (TimeBudgetTrainLoop '
        'configs; default: the config\'s train_cfg.max_time)')
    parser.add_argument('--num-overlays', type=int, default=8)
    parser.add_argument(
        '--unseen-scenes', type=int, default=100,
        help='also score the trained model on this many scenes drawn by '
        'other code (tools/analysis_tools/eval_unseen_scenes.py); 0: skip')
    parser.add_argument(
        '--data-root',
        help='where the generated dataset lives / is written (default: the '
        'config\'s data_root)')
    parser.add_argument(
        '--cfg-options', nargs='+', default=[],
        help='extra key=value overrides for training and evaluation')
    args = parser.parse_args()
    # each step needs these; refused here, not after the dataset and the
    # training are done
    check_minimum(parser, args, dict(
        num_train_images=1, num_val_images=1, num_test_images=2,
        max_iters=1, max_time=1e-9, num_overlays=0, unseen_scenes=0))
    return args


class StepFailedError(UserError, RuntimeError):
    """A step of the job (a tool run as a subprocess) failed; the tool
    printed its own error (or traceback) above."""


def merged_config(args, overrides):
    """The config with ``overrides`` (key=value, as ``--cfg-options`` of
    ``tools/train.py``) merged."""
    cfg = load_config(args.config)
    if overrides:
        parser = argparse.ArgumentParser(prog='main_job.py')
        parser.add_argument('--cfg-options', nargs='+',
                            action=CfgOptionsAction)
        options = parser.parse_args(['--cfg-options'] +
                                    overrides).cfg_options
        check_option_shapes(cfg, options, args.config)
        cfg.merge_from_dict(options)
    return cfg


def check_inputs(args, overrides, data_root):
    """What ``tools/train.py`` would refuse, refused before the dataset
    is generated: misspelt keys and values of the wrong type in the merged
    config, a work dir or data root that cannot be written."""
    cfg = merged_config(args, overrides)
    check_config_keys(cfg.keys(), args.config)
    check_config_values(cfg, args.config, dict(
        o.split('=', 1) for o in overrides))
    check_output_dir(args.work_dir, inputs=[args.config], what='--work-dir')
    check_output_dir(data_root, what='--data-root', create=False)


def run(cmd):
    """Run a tool; its failure (it printed why) ends the job with one
    ``error:`` line naming the step."""
    print('+ ' + ' '.join(cmd), flush=True)
    code = subprocess.run(cmd, cwd=ROOT).returncode
    if code:
        raise StepFailedError(
            f'{osp.relpath(cmd[1], ROOT)} failed (exit status {code}); '
            'its message is above')


def length_overrides(args):
    """``--max-iters`` / ``--max-time`` as config overrides.

    A config with ``TimeBudgetTrainLoop`` (the default) trains for
    ``max_time`` seconds; ``--max-iters N`` makes it a fixed length (the
    budget is lifted and the schedule ends at ``N``).
    """
    cfg = load_config(args.config)  # names the file in its errors
    budgeted = cfg.train_cfg.get('type') == 'TimeBudgetTrainLoop'
    out = []
    if args.max_time is not None:
        if not budgeted:
            raise InvalidInputError(
                f'--max-time needs a config with TimeBudgetTrainLoop; '
                f'{args.config} has {cfg.train_cfg.get("type")}')
        out.append(f'train_cfg.max_time={args.max_time}')
    if args.max_iters:
        n = args.max_iters
        out += [f'train_cfg.max_iters={n}',
                f'param_scheduler.{len(cfg.param_scheduler) - 1}.end={n}']
        if budgeted:
            if args.max_time is None:
                out.append('train_cfg.max_time=1e9')
            out.append(f'train_cfg.min_iters={n}')
        else:
            out += [f'max_iters={n}', f'train_cfg.val_interval={n}',
                    f'default_hooks.checkpoint.interval={n}']
    return out


def data_root_overrides(args):
    """Point every dataset of the config at ``args.data_root``."""
    cfg = load_config(args.config)  # names the file in its errors
    if args.data_root is None:
        return cfg.train_dataloader.dataset['data_root'], []
    keys = ['train_dataloader.dataset', 'val_dataloader.dataset']
    test = cfg.test_dataloader.dataset
    if 'datasets' in test:
        keys += [f'test_dataloader.dataset.datasets.{i}'
                 for i in range(len(test['datasets']))]
    else:
        keys.append('test_dataloader.dataset')
    return args.data_root, [f'{k}.data_root={args.data_root}' for k in keys]


def generator_options(args) -> dict:
    """The generator settings the main job wants: the config's
    ``data_generator`` (e.g. objects per scene), then the command line's
    image counts and seed."""
    opts = dict(load_config(args.config).get('data_generator') or {})
    opts.update(num_train_images=args.num_train_images,
                num_val_images=args.num_val_images,
                num_test_images=args.num_test_images, seed=args.seed)
    return opts


def _generator_cli(opts: dict) -> list:
    out = []
    for key, value in opts.items():
        flag = '--' + key.replace('_', '-')
        if key == 'dataset_name':
            flag = '--name'
        if key == 'train_kind_weights':
            out += [flag] + [f'{k}={v}' for k, v in (value or {}).items()]
        elif isinstance(value, (list, tuple)):
            out += [flag] + [str(v) for v in value]
        else:
            out += [flag, str(value)]
    return out


def dataset_mismatch(data_root: str, opts: dict):
    """None when ``data_root`` holds a dataset generated with ``opts`` (and
    the generator's defaults for the rest), else the reason."""
    from projects.magnet.datasets.refsynth import (GENERATOR_FILE,
                                                   default_settings,
                                                   generator_settings)
    name = opts.get('dataset_name', 'refsynth')
    stamp = osp.join(data_root, name, GENERATOR_FILE)
    if not osp.isfile(osp.join(data_root, name, 'refs(unc).p')):
        return 'no dataset'
    if not osp.isfile(stamp):
        return f'no {GENERATOR_FILE} (made by an older generator)'
    with open(stamp) as f:
        found = json.load(f)
    wanted = dict(default_settings(), **generator_settings(**opts))
    diff = {k: (found.get(k), v) for k, v in wanted.items()
            if found.get(k) != v}
    return None if not diff else 'other settings: ' + ', '.join(
        f'{k} {a!r} -> {b!r}' for k, (a, b) in sorted(diff.items()))


def ensure_dataset(args, data_root):
    """Generate the dataset unless ``data_root`` has it with the wanted
    settings (a dataset made with other settings is regenerated)."""
    opts = generator_options(args)
    reason = dataset_mismatch(data_root, opts)
    if reason is None:
        print(f'dataset found: {data_root} (settings match)')
        return
    print(f'generating the dataset in {data_root}: {reason}')
    run([sys.executable,
         osp.join(ROOT, 'tools', 'dataset_converters',
                  'generate_refer_dataset.py'),
         '--out', data_root, '--overwrite'] + _generator_cli(opts))


def train(args, overrides):
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), args.config,
           '--work-dir', args.work_dir]
    if overrides:
        cmd += ['--cfg-options'] + overrides
    run(cmd)
    with open(osp.join(args.work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def evaluate(args, checkpoint, overrides, val_only=False):
    """Test ``checkpoint`` with mmengine's Runner on the config's test
    splits, or on its val split only (``val_only``, no persistent
    workers)."""
    from mmengine.runner import Runner

    from projects.magnet.compat import (install_checkpoint_loader,
                                        trust_directory)
    install_checkpoint_loader()
    trust_directory(args.work_dir)
    cfg = merged_config(args, overrides)  # same syntax as tools/train.py
    cfg.work_dir = args.work_dir
    cfg.load_from = checkpoint
    cfg.default_hooks.visualization = dict(type='SegVisualizationHook')
    if val_only:
        cfg.val_dataloader.persistent_workers = False
        cfg.test_dataloader = cfg.val_dataloader
        cfg.test_evaluator = cfg.val_evaluator
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    return runner, metrics


METRIC_NAMES = ('oIoU', 'mIoU', 'Pr@0.5', 'Pr@0.6', 'Pr@0.7', 'Pr@0.8',
                'Pr@0.9')


def split_tags(runner):
    """The split tags of the test datasets, in order."""
    dataset = runner.test_dataloader.dataset
    datasets = getattr(dataset, 'datasets', [dataset])
    return [getattr(d, 'split_tag', '') for d in datasets]


def group_metrics(metrics, splits):
    """``{split: {group: {name: value}}}`` from RefSegMetric's keys
    (``[split/][group/]name``; group '' = all sentences of the split)."""
    single = len(splits) <= 1
    out = {}
    for key, value in metrics.items():
        parts = key.split('/')
        if single:
            split = splits[0] if splits else 'all'
        else:
            split, parts = parts[0], parts[1:]
        group = '/'.join(parts[:-1])
        out.setdefault(split, {}).setdefault(group, {})[parts[-1]] = value
    return out


def print_table(metrics, splits=()):
    """The overall table (one row per split), then oIoU per expression kind
    and per length bucket (one column per split)."""
    table = group_metrics(metrics, list(splits))
    header = f'{"split":<22}' + ''.join(f'{n:>8}' for n in METRIC_NAMES)
    print('\n' + header + '\n' + '-' * len(header))
    for split, groups in table.items():
        row = groups.get('', {})
        print(f'{split:<22}' + ''.join(
            f'{row.get(n, float("nan")):8.2f}' for n in METRIC_NAMES))
    groups = []
    for split_groups in table.values():
        groups += [g for g in split_groups if g and g not in groups]
    if groups:
        names = list(table)
        short = [n.rsplit('_', 1)[-1] for n in names]
        header = f'{"oIoU by kind / length":<22}' + ''.join(
            f'{n:>10}' for n in short)
        print('\n' + header + '\n' + '-' * len(header))
        for group in groups:
            print(f'{group:<22}' + ''.join(
                f'{table[n].get(group, {}).get("oIoU", float("nan")):10.2f}'
                for n in names))
    print()


def write_overlays(runner, out_dir, num):
    """Prediction panels of val samples, and a grid of 16 of them.

    For ``num`` val samples spread over the split, writes
    ``out_dir/overlay_{i:05d}.png`` (``i``: the sample's index): image |
    ground truth | prediction side by side, the masks in cyan on the scene
    dimmed to greyscale (no scene colour), with the expression and the IoU
    in a caption below (``prediction_panel``). Also writes
    ``predictions_grid.png`` in the parent folder of ``out_dir`` (the work
    dir): 16 samples spread over the split in a 4x4 grid
    (``prediction_grid``). With a test set made of several splits (the
    config's val / testA / testB), the samples come from the first one,
    val.

    Returns:
        list[str]: the written files, the grid last.
    """
    import mmcv
    import numpy as np
    import torch

    from projects.magnet.visualization import (expression_of,
                                               prediction_grid,
                                               prediction_panel)

    os.makedirs(out_dir, exist_ok=True)
    model = runner.model.eval()
    dataset = runner.test_dataloader.dataset
    if hasattr(dataset, 'datasets'):  # ConcatDataset: val first
        dataset = dataset.datasets[0]

    def spread(count):
        step = max(1, len(dataset) // max(count, 1))
        return list(range(0, min(len(dataset), step * count), step))

    cache = {}

    def panel(i):
        if i not in cache:
            data = dataset[i]
            batch = model.data_preprocessor(
                dict(inputs=[data['inputs']],
                     data_samples=[data['data_samples']]))
            with torch.no_grad():
                result = model.predict(batch['inputs'],
                                       batch['data_samples'])[0]
            img = data['inputs'].permute(1, 2, 0).cpu().numpy()[..., ::-1]
            pred = result.pred_sem_seg.data[0].cpu().numpy()
            gt = result.gt_sem_seg.data[0].cpu().numpy()
            if pred.shape != gt.shape:  # output_size='original'
                pred = mmcv.imresize(pred.astype(np.uint8), gt.shape[::-1],
                                     interpolation='nearest')
            cache[i] = prediction_panel(
                np.ascontiguousarray(img), gt, pred,
                expression_of(result.metainfo))
        return cache[i]

    written = []
    for i in spread(num):
        path = osp.join(out_dir, f'overlay_{i:05d}.png')
        save_image(panel(i), path)  # atomic
        written.append(path)
    grid_items = spread(16)
    if grid_items:
        grid = prediction_grid([panel(i) for i in grid_items], cols=4)
        path = osp.join(osp.dirname(osp.abspath(out_dir)),
                        'predictions_grid.png')
        save_image(grid, path)
        written.append(path)
    return written


def main():
    args = parse_args()
    start = time.time()
    overrides = length_overrides(args)
    data_root, root_overrides = data_root_overrides(args)
    overrides += root_overrides + list(args.cfg_options)
    check_inputs(args, overrides, data_root)
    ensure_dataset(args, data_root)
    checkpoint = train(args, overrides)
    trained = time.time()
    runner, metrics = evaluate(args, checkpoint, overrides)
    print_table(metrics, split_tags(runner))
    save_json(metrics, osp.join(args.work_dir, 'metrics.json'), indent=1)
    paths = write_overlays(runner, osp.join(args.work_dir, 'overlays'),
                           args.num_overlays)
    print(f'wrote {len(paths) - 1} prediction panels to '
          f'{osp.join(args.work_dir, "overlays")} and the grid {paths[-1]}')
    curve = osp.join(args.work_dir, 'learning_curve.png')
    if osp.isfile(curve):
        print(f'learning curve: {curve} (numbers: learning_curve.json)')
    if args.unseen_scenes:
        # scenes drawn by other code than the generator's, same vocabulary
        run([sys.executable,
             osp.join('tools', 'analysis_tools', 'eval_unseen_scenes.py'),
             args.config, checkpoint, '--num-scenes',
             str(args.unseen_scenes), '--size', str(scene_size(args)),
             '--out-dir', osp.join(args.work_dir, 'unseen_scenes')])
    print(f'wall time: total {time.time() - start:.0f} s, training '
          f'{trained - start:.0f} s')


def scene_size(args) -> int:
    """The generated images' size (the config's data_generator)."""
    cfg = load_config(args.config)  # names the file in its errors
    return int(cfg.get('data_generator', {}).get('img_size', 128))


if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
