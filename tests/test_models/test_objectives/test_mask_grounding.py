"""The Mask Grounding head in isolation."""
import math

import pytest
import torch

from projects.magnet.models.objectives import MaskGroundingHead
from projects.magnet.models.layers import MaskEncoder

V = 50


def _head(**kw):
    cfg = dict(text_channels=16, visual_channels=24, num_heads=2,
               vocab_size=V, dropout=0.0,
               masking=dict(type='TokenMasker', first_word_id=10,
                            special_ids=(0, 1, 2, 3), mask_token_id=3))
    cfg.update(kw)
    head = MaskGroundingHead(**cfg)
    head.init_weights()
    return head


def _inputs(B=2, N=6):
    torch.manual_seed(0)
    words = torch.randn(B, N, 16)
    am = torch.ones(B, N, dtype=torch.long)
    am[1, 4:] = 0
    visual = torch.randn(B, 24, 3, 4)
    masks = torch.zeros(B, 1, 24, 32)
    masks[:, :, 4:12, 8:20] = 1
    labels = torch.full((B, N), -100)
    labels[0, 2], labels[1, 1] = 17, 33
    return words, am, visual, masks, labels


def test_uniform_logits_give_log_vocab():
    head = _head()
    emb = torch.zeros(V, 16)  # tied classifier of zeros: uniform logits
    out = head.loss(*_inputs(), word_embeddings=emb)
    assert out['loss_mg'].item() == pytest.approx(math.log(V), abs=1e-5)


def test_bias_on_the_targets_gives_zero_loss_and_full_accuracy():
    head = _head()
    with torch.no_grad():
        head.decoder_bias[17] = 50.0
    words, am, visual, masks, labels = _inputs()
    labels[1, 1] = 17
    out = head.loss(words, am, visual, masks, labels,
                    word_embeddings=torch.zeros(V, 16))
    assert out['loss_mg'].item() < 1e-6
    assert out['acc_mg'].item() == 100.0


def test_only_masked_positions_count_and_padding_is_invisible():
    head = _head(tie_word_embeddings=False).eval()
    words, am, visual, masks, labels = _inputs()
    base = head.loss(words, am, visual, masks, labels)['loss_mg']
    # a padded word's content cannot change anything
    words2 = words.clone()
    words2[1, 5] += 100.0
    assert torch.allclose(
        head.loss(words2, am, visual, masks, labels)['loss_mg'], base)
    # the text outputs depend on vision and on the mask
    ref = head(words, am, visual, masks)
    v2 = visual + torch.randn_like(visual)
    assert (head(words, am, v2, masks) - ref).abs().max() > 1e-4
    assert (head(words, am, visual, 1 - masks) - ref).abs().max() > 1e-4


def test_nothing_masked_gives_zero_with_graph():
    head = _head()
    words, am, visual, masks, labels = _inputs()
    words.requires_grad_(True)
    out = head.loss(words, am, visual, masks, torch.full_like(labels, -100),
                    torch.zeros(V, 16))
    assert out['loss_mg'].item() == 0.0
    out['loss_mg'].backward()
    assert words.grad is not None


def test_tied_classifier_checks():
    with pytest.raises(ValueError, match='tie_word_embeddings'):
        _head(hidden_channels=32)
    head = _head()
    with pytest.raises(ValueError, match='word embedding'):
        head.loss(*_inputs())
    with pytest.raises(ValueError, match='shape'):
        head.loss(*_inputs(), word_embeddings=torch.zeros(V + 1, 16))


def test_mask_encoder_sees_shape_inside_a_cell():
    enc = MaskEncoder(8, patch_size=4)
    a = torch.zeros(1, 1, 8, 8)
    a[..., :4, :2] = 1  # left half of the top-left cell
    b = torch.zeros(1, 1, 8, 8)
    b[..., :4, 2:4] = 1  # right half: same coverage, other shape
    ta, tb = enc(a, (2, 2)), enc(b, (2, 2))
    assert ta.shape == (1, 4, 8)
    assert not torch.allclose(ta[0, 0], tb[0, 0])
    assert torch.allclose(ta[0, 1:], tb[0, 1:])


def test_referent_is_the_mask_weighted_mean_of_the_cells():
    tokens = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    masks = torch.zeros(2, 1, 4, 4)
    masks[0, :, :2, :2] = 1  # cell (0, 0) fully
    masks[0, :, 2:, 2:3] = 1  # half of cell (1, 1)
    ref = MaskGroundingHead.pool_referent(tokens, masks, (2, 2))
    expect = (tokens[0, 0] * 1.0 + tokens[0, 3] * 0.5) / 1.5
    assert torch.allclose(ref[0], expect)
    assert torch.equal(ref[1], torch.zeros(3))  # empty mask: no referent


def test_referent_conditioning_switch():
    # off by default (the paper's formulation has no referent feature)
    assert MaskGroundingHead(text_channels=16, visual_channels=24,
                             num_heads=2).referent_proj is None
    head = _head(referent_conditioning=False)
    assert head.referent_proj is None
    words, am, visual, masks, _ = _inputs()
    assert head(words, am, visual, masks).shape == (2, 6, 16)


def test_visual_grid_pools_tokens_but_not_the_referent():
    head = _head(visual_grid=(2, 2), referent_conditioning=True).eval()
    words, am, _, masks, _ = _inputs()
    visual = torch.randn(2, 24, 6, 8)
    out = head(words, am, visual, masks)
    assert out.shape == (2, 6, 16)
    # detail inside a 2x2 token cell reaches the words via the referent
    v2 = visual.clone()
    v2[:, :, 1, 2] += 5.0  # inside the mask (rows 4-12, cols 8-20 of 24x32)
    assert (head(words, am, v2, masks) - out).abs().max() > 1e-4
    off = _head(visual_grid=(2, 2), referent_conditioning=False).eval()
    a = off(words, am, visual, masks)
    v3 = visual.clone()
    v3[:, :, 1, 2] += 5.0
    v3[:, :, 1, 3] -= 5.0  # same 3x4 pooling cell, same average
    assert torch.allclose(off(words, am, v3, masks), a, atol=1e-5)
