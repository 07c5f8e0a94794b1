"""Checkpoint trust boundary for torch >= 2.6.

torch >= 2.6 loads checkpoints with ``weights_only=True`` by default, which
refuses any pickled Python object that is not a tensor or a plain container.
mmengine 0.10.7 calls ``torch.load`` without that argument, so resuming or
testing an mmengine checkpoint (which stores a ``HistoryBuffer``, numpy
scalars, ...) fails. The project draws the boundary as follows:

* **Released weights and converter inputs** (official MagNet / Swin / BERT
  files, anything a user downloads) are plain tensors. They are always loaded
  with ``weights_only=True`` (:func:`load_weights`). Nothing in them can run.
* **Checkpoints written by the project's own Runner** hold a few extra
  mmengine/numpy types. These types are added to torch's weights-only
  allowlist (:data:`RUNNER_SAFE_GLOBALS`), so they also load weights-only.
* **Anything else** that needs full unpickling is refused with an error that
  names the file and the offending object — unless the file lies under a
  directory the user explicitly trusts: a run's ``work_dir`` (registered by
  ``tools/train.py`` / ``tools/test.py``), or a directory listed in the
  ``MAGNET_TRUSTED_CHECKPOINT_DIRS`` environment variable
  (``os.pathsep``-separated). Only those files may be fully unpickled.

:func:`install_checkpoint_loader` registers this policy as mmengine's loader
for local paths, so ``load_checkpoint``, ``Runner.resume`` and
``tools/test.py`` use it. It is switched on explicitly: by the project's
tools, demo and API, by ``CheckpointTrustHook`` (in the base runtime
config), or by one call in a user's script — never by an import.
"""
from __future__ import annotations

import os
import os.path as osp
import pickle
from typing import Any, Iterable, List, Optional, Set

import numpy as np
import torch

from ..utils.errors import InputFileNotFoundError, UserError

__all__ = [
    'CheckpointNotFoundError',
    'UntrustedCheckpointError', 'NotACheckpointError',
    'UnreadableCheckpointError', 'check_torch_file',
    'official_checkpoint_hint', 'load_weights', 'load_runner_checkpoint',
    'trust_directory', 'is_trusted', 'install_checkpoint_loader',
    'checkpoint_loader_installed',
    'RUNNER_SAFE_GLOBALS'
]

TRUST_ENV = 'MAGNET_TRUSTED_CHECKPOINT_DIRS'
_trusted_dirs: Set[str] = set()


class UntrustedCheckpointError(UserError, pickle.UnpicklingError):
    """A checkpoint needs full unpickling and is not in a trusted place."""


class NotACheckpointError(UserError, ValueError):
    """The file is not a torch checkpoint at all (text, HTML, image...)."""


class CheckpointNotFoundError(InputFileNotFoundError):
    """A checkpoint path that does not exist."""


class UnreadableCheckpointError(NotACheckpointError, RuntimeError):
    """A checkpoint file torch cannot read: cut short or damaged (a
    ``RuntimeError`` too, as torch's own error is)."""


#: How torch files start: the zip archive of torch >= 1.6, or a legacy
#: pickle (protocol 2+ opcode).
_TORCH_MAGIC = (b'PK\x03\x04', b'\x80')


def check_torch_file(filename: str) -> None:
    """Refuse a local file that cannot be a torch checkpoint.

    Raises:
        CheckpointNotFoundError: the file does not exist.
        NotACheckpointError: its first bytes are neither a zip archive nor a
            pickle (e.g. a text file or an HTML error page saved by a failed
            download); ``.safetensors`` files are not checked here.
    """
    if not osp.isfile(filename):
        raise CheckpointNotFoundError(
            f'checkpoint file not found: {filename}')
    if filename.endswith('.safetensors'):
        return
    with open(filename, 'rb') as f:
        head = f.read(64)
    if not head.startswith(_TORCH_MAGIC):
        kind = 'an empty file' if not head else (
            'text' if _looks_like_text(head) else 'binary data')
        raise NotACheckpointError(
            f'{filename}: not a checkpoint: a torch checkpoint is a zip '
            f'archive or a pickle, this file is {kind} (it starts with '
            f'{head[:16]!r}); a failed download or a wrong path?')


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode('utf-8')
    except UnicodeDecodeError:
        return False
    return True


def official_checkpoint_hint(checkpoint: Any) -> Optional[str]:
    """A message when ``checkpoint`` is an unconverted official MagNet
    checkpoint (``{'model': {'image_model.*', 'language_model.*',
    'classifier.*'}}``), else None."""
    if not isinstance(checkpoint, dict):
        return None
    state = checkpoint.get('model', checkpoint)
    if not isinstance(state, dict) or 'state_dict' in checkpoint:
        return None
    prefixes = ('image_model.', 'language_model.', 'classifier.')
    found = {p for p in prefixes for k in state
             if isinstance(k, str) and k.startswith(p)}
    if len(found) < 2:
        return None
    return ('this is an official MagNet checkpoint (keys ' +
            ', '.join(f'{p}*' for p in sorted(found)) +
            '), not one of this project: convert it first with '
            'python tools/model_converters/magnet2mmseg.py IN.pth OUT.pth')


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``getattr`` while unpickling, limited to HistoryBuffer.

    mmengine's ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. Allowing the real ``getattr`` would
    let a file reach any attribute of any allowed object; this one only
    returns public methods of ``HistoryBuffer``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and not name.startswith('_') and callable(
            getattr(HistoryBuffer, name, None)):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


