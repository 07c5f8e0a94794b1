"""The training objectives on no-target samples: the alignment loss leaves
them out of both terms; Mask Grounding takes their empty mask."""
from __future__ import annotations

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    pix = torch.randn(3, 8, 6, 6, generator=g, requires_grad=True)
    txt = torch.randn(3, 8, generator=g, requires_grad=True)
    gt = torch.zeros(3, 1, 12, 12, dtype=torch.long)
    gt[0, :, 2:8, 2:8] = 1
    gt[2, :, 4:10, 0:6] = 1  # sample 1 has no referent
    return pix, txt, gt


def test_alignment_leaves_no_target_samples_out():
    loss = MODELS.build(dict(type='CrossModalAlignmentLoss',
                             max_anchors=None, max_negatives=None))
    pix, txt, gt = _inputs()
    # sample 2 is marked no-target: it contributes as if absent
    mixed = loss(pix, txt, gt, torch.tensor([True, True, False]))
    alone = loss(pix[:2], txt[:2], gt[:2])
    for key in mixed:
        assert torch.allclose(mixed[key], alone[key]), key
    # without the flags the same sample counts (the previous behaviour)
    every = loss(pix, txt, gt)
    assert not torch.allclose(every['loss_cal_p2t'], alone['loss_cal_p2t'])


def test_alignment_all_no_target_is_zero_with_graph():
    loss = MODELS.build(dict(type='CrossModalAlignmentLoss'))
    pix, txt, gt = _inputs()
    out = loss(pix, txt, torch.zeros_like(gt), torch.zeros(3, dtype=bool))
    for value in out.values():
        assert value.item() == 0.0 and value.requires_grad
    sum(out.values()).backward()
    assert pix.grad is not None and pix.grad.abs().max() == 0


def test_alignment_flag_shape():
    loss = MODELS.build(dict(type='CrossModalAlignmentLoss'))
    pix, txt, gt = _inputs()
    with pytest.raises(ValueError, match=r'shape \(3, \)'):
        loss(pix, txt, gt, torch.ones(2, dtype=bool))


def test_mask_grounding_empty_mask_context():
    """An all-zero mask is a valid context: finite loss, gradients reach
    the predictor, and the prediction depends on the mask (empty vs not)."""
    torch.manual_seed(0)
    head = MODELS.build(dict(type='MaskGroundingHead', text_channels=32,
                             visual_channels=16, num_heads=2,
                             vocab_size=1200, tie_word_embeddings=False,
                             referent_conditioning=True, dropout=0.0))
    head.init_weights()
    words = torch.randn(2, 6, 32, requires_grad=True)
    am = torch.ones(2, 6, dtype=torch.long)
    visual = torch.randn(2, 16, 4, 4)
    labels = torch.full((2, 6), head.masker.ignore_index, dtype=torch.long)
    labels[:, 2] = 1100  # one masked word per sentence
    empty = torch.zeros(2, 1, 16, 16)
    out = head.loss(words, am, visual, empty, labels)
    assert torch.isfinite(out['loss_mg']) and out['loss_mg'] > 0
    out['loss_mg'].backward()
    assert words.grad.abs().max() > 0
    full = torch.zeros(2, 1, 16, 16)
    full[:, :, 4:12, 4:12] = 1
    with torch.no_grad():
        a = head(words, am, visual, empty)
        b = head(words, am, visual, full)
    assert not torch.allclose(a, b)
