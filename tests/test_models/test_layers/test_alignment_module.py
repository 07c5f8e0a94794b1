"""The multi-scale cross-modal alignment module."""
import pytest
import torch

from projects.magnet.models.layers.alignment_module import \
    CrossModalAlignment

from .utils import random_words


@pytest.mark.parametrize('hw', [(5, 7), (2, 2), (12, 9)])
def test_alignment_module_shapes(hw):
    """Maps smaller than the largest pool (6) use overlapping bins."""
    torch.manual_seed(4)
    cam = CrossModalAlignment(16, 12).eval()
    H, W = hw
    x = torch.randn(2, H * W, 16)
    r = torch.randn(2, H * W, 16)
    words, mask = random_words(L=12)
    out = cam(x, hw, r, words, mask)
    assert out.shape == (2, 16, H, W)
    assert (out >= -0.2).all()  # ends with GELU
    out.sum().backward()
    assert all(p.grad is not None for p in cam.parameters())


def test_alignment_module_rejects_bad_reduction():
    with pytest.raises(ValueError, match='divisible'):
        CrossModalAlignment(10, 12, reduction=4)
