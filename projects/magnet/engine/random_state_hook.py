"""Exact resume: the generators' state travels with the checkpoint.

mmengine restores weights, optimizer, schedulers and the message hub on
``resume``, and an iteration-based loop replays the sampler by drawing the
batches already trained, but it re-seeds the global generators from
``randomness.seed``: after a resume, dropout / drop-path, the Mask Grounding
token masker (torch) and ``SampleSentence`` (NumPy, in the main process when
``num_workers=0``) draw other numbers than the uninterrupted run would.
:class:`RandomStateHook` makes a resumed run continue the same sequence:

* ``before_save_checkpoint``: every rank's generator states go into
  ``checkpoint['random_state']`` (a list indexed by rank; plain values and
  tensors, loadable with ``weights_only=True``). With several processes they
  are gathered where all ranks are present (right before ``CheckpointHook``
  saves, and when a validation starts), since mmengine saves on rank 0 only;
* ``after_load_checkpoint`` + ``before_train``: when the run *resumes*
  (the loop's iteration or epoch is past 0; a ``load_from`` fine-tune keeps
  its fresh seed), the state is put back at the moment the uninterrupted run
  was in it: for an iteration-based loop right before it draws its first new
  batch, i.e. after mmengine's replay of the trained batches (which draws from
  the generators too when the data are loaded in the main process); for an
  epoch-based loop before the first epoch;
* ``before_val`` / ``after_val``: an evaluation during training leaves the
  generators as it found them, so a run validated at a different interval
  (or resumed across an evaluation) keeps the same training sequence.
  A checkpoint saved during validation (``save_best``) stores the state of
  the training, not the evaluation's.

Data-loader worker processes need nothing: mmengine seeds them from
``randomness.seed`` and the rank, and the replay draws their batches again.
"""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional

from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmseg.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop

from ..utils.random_state import capture_random_state, restore_random_state

__all__ = ['RandomStateHook', 'CHECKPOINT_KEY']

#: Where the states live in a checkpoint.
CHECKPOINT_KEY = 'random_state'


class _RestoreBeforeBatch:
    """Wrap a loop's data iterator: after ``skip`` batches (mmengine's
    replay), restore ``state`` right before drawing the next one."""

    def __init__(self, iterator: Iterator, skip: int,
                 state: Dict[str, Any]) -> None:
        self._iterator = iterator
        self._skip = skip
        self._state: Optional[Dict[str, Any]] = state

    def __iter__(self) -> '_RestoreBeforeBatch':
        return self

    def __next__(self) -> Any:
        if self._state is not None and self._skip == 0:
            restore_random_state(self._state)
            self._state = None
        elif self._state is not None:
            self._skip -= 1
        return next(self._iterator)

    def __getattr__(self, name: str) -> Any:  # e.g. _dataloader, _epoch
        return getattr(self._iterator, name)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the generators' state in checkpoints and restore it on resume
    (see the module docstring).

    Args:
        restore (bool): Restore the state on resume. ``False`` keeps the
            mmengine behaviour (a fresh seed after a resume) while still
            writing the state. Defaults to True.
    """

    # before CheckpointHook (VERY_LOW) in after_train_iter / _epoch, and
    # before hooks that may draw in before_val
    priority = 'LOW'

    def __init__(self, restore: bool = True) -> None:
        self.restore = restore
        self._loaded: Optional[List[Dict[str, Any]]] = None
        self._val_states: Optional[List[Dict[str, Any]]] = None
        self._pending: Optional[List[Dict[str, Any]]] = None

    # -- saving --------------------------------------------------------
    # ``Runner.save_checkpoint`` runs on rank 0 only: the other ranks'
    # states are gathered just before, where every rank is present (right
    # before ``CheckpointHook`` saves, and at the start of a validation,
    # whose ``save_best`` may save).
    def _checkpoint_hooks(self, runner) -> list:
        return [h for h in runner.hooks if isinstance(h, CheckpointHook)]

    def _gather(self) -> List[Dict[str, Any]]:
        state = capture_random_state()
        return all_gather_object(state) if get_world_size() > 1 \
            else [state]

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if get_world_size() == 1:
            return
        if any(not h.by_epoch and (
                h.every_n_train_iters(runner, h.interval, h.save_begin)
                or (h.save_last and h.is_last_train_iter(runner)))
               for h in self._checkpoint_hooks(runner)):
            self._pending = self._gather()

    def after_train_epoch(self, runner) -> None:
        if get_world_size() == 1:
            return
        if any(h.by_epoch and (
                h.every_n_epochs(runner, h.interval, h.save_begin)
                or (h.save_last and h.is_last_train_epoch(runner)))
               for h in self._checkpoint_hooks(runner)):
            self._pending = self._gather()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._val_states is not None:
            states = self._val_states  # saved during validation
        elif self._pending is not None:
            states = self._pending
        else:
            states = [capture_random_state()]
            if get_world_size() > 1:
                print_log(
                    'RandomStateHook: a checkpoint saved outside '
                    'CheckpointHook holds rank 0\'s random state only: a '
                    'resume from it is not exact', logger='current',
                    level=30)
        self._pending = None
        checkpoint[CHECKPOINT_KEY] = states

    # -- resuming ------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get(CHECKPOINT_KEY)
        self._loaded = states if isinstance(states, list) else None

    def before_train(self, runner) -> None:
        states, self._loaded = self._loaded, None
        loop = runner.train_loop
        if not self.restore or (loop.iter == 0 and loop.epoch == 0):
            return  # not a resume (or nothing loaded): keep the seed
        if states is None:
            print_log(
                'RandomStateHook: the resumed checkpoint has no random '
                'state (written without this hook): the rest of the run '
                'draws other random numbers than an uninterrupted run',
                logger='current', level=30)
            return
        rank, world = get_rank(), get_world_size()
        if len(states) != world:
            print_log(
                f'RandomStateHook: the checkpoint holds the random state of '
                f'{len(states)} processes, this run has {world}: not '
                'restored (an exact resume needs the same number of '
                'processes)', logger='current', level=30)
            return
        state = states[rank]
        if isinstance(loop, IterBasedTrainLoop) and loop.iter > 0:
            loop.dataloader_iterator = _RestoreBeforeBatch(
                loop.dataloader_iterator, loop.iter, state)
        else:
            restore_random_state(state)
        print_log(f'RandomStateHook: random state restored for iteration '
                  f'{loop.iter}', logger='current')

    # -- evaluation inside training --------------------------------------
    def before_val(self, runner) -> None:
        self._val_states = self._gather()

    def after_val(self, runner) -> None:
        states, self._val_states = self._val_states, None
        if states is not None:
            restore_random_state(states[get_rank()])
