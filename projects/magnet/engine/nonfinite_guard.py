"""Optimizer wrappers that never step on a NaN / Inf.

mmengine's ``OptimWrapper`` back-propagates and steps whatever the loss is:
one non-finite loss or gradient turns every weight into NaN (gradient
clipping multiplies by NaN too) and the run goes on, logging ``loss: nan``.
The wrappers here check the loss before ``backward`` and the gradients
before ``step``, and on a non-finite value do what the config says:

* ``nonfinite='error'`` (default): raise :class:`NonFiniteError` naming the
  iteration, which losses / parameters are not finite and the samples of
  the batch (image, ref id, sentence id, text: recorded by
  :class:`~projects.magnet.engine.BatchIdentityHook`);
* ``nonfinite='skip'``: log the same, drop the step (gradients zeroed, no
  update, the optimizer state untouched), count it in the message hub
  (``train/nonfinite_skipped``, also in the log line as
  ``nonfinite_skipped``), and raise after ``max_consecutive_skips`` skips
  in a row.

Registered: ``GuardedOptimWrapper`` (fp32), ``GuardedAmpOptimWrapper``
(mmengine's CUDA mixed precision; with fp16 dynamic loss scaling an
overflow in the *scaled* gradients is the scaler's business and skipped by
it, as usual; only the loss is checked), ``CPUAmpOptimWrapper`` (bf16
autocast on the CPU, no loss scaling: bf16 has fp32's exponent range).
"""
from __future__ import annotations

import contextlib
import logging
from typing import Dict, Iterator, List, Optional

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS
from mmengine.runner.amp import autocast
from torch import nn

from ..utils.errors import InvalidInputError, UserError

__all__ = [
    'NonFiniteError', 'GuardedOptimWrapper', 'GuardedAmpOptimWrapper',
    'CPUAmpOptimWrapper', 'BATCH_INFO_KEY', 'SKIPPED_KEY'
]

#: Message-hub info key of the current batch's sample identities.
BATCH_INFO_KEY = 'train_batch_samples'
#: Message-hub scalar key counting skipped steps.
SKIPPED_KEY = 'train/nonfinite_skipped'
_MODES = ('error', 'skip')


class NonFiniteError(UserError, FloatingPointError, RuntimeError):
    """A loss or gradient of a training step is NaN or Inf (a
    ``RuntimeError`` too: the tools end it with one ``error:`` line)."""


def _describe_batch(limit: int = 8) -> str:
    samples = MessageHub.get_current_instance().get_info(BATCH_INFO_KEY)
    if not samples:
        return 'samples: not recorded (add BatchIdentityHook)'
    shown = [', '.join(f'{k}={v!r}' for k, v in s.items())
             for s in samples[:limit]]
    more = len(samples) - len(shown)
    return 'samples: ' + '; '.join(f'[{s}]' for s in shown) + (
        f' (+{more} more)' if more > 0 else '')


