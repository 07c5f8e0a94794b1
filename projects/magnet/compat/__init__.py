"""Compatibility shims imported before anything else of the project.

* :mod:`.mmcv_ext` — lets mmseg import under ``mmcv-lite`` (no compiled ops);
  compiled kernels fail loudly only when called. Importing the package
  installs this placeholder (``mmcv._ext``) and nothing else: mmseg cannot
  be imported under mmcv-lite without it.
* :mod:`.checkpoint` — the checkpoint trust boundary for torch >= 2.6
  (``torch.load(weights_only=True)`` by default). It is *not* switched on
  by importing the package: the project's entry points (``tools/*.py``,
  ``demo/``, :func:`projects.magnet.apis.init_model`) call
  :func:`install_checkpoint_loader`, configs get it from the
  ``CheckpointTrustHook`` in ``default_runtime.py``, and a user's own
  script calls ``projects.magnet.compat.install_checkpoint_loader()``.
* :mod:`.distributed` — torchrun on CPU-only machines.
"""
from .checkpoint import (CheckpointNotFoundError, NotACheckpointError,
                         UnreadableCheckpointError, UntrustedCheckpointError,
                         check_torch_file, checkpoint_loader_installed,
                         install_checkpoint_loader, official_checkpoint_hint,
                         is_trusted, load_runner_checkpoint, load_weights,
                         trust_directory)
from .distributed import LauncherError, init_cpu_distributed
from .mmcv_ext import (MissingCompiledOpError, has_compiled_mmcv_ops,
                       install_mmcv_ext_placeholder)

install_mmcv_ext_placeholder()

__all__ = [
    'MissingCompiledOpError', 'has_compiled_mmcv_ops',
    'install_mmcv_ext_placeholder', 'UntrustedCheckpointError',
    'checkpoint_loader_installed', 'NotACheckpointError', 'check_torch_file',
    'official_checkpoint_hint', 'UnreadableCheckpointError',
    'install_checkpoint_loader', 'is_trusted', 'load_runner_checkpoint',
    'load_weights', 'trust_directory', 'init_cpu_distributed',
    'CheckpointNotFoundError', 'LauncherError'
]
