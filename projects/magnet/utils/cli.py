"""One way for every command-line tool to end on a bad input.

A tool wraps its ``main`` with :func:`run_cli`: an error a user can fix (a
missing file, a malformed annotation, a checkpoint of another model, a
misspelt config key, ...) ends the process with **one** ``error: ...`` line
on stderr and exit status 1, without a traceback. The traceback is shown
when asked for: ``MAGNET_TRACEBACK=1`` in the environment (or the tool's own
``--traceback`` flag, which sets it).

Which exceptions count as "a user can fix it" is :data:`USER_ERRORS`: the
project's :class:`~projects.magnet.utils.errors.UserError` and its
subclasses, nothing else. Code that finds a user mistake raises one
(``InvalidInputError``, ``InputFileError``, ``OutputPathError``, or a
module's own ``class XError(UserError, ValueError)``); an error of a
third-party library caused by the user's input is wrapped into one at its
call site. Any other exception (``TypeError``, ``KeyError``,
``AssertionError``... from a real bug) keeps its traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Dict, Optional, Tuple, Type

from mmengine.config import DictAction

from .errors import UserError

__all__ = [
    'USER_ERRORS', 'TRACEBACK_ENV', 'error_line', 'run_cli',
    'CfgOptionsAction', 'check_minimum'
]

#: Set to 1 to see the traceback of an ``error:`` line.
TRACEBACK_ENV = 'MAGNET_TRACEBACK'

#: What :func:`run_cli` prints as one line (everything else is a bug).
USER_ERRORS: Tuple[Type[BaseException], ...] = (UserError, )


def error_line(err: BaseException) -> str:
    """The one-line message of ``err`` (``KeyError`` without its quotes;
    further lines of a multi-line message are kept, indented)."""
    if isinstance(err, KeyError) and err.args:
        message = str(err.args[0])
    else:
        message = str(err) or type(err).__name__
    if not isinstance(err, (ValueError, OSError)) or not str(err):
        # name the exception where its type tells the reader something
        name = type(err).__name__
        if not message.startswith(name):
            message = f'{name}: {message}'
    return 'error: ' + message.replace('\n', '\n  ')


def run_cli(main: Callable[[], Optional[int]],
            traceback_flag: str = '--traceback') -> int:
    """Run ``main()`` and turn a user error into ``error: ...`` + exit 1.

    ``traceback_flag`` in ``sys.argv`` is removed before ``main`` parses the
    arguments and sets :data:`TRACEBACK_ENV`. Returns ``main``'s status (0
    for ``None``) so a tool ends with ``sys.exit(run_cli(main))``.
    """
    if traceback_flag in sys.argv:
        sys.argv.remove(traceback_flag)
        os.environ[TRACEBACK_ENV] = '1'
    try:
        status = main()
    except USER_ERRORS as err:
        if os.environ.get(TRACEBACK_ENV, '') not in ('', '0'):
            raise
        print(error_line(err), file=sys.stderr)
        return 1
    return 0 if status is None else int(status)


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` for ``--cfg-options`` that refuses an item
    without ``=`` with a usage error naming it (``DictAction`` fails with
    "not enough values to unpack")."""

    def __call__(self, parser, namespace, values, option_string=None):
        bad = [v for v in (values or []) if '=' not in v]
        if bad:
            raise argparse.ArgumentError(
                self, f'expects key=value items (e.g. '
                f'train_dataloader.batch_size=4), got {bad[0]!r}')
        super().__call__(parser, namespace, values, option_string)


def check_minimum(parser: argparse.ArgumentParser, args: argparse.Namespace,
                  minimum: Dict[str, float]) -> None:
    """Usage error (exit 2) for a count or size option below its minimum.

    ``argparse``'s ``type=int`` takes ``--batch 0`` or ``--shape 0 -4``,
    which fail later deep inside the model (an ``IndexError`` or a negative
    tensor dimension) or make a tool do nothing. ``minimum`` maps an
    ``args`` attribute (e.g. ``'batch'``, ``'shape'``) to the smallest value
    it may have; every item of a list option is checked; unset (None)
    options pass.
    """
    for dest, low in minimum.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        if any(v < low for v in items):
            flag = '--' + dest.replace('_', '-')
            for action in parser._actions:  # the flag as the user typed it
                if action.dest == dest and action.option_strings:
                    flag = action.option_strings[-1]
                    break
            shown = ' '.join(str(v) for v in items)
            parser.error(f'{flag} must be >= {low:g}, got {shown}')
