"""Cross-modal alignment loss on hand-computed cases."""
import math

import pytest
import torch

from projects.magnet.models.objectives import CrossModalAlignmentLoss


def _case():
    # 3 pixels in a row: two referent pixels along x, one background along y
    pix = torch.tensor([[1., 1., 0.], [0., 0., 1.]]).view(1, 2, 1, 3)
    gt = torch.tensor([1, 1, 0]).view(1, 1, 1, 3)
    text = torch.tensor([[1., 0.]])
    return pix, text, gt


def test_hand_computed_values():
    pix, text, gt = _case()
    losses = CrossModalAlignmentLoss(temperature=1.0)(pix, text, gt)
    # p2t: fg s = 1, bg s = 0 -> (softplus(-1) + softplus(0)) / 2
    p2t = (math.log1p(math.exp(-1)) + math.log(2)) / 2
    # p2p: prototype (1, 0); each anchor: positive 1, negative 0
    p2p = math.log(math.e + 1) - 1
    assert losses['loss_cal_p2t'].item() == pytest.approx(p2t, abs=1e-6)
    assert losses['loss_cal_p2p'].item() == pytest.approx(p2p, abs=1e-6)


def test_temperature_weights_and_norm_invariance():
    pix, text, gt = _case()
    loss = CrossModalAlignmentLoss(temperature=0.5, p2p_weight=2.0,
                                   p2t_weight=3.0)
    out = loss(pix * 7.0, text * 0.1, gt)  # embeddings are L2-normalised
    p2t = (math.log1p(math.exp(-2)) + math.log(2)) / 2
    p2p = math.log(math.exp(2) + 1) - 2
    assert out['loss_cal_p2t'].item() == pytest.approx(3 * p2t, abs=1e-5)
    assert out['loss_cal_p2p'].item() == pytest.approx(2 * p2p, abs=1e-5)


def test_ignored_pixels_and_switches():
    pix, text, gt = _case()
    pix = torch.cat([pix, torch.tensor([[[[-1.]], [[0.]]]])], dim=3)
    gt = torch.cat([gt, torch.full((1, 1, 1, 1), 255)], dim=3)
    ref = CrossModalAlignmentLoss(temperature=1.0)(*_case())
    out = CrossModalAlignmentLoss(temperature=1.0)(pix, text, gt)
    for k in ref:
        assert out[k].item() == pytest.approx(ref[k].item(), abs=1e-6)
    only = CrossModalAlignmentLoss(p2p_weight=0)(pix, text, gt)
    assert set(only) == {'loss_cal_p2t'}


def test_gt_is_resized_to_the_embedding_grid():
    pix, text, _ = _case()
    gt = torch.tensor([1, 1, 0]).view(1, 1, 1, 3).repeat_interleave(
        4, dim=3).repeat_interleave(4, dim=2)  # (1, 1, 4, 12)
    ref = CrossModalAlignmentLoss(temperature=1.0)(*_case())
    out = CrossModalAlignmentLoss(temperature=1.0)(pix, text, gt)
    assert out['loss_cal_p2t'].item() == pytest.approx(
        ref['loss_cal_p2t'].item(), abs=1e-6)


def test_empty_foreground_keeps_a_graph():
    pix = torch.randn(2, 4, 3, 3, requires_grad=True)
    text = torch.randn(2, 4, requires_grad=True)
    gt = torch.zeros(2, 1, 3, 3, dtype=torch.long)
    out = CrossModalAlignmentLoss()(pix, text, gt)
    assert out['loss_cal_p2p'].item() == 0.0  # needs fg and bg
    assert out['loss_cal_p2t'].item() > 0  # the background term exists
    sum(out.values()).backward()
    assert pix.grad is not None and text.grad is not None


def test_aligned_embeddings_give_lower_loss():
    torch.manual_seed(0)
    gt = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    gt[..., 2:5, 2:5] = 1
    text = torch.tensor([[1., 0., 0., 0.]])
    good = torch.zeros(1, 4, 8, 8)
    good[:, 0] = gt[:, 0].float() * 2 - 1
    good[:, 1] = 0.1
    bad = torch.randn(1, 4, 8, 8)
    loss = CrossModalAlignmentLoss()
    g, b = loss(good, text, gt), loss(bad, text, gt)
    assert g['loss_cal_p2t'] < b['loss_cal_p2t']
    assert g['loss_cal_p2p'] < b['loss_cal_p2p']


def test_learnable_temperature_gets_a_gradient():
    loss = CrossModalAlignmentLoss(learnable_temperature=True)
    pix, text, gt = _case()
    sum(loss(pix, text, gt).values()).backward()
    assert loss.log_scale.grad is not None
    with pytest.raises(ValueError):
        CrossModalAlignmentLoss(temperature=0)
