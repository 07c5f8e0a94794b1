"""The deformable pixel decoder: query chunks at inference give the same
function."""
import torch

from projects.magnet.models.layers.pixel_decoder import \
    MSDeformAttnPixelDecoder


def test_chunked_encoder_matches_unchunked():
    torch.manual_seed(0)
    decoder = MSDeformAttnPixelDecoder(
        in_channels=(8, 16, 32, 64), feat_channels=32, out_channels=32,
        encoder=dict(num_layers=2, layer_cfg=dict(
            self_attn_cfg=dict(num_heads=4),
            ffn_cfg=dict(feedforward_channels=64)))).eval()
    decoder.init_weights()
    feats = [torch.randn(2, c, 32 // 2**i, 24 // 2**i)
             for i, c in enumerate((8, 16, 32, 64))]
    outs = []
    for chunk in (0, 100):
        for layer in decoder.encoder.layers:
            layer.query_chunk = chunk
        with torch.no_grad():
            outs.append(decoder(feats))
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=1e-5, rtol=0)
    for a, b in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
