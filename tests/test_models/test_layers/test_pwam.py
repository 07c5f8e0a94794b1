"""PWAM: pixel-word attention."""
import torch

from projects.magnet.models.layers.pwam import PWAM

from .utils import random_words


def test_pwam_ignores_padded_words():
    torch.manual_seed(0)
    pwam = PWAM(8, 16, num_heads=2).eval()
    x = torch.randn(2, 12, 8)
    words, mask = random_words()
    out = pwam(x, words, mask)
    assert out.shape == (2, 12, 8)
    words2 = words.clone()
    words2[0, 4:] = torch.randn(2, 16) * 100  # padding of sample 0 only
    out2 = pwam(x, words2, mask)
    torch.testing.assert_close(out2, out)
    words2[0, 0] += 1.0  # a real word does matter
    assert not torch.allclose(pwam(x, words2, mask), out)


def test_pwam_batch_equals_single_samples():
    torch.manual_seed(1)
    pwam = PWAM(8, 16).eval()
    x = torch.randn(2, 12, 8)
    words, mask = random_words()
    out = pwam(x, words, mask)
    for b in range(2):
        torch.testing.assert_close(
            pwam(x[b:b + 1], words[b:b + 1], mask[b:b + 1]), out[b:b + 1])
