"""Compatibility shims imported before anything else of the project.

* :mod:`.mmcv_ext` — lets mmseg import under ``mmcv-lite`` (no compiled ops);
  compiled kernels fail loudly only when called.
* :mod:`.checkpoint` — the checkpoint trust boundary for torch >= 2.6
  (``torch.load(weights_only=True)`` by default).
* :mod:`.distributed` — torchrun on CPU-only machines.
"""
from .checkpoint import (UntrustedCheckpointError, install_checkpoint_loader,
                         is_trusted, load_runner_checkpoint, load_weights,
                         trust_directory)
from .distributed import init_cpu_distributed
from .mmcv_ext import (MissingCompiledOpError, has_compiled_mmcv_ops,
                       install_mmcv_ext_placeholder)

install_mmcv_ext_placeholder()
install_checkpoint_loader()

__all__ = [
    'MissingCompiledOpError', 'has_compiled_mmcv_ops',
    'install_mmcv_ext_placeholder', 'UntrustedCheckpointError',
    'install_checkpoint_loader', 'is_trusted', 'load_runner_checkpoint',
    'load_weights', 'trust_directory', 'init_cpu_distributed'
]
