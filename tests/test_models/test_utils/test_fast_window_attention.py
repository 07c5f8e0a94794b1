"""The fast shifted-window attention gives mmseg's SwinBlock outputs."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.models.backbones.swin import ShiftWindowMSA, SwinBlock
from mmseg.registry import MODELS

from projects.magnet.models.utils.fast_window_attention import \
    FastShiftWindowMSA

from ...conftest import tiny_magnet_cfg


@pytest.mark.parametrize('hw,window,shift,batch', [
    ((8, 8), 4, False, 2), ((8, 8), 4, True, 3), ((7, 7), 4, True, 2),
    ((5, 5), 4, False, 2), ((7, 9), 4, True, 2), ((5, 13), 4, False, 1),
    ((15, 15), 12, True, 1), ((3, 3), 4, True, 1)
])
def test_fast_window_attention_matches_mmseg(hw, window, shift, batch):
    """Padding (bias rows), cyclic shift, border-window masks and batches
    give mmseg's outputs."""
    torch.manual_seed(0)
    block = SwinBlock(16, 2, 64, window_size=window, shift=shift).eval()
    with torch.no_grad():
        block.attn.w_msa.relative_position_bias_table.normal_(0, 1)
        block.attn.w_msa.qkv.bias.normal_(0, 1)
    x = torch.randn(batch, hw[0] * hw[1], 16)
    with torch.no_grad():
        block.attn.__class__ = ShiftWindowMSA
        ref = block(x, hw)
        block.attn.__class__ = FastShiftWindowMSA
        fast = block(x, hw)
    torch.testing.assert_close(fast, ref, atol=2e-6, rtol=1e-5)


def test_window_layout_is_a_permutation():
    from projects.magnet.models.utils.fast_window_attention import \
        window_layout
    source, slot, mask, n_inner = window_layout(7, 9, 4, 2, 'cpu')
    real = source[source < 63]
    assert sorted(real.tolist()) == list(range(63))  # every token once
    assert torch.equal(source[slot], torch.arange(63))  # inverse
    # 2 x 3 windows; only the last window row / column see the shift mask
    assert n_inner == 2 and mask.shape == (4, 16, 16)
    assert set(mask.unique().tolist()) == {0.0, -100.0}


def test_backbone_uses_fast_window_attention():
    init_default_scope('mmseg')
    model = MODELS.build(tiny_magnet_cfg())
    attns = [b.attn for s in model.backbone.stages for b in s.blocks]
    assert all(type(a) is FastShiftWindowMSA for a in attns)
    # parameter names are mmseg's
    assert any(k.endswith('attn.w_msa.qkv.weight')
               for k in model.state_dict())
