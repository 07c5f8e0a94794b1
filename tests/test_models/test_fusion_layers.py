"""PWAM, alignment module, language fusion and gate."""
import pytest
import torch

from projects.magnet.models.layers.alignment_module import \
    CrossModalAlignment
from projects.magnet.models.layers.gate import ResidualGate
from projects.magnet.models.layers.language_fusion import (LanguageFusion,
                                                           WordPixelAttention)
from projects.magnet.models.layers.pwam import PWAM
from projects.magnet.models.language.bert_encoder import \
    additive_attention_mask


def _words(B=2, N=6, L=16, lengths=(4, 6)):
    words = torch.randn(B, N, L)
    mask = torch.zeros(B, N, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
    return words, mask


def test_pwam_ignores_padded_words():
    torch.manual_seed(0)
    pwam = PWAM(8, 16, num_heads=2).eval()
    x = torch.randn(2, 12, 8)
    words, mask = _words()
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
    words, mask = _words()
    out = pwam(x, words, mask)
    for b in range(2):
        torch.testing.assert_close(
            pwam(x[b:b + 1], words[b:b + 1], mask[b:b + 1]), out[b:b + 1])


def test_gate_starts_closed_and_opens():
    gate = ResidualGate(8)
    gate.init_weights()
    x, r = torch.randn(3, 8), torch.randn(3, 8)
    torch.testing.assert_close(gate(x, r), x)
    torch.nn.init.normal_(gate.fc1.weight)
    torch.nn.init.normal_(gate.fc2.weight)
    out = gate(x, r)
    assert not torch.allclose(out, x)
    assert ((out - x).abs() <= r.abs() + 1e-6).all()  # |tanh| <= 1


def test_language_attention_official_quirk():
    """Real words attend uniformly over the pixels (queries scaled by 0)."""
    torch.manual_seed(2)
    attn = WordPixelAttention(16, 8).eval()
    pixels = torch.randn(2, 20, 8)
    words, mask = _words()
    add = additive_attention_mask(mask, torch.float32)
    seen = {}
    handle = torch.nn.functional.softmax
    try:
        def spy(x, dim=None, **kw):
            seen['attn'] = handle(x, dim=dim, **kw)
            return seen['attn']
        torch.nn.functional.softmax = spy
        attn(pixels, words, add)
    finally:
        torch.nn.functional.softmax = handle
    probs = seen['attn'][:, 0]  # (B, N, HW)
    real = mask.bool()
    torch.testing.assert_close(probs[real],
                               torch.full_like(probs[real], 1 / 20))
    assert probs[~real].max(dim=-1).values.min() > 0.5  # pads: ~one-hot


def test_language_fusion_fixed_mode_differs_and_uses_vision():
    torch.manual_seed(3)
    official = LanguageFusion(16, 8, mask_mode='official').eval()
    fixed = LanguageFusion(16, 8, mask_mode='fixed').eval()
    fixed.load_state_dict(official.state_dict())
    pixels = torch.randn(2, 20, 8)
    words, mask = _words(lengths=(6, 6))  # no padding at all
    add = additive_attention_mask(mask, torch.float32)
    # official: without pads, the token-axis InstanceNorm sees identical
    # rows (uniform attention) -> the residual is the same for every token
    r = official.residual(pixels, words, add)
    r_fixed = fixed.residual(pixels, words, add)
    assert not torch.allclose(r, r_fixed)
    other = fixed.residual(pixels * 2 + 1, words, add)
    assert not torch.allclose(other, r_fixed)
    with pytest.raises(ValueError, match='mask_mode'):
        WordPixelAttention(16, 8, mask_mode='bad')


def test_language_fusion_gate_identity_at_init_and_grads():
    fusion = LanguageFusion(16, 8)
    fusion.init_weights()
    pixels = torch.randn(2, 20, 8, requires_grad=True)
    words, mask = _words()
    add = additive_attention_mask(mask, torch.float32)
    torch.testing.assert_close(fusion(pixels, words, add), words)
    torch.nn.init.normal_(fusion.gate.fc1.weight, std=0.1)
    torch.nn.init.normal_(fusion.gate.fc2.weight, std=0.1)
    fusion(pixels, words, add).sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0
    assert fusion.norm.weight.grad is None  # unused by the forward


@pytest.mark.parametrize('hw', [(5, 7), (2, 2), (12, 9)])
def test_alignment_module_shapes(hw):
    """Maps smaller than the largest pool (6) use overlapping bins."""
    torch.manual_seed(4)
    cam = CrossModalAlignment(16, 12).eval()
    H, W = hw
    x = torch.randn(2, H * W, 16)
    r = torch.randn(2, H * W, 16)
    words, mask = _words(L=12)
    out = cam(x, hw, r, words, mask)
    assert out.shape == (2, 16, H, W)
    assert (out >= -0.2).all()  # ends with GELU
    out.sum().backward()
    assert all(p.grad is not None for p in cam.parameters())


def test_alignment_module_rejects_bad_reduction():
    with pytest.raises(ValueError, match='divisible'):
        CrossModalAlignment(10, 12, reduction=4)
