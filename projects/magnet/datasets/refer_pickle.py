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
import itertools
import os
import pickle
import pickletools
from typing import Any, FrozenSet, NamedTuple, Tuple, Union

from projects.magnet.utils.errors import UserError

__all__ = [
    'ReferPickleError', 'UnsafeReferPickleError', 'RestrictedReferUnpickler',
    'load_refer_pickle',
    'ALLOWED_GLOBALS', 'PickleInfo', 'inspect_refer_pickle', 'PY2_NOTE'
]

#: How a Python-2 pickle must be read (shown by the data tools).
PY2_NOTE = ("a Python-2 pickle must be opened in binary mode ('rb') and "
            "loaded with encoding='latin1' (plain pickle.load fails with a "
            "UnicodeDecodeError or gives bytes); RefCOCODataset and the data "
            'tools do this, with the restricted unpickler')

#: ``(module, name)`` pairs (after py2 → py3 name mapping) that may appear.
ALLOWED_GLOBALS: FrozenSet[Tuple[str, str]] = frozenset({
    ('collections', 'OrderedDict'),
})


class ReferPickleError(UserError, pickle.UnpicklingError):
    """A refs pickle is not a valid REFER refs pickle (truncated...)."""


class UnsafeReferPickleError(ReferPickleError):
    """A REFER pickle asked for something other than plain data."""


def _py3_name(module: str, name: str) -> Tuple[str, str]:
    """Map a py2 global name (``__builtin__.set``) to its py3 name."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _import_allowed(source: str, module: str, name: str) -> Any:
    mapped = _py3_name(module, name)
    if mapped not in ALLOWED_GLOBALS:
        hint = ''
        if mapped == ('_codecs', 'encode'):
            hint = (' (Python 3 stores bytes this way at protocol <= 2: the '
                    'file holds bytes, which a REFER refs file never does)')
        raise UnsafeReferPickleError(
            f'{source}: refusing to load global "{module}.{name}"; a REFER '
            'refs pickle may only contain plain data (dict, list, tuple, '
            'str, bytes, int, float, bool, None). Nothing from the file was '
            f'executed.{hint}')
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
        ReferPickleError: the file is not a valid pickle (the message
            names the file; a :class:`pickle.UnpicklingError`).
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
        if isinstance(e, EOFError) or 'truncated' in str(e):
            what = (': the file ends too early (truncated or incomplete '
                    'download?)')
        else:
            what = f' ({type(e).__name__}: {e})'
        raise ReferPickleError(
            f'{source}: not a valid REFER refs pickle{what}') from e


class PickleInfo(NamedTuple):
    """What the first opcodes of a pickle tell (see
    :func:`inspect_refer_pickle`)."""

    #: protocol of the ``PROTO`` opcode (0 when there is none: protocol 0/1)
    protocol: int
    #: the file stores Python-2 ``str`` objects (``STRING``, ``BINSTRING``,
    #: ``SHORT_BINSTRING`` opcodes, which Python 3 never writes for ``str``)
    python2: bool


_PY2_STRING_OPS = frozenset(('STRING', 'BINSTRING', 'SHORT_BINSTRING'))


def inspect_refer_pickle(path: Union[str, os.PathLike],
                         max_ops: int = 10000) -> PickleInfo:
    """Protocol and Python-2 origin of a pickle, from its first opcodes.

    Nothing is unpickled: :func:`pickletools.genops` only decodes the opcode
    stream (up to ``max_ops`` opcodes). A damaged stream ends the scan early.
    """
    protocol, python2 = 0, False
    with open(path, 'rb') as f:
        try:
            for op, arg, _ in itertools.islice(pickletools.genops(f),
                                               max_ops):
                if op.name == 'PROTO':
                    protocol = int(arg)
                elif op.name in _PY2_STRING_OPS:
                    python2 = True
                    break
        except (ValueError, EOFError):
            pass
    return PickleInfo(protocol, python2)
