"""Stream the elements of the top-level arrays of a large JSON object.

A REFER ``instances.json`` (COCO style) holds *every* annotation of the
dataset's images (~200k polygons for RefCOCO), while one split references a
fraction of them. ``json.load`` materialises the whole file as Python objects
(several hundred MB); :func:`iter_json_object` yields the elements of the
chosen top-level arrays one at a time, so the caller keeps only what it needs.

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
from typing import Any, Collection, Iterator, Tuple, Union

__all__ = ['JsonStreamError', 'iter_json_object']

_WS = re.compile(r'[ \t\n\r]*')
# A parse error this far before the end of the buffer cannot be caused by the
# buffer ending mid-token (numbers and literals are much shorter).
_TRUNCATION_SLACK = 64


class JsonStreamError(ValueError):
    """The JSON file is malformed (the message names the file and key)."""


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
        chunk = self.f.read(self.chunk_size)
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
        if not c or c not in chars:
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
                raise JsonStreamError(
                    f'{self.source}: malformed JSON {context}: {e.msg} '
                    f'(at char {e.pos - self.pos} of the value)') from None
            if end == len(self.buf) and self._fill():
                continue  # a number may continue in the next chunk
            self.pos = end
            return obj


def iter_json_object(path: Union[str, os.PathLike],
                     stream_keys: Collection[str],
                     chunk_size: int = 1 << 22
                     ) -> Iterator[Tuple[str, Any]]:
    """Iterate over a JSON object file without loading it whole.

    Args:
        path (str | PathLike): a JSON file whose top level is an object.
        stream_keys (Collection[str]): top-level keys whose values are arrays
            to stream: one ``(key, element)`` is yielded per element.
        chunk_size (int): characters read at a time. Defaults to 4M.

    Yields:
        tuple[str, Any]: ``(key, element)`` for every element of a streamed
        array, ``(key, value)`` for every other top-level key.

    Raises:
        JsonStreamError: malformed JSON, or a streamed key whose value is not
            an array (the message names the file and key).
    """
    source = os.fspath(path)
    with open(path, encoding='utf-8') as f:
        sc = _Scanner(f, source, chunk_size)
        sc.expect('{', 'at the top level (a JSON object is required)')
        if sc.peek() == '}':
            return
        while True:
            key = sc.value('in a top-level key')
            if not isinstance(key, str):
                raise sc.error('object key must be a string', 'at top level')
            sc.expect(':', f'after key "{key}"')
            if key in stream_keys:
                if sc.expect('[', f'in "{key}" (an array is required)') \
                        and sc.peek() == ']':
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
