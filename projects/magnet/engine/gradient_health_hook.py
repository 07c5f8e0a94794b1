"""See a dead branch in minutes: gradient health during training.

:class:`GradientHealthHook` (a default hook of every config, through
``configs/_base_/default_runtime.py``)

* in the first ``check_iters`` iterations of a run, records which trainable
  parameters receive a gradient; those that got none (or only zeros) in all
  of them are reported by name, grouped by module: a warning, or an error
  with ``strict=True``;
* every ``interval`` iterations, writes the per-module gradient norms
  (``grad_norm/<module>``) and how open every fusion gate is
  (``gate/<module>``: mean ``|tanh(...)|`` over the batch) as scalars to the
  visualizer's backends (``scalars.json`` of ``LocalVisBackend``,
  TensorBoard with ``TensorboardVisBackend``), with one summary log line.

Gradients are read right after backward by post-accumulate-grad hooks
(:class:`GradientRecorder`), only in the iterations that report; the other
iterations cost nothing.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, Optional, Set

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from ..utils.errors import InvalidInputError, UserError
from .gradient_health import (GateProbe, GradientRecorder, frozen_parameters,
                              parameter_group, unwrap)


class DeadParametersError(UserError, RuntimeError):
    """Trainable parameters received no gradient (``strict=True``)."""


@HOOKS.register_module()
class GradientHealthHook(Hook):
    """Report parameters without gradient; log gradient norms and gates.

    Args:
        check_iters (int): The first iterations of a run (also a resumed
            one) in which every trainable parameter must get a gradient at
            least once. 0 turns the check off. Defaults to 3.
        strict (bool): Raise :class:`DeadParametersError` instead of
            warning. Defaults to False.
        interval (int): Log gradient norms and gate openness every
            ``interval`` iterations (0: never). Defaults to 50.
        depth (int): Module depth of the gradient-norm groups, see
            :func:`parameter_group`. Defaults to 2.
        max_names (int): Parameter names shown per module group in the
            report. Defaults to 8.
    """

    priority = 'NORMAL'

    def __init__(self,
                 check_iters: int = 3,
                 strict: bool = False,
                 interval: int = 50,
                 depth: int = 2,
                 max_names: int = 8) -> None:
        if check_iters < 0 or interval < 0 or depth < 1:
            raise InvalidInputError(
                'GradientHealthHook: check_iters and interval must be >= 0 '
                f'and depth >= 1, got {check_iters}, {interval}, {depth}')
        self.check_iters = check_iters
        self.strict = strict
        self.interval = interval
        self.depth = depth
        self.max_names = max_names
        self._start = 0
        self._got: Set[str] = set()
        self._recorder: Optional[GradientRecorder] = None
        self._probe: Optional[GateProbe] = None
        self._checked = False

    # ------------------------------------------------------------------
    def before_train(self, runner) -> None:
        self._start = runner.iter
        self._got = set()
        self._checked = self.check_iters == 0
        model = unwrap(runner.model)
        inert = getattr(model, 'frozen_inert', {})
        frozen = frozen_parameters(model)
        if is_main_process():
            print_log(
                f'GradientHealthHook: {len(frozen)} parameters frozen '
                f'({len(inert)} of them inert by design or kept only for '
                'checkpoint loading, see the model\'s frozen_inert); '
                f'checking the trainable ones in the first '
                f'{self.check_iters} iterations', logger='current')

    def _checking(self, runner) -> bool:
        return not self._checked and runner.iter < self._start + \
            self.check_iters

    def _logging(self, runner) -> bool:
        return bool(self.interval) and (runner.iter + 1) % self.interval == 0

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Any = None) -> None:
        if not (self._checking(runner) or self._logging(runner)):
            return
        self._recorder = GradientRecorder(runner.model).start()
        if self._logging(runner):
            self._probe = GateProbe(runner.model).__enter__()

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: Any = None, outputs=None) -> None:
        recorder, probe = self._recorder, self._probe
        if recorder is None:
            return
        recorder.stop()
        if probe is not None:
            probe.__exit__()
        self._recorder = self._probe = None
        if self._checking(runner):
            self._got.update(n for n, v in recorder.norms.items() if v)
            if runner.iter + 1 == self._start + self.check_iters:
                self._checked = True
                self._report(runner, recorder)
        if probe is not None:
            self._log_scalars(runner, recorder, probe)

    # ------------------------------------------------------------------
    def _report(self, runner, recorder: GradientRecorder) -> None:
        dead = [n for n in recorder.params if n not in self._got]
        if not dead:
            if is_main_process():
                print_log(
                    f'GradientHealthHook: all {len(recorder.params)} '
                    'trainable parameters received a gradient in the first '
                    f'{self.check_iters} iterations', logger='current')
            return
        groups: Dict[str, list] = defaultdict(list)
        for name in dead:
            groups[parameter_group(name, self.depth)].append(name)
        lines = []
        for group, names in groups.items():
            shown = ', '.join(n[len(group) + 1:] or n
                              for n in names[:self.max_names])
            more = len(names) - self.max_names
            lines.append(f'  {group}: {shown}' +
                         (f' (+{more} more)' if more > 0 else ''))
        message = (
            f'{len(dead)} of {len(recorder.params)} trainable parameters '
            f'received no gradient in the first {self.check_iters} '
            'iterations (their module\'s output reaches no loss, or a zero '
            'initialisation blocks it, e.g. a gate with both layers at 0): '
            '\n' + '\n'.join(lines) + '\nFreeze them (requires_grad=False) '
            'if that is intended; tools/analysis_tools/check_gradients.py '
            'CONFIG shows the whole picture.')
        if self.strict:
            raise DeadParametersError(message)
        if is_main_process():
            print_log('GradientHealthHook: ' + message, logger='current',
                      level=30)

    def _log_scalars(self, runner, recorder: GradientRecorder,
                     probe: GateProbe) -> None:
        scale = 1.0
        scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
        if scaler is not None and hasattr(scaler, 'get_scale'):
            scale = float(scaler.get_scale()) or 1.0  # fp16 AMP
        scalars = {f'grad_norm/{k}': v / scale
                   for k, v in recorder.group_norms(self.depth).items()}
        scalars.update({f'gate/{k}': v for k, v in probe.values.items()})
        step = runner.iter + 1
        runner.visualizer.add_scalars(scalars, step=step)
        if is_main_process():
            norms = [v for k, v in scalars.items()
                     if k.startswith('grad_norm/')]
            gates = ' '.join(f'{k[5:]}={v:.2e}' for k, v in scalars.items()
                             if k.startswith('gate/'))
            print_log(
                f'GradientHealthHook iter {step}: gradient norm per module '
                f'min {min(norms, default=0):.2e} max '
                f'{max(norms, default=0):.2e}; mean |gate| {gates}',
                logger='current')
