"""Restricted loading of REFER ``refs(<split_by>).p`` pickle files.

The REFER annotations (RefCOCO, RefCOCO+, RefCOCOg) ship as Python-2
pickles (protocol 0 or 2) of a plain ``list`` of ``dict`` objects. A normal
:func:`pickle.load` would execute whatever callable the file names, so a
tampered download could run arbitrary code. :class:`RestrictedReferUnpickler`
loads only plain data:

* **allowed results**: ``dict``, ``list``, ``tuple``, ``str``, ``bytes``,
  ``int``, ``float``, ``bool``, ``None`` (and ``set``/``frozenset``, which
  protocol 4 builds with dedicated opcodes, without any global);
* **allowed globals**: only ``collections.OrderedDict`` (a pure container;
  unpickling it calls its constructor with pickled *data* only). REFER files
  contain no global at all; allowing ``OrderedDict`` costs nothing and
  accepts files re-saved by tools that keep key order explicitly. Every other
  global (``os.system``, ``builtins.eval``, ``posix.system``, a class, ...)
  is refused with :class:`UnsafeReferPickleError` naming the file and the
  global, *before* anything is called.

Why this is written by hand: neither mmengine nor pycocotools offers a safe
loader for these files (``torch.load(weights_only=True)`` is tied to the
torch zip/pickle format and its own allowlist).

Python-2 compatibility: ``encoding='latin1'`` maps every py2 ``str`` to a
py3 ``str`` byte-for-byte and never fails (py2 ``unicode`` objects are
stored as UTF-8 and always decode to ``str``). The REFER files store
sentences as ``unicode`` or ASCII ``str``, so this gives exactly the strings
the official loader (py3 ``pickle.load`` with its default ASCII codec) gets.

All callables the unpickler may call are obtained through
:meth:`pickle.Unpickler.find_class`, except objects cached in
``copyreg._extension_cache`` by the ``EXT1/2/4`` opcodes. That cache is empty
unless the process registered pickle extension codes; if it is not empty the
slower pure-Python unpickler is used with those opcodes disabled.
"""
from __future__ import annotations

import _compat_pickle
import copyreg
import io
import os
import pickle
from typing import Any, FrozenSet, Tuple, Union

__all__ = [
    'UnsafeReferPickleError', 'RestrictedReferUnpickler', 'load_refer_pickle',
    'ALLOWED_GLOBALS'
]

#: ``(module, name)`` pairs (after py2 → py3 name mapping) that may appear.
ALLOWED_GLOBALS: FrozenSet[Tuple[str, str]] = frozenset({
    ('collections', 'OrderedDict'),
})


class UnsafeReferPickleError(pickle.UnpicklingError):
    """A REFER pickle asked for something other than plain data."""


def _py3_name(module: str, name: str) -> Tuple[str, str]:
    """Map a py2 global name (``__builtin__.set``) to its py3 name."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _import_allowed(source: str, module: str, name: str) -> Any:
    mapped = _py3_name(module, name)
    if mapped not in ALLOWED_GLOBALS:
        raise UnsafeReferPickleError(
            f'{source}: refusing to load global "{module}.{name}"; a REFER '
            'refs pickle may only contain plain data (dict, list, tuple, '
            'str, bytes, int, float, bool, None). Nothing from the file was '
            'executed.')
    if mapped == ('collections', 'OrderedDict'):
        from collections import OrderedDict
        return OrderedDict
    raise AssertionError(f'unhandled allowed global {mapped}')


def _refuse_persistent(source: str, pid: Any) -> Any:
    raise UnsafeReferPickleError(
        f'{source}: refusing persistent id {pid!r}; a REFER refs pickle may '
        'only contain plain data.')


class _RestrictedMixin:
    """Resolve only :data:`ALLOWED_GLOBALS`; refuse persistent ids.

    Args:
        file: binary file object.
        source (str): name used in error messages (usually the path).
    """

    def __init__(self, file: io.BufferedIOBase, source: str = '<pickle>'):
        super().__init__(file, encoding='latin1', errors='strict')
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        return _import_allowed(self.source, module, name)

    def persistent_load(self, pid: Any) -> Any:
        return _refuse_persistent(self.source, pid)


class RestrictedReferUnpickler(_RestrictedMixin, pickle.Unpickler):
    """C unpickler that resolves only :data:`ALLOWED_GLOBALS`."""


class _PyRestrictedReferUnpickler(_RestrictedMixin,
                                  pickle._Unpickler):  # type: ignore
    """Pure-Python fallback that also refuses the ``EXT*`` opcodes."""

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore

    def _refuse_ext(self) -> None:
        raise UnsafeReferPickleError(
            f'{self.source}: refusing pickle extension code (EXT opcode); a '
            'REFER refs pickle may only contain plain data.')


for _op in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
    _PyRestrictedReferUnpickler.dispatch[_op[0]] = (
        _PyRestrictedReferUnpickler._refuse_ext)


def load_refer_pickle(path_or_file: Union[str, os.PathLike,
                                          io.BufferedIOBase],
                      source: str = None) -> Any:
    """Load a REFER refs pickle without executing anything from it.

    Args:
        path_or_file (str | PathLike | file): path or binary file object.
        source (str, optional): name used in error messages. Defaults to the
            path (or ``'<pickle>'`` for a file object).

    Returns:
        Any: the unpickled plain-data object (a list of ref dicts for REFER).

    Raises:
        UnsafeReferPickleError: the file references a non-allowed global,
            a persistent id or an extension code.
        pickle.UnpicklingError: the file is not a valid pickle (the message
            names the file).
    """
    if isinstance(path_or_file, (str, os.PathLike)):
        source = source or os.fspath(path_or_file)
        with open(path_or_file, 'rb') as f:
            return load_refer_pickle(f, source)
    source = source or '<pickle>'
    cls = (_PyRestrictedReferUnpickler
           if copyreg._extension_cache else RestrictedReferUnpickler)
    try:
        return cls(path_or_file, source).load()
    except UnsafeReferPickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
            KeyError, IndexError, AttributeError, UnicodeDecodeError) as e:
        raise pickle.UnpicklingError(
            f'{source}: not a valid REFER refs pickle '
            f'({type(e).__name__}: {e})') from e
