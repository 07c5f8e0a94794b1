"""A small MagNetHead shared by the decode-head tests."""
from __future__ import annotations

from mmseg.registry import MODELS

from projects.magnet.converters.official_config import magnet_head_cfg

#: channels and strides of the four feature maps :func:`tiny_head` takes
FEAT_CHANNELS = (16, 24, 32, 40)
FEAT_STRIDES = (4, 8, 16, 32)


def tiny_head(num_decoder_layers: int = 4, **kwargs):
    """A MagNetHead of 32 channels on :data:`FEAT_CHANNELS` features at
    :data:`FEAT_STRIDES` (GroupNorm of 8 groups in the pixel decoder);
    ``kwargs`` replace keys of its config."""
    cfg = magnet_head_cfg(
        in_channels=list(FEAT_CHANNELS), strides=list(FEAT_STRIDES),
        feat_channels=32, mask_channels=32, hidden_channels=32, num_heads=4,
        num_encoder_layers=1, encoder_ffn_channels=64,
        num_decoder_layers=num_decoder_layers, decoder_ffn_channels=64)
    cfg['pixel_decoder']['norm_cfg'] = dict(type='GN', num_groups=8)
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    # training init of the sub-modules (MagNetHead.init_weights() itself is
    # exercised once in test_shapes_batch2_non_square: mmengine logs every
    # parameter there, which is slow)
    head.pixel_decoder.init_weights()
    head.transformer_decoder.init_weights()
    return head
