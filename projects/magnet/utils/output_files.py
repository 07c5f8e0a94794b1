"""Check an output path before any work, then write it atomically.

A tool that finds out its output cannot be written only after an hour of
inference (or writes it over its own input) wastes the hour or the input.
:func:`check_output_file` / :func:`check_output_dir` refuse, up front and
with an :class:`OutputPathError` naming the path and what was expected:

* a parent component that is a file (``out.png/x.png``);
* a folder that cannot be written;
* a file extension the writer does not know (``.pdf`` for an image);
* an output file that is an existing folder, or an output folder that is an
  existing file;
* an output that is one of the inputs (same file, symlinks resolved).

Missing parent folders are created, as mmengine's tools do.
:func:`atomic_write` writes to a temporary file in the destination folder
and moves it into place with ``os.replace``: on any exception the temporary
file is removed and a file already at the destination is untouched.
"""
from __future__ import annotations

import contextlib
import os
import os.path as osp
import json
import tempfile
from typing import Any, Iterable, Iterator, Optional, Sequence

from .errors import InputFileError, InputFileNotFoundError, OutputPathError

__all__ = [
    'check_input_file', 'IMAGE_EXTENSIONS', 'CHECKPOINT_EXTENSIONS',
    'JSON_EXTENSIONS',
    'check_output_file', 'check_output_dir', 'atomic_write', 'save_image',
    'save_checkpoint', 'save_json'
]

#: extensions PIL / cv2 write that the tools' image outputs accept
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff',
                    '.webp')
CHECKPOINT_EXTENSIONS = ('.pth', )
JSON_EXTENSIONS = ('.json', )


def check_input_file(path: Optional[str], what: str = 'input file',
                     allow_empty: bool = False) -> str:
    """Refuse an input file that is missing, a folder, unreadable or
    empty (0 bytes: a failed download or copy), naming ``what`` and the
    path; return it. Done before any work, so a tool never builds a model
    to find its input unusable.

    Raises:
        InputFileNotFoundError: nothing at ``path``.
        InputFileError: a folder, unreadable, or empty.
    """
    if not path:
        raise InputFileNotFoundError(f'{what}: empty path; expected a file')
    path = os.fspath(path)
    if osp.isdir(path):
        raise InputFileError(f'{what}: {path} is a folder; expected a file')
    if not osp.exists(path):
        raise InputFileNotFoundError(f'{what} not found: {path}')
    if not os.access(path, os.R_OK):
        raise InputFileError(f'{what}: {path} is not readable')
    if not allow_empty and osp.isfile(path) and osp.getsize(path) == 0:
        raise InputFileError(f'{what}: {path} is an empty file (0 bytes); '
                             'a failed download or copy?')
    return path


def _nearest_existing(path: str) -> str:
    """``path`` or its closest existing ancestor."""
    current = path
    while not osp.exists(current):
        parent = osp.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def _check_folder_usable(folder: str, what: str, create: bool) -> None:
    """``folder`` (to be) a writable directory; created when ``create``."""
    existing = _nearest_existing(folder)
    if not osp.isdir(existing):
        raise OutputPathError(
            f'{what}: {existing} is a file, not a folder, so nothing can '
            f'be written under it ({folder})')
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f'{what}: folder {existing} is not writable')
    if create and existing != folder:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:  # e.g. a race, a read-only mount
            raise OutputPathError(
                f'{what}: cannot create folder {folder}: {err}') from err
        existing = folder
    _probe_write(existing, what)


def _probe_write(folder: str, what: str) -> None:
    """Create and remove a file in ``folder``: ``os.access`` says yes for
    root on a read-only mount and for pseudo file systems (``/proc``,
    ``/sys``) where no file can be created; :func:`atomic_write` would then
    fail only after the work."""
    try:
        fd, probe = tempfile.mkstemp(prefix='.write-check.', dir=folder)
    except OSError as err:
        raise OutputPathError(
            f'{what}: no file can be created in folder {folder} '
            f'({err.strerror or err})') from err
    os.close(fd)
    with contextlib.suppress(OSError):
        os.remove(probe)


