"""Make mmseg importable under ``mmcv-lite`` (mmcv without compiled ops).

mmseg 1.2.2 imports ``mmcv.ops`` at module import time (e.g. its focal loss and
point-sample utilities). ``mmcv.ops`` in turn loads the compiled extension
``mmcv._ext`` through :func:`mmcv.utils.ext_loader.load_ext`, which only checks
``hasattr(ext, name)`` for every kernel it needs. With ``mmcv-lite`` there is
no ``mmcv._ext`` and the whole import chain fails with
``No module named 'mmcv._ext'``.

This module registers a placeholder ``mmcv._ext`` **only when the real one is
missing**. Every attribute of the placeholder is a function that raises
:class:`MissingCompiledOpError` naming the kernel, so

* pure-PyTorch code paths of mmcv/mmseg (Swin, losses, transformer bricks,
  ``multi_scale_deformable_attn_pytorch``...) work unchanged;
* a compiled op fails loudly, and only when it is actually called.

When the full ``mmcv`` (with ``mmcv._ext``) is installed nothing is patched.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types

from ..utils.errors import UserError

__all__ = ['MissingCompiledOpError', 'install_mmcv_ext_placeholder',
           'has_compiled_mmcv_ops']


class MissingCompiledOpError(UserError, RuntimeError):
    """Raised when a compiled mmcv kernel is called under mmcv-lite."""


_PLACEHOLDER_FLAG = '__magnet_placeholder__'


def _make_missing_kernel(name: str):

    def _missing(*args, **kwargs):
        raise MissingCompiledOpError(
            f'mmcv compiled op "{name}" was called, but the installed mmcv '
            'has no compiled extension (mmcv._ext); this is the case for '
            '`mmcv-lite`. Install the full `mmcv` package built with ops, '
            'or use a pure-PyTorch code path.')

    _missing.__name__ = name
    return _missing


class _PlaceholderExt(types.ModuleType):
    """Module whose every public attribute is a loudly failing kernel."""

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        kernel = _make_missing_kernel(name)
        setattr(self, name, kernel)
        return kernel


def has_compiled_mmcv_ops() -> bool:
    """Whether the real compiled ``mmcv._ext`` is importable."""
    ext = sys.modules.get('mmcv._ext')
    if ext is not None:
        return not getattr(ext, _PLACEHOLDER_FLAG, False)
    try:
        return importlib.util.find_spec('mmcv._ext') is not None
    except (ImportError, ValueError):
        return False


def install_mmcv_ext_placeholder() -> bool:
    """Register the placeholder ``mmcv._ext`` if the real one is missing.

    Returns:
        bool: True if the placeholder was installed (now or earlier).
    """
    existing = sys.modules.get('mmcv._ext')
    if existing is not None:
        return bool(getattr(existing, _PLACEHOLDER_FLAG, False))
    if has_compiled_mmcv_ops():
        return False
    placeholder = _PlaceholderExt('mmcv._ext')
    setattr(placeholder, _PLACEHOLDER_FLAG, True)
    placeholder.__file__ = __file__
    # A spec without loader: importlib/pkgutil lookups (e.g. mmengine's
    # ``mmcv_full_available``) then report "no compiled mmcv" instead of
    # raising ``ValueError: mmcv._ext.__spec__ is None``.
    placeholder.__spec__ = importlib.machinery.ModuleSpec(
        'mmcv._ext', loader=None)
    sys.modules['mmcv._ext'] = placeholder
    import mmcv
    mmcv._ext = placeholder
    return True
