"""Read JSON files with errors that name the file, the key and the element.

* :func:`load_json_file`: a whole (small) file with stdlib :mod:`json`,
  e.g. the JSON form of a refs pickle.
* :func:`iter_json_arrays`: the elements of chosen top-level arrays of a
  large object file (a REFER ``instances.json``: ~200k annotations, of which
  a split uses a fraction), streamed with ``ijson`` (C backend) so the
  caller keeps only what it needs. One ``ijson.items`` pass per key: ijson
  has no multi-prefix ``items`` and its event loop (``ijson.parse``) is
  slower than two C passes (numbers in ``docs/data.md``).
* :func:`top_level_kinds`: the top-level keys and the kind of their values;
  only needed when a streamed key gave no element (absent, empty or not an
  array), as it walks every event of the file in Python.

Errors are :class:`JsonStreamError`: not UTF-8, empty, malformed (``in
"images"[1]``), truncated (``the file ends too early``), a top level that is
not an object, a streamed key that is not an array.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, Sequence, Tuple, Union

import ijson

from projects.magnet.utils.errors import UserError

__all__ = ['JsonStreamError', 'load_json_file', 'iter_json_arrays',
           'top_level_kinds', 'json_kind']

PathLike = Union[str, os.PathLike]
_TRUNCATED = 'the file ends too early (truncated or incomplete download?)'
#: ijson event -> kind of the value it starts (for messages).
_EVENT_KINDS = {'start_map': 'an object', 'start_array': 'an array',
                'string': 'a string', 'number': 'a number',
                'boolean': 'a boolean', 'null': 'null'}
_NOT_UTF8 = ('not a UTF-8 JSON text file ({}; is it compressed or in '
             'another format?)')


class JsonStreamError(UserError, ValueError):
    """The JSON file is malformed (the message names the file and key)."""


def json_kind(event: str) -> str:
    """Name the kind of JSON value an ijson event starts."""
    return _EVENT_KINDS.get(event, event)


def _at_end(err: json.JSONDecodeError, text: str) -> bool:
    """Whether a decode error of the *whole* text is due to its end."""
    return (err.msg.startswith('Unterminated string')
            or err.pos >= len(text.rstrip()))


def load_json_file(path: PathLike) -> Any:
    """``json.load`` with errors that name the file and say what is wrong.

    Raises:
        JsonStreamError: not UTF-8 text, empty, malformed or truncated JSON.
    """
    source = os.fspath(path)
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise JsonStreamError(f'{source}: ' + _NOT_UTF8.format(
            f'{e.reason} at byte {e.start}')) from None
    if not text.strip():
        raise JsonStreamError(f'{source}: the file is empty')
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        what = _TRUNCATED if _at_end(e, text) else e.msg
        raise JsonStreamError(
            f'{source}: malformed JSON at line {e.lineno} column {e.colno}: '
            f'{what}') from None


def _check_head(path: PathLike, source: str) -> None:
    """Empty or not UTF-8 (a gzip file...): yajl would only say "lexical
    error", so the first bytes are looked at here."""
    with open(path, 'rb') as f:
        head = f.read(1 << 16)
    if not head.strip():
        raise JsonStreamError(f'{source}: the file is empty')
    try:
        head.decode('utf-8')
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the end
            raise JsonStreamError(f'{source}: ' + _NOT_UTF8.format(
                f'{e.reason} at byte {e.start}')) from None


def _ijson_message(err: Exception) -> str:
    """First line of a yajl message (``parse error: ...``)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _located_error(path: PathLike, source: str,
                   err: Exception) -> JsonStreamError:
    """The parse error ``err`` with the key and element it is in, found by
    walking the events again up to the error (error path only)."""
    where = 'at the top level'
    key, index = None, -1
    try:
        with open(path, 'rb') as f:
            for prefix, event, value in ijson.parse(f, use_float=True):
                if prefix == '' and event == 'map_key':
                    key, index = value, -1
                    where = f'after the key "{key}"'
                elif key is not None and prefix == f'{key}.item' and \
                        event not in ('end_map', 'end_array', 'map_key'):
                    index += 1
                    where = f'in "{key}"[{index}]'
                elif key is not None and prefix == key and \
                        event == 'end_array':
                    where = f'after the value of "{key}"'
    except (ijson.JSONError, UnicodeDecodeError) as again:
        err = again
    message = _ijson_message(err)
    if 'premature EOF' in message:
        return JsonStreamError(f'{source}: {_TRUNCATED} ({where})')
    if 'UTF8' in message or isinstance(err, UnicodeDecodeError):
        return JsonStreamError(f'{source}: ' + _NOT_UTF8.format(message))
    return JsonStreamError(f'{source}: malformed JSON {where}: {message}')


def iter_json_arrays(path: PathLike,
                     keys: Sequence[str]) -> Iterator[Tuple[str, Any]]:
    """``(key, element)`` for every element of the top-level arrays ``keys``
    of a JSON object file, key after key (one streamed pass per key; numbers
    with a fraction or exponent are floats, like :mod:`json`).

    A key that is absent, or whose value is not an array, yields nothing:
    use :func:`top_level_kinds` when a key gave no element.

    Raises:
        JsonStreamError: not UTF-8, empty, malformed or truncated (the
            message names the file and the key and index of the element).
    """
    source = os.fspath(path)
    _check_head(path, source)
    for key in keys:
        try:
            with open(path, 'rb') as f:
                for item in ijson.items(f, f'{key}.item', use_float=True):
                    yield key, item
        except (ijson.JSONError, UnicodeDecodeError) as e:
            raise _located_error(path, source, e) from None


def top_level_kinds(path: PathLike) -> Dict[str, str]:
    """``{key: kind}`` of a JSON object file's top-level values, in file
    order (``kind`` as :func:`json_kind` names it).

    Raises:
        JsonStreamError: the top level is not an object, or the file is
            malformed (see :func:`iter_json_arrays`).
    """
    source = os.fspath(path)
    _check_head(path, source)
    kinds: Dict[str, str] = {}
    key = None
    try:
        with open(path, 'rb') as f:
            events = ijson.parse(f, use_float=True)
            first = next(events)[1]
            if first != 'start_map':
                raise JsonStreamError(
                    f'{source}: expected a JSON object at the top level '
                    '({"images": [...], ...}), but the top level is '
                    f'{json_kind(first)}')
            for prefix, event, value in events:
                if prefix == '' and event == 'map_key':
                    key = value
                elif key is not None and key not in kinds and prefix == key:
                    kinds[key] = json_kind(event)
    except (ijson.JSONError, UnicodeDecodeError) as e:
        raise _located_error(path, source, e) from None
    return kinds
