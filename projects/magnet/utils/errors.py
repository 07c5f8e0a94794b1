"""The one base class of every error a user can fix.

A command-line tool (:func:`projects.magnet.utils.cli.run_cli`) prints a
:class:`UserError` as one ``error: ...`` line; any other exception is a bug
and keeps its traceback. A project error type derives from
:class:`UserError` *and* from the built-in family it belongs to, so callers
that catch ``ValueError`` / ``OSError`` / ``TypeError`` keep working::

    class ReferFormatError(UserError, ValueError): ...
"""
from __future__ import annotations

__all__ = ['UserError', 'InvalidInputError', 'InvalidTypeError',
           'MissingKeyError',
           'InputFileError', 'InputFileNotFoundError', 'OutputPathError']


class UserError(Exception):
    """An error in what the user gave (a file, a value, an option)."""


class InvalidInputError(UserError, ValueError):
    """A value the user gave (an expression, an option, a field) is not
    usable; the message names it and says what was expected."""


class InvalidTypeError(UserError, TypeError):
    """A value the user gave has the wrong type; the message names it, the
    value and the expected type."""


class MissingKeyError(UserError, KeyError):
    """A mapping the user gave (a config, a sample, a results dict) lacks a
    key; the message names it and what adds it. Printed without the quotes
    ``KeyError`` puts around its message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


class InputFileError(UserError, OSError):
    """An input file or folder is missing or unreadable; the message names
    it."""


class InputFileNotFoundError(InputFileError, FileNotFoundError):
    """An input file or folder the user named does not exist (a
    ``FileNotFoundError`` too)."""


class OutputPathError(UserError, OSError):
    """An output path cannot be written (its parent is a file or missing,
    it is a folder, it is not writable, it is the input, or its extension
    is not one the writer knows)."""
