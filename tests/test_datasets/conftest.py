"""Fixtures of the dataset tests (the generated ``refer_root`` dataset is
in ``tests/conftest.py``, shared with the generator's tests)."""
import pytest
from mmengine.registry import init_default_scope

import projects.magnet  # noqa: F401  (mmseg under mmcv-lite)
import projects.magnet.datasets  # noqa: F401  (registers the components)


@pytest.fixture(scope='session', autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')
