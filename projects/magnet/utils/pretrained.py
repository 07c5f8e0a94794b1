"""Where pretrained weights named in a config live on disk."""
from __future__ import annotations

import importlib.util
import os.path as osp

from .errors import InputFileNotFoundError

__all__ = ['resolve_pretrained']


def resolve_pretrained(name_or_path: str) -> str:
    """Resolve ``pkg://<package>/<subdir>`` to a folder of an installed
    package; any other value (hub name, local folder) is returned as is."""
    if not name_or_path.startswith('pkg://'):
        return name_or_path
    package, _, subdir = name_or_path[len('pkg://'):].partition('/')
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputFileNotFoundError(
            f'{name_or_path}: package "{package}" is not installed')
    path = osp.join(list(spec.submodule_search_locations)[0], subdir)
    if not osp.isdir(path):
        raise InputFileNotFoundError(
            f'{name_or_path}: {path} is not a folder')
    return path
