"""MagNetHead(no_target=...): the no-target decision on the class branch,
mask losses on target samples only, config checks, the score."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from projects.magnet.models.decode_heads.no_target import no_target_score
from projects.magnet.models.errors import (MissingSampleKeyError,
                                           ModelConfigError)
from projects.magnet.utils.errors import InvalidInputError

from .utils import tiny_head


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _head(**kwargs):
    return tiny_head(num_decoder_layers=2, **kwargs)


def _samples(no_target, hw=(32, 48), key=True):
    """One sample per flag: a box of foreground for a target sample, all
    background for a no-target one."""
    out = []
    for i, flag in enumerate(no_target):
        gt = torch.zeros(1, *hw, dtype=torch.long)
        if not flag:
            gt[:, 4 + i:20 + i, 8:30 - i] = 1
        meta = dict(img_shape=hw, pad_shape=hw, ori_shape=hw)
        if key:
            meta['no_target'] = flag
        sample = SegDataSample(metainfo=meta)
        sample.gt_sem_seg = PixelData(data=gt)
        out.append(sample)
    return out


def _outputs(bs, seed=0, queries=1, aux=1):
    g = torch.Generator().manual_seed(seed)

    def pred():
        return dict(
            pred_logits=torch.randn(bs, queries, 2, generator=g)
            .requires_grad_(),
            pred_masks=torch.randn(bs, queries, 8, 12, generator=g)
            .requires_grad_())
    last = pred()
    return dict(last, aux_outputs=[pred() for _ in range(aux)])


def _rows(outputs, rows):
    """The outputs restricted to the batch rows ``rows`` (same leaves)."""
    def sub(p):
        return dict(pred_logits=p['pred_logits'][rows],
                    pred_masks=p['pred_masks'][rows])
    return dict(sub(outputs), aux_outputs=[sub(a) for a in
                                           outputs['aux_outputs']])


def test_off_by_default_and_same_parameters():
    off, on = _head(), _head(no_target=dict())
    assert off.no_target is None and not off.predicts_no_target
    assert on.no_target == dict(loss_weight=1.0) and on.predicts_no_target
    # the decision uses the existing class branch: no new parameter
    assert off.state_dict().keys() == on.state_dict().keys()


@pytest.mark.parametrize('value, match', [
    ('yes', 'must be None or a dict'),
    (dict(weight=1.0), 'unknown keys'),
    (dict(loss_weight=0), 'number > 0'),
    (dict(loss_weight=True), 'number > 0'),
    (dict(loss_weight='1'), 'number > 0'),
])
def test_bad_config(value, match):
    with pytest.raises(ModelConfigError, match=match):
        _head(no_target=value)


def test_needs_class_loss():
    with pytest.raises(ModelConfigError, match='needs loss_cls'):
        _head(no_target=dict(), loss_cls=None)


def test_class_loss_labels_no_target_as_no_object():
    head = _head(no_target=dict(loss_weight=2.0), point_sample_cfg=None)
    outputs = _outputs(2)
    losses = head.loss_by_feat(outputs, _samples([False, True]))
    logits = outputs['pred_logits'][:, 0].detach()
    ce = F.cross_entropy(logits, torch.tensor([0, 1]), reduction='none')
    # weights 1 (referent) and 2 (no-target), averaged by their sum; the
    # config's class-loss weight 2.0 on top
    expected = 2.0 * (ce[0] + 2.0 * ce[1]) / 3.0
    assert torch.allclose(losses['loss_cls'], expected, atol=1e-6)
    aux = outputs['aux_outputs'][0]['pred_logits'][:, 0].detach()
    ce = F.cross_entropy(aux, torch.tensor([0, 1]), reduction='none')
    assert torch.allclose(losses['d0.loss_cls'],
                          2.0 * (ce[0] + 2.0 * ce[1]) / 3.0, atol=1e-6)

    # switched off, the same sample is trained as a referent (label 0)
    off = _head(point_sample_cfg=None)
    losses = off.loss_by_feat(outputs, _samples([False, True]))
    ce = F.cross_entropy(logits, torch.tensor([0, 0]))
    assert torch.allclose(losses['loss_cls'], 2.0 * ce, atol=1e-6)
    assert 'acc_nt' not in losses


@pytest.mark.parametrize('dense_at_gt', [False, True])
def test_mask_losses_on_target_samples_only(dense_at_gt):
    head = _head(no_target=dict(), point_sample_cfg=None,
                 dense_loss_at_gt_size=dense_at_gt)
    outputs = _outputs(3)
    samples = _samples([False, True, False])
    losses = head.loss_by_feat(outputs, samples)
    alone = head.loss_by_feat(_rows(outputs, [0, 2]),
                              [samples[0], samples[2]])
    for key in ('loss_mask', 'loss_dice', 'd0.loss_mask', 'd0.loss_dice'):
        assert torch.allclose(losses[key], alone[key], atol=1e-6), key
    mask_terms = [v for k, v in losses.items() if 'mask' in k or 'dice' in k]
    sum(mask_terms).backward()
    for pred in (outputs, outputs['aux_outputs'][0]):
        grad = pred['pred_masks'].grad
        assert grad[1].abs().max() == 0  # the no-target mask is ignored
        assert grad[0].abs().max() > 0 and grad[2].abs().max() > 0


def test_all_no_target_batch_zero_mask_loss_with_graph():
    head = _head(no_target=dict())  # point sampling, as trained
    outputs = _outputs(2)
    losses = head.loss_by_feat(outputs, _samples([True, True]))
    for key in ('loss_mask', 'loss_dice', 'd0.loss_mask', 'd0.loss_dice'):
        assert losses[key].requires_grad and losses[key].item() == 0.0, key
    for value in losses.values():
        assert torch.isfinite(value)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert outputs['pred_logits'].grad.abs().max() > 0
    assert outputs['pred_masks'].grad.abs().max() == 0


def test_acc_nt_and_score():
    head = _head(no_target=dict(), point_sample_cfg=None)
    outputs = _outputs(2)
    with torch.no_grad():
        outputs['pred_logits'].copy_(torch.tensor([[[3., -3.]],
                                                   [[-3., 3.]]]))
    right = head.loss_by_feat(outputs, _samples([False, True]))
    wrong = head.loss_by_feat(outputs, _samples([True, False]))
    assert right['acc_nt'].item() == 100.0 and wrong['acc_nt'].item() == 0
    # several queries: the no-object probability of the best query
    logits = torch.tensor([[[2., 0.], [0., 2.]], [[0., 2.], [0., 1.]]])
    p_no = logits.softmax(-1)[..., 1]
    assert torch.allclose(no_target_score(logits),
                          torch.stack([p_no[0, 0], p_no[1, 1]]))


def test_bad_samples():
    head = _head(no_target=dict(), point_sample_cfg=None)
    with pytest.raises(MissingSampleKeyError, match='no_target'):
        head.loss_by_feat(_outputs(2), _samples([False, True], key=False))
    samples = _samples([False, False])
    samples[1].set_metainfo(dict(no_target=True))
    with pytest.raises(InvalidInputError, match='data sample 1 .*foreground'):
        head.loss_by_feat(_outputs(2), samples)


def test_forward_loss_mixed_and_empty_batches():
    """Through the real forward, point sampling on: the decision and the
    mask branch both train on a mixed batch; an all-no-target batch is
    finite and reaches the class head."""
    torch.manual_seed(0)
    head = _head(no_target=dict(), num_queries=2).train()
    feats = [torch.randn(2, c, 32 // s, 48 // s)
             for c, s in zip([16, 24, 32, 40], [4, 8, 16, 32])]
    for flags in ([False, True], [True, True]):
        head.zero_grad()
        losses = head.loss(feats, _samples(flags), None)
        assert all(torch.isfinite(v) for v in losses.values())
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        cls_grad = head.transformer_decoder.cls_embed.weight.grad
        assert cls_grad is not None and cls_grad.abs().max() > 0
        mask_grad = head.transformer_decoder.mask_embed[0].weight.grad
        moved = mask_grad is not None and mask_grad.abs().max() > 0
        assert moved == (not all(flags))


def test_predict_with_no_target_matches_predict():
    torch.manual_seed(0)
    head = _head(no_target=dict()).eval()
    feats = [torch.randn(2, c, 32 // s, 48 // s)
             for c, s in zip([16, 24, 32, 40], [4, 8, 16, 32])]
    metas = [dict(img_shape=(32, 48), pad_shape=(32, 48))] * 2
    with torch.no_grad():
        logits, scores = head.predict_with_no_target(feats, metas)
        plain = head.predict(feats, metas)
        outputs = head.forward(feats)
    assert torch.equal(logits, plain) and logits.shape == (2, 1, 32, 48)
    assert torch.allclose(scores,
                          outputs['pred_logits'].softmax(-1)[:, 0, -1])
