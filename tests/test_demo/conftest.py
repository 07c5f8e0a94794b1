"""The web demo tests' model: the CPU config with init weights, saved as a
checkpoint (as ``make demo`` would leave a trained one), and a scene."""
from __future__ import annotations

import numpy as np
import pytest

from ..conftest import load_tool
from ..test_apis import CPU_CONFIG

#: the two expressions the tests type
EXPRESSIONS = ('the red square', 'the blue circle on the right')


@pytest.fixture(scope='session')
def web_demo():
    return load_tool('demo/web_demo.py')


@pytest.fixture(scope='session')
def cpu_checkpoint(tmp_path_factory) -> str:
    """A checkpoint of the CPU config's model (init weights, seeded)."""
    import torch
    from mmengine.registry import init_default_scope

    from projects.magnet.apis import init_model
    init_default_scope('mmseg')
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match='no checkpoint'):
        model = init_model(CPU_CONFIG, None, device='cpu')
    path = str(tmp_path_factory.mktemp('web_demo_model') / 'cpu_init.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


@pytest.fixture(scope='session')
def cpu_inferencer(cpu_checkpoint):
    """The reference: :class:`MagNetInferencer` on the same checkpoint."""
    from projects.magnet.apis import MagNetInferencer
    return MagNetInferencer(CPU_CONFIG, cpu_checkpoint, device='cpu')


@pytest.fixture(scope='session')
def scene() -> np.ndarray:
    """(80, 96, 3) uint8 RGB: noise, a red square, a blue disc."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(60, 190, (80, 96, 3), dtype=np.uint8)
    rgb[10:40, 8:38] = (220, 30, 30)
    yy, xx = np.mgrid[:80, :96]
    rgb[(yy - 50) ** 2 + (xx - 70) ** 2 < 15 ** 2] = (30, 40, 220)
    return rgb


@pytest.fixture(scope='session')
def threshold(cpu_inferencer, scene) -> float:
    """The median probability of the first expression: about half of the
    image is its mask, whatever the init weights give."""
    probs = cpu_inferencer(scene, list(EXPRESSIONS),
                           channel_order='rgb').probs
    return float(np.median(probs[0]))
