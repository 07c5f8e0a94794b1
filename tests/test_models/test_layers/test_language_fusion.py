"""Language-side fusion (words attend to pixels) and its factored attention."""
import pytest
import torch

from projects.magnet.models.layers.language_fusion import (LanguageFusion,
                                                           WordPixelAttention)
from projects.magnet.models.language.bert_encoder import \
    additive_attention_mask

from .utils import random_words


def test_language_attention_official_quirk():
    """Real words attend uniformly over the pixels (queries scaled by 0)."""
    torch.manual_seed(2)
    attn = WordPixelAttention(16, 8).eval()
    pixels = torch.randn(2, 20, 8)
    words, mask = random_words()
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
    words, mask = random_words(lengths=(6, 6))  # no padding at all
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


def test_language_fusion_updates_words_from_the_start_and_grads():
    """The default gate init is small and trainable: vision changes the
    words a little, and gradients reach the pixels and the gate from the
    first step, without opening anything by hand."""
    torch.manual_seed(0)
    fusion = LanguageFusion(16, 8, mask_mode='fixed')
    fusion.init_weights()
    pixels = torch.randn(2, 20, 8, requires_grad=True)
    words, mask = random_words()
    add = additive_attention_mask(mask, torch.float32)
    out = fusion(pixels, words, add)
    change = (out - words).abs().max()
    assert 0 < change < 0.05 * words.abs().max()
    out.sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0
    assert fusion.gate.fc1.weight.grad.abs().sum() > 0
    assert fusion.gate.fc2.weight.grad.abs().sum() > 0
    assert fusion.norm.weight.grad is None  # unused by the forward
    # the official constructor's zeros: the identity, for ever
    closed = LanguageFusion(16, 8, gate_init='zeros')
    closed.init_weights()
    torch.testing.assert_close(closed(pixels, words, add), words)


@pytest.mark.parametrize('mask_mode,heads', [('official', 1),
                                             ('official', 2),
                                             ('fixed', 2)])
def test_factored_word_pixel_attention(mask_mode, heads):
    torch.manual_seed(0)
    attn = WordPixelAttention(32, 16, heads, mask_mode).eval()
    pixels = torch.randn(2, 50, 16) * 2 + 1
    words = torch.randn(2, 8, 32)
    additive = torch.zeros(2, 1, 1, 8)
    additive[0, ..., 5:] = -10000.0
    with torch.no_grad():
        fast = attn(pixels, words, additive)
        ref = attn.forward_direct(pixels, words, additive)
    torch.testing.assert_close(fast, ref, atol=2e-5, rtol=1e-4)


def test_factored_word_pixel_attention_gradients():
    torch.manual_seed(0)
    attn = WordPixelAttention(32, 16, 2)
    pixels = torch.randn(2, 30, 16, requires_grad=True)
    words = torch.randn(2, 6, 32)
    additive = torch.zeros(2, 1, 1, 6)
    additive[1, ..., 4:] = -10000.0
    grads = []
    for fn in (attn.forward, attn.forward_direct):
        pixels.grad = None
        fn(pixels, words, additive).square().sum().backward()
        grads.append(pixels.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-3, rtol=1e-3)
