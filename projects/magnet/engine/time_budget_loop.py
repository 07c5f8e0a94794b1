"""An iteration-based training loop sized by wall time.

The same config takes 1.5 s per step on one project machine and 3.2 s on
another. A fixed ``max_iters`` therefore either overruns a time budget on
the slow machine or wastes it on the fast one. :class:`TimeBudgetTrainLoop`
measures the throughput of the first iterations and sets the number of
iterations so that training (plus the evaluations run by hooks in between)
ends at ``max_time`` seconds, then stretches or shrinks every parameter
scheduler that runs to the end of training, so the learning-rate schedule
is complete whatever the machine.

mmengine has no such loop (its ``IterBasedTrainLoop`` is sized in
iterations only), hence this small subclass.
"""
from __future__ import annotations

import math
import time
from typing import Dict, List, Optional, Sequence, Union

from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop
from mmseg.registry import LOOPS
from torch.utils.data import DataLoader

from ..utils.errors import InvalidInputError, UserError

#: runtime-info key under which the calibrated length is kept (saved in the
#: checkpoints' message hub, so a resumed run keeps the same schedule)
CALIBRATED_KEY = 'time_budget_max_iters'


class ScheduleBudgetError(UserError, TypeError):
    """A scheduler of the config whose length the time budget cannot
    rescale."""