class _NonFiniteGuard:
    """The checks, mixed into an mmengine optimizer wrapper."""

    def _init_guard(self, nonfinite: str, max_consecutive_skips: int,
                    check_grads: bool) -> None:
        if nonfinite not in _MODES:
            raise InvalidInputError(
                f'optim_wrapper.nonfinite must be one of {_MODES}, got '
                f'{nonfinite!r}')
        if max_consecutive_skips < 1:
            raise InvalidInputError(
                'optim_wrapper.max_consecutive_skips must be >= 1, got '
                f'{max_consecutive_skips}')
        self.nonfinite = nonfinite
        self.max_consecutive_skips = int(max_consecutive_skips)
        self.check_grads = check_grads
        self.skipped = 0
        self._consecutive = 0
        self._names: Dict[int, str] = {}

    # -- what is not finite --------------------------------------------
    def _params(self) -> Iterator[torch.Tensor]:
        for group in self.optimizer.param_groups:
            yield from group['params']

    def _bad_grads(self) -> Optional[List[str]]:
        grads = [p.grad for p in self._params() if p.grad is not None]
        if not grads:
            return None
        norms = torch._foreach_norm(grads, float('inf'))
        if bool(torch.isfinite(torch.stack(norms)).all()):
            return None
        return [self._names.get(id(p), f'param {i}')
                for i, p in enumerate(self._params())
                if p.grad is not None
                and not bool(torch.isfinite(p.grad).all())]

    def register_parameter_names(self, model: nn.Module) -> None:
        """Name parameters in messages (called from ``optim_context``)."""
        if not self._names:
            self._names = {id(p): n for n, p in model.named_parameters()}

    # -- handling ------------------------------------------------------
    def _handle(self, what: str) -> None:
        hub = MessageHub.get_current_instance()
        it = hub.get_info('iter', None)
        where = f'iteration {it + 1}' if isinstance(it, int) else 'a step'
        message = f'non-finite {what} at {where}; {_describe_batch()}'
        if self.nonfinite == 'error':
            raise NonFiniteError(
                message + ' (optim_wrapper.nonfinite="skip" drops such '
                'steps instead)')
        self.skipped += 1
        self._consecutive += 1
        hub.update_scalar(SKIPPED_KEY, self.skipped)
        print_log(f'skipped step {self.skipped}: {message}',
                  logger='current', level=logging.WARNING)
        if self._consecutive >= self.max_consecutive_skips:
            raise NonFiniteError(
                f'{self._consecutive} consecutive steps skipped for '
                f'non-finite values (max_consecutive_skips='
                f'{self.max_consecutive_skips}); last: {message}')

    def update_params(self, loss: torch.Tensor,
                      step_kwargs: Optional[Dict] = None,
                      zero_kwargs: Optional[Dict] = None) -> None:
        """``OptimWrapper.update_params`` with the checks."""
        step_kwargs = step_kwargs or {}
        zero_kwargs = zero_kwargs or {}
        if not bool(torch.isfinite(loss.detach()).all()):
            self._handle(f'loss ({float(loss.detach().float().sum())})')
            # no backward: nothing reaches the gradients or the weights
            self._inner_count += 1
            if self.should_update():
                self.zero_grad(**zero_kwargs)
            return
        self.backward(self.scale_loss(loss))
        if not self.should_update():
            return
        bad = self._bad_grads() if self.check_grads else None
        if bad:
            shown = ', '.join(bad[:5]) + (
                f' (+{len(bad) - 5} more)' if len(bad) > 5 else '')
            self.zero_grad(**zero_kwargs)
            self._handle(f'gradient in {shown}')
            return
        self._consecutive = 0
        self.step(**step_kwargs)
        self.zero_grad(**zero_kwargs)


@OPTIM_WRAPPERS.register_module()
class GuardedOptimWrapper(_NonFiniteGuard, OptimWrapper):
    """``OptimWrapper`` that stops (or skips the step) on a NaN / Inf.

    Args:
        nonfinite (str): ``'error'`` or ``'skip'``. Defaults to 'error'.
        max_consecutive_skips (int): With ``'skip'``, raise after this many
            skipped steps in a row. Defaults to 10.
        **kwargs: ``OptimWrapper``'s (``optimizer``, ``clip_grad``,
            ``accumulative_counts``).
    """

    def __init__(self, *args, nonfinite: str = 'error',
                 max_consecutive_skips: int = 10, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_guard(nonfinite, max_consecutive_skips, check_grads=True)

    def optim_context(self, model: nn.Module):
        self.register_parameter_names(model)
        return super().optim_context(model)


@OPTIM_WRAPPERS.register_module()
class GuardedAmpOptimWrapper(_NonFiniteGuard, AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` (CUDA, fp16 / bf16) with the loss
    check; gradient overflow stays the loss scaler's to handle."""

    def __init__(self, *args, nonfinite: str = 'error',
                 max_consecutive_skips: int = 10, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_guard(nonfinite, max_consecutive_skips, check_grads=False)

    def optim_context(self, model: nn.Module):
        self.register_parameter_names(model)
        return super().optim_context(model)


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(GuardedOptimWrapper):
    """Mixed precision on the CPU: the forward runs under bf16 autocast
    (matmuls and convolutions in bf16), the weights, gradients and optimizer
    state stay fp32, no loss scaling. Modules that must stay fp32 under
    autocast (the language-side masking arithmetic, deformable-attention
    sampling, the losses) say so themselves."""

    def __init__(self, *args, dtype: str = 'bfloat16', **kwargs) -> None:
        if dtype not in ('bfloat16', torch.bfloat16):
            raise InvalidInputError(
                'CPUAmpOptimWrapper: CPU autocast supports dtype="bfloat16" '
                f'only, got {dtype!r}')
        super().__init__(*args, **kwargs)
        self.cast_dtype = torch.bfloat16

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module):
        with super().optim_context(model), autocast(
                device_type='cpu', dtype=torch.bfloat16):
            yield
