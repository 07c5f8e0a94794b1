"""Train the ablation set at an equal budget and tabulate the results.

For every config (default: the CPU ablation set on the generated dataset):

1. train it with ``tools/train.py`` (same data, seed, batch and iteration
   budget for all);
2. evaluate the last checkpoint on the val split (oIoU, mIoU, Pr@0.5-0.9);
3. for models with a Mask Grounding head: masked-token accuracy on val with
   the real image and mask, a blank image, a blank mask, and both blank -
   the same tokens are masked in every condition (one seeded generator per
   condition). Vision is used when "real" beats "blank image".

Writes ``<work-dir>/ablations.json`` and ``<work-dir>/ablations.md``.

Usage:
    python tools/analysis_tools/run_ablations.py [--configs CFG ...]
        [--work-dir DIR] [--max-iters N] [--data-root DIR]
        [--skip-existing] [--cfg-options KEY=VALUE ...]
"""
import argparse
import json
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.join(ROOT, 'tools'))

import main_job  # noqa: E402  (the main job's data/train helpers)

from projects.magnet.models.auxiliary.mask_grounding import \
    CONTROL_CONDITIONS as CONDITIONS  # noqa: E402

CPU_SUFFIX = 'swin-nano_minilm-l6_cpu-500it_refsynth-128x128.py'
DEFAULT_CONFIGS = [
    osp.join(ROOT, 'configs', 'magnet', 'magnet_' + CPU_SUFFIX),
] + [
    osp.join(ROOT, 'configs', 'magnet', 'ablations', f'{name}_{CPU_SUFFIX}')
    for name in ('magnet-wo-mg', 'magnet-wo-cal', 'magnet-wo-cam',
                 'lavt-style', 'lavt-style-mg')
]
METRICS = ['oIoU', 'mIoU', 'Pr@0.5', 'Pr@0.6', 'Pr@0.7', 'Pr@0.8', 'Pr@0.9']


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS)
    parser.add_argument('--work-dir', default='work_dirs/ablations')
    parser.add_argument('--max-iters', type=int, default=None,
                        help='training budget of every config (default: '
                        'each config\'s own; they are equal by design)')
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--num-train-images', type=int, default=2000)
    parser.add_argument('--num-val-images', type=int, default=200)
    parser.add_argument('--num-test-images', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--mg-seed', type=int, default=0,
                        help='seed of the token masking used to measure '
                        'masked-token accuracy')
    parser.add_argument('--mg-repeats', type=int, default=3,
                        help='masking draws per val sample')
    parser.add_argument('--skip-existing', action='store_true',
                        help='reuse a finished training run')
    parser.add_argument('--cfg-options', nargs='+', default=[])
    return parser.parse_args()


def budget_overrides(n):
    """The training length (and no in-training validation: every config
    is evaluated once, after training)."""
    overrides = []
    if n:
        overrides = [f'max_iters={n}', f'train_cfg.max_iters={n}',
                     f'default_hooks.checkpoint.interval={n}',
                     f'param_scheduler.1.end={n}']
    return overrides + ['train_cfg.val_begin=1000000000']


def masked_token_accuracy(runner, repeats, seed):
    """Accuracy (%) per condition over the val split, or None."""
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
                    logits, target = model.mask_grounding_predict(
                        batch['inputs'], batch['data_samples'],
                        generator=gens[name], **flags)
                    correct[name] += int(
                        (logits.argmax(-1) == target).sum())
                    total[name] += int(target.numel())
    return {k: 100.0 * correct[k] / max(total[k], 1) for k in CONDITIONS}, \
        total['real']


def markdown(rows, iters):
    cond = list(CONDITIONS)
    head = ['config', 'MG', 'CAL', 'CAM'] + METRICS + [
        f'MG acc ({c})' for c in cond]
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    for r in rows:
        cells = [r['name'], r['mg'], r['cal'], r['cam']]
        cells += [f'{r["metrics"].get(m, float("nan")):.2f}' for m in METRICS]
        if r['mg_acc'] is None:
            cells += ['-'] * len(cond)
        else:
            cells += [f'{r["mg_acc"][c]:.1f}' for c in cond]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
    tokens = max(r.get('mg_tokens', 0) for r in rows)
    lines.append(f'Budget: {iters} iterations each (val split). Masked-token '
                 f'accuracy (%) over {tokens} masked val tokens per '
                 'condition, where a Mask Grounding head exists.')
    return '\n'.join(lines) + '\n'


def switches(config):
    from mmengine.config import Config
    model = Config.fromfile(config).model
    on = lambda x: 'yes' if x else 'no'
    return (on(model.get('mask_grounding')),
            on(model.get('alignment_loss')),
            on(model.backbone.get('use_alignment', True)))


def main():
    args = parse_args()
    from mmengine.config import Config
    results = []
    base_overrides = budget_overrides(args.max_iters)
    first = Config.fromfile(args.configs[0])
    iters = args.max_iters or first.train_cfg.max_iters
    for config in args.configs:
        name = osp.basename(config).split('_')[0]
        work_dir = osp.join(args.work_dir, name)
        job = argparse.Namespace(**{**vars(args), 'config': config,
                                    'work_dir': work_dir})
        data_root, root_overrides = main_job.data_root_overrides(job)
        overrides = (base_overrides + root_overrides + [
            f'randomness.seed={args.seed}'] + list(args.cfg_options))
        main_job.ensure_dataset(job, data_root)
        start = time.time()
        last = osp.join(work_dir, 'last_checkpoint')
        if args.skip_existing and osp.isfile(last):
            with open(last) as f:
                checkpoint = f.read().strip()
        else:
            checkpoint = main_job.train(job, overrides)
        train_s = time.time() - start
        runner, metrics = main_job.evaluate(job, checkpoint, overrides,
                                            val_only=True)
        mg = masked_token_accuracy(runner, args.mg_repeats, args.mg_seed)
        metrics = {k.rpartition('/')[2]: v for k, v in metrics.items()}
        mg_acc, mg_tokens = mg if mg else (None, 0)
        mg_on, cal_on, cam_on = switches(config)
        results.append(dict(name=name, config=osp.relpath(config, ROOT),
                            mg=mg_on, cal=cal_on, cam=cam_on,
                            metrics=metrics, mg_acc=mg_acc,
                            mg_tokens=mg_tokens, train_seconds=train_s,
                            checkpoint=checkpoint))
        print(json.dumps(results[-1], indent=1), flush=True)
        with open(osp.join(args.work_dir, 'ablations.json'), 'w') as f:
            json.dump(dict(iters=iters, results=results), f, indent=1)
    table = markdown(results, iters)
    with open(osp.join(args.work_dir, 'ablations.md'), 'w') as f:
        f.write(table)
    print(table)


if __name__ == '__main__':
    main()