@LOOPS.register_module()
class TimeBudgetTrainLoop(IterBasedTrainLoop):
    """Train for ``max_time`` seconds: ``max_iters`` set from throughput.

    After ``calibrate_iters`` iterations the loop takes the median time of
    an iteration since ``skip_iters`` (the first ones are slow: allocation,
    worker start) and sets ``max_iters`` to fill the remaining time, within
    ``[min_iters, max_iters]``. It re-estimates after each evaluation run by
    a hook or the val loop (``recalibrate``), since their time comes out of
    the same budget. Every parameter scheduler whose ``end`` is the old
    ``max_iters`` is moved to the new one (``PolyLR``, ``LinearLR``,
    ``CosineAnnealingLR`` and their momentum/param variants); a scheduler
    that ends earlier (a warm-up) is left as it is.

    A resumed run keeps the length calibrated before the interruption (it is
    stored in the message hub and so in every checkpoint), so the schedule
    is that of an uninterrupted run.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): The training dataloader.
        max_time (float): Seconds of training, from the start of the loop.
        max_iters (int): Upper bound (and the nominal length the config's
            schedulers are written for).
        min_iters (int): Lower bound (capped at ``max_iters``, so that
            ``train_cfg.max_iters=N`` alone shortens a run). Defaults to 1.
        calibrate_iters (int): Iterations before the length is fixed.
            Defaults to 20.
        skip_iters (int): First iterations left out of the estimate.
            Defaults to 3.
        recalibrate (bool): Re-estimate after an iteration that took over
            3x the median (an evaluation by the val loop or a hook ran).
            Defaults to True.
        val_begin (int): See ``IterBasedTrainLoop``.
        val_interval (int): See ``IterBasedTrainLoop``.
        dynamic_intervals (list, optional): See ``IterBasedTrainLoop``.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 max_time: float,
                 max_iters: int,
                 min_iters: int = 1,
                 calibrate_iters: int = 20,
                 skip_iters: int = 3,
                 recalibrate: bool = True,
                 val_begin: int = 1,
                 val_interval: int = 10**9,
                 dynamic_intervals: Optional[list] = None) -> None:
        if max_time <= 0:
            raise InvalidInputError(
                f'max_time must be > 0 seconds, got {max_time}')
        if not 0 <= skip_iters < calibrate_iters:
            raise InvalidInputError(
                f'need 0 <= skip_iters < calibrate_iters, got skip_iters='
                f'{skip_iters}, calibrate_iters={calibrate_iters}')
        if min_iters < 1 or max_iters < 1:
            raise InvalidInputError(
                f'need min_iters >= 1 and max_iters >= 1, got {min_iters}, '
                f'{max_iters}')
        min_iters = min(min_iters, max_iters)  # a shorter max_iters wins
        super().__init__(runner, dataloader, max_iters, val_begin,
                         val_interval, dynamic_intervals)
        self.max_time = float(max_time)
        self.nominal_iters = int(max_iters)
        self.min_iters = int(min_iters)
        self.calibrate_iters = int(calibrate_iters)
        self.skip_iters = int(skip_iters)
        self.recalibrate = recalibrate
        self._iter_times: List[float] = []
        self._start: Optional[float] = None
        self._last: Optional[float] = None
        self._calibrated = False

    # ------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        """Seconds since the loop started (0 before)."""
        return 0.0 if self._start is None else time.perf_counter() - \
            self._start

    @property
    def seconds_per_iter(self) -> Optional[float]:
        """Median measured iteration time (None before calibration)."""
        times = sorted(self._iter_times[self.skip_iters:])
        if not times:
            return None
        return times[len(times) // 2]

    # ------------------------------------------------------------------
    def run(self) -> None:
        """Launch training (``IterBasedTrainLoop.run`` with the timer)."""
        info = self.runner.message_hub.get_info(CALIBRATED_KEY)
        if info is not None and self._iter > 0:
            # resumed: keep the length of the interrupted run
            self._set_max_iters(int(info), reason='resumed run')
            self._calibrated = True
        self._start = time.perf_counter()
        self._last = None
        return super().run()

    def run_iter(self, data_batch: Sequence[dict]) -> None:
        """One iteration; the time from one iteration's start to the next
        covers everything in between (hooks, the val loop)."""
        now = time.perf_counter()
        if self._last is not None:
            gap = now - self._last
            per_iter = self.seconds_per_iter
            # an evaluation (val loop or hook) ran: re-fit what is left
            if (self._calibrated and self.recalibrate
                    and per_iter is not None and gap > 3 * per_iter):
                self._fit_to_budget()
            else:
                self._iter_times.append(gap)
        self._last = now
        super().run_iter(data_batch)
        if not self._calibrated and \
                len(self._iter_times) >= self.calibrate_iters:
            self._calibrated = True
            self._fit_to_budget()

    # ------------------------------------------------------------------
    def _fit_to_budget(self) -> None:
        per_iter = self.seconds_per_iter
        if per_iter is None:
            return
        remaining = self.max_time - self.elapsed
        n = self._iter + max(0, math.floor(remaining / per_iter + 1e-6))
        n = max(self.min_iters, min(self.nominal_iters, n), self._iter + 1)
        self._set_max_iters(
            n, reason=f'{per_iter:.3f} s/iter, {remaining:.0f} s left of '
            f'{self.max_time:.0f} s')

    def _set_max_iters(self, new: int, reason: str) -> None:
        old = self._max_iters
        self.runner.message_hub.update_info(CALIBRATED_KEY, new)
        if new == old:
            return
        self._max_iters = new
        moved = rescale_schedulers(self.runner.param_schedulers, old, new,
                                   self._iter)
        print_log(
            f'TimeBudgetTrainLoop: max_iters {old} -> {new} ({reason}); '
            f'{moved} scheduler(s) now end at {new}', logger='current')


def _schedulers(param_schedulers) -> list:
    if param_schedulers is None:
        return []
    if isinstance(param_schedulers, dict):
        return [s for v in param_schedulers.values() for s in v]
    return list(param_schedulers)


def rescale_schedulers(param_schedulers, old_end: int, new_end: int,
                       current: int) -> int:
    """Move the end of every scheduler that ends at ``old_end``.

    Args:
        param_schedulers (list | dict): ``runner.param_schedulers``.
        old_end (int): The training length they were written for.
        new_end (int): The new training length.
        current (int): Iterations done (a scheduler that has already
            started keeps its value and anneals to its end from there).

    Returns:
        int: How many schedulers were moved.

    Raises:
        TypeError: A scheduler ending at ``old_end`` whose length cannot be
            changed (its type is named).
    """
    moved = 0
    for sched in _schedulers(param_schedulers):
        if getattr(sched, 'by_epoch', False) or sched.end != old_end:
            continue
        if new_end <= sched.begin:
            raise InvalidInputError(
                f'{type(sched).__name__} begins at iteration {sched.begin}, '
                f'after the budgeted length {new_end}: make the warm-up '
                'shorter or the time budget longer')
        sched.end = new_end
        if hasattr(sched, 'T_max'):  # cosine annealing
            sched.T_max = new_end - sched.begin
        elif hasattr(sched, 'total_iters'):  # poly, linear
            sched.total_iters = new_end - sched.begin - 1
        elif type(sched).__name__.startswith('Constant'):
            pass
        else:
            raise ScheduleBudgetError(
                f'{type(sched).__name__} ends at max_iters but its length '
                'cannot be rescaled by TimeBudgetTrainLoop; use PolyLR, '
                'LinearLR or CosineAnnealingLR for the last phase')
        moved += 1
    return moved
