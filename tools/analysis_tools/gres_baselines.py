"""Score the trivial GRES predictors on a config's evaluation data.

A GRES score means little without the score of predictors that look at
nothing: on a split with a fifth of no-target sentences, answering "no
target" every time already earns a gIoU of about 20. This tool runs the
config's own evaluator (``GRefSegMetric``) over the config's own val or test
data with two such predictors:

* ``always-no-target``: every sentence is predicted to refer to nothing
  (``pred_no_target`` True, empty mask);
* ``always-target-whole-image``: every sentence is predicted to refer to
  something, and the mask is the whole image (the mask that maximises the
  IoU of a predictor that does not look at the image).

Usage:
    python tools/analysis_tools/gres_baselines.py CONFIG \\
        [--data val|test] [--out FILE.json]

    # the CPU GRES config (generate its data first, see the config)
    GRES=configs/magnet/magnet_swin-nano_minilm-l6_1xb8-30min_grefsynth-128x128.py
    python tools/analysis_tools/gres_baselines.py $GRES \\
        --data test --out work_dirs/grefsynth/baselines.json

The ground truth is read exactly as the model is scored: the config's test
pipeline (resized ground truth, as ``tools/test.py``), every sentence one
item. Prints one line per predictor and metric and writes them to ``--out``
as JSON. A model's own no-target branch is measured against its masks alone
with ``tools/test.py ... --cfg-options
model.test_cfg.no_target_threshold=1.0`` (no sentence is then predicted to
refer to nothing).
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

#: name -> (pred_no_target, the mask's fill value)
BASELINES = OrderedDict([
    ('always-no-target', (True, 0)),
    ('always-target-whole-image', (False, 1)),
])


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from projects.magnet.utils.cli import CfgOptionsAction
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('config', help='a GRES config (GRefSegMetric)')
    parser.add_argument('--data', choices=('val', 'test'), default='test',
                        help="the config's val_dataloader / val_evaluator "
                        'or test_dataloader / test_evaluator')
    parser.add_argument('--out', default=None,
                        help='write the scores to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config settings (key=value)')
    return parser.parse_args(argv)


def baseline_samples(item: dict) -> Dict[str, dict]:
    """Each baseline's prediction for one packed item (the test pipeline's
    ``inputs`` / ``data_samples``), as the evaluator's sample dicts."""
    import torch
    sample = item['data_samples']
    gt = sample.gt_sem_seg.data  # (1, H, W), as the model is scored
    out = {}
    for name, (no_target, fill) in BASELINES.items():
        pred = sample.to_dict()
        pred['pred_sem_seg'] = dict(data=torch.full_like(gt, fill))
        pred['pred_no_target'] = no_target
        out[name] = pred
    return out


def score_baselines(cfg, data: str = 'test') -> Dict[str, Dict[str, float]]:
    """``{baseline: {metric: value}}`` for the config's ``data`` split(s)
    with its ``<data>_evaluator``."""
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, METRICS

    from projects.magnet.evaluation import GRefSegMetric
    from projects.magnet.utils import InvalidInputError
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    loader_cfg = cfg.get(f'{data}_dataloader')
    evaluator_cfg = cfg.get(f'{data}_evaluator')
    if loader_cfg is None or evaluator_cfg is None:
        raise InvalidInputError(
            f'the config has no {data}_dataloader / {data}_evaluator')
    metrics = evaluator_cfg if isinstance(evaluator_cfg, list) else [
        evaluator_cfg]
    # one evaluator (its own metric states) per baseline
    evaluators = {name: Evaluator([METRICS.build(m) for m in metrics])
                  for name in BASELINES}
    built = next(iter(evaluators.values())).metrics
    if not any(isinstance(m, GRefSegMetric) for m in built):
        raise InvalidInputError(
            f'{data}_evaluator has no GRefSegMetric (got '
            f'{[type(m).__name__ for m in built]}): the baselines are '
            'GRES predictors')
    dataset = DATASETS.build(loader_cfg['dataset'])
    for evaluator in evaluators.values():
        evaluator.dataset_meta = dataset.metainfo
    for index in range(len(dataset)):
        for name, pred in baseline_samples(dataset[index]).items():
            evaluators[name].process(data_samples=[pred])
    return OrderedDict((name, evaluator.evaluate(len(dataset)))
                       for name, evaluator in evaluators.items())


def format_scores(scores: Dict[str, Dict[str, float]]) -> str:
    """One row per baseline and split (``<split>/<metric>`` keys; plain
    keys for a single split), one column per metric."""
    rows = []
    columns: List[str] = []
    for name, metrics in scores.items():
        splits: Dict[str, Dict[str, float]] = OrderedDict()
        for key, value in metrics.items():
            split, _, metric = key.rpartition('/')
            splits.setdefault(split, OrderedDict())[metric] = value
            if metric not in columns:
                columns.append(metric)
        for split, values in splits.items():
            rows.append((name, split or '-', values))
    width = max(len(name) for name, _, _ in rows)
    split_width = max(len(split) for _, split, _ in rows)
    lines = ['  '.join([f'{"baseline":<{width}}', f'{"split":<{split_width}}']
                       + [f'{c:>7}' for c in columns])]
    for name, split, values in rows:
        lines.append('  '.join(
            [f'{name:<{width}}', f'{split:<{split_width}}'] +
            [f'{values[c]:7.2f}' if c in values else f'{"":>7}'
             for c in columns]))
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    import projects.magnet  # noqa: F401  (registers everything)
    from projects.magnet.utils import load_config, save_json
    from projects.magnet.utils.config_check import check_option_shapes
    from projects.magnet.utils.output_files import check_output_file
    if args.out:
        check_output_file(args.out, extensions=('.json', ), what='--out',
                          inputs=[args.config])
    cfg = load_config(args.config)
    if args.cfg_options:
        check_option_shapes(cfg, args.cfg_options, args.config)
        cfg.merge_from_dict(args.cfg_options)
    scores = score_baselines(cfg, args.data)
    print(format_scores(scores))
    if args.out:
        save_json(scores, args.out)  # atomic
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
