"""Distributed runs without CUDA (torchrun on CPU machines).

mmengine's ``init_dist('pytorch')`` calls ``torch.cuda.set_device`` and its
Runner wraps the model in DDP with ``device_ids=[LOCAL_RANK]``; neither works
with a CPU-only torch build. When CUDA is unavailable the tools start the
process group here first (gloo, ``env://`` as torchrun sets it; the Runner
then skips its own initialisation) and give the DDP wrapper
``device_ids=None``.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from mmengine.logging import print_log

from ..utils.errors import UserError

CPU_BACKENDS = ('gloo', 'mpi')


class LauncherError(UserError, RuntimeError):
    """``--launcher pytorch`` outside torchrun (no rank environment)."""


def init_cpu_distributed(launcher: str, cfg) -> bool:
    """Start a CPU process group for ``launcher='pytorch'`` without CUDA.

    Args:
        launcher (str): The tool's ``--launcher``.
        cfg (Config): The run's config: ``env_cfg.dist_cfg.backend`` is used
            when it works on CPU (otherwise gloo); ``model_wrapper_cfg`` is
            set to a CPU DDP wrapper when the config has none.

    Returns:
        bool: Whether a group was started here.
    """
    if launcher != 'pytorch' or torch.cuda.is_available() or \
            dist.is_initialized():
        return False
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR',
                           'MASTER_PORT') if k not in os.environ]
    if missing:
        raise LauncherError(
            f'--launcher pytorch needs {missing} in the environment: start '
            'the tool with torchrun (tools/dist_train.sh, dist_test.sh)')
    dist_cfg = cfg.get('env_cfg', {}).get('dist_cfg', {}) or {}
    backend = dist_cfg.get('backend', 'gloo')
    if backend not in CPU_BACKENDS:
        print_log(f'env_cfg.dist_cfg.backend={backend!r} needs CUDA; using '
                  '"gloo" on this CPU-only machine', logger='current')
        backend = 'gloo'
    dist.init_process_group(backend=backend, init_method='env://')
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    return True
