"""MaskedAttentionDecoder: masked cross-attention on or off."""
import pytest
import torch

from projects.magnet.models.layers.mask_decoder import MaskedAttentionDecoder


def _decoder(masked):
    torch.manual_seed(0)
    dec = MaskedAttentionDecoder(
        in_channels=16, hidden_channels=16, mask_channels=16, num_heads=2,
        num_layers=3, feedforward_channels=32, num_feature_levels=3,
        masked_attention=masked).eval()
    dec.init_weights()
    return dec


@pytest.mark.parametrize('masked', [True, False])
def test_queries_see_the_mask_features_only_through_masked_attention(
        masked):
    """The queries depend on the mask features only through the attention
    masks: with ``masked_attention=False`` the class predictions of every
    layer do not change when the mask features do; with it they do."""
    dec = _decoder(masked)
    feats = [torch.randn(2, 16, s, s) for s in (4, 8, 16)]
    mask_features = torch.randn(2, 16, 32, 32)
    with torch.no_grad():
        cls_a, masks_a = dec(feats, mask_features)
        cls_b, masks_b = dec(feats, 5 * torch.randn(2, 16, 32, 32))
    assert len(cls_a) == len(masks_a) == 4
    assert masks_a[-1].shape == (2, 1, 32, 32)
    same = [torch.allclose(a, b) for a, b in zip(cls_a, cls_b)]
    assert same[0]  # the initial queries never see the features
    if masked:
        assert not all(same[1:])
    else:
        assert all(same[1:])
        assert not torch.allclose(masks_a[-1], masks_b[-1])
