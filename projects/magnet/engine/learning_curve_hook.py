"""Evaluate a fixed val subset during training; write the learning curve.

mmengine's val loop evaluates the whole val set at fixed iteration
intervals; a learning curve wants a few cheap points placed at fractions of
a training length that may be set at run time (:class:`TimeBudgetTrainLoop`)
and the training losses beside them. :class:`LearningCurveHook` does that
and writes ``learning_curve.json`` and ``learning_curve.png`` in the work
directory.
"""
from __future__ import annotations

import copy
import json
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.evaluator import Evaluator
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from ..utils.errors import InvalidInputError
from ..utils.random_state import preserved_random_state


@HOOKS.register_module()
class LearningCurveHook(Hook):
    """Val-subset metrics and training losses at fractions of training.

    At each fraction ``f`` of ``runner.max_iters`` (read every iteration, so
    a length set by the loop at run time is followed) the model is evaluated
    on ``num_samples`` evenly spaced items of the val dataset with the
    config's ``val_evaluator``, and the training losses (mean over the
    iterations since the previous point) are recorded.

    Args:
        fractions (Sequence[float]): Points, in (0, 1]; 1 is the end of
            training. Defaults to (0.1, 0.25, 0.5, 0.75, 1.0).
        num_samples (int): Val items evaluated at each point (a fixed,
            evenly spaced subset). Defaults to 200.
        metric (str): The metric drawn (and logged). Defaults to 'oIoU'.
        losses (Sequence[str]): Log keys drawn, without the ``train/``
            prefix; missing keys are skipped. Defaults to the total loss and
            each objective's main term.
        batch_size (int, optional): Evaluation batch size. Defaults to the
            val dataloader's.
        out_prefix (str): File name stem in the work dir. Defaults to
            'learning_curve'.
    """

    priority = 'LOW'  # after the optimizer / scheduler hooks

    def __init__(self,
                 fractions: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 1.0),
                 num_samples: int = 200,
                 metric: str = 'oIoU',
                 losses: Sequence[str] = ('loss', 'decode.loss_mask',
                                          'decode.loss_dice', 'loss_mg',
                                          'loss_cal_p2p', 'loss_cal_p2t'),
                 batch_size: Optional[int] = None,
                 out_prefix: str = 'learning_curve') -> None:
        fractions = sorted(float(f) for f in fractions)
        if not fractions or fractions[0] <= 0 or fractions[-1] > 1:
            raise InvalidInputError(
                f'fractions must lie in (0, 1], got {fractions}')
        if num_samples < 1:
            raise InvalidInputError(
                f'num_samples must be >= 1, got {num_samples}')
        self.fractions = fractions
        self.num_samples = int(num_samples)
        self.metric = metric
        self.loss_keys = tuple(losses)
        self.batch_size = batch_size
        self.out_prefix = out_prefix
        self.points: List[dict] = []
        self._next = 0
        self._since = 0  # iterations since the previous point
        self._loader = None
        self._evaluator = None
        self._start = None

    # ------------------------------------------------------------------
    def before_train(self, runner) -> None:
        self._start = time.perf_counter()
        self._next = 0
        # a resumed run: skip the points already passed
        while (self._next < len(self.fractions) and runner.iter >=
               self.fractions[self._next] * runner.max_iters):
            self._next += 1

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._since += 1
        if self._next >= len(self.fractions):
            return
        done = runner.iter + 1
        if done < min(runner.max_iters,
                      round(self.fractions[self._next] * runner.max_iters)):
            return
        while (self._next < len(self.fractions) and done >= round(
                self.fractions[self._next] * runner.max_iters)):
            self._next += 1
        self._add_point(runner, done)

    def after_train(self, runner) -> None:
        if not self.points or self.points[-1]['iter'] != runner.iter:
            if runner.iter > 0:
                self._add_point(runner, runner.iter)
        if is_main_process():
            self.write(runner.work_dir)

    # ------------------------------------------------------------------
    def _build(self, runner) -> None:
        from mmengine.runner import Runner
        cfg = runner.cfg.get('val_dataloader') or getattr(
            runner, '_val_dataloader', None)
        evaluator = runner.cfg.get('val_evaluator') or getattr(
            runner, '_val_evaluator', None)
        if not isinstance(cfg, dict) or evaluator is None:
            raise InvalidInputError('LearningCurveHook needs val_dataloader '
                                    '(a config dict) and val_evaluator')
        cfg = copy.deepcopy(cfg)
        cfg['persistent_workers'] = False
        cfg['num_workers'] = 0  # a few batches: workers cost more
        if self.batch_size:
            cfg['batch_size'] = self.batch_size
        cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
        loader = Runner.build_dataloader(cfg, seed=0)
        dataset = loader.dataset
        n = len(dataset)
        if n == 0:
            raise InvalidInputError(
                'LearningCurveHook: the val dataset is empty')
        index = np.unique(
            np.linspace(0, n - 1, min(n, self.num_samples)).round().astype(
                int))
        subset = torch.utils.data.Subset(dataset, index.tolist())
        self._loader = torch.utils.data.DataLoader(
            subset, batch_size=loader.batch_size, shuffle=False,
            num_workers=0, collate_fn=loader.collate_fn)
        self._evaluator = Evaluator(copy.deepcopy(evaluator))
        self._evaluator.dataset_meta = getattr(dataset, 'metainfo', None)

    def _losses(self, runner) -> Dict[str, float]:
        scalars = runner.message_hub.log_scalars
        out = {}
        window = max(1, self._since)
        for key in self.loss_keys:
            buf = scalars.get('train/' + key)
            if buf is not None and len(buf.data[0]):
                out[key] = float(buf.mean(window))
        return out

    def _add_point(self, runner, done: int) -> None:
        if self._loader is None:
            self._build(runner)
        start = time.perf_counter()
        model = runner.model
        was_training = model.training
        model.eval()
        # neutral for the training's random sequence (exact resume)
        with torch.no_grad(), preserved_random_state():
            for batch in self._loader:
                outputs = model.test_step(batch)
                self._evaluator.process(data_samples=outputs,
                                        data_batch=batch)
        metrics = self._evaluator.evaluate(len(self._loader.dataset))
        model.train(was_training)
        point = dict(
            iter=int(done),
            max_iters=int(runner.max_iters),
            elapsed_s=round(time.perf_counter() - self._start, 1),
            eval_s=round(time.perf_counter() - start, 1),
            losses=self._losses(runner),
            metrics={k: float(v) for k, v in metrics.items()})
        self._since = 0
        self.points.append(point)
        main = metrics.get(self.metric)
        print_log(
            f'learning curve: iter {done}/{runner.max_iters} '
            f'val[{len(self._loader.dataset)}] {self.metric} '
            f'{main if main is None else round(main, 2)} '
            f'({point["eval_s"]} s)', logger='current')

    # ------------------------------------------------------------------
    def write(self, work_dir: str) -> None:
        """``<out_prefix>.json`` and ``<out_prefix>.png`` in ``work_dir``."""
        stem = osp.join(work_dir, self.out_prefix)
        with open(stem + '.json', 'w') as f:
            json.dump(dict(metric=self.metric, num_samples=self.num_samples,
                           points=self.points), f, indent=1)
        plot_learning_curve(self.points, stem + '.png', self.metric)


