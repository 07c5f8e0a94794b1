"""Shared fixtures: a small synthetic REFER dataset."""
import pytest
from mmengine.registry import init_default_scope

import projects.magnet  # noqa: F401  (mmseg under mmcv-lite)
import projects.magnet.datasets  # noqa: F401  (registers the components)
from projects.magnet.datasets.synthetic import generate_refer_dataset

SMALL = dict(
    num_train_images=16,
    num_val_images=6,
    num_test_images=8,
    img_size=64,
    seed=7,
    occlusion_prob=0.6,
    progress=False)


@pytest.fixture(scope='session', autouse=True)
def mmseg_scope():
    init_default_scope('mmseg')


@pytest.fixture(scope='session')
def refer_root(tmp_path_factory):
    """(root, summary) of a generated dataset ``refsynth`` (split_by unc)."""
    root = str(tmp_path_factory.mktemp('refer'))
    summary = generate_refer_dataset(root, **SMALL)
    return root, summary