def _runner_safe_globals() -> List[Any]:
    """Types that mmengine writes into its own checkpoints' ``meta``."""
    from mmengine.logging.history_buffer import HistoryBuffer
    safe: List[Any] = [
        HistoryBuffer, np.dtype, np.ndarray,
        (_history_buffer_getattr, 'builtins.getattr')
    ]
    core = getattr(np, '_core', None) or np.core
    safe.append(core.multiarray._reconstruct)
    safe.append(core.multiarray.scalar)
    # numpy >= 1.25 pickles dtypes as instances of per-type dtype classes
    for name in dir(np.dtypes):
        cls = getattr(np.dtypes, name)
        if isinstance(cls, type) and issubclass(cls, np.dtype):
            safe.append(cls)
    return safe


RUNNER_SAFE_GLOBALS = _runner_safe_globals()


def _abs(path: str) -> str:
    return osp.realpath(osp.abspath(osp.expanduser(path)))


def trust_directory(path: str) -> None:
    """Allow full unpickling of checkpoints under ``path`` (e.g. work_dir)."""
    _trusted_dirs.add(_abs(path))


def _env_dirs() -> Iterable[str]:
    value = os.environ.get(TRUST_ENV, '')
    return [_abs(p) for p in value.split(os.pathsep) if p.strip()]


def is_trusted(filename: str) -> bool:
    """Whether ``filename`` lies under a trusted directory."""
    path = _abs(filename)
    for root in list(_trusted_dirs) + list(_env_dirs()):
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def load_weights(filename: str, map_location: Any = 'cpu') -> Any:
    """Load released weights / converter inputs: tensors only, never code.

    Raises:
        CheckpointNotFoundError: The file does not exist.
        UntrustedCheckpointError: The file holds Python objects other than
            tensors and plain containers.
    """
    check_torch_file(filename)
    if filename.endswith('.safetensors'):
        from safetensors.torch import load_file
        device = map_location if isinstance(map_location, str) else 'cpu'
        return load_file(filename, device=device)
    try:
        with torch.serialization.safe_globals(RUNNER_SAFE_GLOBALS):
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as err:
        raise UntrustedCheckpointError(
            f'{filename}: refusing to unpickle: the file holds Python '
            f'objects other than tensors ({_first_line(err)}). Weights are '
            'loaded with weights_only=True; convert or re-save the file as a '
            'plain state dict.') from err
    except (RuntimeError, EOFError) as err:
        if not _is_unreadable(err):
            raise
        raise _unreadable(filename, err) from err


def load_runner_checkpoint(filename: str, map_location: Any = None) -> Any:
    """mmengine local loader: weights-only, full unpickling only if trusted.

    Raises:
        CheckpointNotFoundError / NotACheckpointError: see
            :func:`check_torch_file`.
        UntrustedCheckpointError: the file needs full unpickling and does
            not lie under a trusted directory.
    """
    check_torch_file(filename)
    try:
        try:
            with torch.serialization.safe_globals(RUNNER_SAFE_GLOBALS):
                return torch.load(filename, map_location=map_location,
                                  weights_only=True)
        except pickle.UnpicklingError as err:
            if not is_trusted(filename):
                raise UntrustedCheckpointError(
                    f'{filename}: refusing to unpickle: it needs Python '
                    f'objects beyond tensors ({_first_line(err)}), and '
                    'loading them can run code from the file. If you wrote '
                    'this checkpoint yourself, trust its directory: pass it '
                    f'as --work-dir, or list it in ${TRUST_ENV}.') from err
        return torch.load(filename, map_location=map_location,
                          weights_only=False)
    except (RuntimeError, EOFError) as err:
        if not _is_unreadable(err):
            raise
        raise _unreadable(filename, err) from err


#: torch.load messages of a cut or damaged file (zip reader, pickle stream)
_UNREADABLE = ('PytorchStreamReader', 'central directory', 'Ran out of input',
               'unexpected EOF', 'file not found in archive', 'invalid header')


def _is_unreadable(err: BaseException) -> bool:
    return isinstance(err, EOFError) or any(m in str(err)
                                             for m in _UNREADABLE)


def _unreadable(filename: str,
                err: BaseException) -> UnreadableCheckpointError:
    return UnreadableCheckpointError(
        f'{filename}: not a readable torch checkpoint (truncated or '
        f'corrupt? e.g. an interrupted download or copy; '
        f'{os.path.getsize(filename)} bytes): {_first_line(err)}')


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _load_from_local(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine's local-path scheme, through the trust policy."""
    return load_runner_checkpoint(osp.expanduser(filename), map_location)


def install_checkpoint_loader() -> None:
    """Register :func:`load_runner_checkpoint` for local paths in mmengine.

    Affects every ``mmengine.runner.load_checkpoint`` / ``Runner.resume`` /
    ``load_from`` of local files in this process; idempotent. Importing
    ``projects.magnet`` does not call it (see :mod:`projects.magnet.compat`).
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', force=True)(
        _load_from_local)


def checkpoint_loader_installed() -> bool:
    """Whether mmengine's local-path loader is the project's policy."""
    from mmengine.runner.checkpoint import CheckpointLoader
    return CheckpointLoader._schemes.get('') is _load_from_local