def plot_learning_curve(points: List[dict], path: str,
                        metric: str = 'oIoU') -> None:
    """Two panels: val ``metric`` (overall and per group) and the training
    losses against iterations."""
    import matplotlib
    matplotlib.use('Agg', force=False)
    import matplotlib.pyplot as plt

    fig, (ax_m, ax_l) = plt.subplots(1, 2, figsize=(11, 4.2))
    iters = [p['iter'] for p in points]
    keys = sorted({k for p in points for k in p['metrics']
                   if k == metric or k.endswith('/' + metric)})
    for key in keys:
        values = [p['metrics'].get(key, np.nan) for p in points]
        overall = key == metric
        ax_m.plot(iters, values, marker='o', lw=2.5 if overall else 1.2,
                  color='black' if overall else None,
                  label='all' if overall else key[:-len(metric) - 1])
    ax_m.set_xlabel('iteration')
    ax_m.set_ylabel(f'val {metric} (subset)')
    ax_m.set_ylim(0, 100)
    ax_m.grid(alpha=0.3)
    ax_m.legend(fontsize=7, ncol=2)
    loss_keys = sorted({k for p in points for k in p['losses']})
    for key in loss_keys:
        ax_l.plot(iters, [p['losses'].get(key, np.nan) for p in points],
                  marker='.', label=key)
    ax_l.set_xlabel('iteration')
    ax_l.set_ylabel('training loss (mean since previous point)')
    ax_l.set_yscale('log')
    ax_l.grid(alpha=0.3)
    ax_l.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
