"""Fixtures of the inference API tests: a tiny model and a test image."""
from __future__ import annotations

import numpy as np
import pytest

from projects.magnet.apis import MagNetInferencer

from . import write_tiny_model


@pytest.fixture(scope='module')
def tiny_files(tmp_path_factory, minilm_dir):
    """(config file, checkpoint file) of a tiny random-weights MagNet."""
    return write_tiny_model(tmp_path_factory.mktemp('tiny_model'),
                            minilm_dir, seed=0)


@pytest.fixture(scope='module')
def inferencer(tiny_files):
    cfg_file, ckpt = tiny_files
    return MagNetInferencer(cfg_file, ckpt, device='cpu')


@pytest.fixture(scope='module')
def image_bgr():
    """A 48x80 (non-square) BGR test image with two coloured blobs."""
    rng = np.random.default_rng(3)
    img = rng.integers(60, 120, (48, 80, 3), dtype=np.uint8)
    img[8:30, 6:30] = (40, 40, 220)  # red in BGR
    img[20:44, 44:76] = (220, 60, 30)  # blue in BGR
    return img
