"""The official sources: stand-in modules (our own code) for timm / mmseg,
the pip-installed deps, extraction and patching in a temporary directory."""
from __future__ import annotations

import ast
import os
import os.path as osp
import shutil
import subprocess
import sys

import torch
import torch.nn.functional as F
from torch import nn

from .constants import DEPS, PATCHES, SOURCE_DIRS, SOURCE_FILES


# --------------------------------------------------------------------------
# stand-in modules (our own code) for timm / mmseg
# --------------------------------------------------------------------------
_TIMM_LAYERS = '''"""Stand-in: the timm.models.layers names the code uses."""
import collections.abc
import itertools
import math

import torch
from torch import nn


def to_2tuple(x):
    if isinstance(x, collections.abc.Iterable) and not isinstance(x, str):
        return tuple(x)
    return tuple(itertools.repeat(x, 2))


def trunc_normal_(tensor, mean=0., std=1., a=-2., b=2.):
    # inverse-CDF method: ONE uniform draw per element (the RNG use of
    # timm's trunc_normal_; torch.nn.init.trunc_normal_ of recent torch
    # draws differently, which would shift the seeded weights)
    def cdf(x):
        return (1. + math.erf(x / math.sqrt(2.))) / 2.
    with torch.no_grad():
        lo, hi = cdf((a - mean) / std), cdf((b - mean) / std)
        tensor.uniform_(2 * lo - 1, 2 * hi - 1)
        tensor.erfinv_()
        tensor.mul_(std * math.sqrt(2.))
        tensor.add_(mean)
        tensor.clamp_(min=a, max=b)
    return tensor


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval mode)."""

    def __init__(self, drop_prob=None):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if not self.drop_prob or not self.training:
            return x
        keep = 1 - self.drop_prob
        shape = (x.shape[0], ) + (1, ) * (x.ndim - 1)
        mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(
            keep)
        return x / keep * mask
'''
_MMSEG_UTILS = '''"""Stand-in for mmseg.utils.get_root_logger (mmseg 0.x)."""
import logging


def get_root_logger(log_file=None, log_level=logging.INFO):
    return logging.getLogger('mmseg')
'''


def _write(path, text):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def write_stand_ins(root):
    _write(osp.join(root, 'timm', '__init__.py'), '')
    _write(osp.join(root, 'timm', 'models', '__init__.py'), '')
    _write(osp.join(root, 'timm', 'models', 'layers', '__init__.py'),
           _TIMM_LAYERS)
    _write(osp.join(root, 'mmseg', '__init__.py'), '')
    _write(osp.join(root, 'mmseg', 'utils', '__init__.py'), _MMSEG_UTILS)


def ensure_deps(deps_dir):
    try:
        import fvcore  # noqa: F401
        return
    except ImportError:
        pass
    if not osp.isdir(osp.join(deps_dir, 'fvcore')):
        print(f'installing {" ".join(DEPS)} into {deps_dir}')
        subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet',
                        '--no-deps', '--target', deps_dir, *DEPS], check=True)


# --------------------------------------------------------------------------
# official sources
# --------------------------------------------------------------------------
def _wanted(path):
    return path in SOURCE_FILES or (path.startswith(SOURCE_DIRS)
                                    and path.endswith('.py'))


def extract_official(repo, dst):
    """Copy the needed official .py files of ``repo`` (a checkout or a bare
    git mirror) to ``dst``; return the commit (or 'unknown')."""
    def git(*a):
        return subprocess.run(['git', *a], capture_output=True, check=True)

    if osp.isfile(osp.join(repo, 'test.py')):  # a checkout
        for d, _, files in os.walk(repo):
            if '.git' in d.split(os.sep):
                continue
            for name in files:
                rel = osp.relpath(osp.join(d, name), repo).replace(os.sep, '/')
                if _wanted(rel):
                    os.makedirs(osp.dirname(osp.join(dst, rel)) or dst,
                                exist_ok=True)
                    shutil.copy(osp.join(d, name), osp.join(dst, rel))
        try:
            commit = git('-C', repo, 'rev-parse', 'HEAD').stdout.decode()
        except (subprocess.CalledProcessError, OSError):
            commit = 'unknown'
        return commit.strip()
    gd = ['--git-dir', repo]
    names = git(*gd, 'ls-tree', '-r', '--name-only', 'HEAD').stdout.decode()
    for rel in names.splitlines():
        if _wanted(rel):
            _write(osp.join(dst, rel),
                   git(*gd, 'show', f'HEAD:{rel}').stdout.decode())
    return git(*gd, 'rev-parse', 'HEAD').stdout.decode().strip()


def apply_patches(src):
    for p in PATCHES:
        path = osp.join(src, p.get('path', p['file']))
        with open(path) as f:
            text = f.read()
        for old, new, count in p['edits']:
            found = text.count(old)
            assert found == count, (
                f'patch {p["id"]}: {old!r} found {found}x in {p["file"]}, '
                f'expected {count}x (different official commit?)')
            if old in p.get('first_only', ()):
                text = text.replace(old, new, 1)
            else:
                text = text.replace(old, new)
        with open(path, 'w') as f:
            f.write(text)


def extract_wrapper_model(test_py):
    """class WrapperModel of test.py, exec'd with torch / nn / F only."""
    with open(test_py) as f:
        source = f.read()
    tree = ast.parse(source)
    node = next(n for n in tree.body
                if isinstance(n, ast.ClassDef) and n.name == 'WrapperModel')
    ns = dict(torch=torch, nn=nn, F=F)
    exec(compile(ast.get_source_segment(source, node), test_py, 'exec'), ns)
    return ns['WrapperModel']