def _check_not_input(path: str, inputs: Iterable[Optional[str]],
                     what: str) -> None:
    real = osp.realpath(path)
    for src in inputs:
        if not src or '://' in str(src):
            continue
        same = osp.realpath(src) == real
        if not same and osp.exists(path) and osp.exists(src):
            with contextlib.suppress(OSError):
                same = osp.samefile(src, path)  # hard links
        if same:
            raise OutputPathError(
                f'{what}: {path} is the input {src}; writing it would '
                'destroy the input (choose another output path)')


def check_output_file(path: str,
                      extensions: Optional[Sequence[str]] = None,
                      inputs: Iterable[Optional[str]] = (),
                      what: str = 'output file',
                      create_parent: bool = True) -> str:
    """Refuse an output file path that cannot be written; return it.

    Args:
        path (str): the file to be written.
        extensions (Sequence[str], optional): the lower-case extensions
            (with the dot) the writer knows; None accepts any.
        inputs: input files the output must not be.
        what (str): how the message names the path (e.g. ``'--out-file'``).
        create_parent (bool): create missing parent folders.

    Raises:
        OutputPathError: the path is a folder, a parent is a file, the
            folder is not writable, the extension is unknown, or it is an
            input; the message names the path and what was expected.
    """
    path = os.fspath(path)
    if not path or path.endswith(('/', os.sep)) or osp.isdir(path):
        raise OutputPathError(
            f'{what}: {path!r} is a folder; expected a file path'
            + (f' ending in {"/".join(extensions)}' if extensions else ''))
    if extensions is not None:
        ext = osp.splitext(path)[1].lower()
        if ext not in extensions:
            raise OutputPathError(
                f'{what}: {path} has extension {ext or "(none)"!r}; '
                f'expected one of {", ".join(extensions)}')
    _check_not_input(path, inputs, what)
    if osp.exists(path) and not os.access(path, os.W_OK):
        raise OutputPathError(f'{what}: {path} exists and is read-only')
    _check_folder_usable(osp.dirname(osp.abspath(path)), what,
                         create_parent)
    return path


def check_output_dir(path: str,
                     inputs: Iterable[Optional[str]] = (),
                     what: str = 'output folder',
                     create: bool = True) -> str:
    """Refuse an output folder that is a file, under a file, not writable
    or one of the inputs; create it (``create``); return it.

    Raises:
        OutputPathError: as :func:`check_output_file`.
    """
    path = os.fspath(path)
    if not path:
        raise OutputPathError(f'{what}: empty path; expected a folder')
    if osp.exists(path) and not osp.isdir(path):
        raise OutputPathError(
            f'{what}: {path} is a file; expected a folder (or a path '
            'that does not exist yet)')
    _check_not_input(path, inputs, what)
    _check_folder_usable(osp.abspath(path), what, create)
    return path


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'wb') -> Iterator:
    """Open a temporary file next to ``path``; on success fsync it and
    move it onto ``path`` (``os.replace``, atomic on one file system).

    On any exception inside the block the temporary file is removed and an
    existing ``path`` is left as it was. The temporary file keeps
    ``path``'s extension (writers such as ``torch.save`` / PIL that look at
    the name see the right one).

    Yields:
        file object opened with ``mode`` (``'wb'`` or ``'w'``).
    """
    if mode not in ('wb', 'w'):
        raise ValueError(f'mode must be "wb" or "w", got {mode!r}')
    folder = osp.dirname(osp.abspath(path))
    stem, ext = osp.splitext(osp.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f'.{stem}.', suffix=f'.part{ext}',
                               dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the usual umask permissions
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def save_image(image, path: str) -> None:
    """Write an (H, W, 3) uint8 **RGB** array (or (H, W)) to ``path``
    atomically, in the format of its extension (PIL)."""
    from PIL import Image
    ext = osp.splitext(path)[1].lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise OutputPathError(f'{path}: no image writer for {ext!r}; '
                              f'expected one of {", ".join(IMAGE_EXTENSIONS)}')
    with atomic_write(path) as f:
        Image.fromarray(image).save(f, format=fmt)


def save_checkpoint(obj: Any, path: str) -> None:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch
    with atomic_write(path) as f:
        torch.save(obj, f)


def save_json(obj: Any, path: str, **kwargs) -> None:
    """``json.dump(obj)`` to ``path`` atomically (``kwargs`` go to
    ``json.dump``, e.g. ``indent``)."""
    with atomic_write(path, 'w') as f:
        json.dump(obj, f, **kwargs)
