"""MagNet with a no-target head: training on mixed / all-no-target batches
(every trainable parameter moves, finite losses, the training objectives'
no-target rules) and prediction (threshold both ways, fields, empty mask)."""
from __future__ import annotations

import copy

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from projects.magnet.engine import check_gradients, random_training_batch
from projects.magnet.models.errors import ModelConfigError

from ...conftest import tiny_magnet_cfg
from .utils import CAL, MG

@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def _cfg(no_target=dict(), test_cfg=None, **overrides):
    cfg = tiny_magnet_cfg(mask_grounding=MG, alignment_loss=CAL,
                          lang_proj_dim=32, **overrides)
    if no_target is not None:
        cfg['decode_head'] = dict(cfg['decode_head'], no_target=no_target)
    if test_cfg is not None:
        cfg['test_cfg'] = test_cfg
    return cfg


def _model(seed=0, **kwargs):
    torch.manual_seed(seed)
    model = MODELS.build(_cfg(**kwargs))
    model.init_weights()
    return model


def _batch(flags, seed=0, shape=(64, 64)):
    """A training batch whose samples are no-target where ``flags``."""
    data = random_training_batch(len(flags), shape, 10, 2000, seed=seed)
    for sample, flag in zip(data['data_samples'], flags):
        sample.set_metainfo(dict(no_target=flag, text='x'))
        if flag:
            sample.gt_sem_seg.data = torch.zeros_like(
                sample.gt_sem_seg.data)
    return data


def test_mixed_batches_train_every_parameter():
    model = _model()
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='AdamW', lr=1e-4)))
    report = check_gradients(
        model, wrapper,
        [_batch([False, True], seed=1), _batch([True, False], seed=2)])
    assert report['steps'] == 2
    assert report['without_gradient'] == []
    assert report['nonfinite'] == []
    assert 'decode.acc_nt' in report['losses']


def test_all_no_target_batch():
    model = _model().train()
    data = model.data_preprocessor(_batch([True, True]), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    for key, value in losses.items():
        assert torch.isfinite(value).all(), key
    # no referent: no mask loss, no alignment term; the decision and Mask
    # Grounding (empty mask context) still train
    for key in ('decode.loss_mask', 'decode.loss_dice',
                'decode.d0.loss_mask', 'loss_cal_p2t', 'loss_cal_p2p'):
        assert losses[key].item() == 0.0 and losses[key].requires_grad, key
    assert losses['decode.loss_cls'] > 0 and losses['loss_mg'] > 0
    model.zero_grad()
    (losses['decode.loss_cls'] + losses['loss_mg']).backward()
    grads = {n for n, p in model.named_parameters()
             if p.grad is not None and p.grad.abs().sum() > 0}
    assert 'decode_head.transformer_decoder.cls_embed.weight' in grads
    assert any(n.startswith('mask_grounding.mask_encoder') for n in grads)


def test_alignment_loss_skips_no_target_samples():
    """The model passes the no-target flags to the alignment loss: the
    p2t term of a mixed batch is the one of its target sample alone."""
    model = _model()
    seen = []
    original = model.alignment_loss.forward

    def spy(pix, txt, gt, has_referent=None):
        seen.append(has_referent)
        return original(pix, txt, gt, has_referent)
    model.alignment_loss.forward = spy
    data = model.data_preprocessor(_batch([False, True]), True)
    model.loss(data['inputs'], data['data_samples'])
    assert seen[0].tolist() == [True, False]
    # off: every sample is a referent, as before
    off = _model(no_target=None)
    off.alignment_loss.forward = spy
    off.loss(data['inputs'], data['data_samples'])
    assert seen[1] is None


def _test_batch(model, flags=(False, True)):
    data = _batch(list(flags), seed=3)
    return model.data_preprocessor(data, False)


@torch.no_grad()
def test_predict_threshold_both_ways():
    model = _model().eval()
    data = _test_batch(model)
    scores = model.decode_head.predict_with_no_target(
        model.extract_feat(data['inputs'],
                           [s.metainfo for s in data['data_samples']]),
        [s.metainfo for s in data['data_samples']])[1]
    plain = _model(no_target=None).eval()
    plain.load_state_dict(model.state_dict())
    reference = plain.predict(data['inputs'],
                              copy.deepcopy(data['data_samples']))
    assert 'pred_no_target' not in reference[0]  # off: fields unchanged

    for threshold, expected in ((0.0, True), (1.0, False)):
        model.test_cfg['no_target_threshold'] = threshold
        out = model.predict(data['inputs'],
                            copy.deepcopy(data['data_samples']))
        for i, sample in enumerate(out):
            assert sample.pred_no_target is expected
            assert sample.no_target_score == pytest.approx(
                float(scores[i]), abs=1e-6)
            # the probabilities stay for analysis
            assert torch.allclose(sample.seg_logits.data,
                                  reference[i].seg_logits.data, atol=1e-6)
            if expected:
                assert sample.pred_sem_seg.data.sum() == 0
                assert sample.pred_sem_seg.data.shape == \
                    reference[i].pred_sem_seg.data.shape
            else:
                assert torch.equal(sample.pred_sem_seg.data,
                                   reference[i].pred_sem_seg.data)
    # a threshold between the two scores splits the batch
    low, high = sorted(scores.tolist())
    if high - low > 1e-6:
        model.test_cfg['no_target_threshold'] = (low + high) / 2
        out = model.predict(data['inputs'],
                            copy.deepcopy(data['data_samples']))
        assert [s.pred_no_target for s in out] == [
            s > (low + high) / 2 for s in scores.tolist()]


def test_default_threshold_is_half():
    model = _model().eval()
    assert 'no_target_threshold' not in model.test_cfg
    data = _test_batch(model)
    with torch.no_grad():
        out = model.predict(data['inputs'], data['data_samples'])
    assert [s.pred_no_target for s in out] == [
        s.no_target_score > 0.5 for s in out]


@pytest.mark.parametrize('kwargs, match', [
    (dict(no_target=None, test_cfg=dict(no_target_threshold=0.5)),
     'predicts no no-target'),
    (dict(test_cfg=dict(no_target_threshold=1.5)), r'in \[0, 1\]'),
    (dict(test_cfg=dict(no_target_threshold='high')), r'in \[0, 1\]'),
    (dict(test_cfg=dict(mode='slide', crop_size=(32, 32),
                        stride=(16, 16))), "mode='whole'"),
])
def test_bad_test_cfg(kwargs, match):
    with pytest.raises(ModelConfigError, match=match):
        MODELS.build(_cfg(**kwargs))
