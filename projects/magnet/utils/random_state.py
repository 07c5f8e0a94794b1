"""Capture and restore every global random number generator a training
step draws from: Python's ``random``, NumPy's legacy global generator, torch
on the CPU and torch on each CUDA device.

The captured state is made of plain Python values and CPU tensors only, so
a checkpoint holding it still loads with ``torch.load(weights_only=True)``
(the project's safe loader, :mod:`projects.magnet.compat.checkpoint`).
"""
from __future__ import annotations

import contextlib
import random
from typing import Any, Dict, Iterator

import numpy as np
import torch

__all__ = [
    'capture_random_state', 'restore_random_state', 'preserved_random_state'
]


def capture_random_state() -> Dict[str, Any]:
    """The state of the global generators of this process.

    Returns:
        dict: ``python`` (version, 625 ints, gauss), ``numpy`` (MT19937 key
        as an int64 tensor of 624, pos, has_gauss, cached_gaussian),
        ``torch`` (uint8 tensor), ``cuda`` (one uint8 tensor per device, or
        an empty list when CUDA is not initialised).
    """
    version, internal, gauss = random.getstate()
    kind, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = [s.clone() for s in torch.cuda.get_rng_state_all()]
    return dict(
        python=dict(version=version, internal=list(internal), gauss=gauss),
        numpy=dict(kind=kind, key=torch.from_numpy(key.astype(np.int64)),
                   pos=int(pos), has_gauss=int(has_gauss),
                   cached_gaussian=float(cached)),
        torch=torch.get_rng_state().clone(),
        cuda=cuda)


def restore_random_state(state: Dict[str, Any]) -> None:
    """Set the global generators to ``state`` (from
    :func:`capture_random_state`).

    Raises:
        ValueError: ``state`` misses a generator or has the wrong form
            (e.g. a checkpoint edited by hand).
    """
    try:
        py = state['python']
        random.setstate(
            (py['version'], tuple(py['internal']), py['gauss']))
        npy = state['numpy']
        key = np.asarray(npy['key'], dtype=np.int64).astype(np.uint32)
        np.random.set_state((npy['kind'], key, npy['pos'], npy['has_gauss'],
                             npy['cached_gaussian']))
        torch.set_rng_state(state['torch'])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f'random_state: not a state written by '
                         f'capture_random_state ({err!r})') from err
    cuda = state.get('cuda') or []
    if cuda and torch.cuda.is_available():
        if len(cuda) != torch.cuda.device_count():
            raise ValueError(f'random_state: {len(cuda)} CUDA generator '
                             f'states for {torch.cuda.device_count()} '
                             'devices')
        torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def preserved_random_state() -> Iterator[Dict[str, Any]]:
    """Run the block and put every global generator back as it was.

    An evaluation inside training (a val loop, a learning-curve point)
    draws from the global generators too (e.g. the seed of a new
    ``DataLoader`` iterator); wrapped in this it leaves the training's random
    sequence as if it had not run.
    """
    state = capture_random_state()
    try:
        yield state
    finally:
        restore_random_state(state)
