"""Stream the elements of the top-level arrays of a large JSON object.

A REFER ``instances.json`` (COCO style) holds *every* annotation of the
dataset's images (~200k polygons for RefCOCO), while one split references a
fraction of them. ``json.load`` materialises the whole file as Python objects
(several hundred MB); :func:`iter_json_object` yields the elements of the
chosen top-level arrays one at a time, so the caller keeps only what it needs.

:func:`load_json_file` reads a whole (smaller) JSON file, such as the JSON
form of a refs pickle. Both name the file in their errors and say when it
ends too early (a truncated download) or its top level has the wrong type.

Why this is written by hand: the standard library has no streaming JSON API
and no streaming parser (``ijson``...) is a dependency of the project. Each
element is still parsed by the C-accelerated
:meth:`json.JSONDecoder.raw_decode`; only the top-level
``{ "key": [ ... ], ... }`` skeleton is scanned here.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Collection, Iterator, Optional, Tuple, Union

__all__ = ['JsonStreamError', 'iter_json_object', 'load_json_file',
           'json_kind']

_WS = re.compile(r'[ \t\n\r]*')
# A parse error this far before the end of the buffer cannot be caused by the
# buffer ending mid-token (numbers and literals are much shorter).
_TRUNCATION_SLACK = 64


class JsonStreamError(ValueError):
    """The JSON file is malformed (the message names the file and key)."""


#: What a JSON value starting with this character is (for messages).
_KINDS = {'{': 'an object', '[': 'an array', '"': 'a string',
          't': 'a boolean', 'f': 'a boolean', 'n': 'null'}
_TRUNCATED = 'the file ends too early (truncated or incomplete download?)'


def json_kind(first_char: str) -> str:
    """Name the kind of JSON value that starts with ``first_char``."""
    if not first_char:
        return 'nothing (end of file)'
    if first_char in '-0123456789':
        return 'a number'
    return _KINDS.get(first_char, f'invalid JSON ({first_char!r})')


def _at_end(err: json.JSONDecodeError, text: str) -> bool:
    """Whether a decode error of the *whole* text is due to its end."""
    return (err.msg.startswith('Unterminated string')
            or err.pos >= len(text.rstrip()))


def load_json_file(path: Union[str, os.PathLike]) -> Any:
    """``json.load`` with errors that name the file and say what is wrong.

    Raises:
        JsonStreamError: not UTF-8 text, malformed or truncated JSON.
    """
    source = os.fspath(path)
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise JsonStreamError(
            f'{source}: not a UTF-8 JSON text file ({e.reason} at byte '
            f'{e.start}; is it compressed or in another format?)') from None
    if not text.strip():
        raise JsonStreamError(f'{source}: the file is empty')
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        if _at_end(e, text):
            what = _TRUNCATED
        else:
            what = e.msg
        raise JsonStreamError(
            f'{source}: malformed JSON at line {e.lineno} column {e.colno}: '
            f'{what}') from None


class _Scanner:
    """Incremental scanner over a text file with a growable buffer."""

    def __init__(self, f, source: str, chunk_size: int) -> None:
        self.f = f
        self.source = source
        self.chunk_size = chunk_size
        self.buf = ''
        self.pos = 0
        self.eof = False
        self.decoder = json.JSONDecoder()

    def _fill(self) -> bool:
        """Append the next chunk (dropping consumed text); False at EOF."""
        if self.eof:
            return False
        try:
            chunk = self.f.read(self.chunk_size)
        except UnicodeDecodeError as e:
            raise JsonStreamError(
                f'{self.source}: not a UTF-8 JSON text file ({e.reason}; is '
                'it compressed or in another format?)') from None
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        return True

    def error(self, what: str, context: str) -> JsonStreamError:
        near = self.buf[self.pos:self.pos + 40]
        return JsonStreamError(
            f'{self.source}: malformed JSON {context}: {what} '
            f'(near {near!r})')

    def peek(self) -> str:
        """Skip whitespace and return the next character ('' at EOF)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ''

    def expect(self, chars: str, context: str) -> str:
        c = self.peek()
        if not c:
            raise JsonStreamError(f'{self.source}: {_TRUNCATED} ({context})')
        if c not in chars:
            raise self.error(f'expected one of {list(chars)}', context)
        self.pos += 1
        return c

    def value(self, context: str) -> Any:
        """Decode one JSON value starting at the next non-blank char."""
        self.peek()
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                maybe_truncated = (
                    e.msg.startswith('Unterminated string')
                    or e.pos >= len(self.buf) - _TRUNCATION_SLACK)
                if maybe_truncated and self._fill():
                    continue
                if _at_end(e, self.buf):
                    raise JsonStreamError(
                        f'{self.source}: {_TRUNCATED} ({context})') from None
                raise JsonStreamError(
                    f'{self.source}: malformed JSON {context}: {e.msg} '
                    f'(at char {e.pos - self.pos} of the value)') from None
            if end == len(self.buf) and self._fill():
                continue  # a number may continue in the next chunk
            self.pos = end
            return obj


def iter_json_object(path: Union[str, os.PathLike],
                     stream_keys: Collection[str],
                     chunk_size: int = 1 << 22,
                     on_key: Optional[Callable[[str], None]] = None
                     ) -> Iterator[Tuple[str, Any]]:
    """Iterate over a JSON object file without loading it whole.

    Args:
        path (str | PathLike): a JSON file whose top level is an object.
        stream_keys (Collection[str]): top-level keys whose values are arrays
            to stream: one ``(key, element)`` is yielded per element.
        chunk_size (int): characters read at a time. Defaults to 4M.
        on_key (callable, optional): called with every top-level key when it
            is reached (an empty streamed array yields nothing; this tells
            the caller the key is present).

    Yields:
        tuple[str, Any]: ``(key, element)`` for every element of a streamed
        array, ``(key, value)`` for every other top-level key.

    Raises:
        JsonStreamError: malformed or truncated JSON, a top level that is
            not an object, or a streamed key whose value is not an array (the
            message names the file and key).
    """
    source = os.fspath(path)
    with open(path, encoding='utf-8') as f:
        sc = _Scanner(f, source, chunk_size)
        first = sc.peek()
        if first != '{':
            what = 'the file is empty' if not first else \
                f'the top level is {json_kind(first)}'
            raise JsonStreamError(
                f'{source}: expected a JSON object at the top level '
                f'({{"images": [...], ...}}), but {what}')
        sc.pos += 1
        if sc.peek() == '}':
            return
        while True:
            key = sc.value('in a top-level key')
            if not isinstance(key, str):
                raise sc.error('object key must be a string', 'at top level')
            sc.expect(':', f'after key "{key}"')
            if on_key is not None:
                on_key(key)
            if key in stream_keys:
                found = sc.peek()
                if found != '[':
                    raise JsonStreamError(
                        f'{source}: top-level key "{key}" must be an array, '
                        f'got {json_kind(found)}')
                sc.pos += 1
                if sc.peek() == ']':
                    sc.pos += 1
                else:
                    index = 0
                    while True:
                        yield key, sc.value(f'in "{key}"[{index}]')
                        index += 1
                        if sc.expect(',]', f'after "{key}"[{index - 1}]') \
                                == ']':
                            break
            else:
                yield key, sc.value(f'in "{key}"')
            if sc.expect(',}', f'after the value of "{key}"') == '}':
                break
        if sc.peek():
            raise sc.error('unexpected data after the top-level object',
                           'at the end of the file')
