"""MagNet segmentor: loss / predict / _forward through the mmseg API."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from ...conftest import make_data_samples, tiny_magnet_cfg


@pytest.fixture
def model():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    m = MODELS.build(tiny_magnet_cfg())
    m.init_weights()
    return m


def _batch(model, samples, hw=(64, 64)):
    imgs = [torch.randint(0, 256, (3, *hw), dtype=torch.uint8)
            for _ in samples]
    return model.data_preprocessor(dict(inputs=imgs, data_samples=samples),
                                   training=True)


def test_loss_backward_reaches_all_paths(model):
    model.train()
    # the real initial state: every trainable parameter gets a gradient
    data = _batch(model, make_data_samples(2, lengths=[4, 8]))
    losses = model.loss(data['inputs'], data['data_samples'])
    assert losses and all(torch.isfinite(v).all() for k, v in losses.items()
                          if 'loss' in k)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    for name in ['backbone.patch_embed.projection.weight',
                 'backbone.pwams.0.attn.key_proj.weight',
                 'backbone.alignments.2.mixer.0.weight',
                 'text_encoder.bert.embeddings.word_embeddings.weight',
                 'text_encoder.fusions.0.attn.value_proj.weight',
                 'decode_head.pixel_decoder.mask_feature.weight']:
        assert grads[name] is not None and grads[name].abs().sum() > 0, name
    # the real initial state: every trainable parameter gets a gradient,
    # except the deformable attention's level embedding, which is reached
    # through the zero-initialised sampling-offset weights (from step 2)
    dead = [n for n, p in model.named_parameters()
            if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert dead == ['decode_head.pixel_decoder.level_embed.weight'], dead
    # the last language fusion reaches no loss without Mask Grounding and
    # the alignment loss: it is frozen, with the other inert parameters
    assert not model.text_encoder.fusions[3].word_proj.weight.requires_grad
    assert 'text_encoder.fusions.3.word_proj.weight' in model.frozen_inert
    assert 'backbone.gates.3.fc1.weight' in model.frozen_inert
    assert 'backbone.norm0.weight' in model.frozen_inert
    assert model.backbone.gates[2].fc1.weight.requires_grad


def test_predict_outputs_probabilities_and_masks(model):
    model.eval()
    samples = make_data_samples(2)
    data = _batch(model, samples)
    with torch.no_grad():
        results = model.predict(data['inputs'], data['data_samples'])
    for r in results:
        prob, pred = r.seg_logits.data, r.pred_sem_seg.data
        assert prob.shape == pred.shape == (1, 64, 64)
        assert ((prob >= 0) & (prob <= 1)).all()
        assert torch.equal(pred, (prob > 0.5).long())


def test_predict_at_original_size(model):
    model.test_cfg['output_size'] = 'original'
    model.eval()
    samples = make_data_samples(1)
    samples[0].set_metainfo(dict(ori_shape=(90, 120)))
    data = _batch(model, samples)
    with torch.no_grad():
        result = model.predict(data['inputs'], data['data_samples'])[0]
    assert result.pred_sem_seg.data.shape == (1, 90, 120)


def test_forward_modes_and_batch_consistency(model):
    model.eval()
    samples = make_data_samples(2, lengths=[3, 8])
    data = _batch(model, samples)
    with torch.no_grad():
        raw = model(data['inputs'], data['data_samples'], mode='tensor')
        assert raw['pred_masks'].shape == (2, 1, 16, 16)
        single = model(data['inputs'][1:], data['data_samples'][1:],
                       mode='tensor')
    torch.testing.assert_close(single['pred_masks'], raw['pred_masks'][1:],
                               atol=1e-5, rtol=1e-5)


def test_text_changes_prediction(model):
    model.eval()
    for p in model.backbone.pwams.parameters():  # make the fusion strong
        torch.nn.init.normal_(p, std=0.3)
    samples = make_data_samples(1, seed=1)
    data = _batch(model, samples)
    other = make_data_samples(1, seed=2)
    with torch.no_grad():
        a = model(data['inputs'], samples, mode='tensor')['pred_masks']
        b = model(data['inputs'], other, mode='tensor')['pred_masks']
    assert (a - b).abs().max() > 1e-4


def test_missing_tokens_give_clear_error(model):
    samples = make_data_samples(1)
    meta = dict(samples[0].metainfo)
    meta.pop('input_ids')
    from mmseg.structures import SegDataSample
    bare = SegDataSample(metainfo=meta)
    with pytest.raises(KeyError, match='TokenizeText'):
        model.predict(torch.zeros(1, 3, 64, 64), [bare])


def test_bad_output_size():
    init_default_scope('mmseg')
    with pytest.raises(ValueError, match='output_size'):
        MODELS.build(tiny_magnet_cfg(test_cfg=dict(output_size='nope')))


def test_bad_threshold():
    init_default_scope('mmseg')
    with pytest.raises(ValueError, match='threshold'):
        MODELS.build(tiny_magnet_cfg(test_cfg=dict(threshold=1.5)))


def test_threshold_decided_by_test_cfg(model):
    model.eval()
    samples = make_data_samples(1)
    logits = torch.tensor([-2., -0.5, 0.5, 2.]).view(1, 1, 1, 4)
    meta = dict(samples[0].metainfo, img_shape=(1, 4), ori_shape=(1, 4))
    from mmseg.structures import SegDataSample
    out = model.postprocess_result(logits, [SegDataSample(metainfo=meta)])
    assert out[0].pred_sem_seg.data.tolist() == [[[0, 0, 1, 1]]]
    model.test_cfg['threshold'] = 0.7  # sigmoid(0.5)=0.62 < 0.7 < 0.88
    out = model.postprocess_result(logits, [SegDataSample(metainfo=meta)])
    assert out[0].pred_sem_seg.data.tolist() == [[[0, 0, 0, 1]]]
    torch.testing.assert_close(out[0].seg_logits.data, logits[0].sigmoid())


def test_two_class_logits_take_the_argmax(model):
    """A stock softmax head (2 channels): argmax, class-1 = referent."""
    from mmseg.structures import SegDataSample
    logits = torch.tensor([[3., 0., 1.], [0., 3., 1.5]]).view(1, 2, 1, 3)
    meta = dict(img_shape=(1, 3), ori_shape=(1, 3))
    out = model.postprocess_result(logits, [SegDataSample(metainfo=meta)])
    assert out[0].pred_sem_seg.data.tolist() == [[[0, 1, 1]]]
    prob = out[0].seg_logits.data
    assert prob.shape == (2, 1, 3)
    torch.testing.assert_close(prob.sum(0), torch.ones(1, 3))


def test_alignment_loss_width_checked_at_build():
    init_default_scope('mmseg')
    with pytest.raises(ValueError, match='lang_proj_dim=24 must equal'):
        MODELS.build(tiny_magnet_cfg(
            lang_proj_dim=24,
            alignment_loss=dict(type='CrossModalAlignmentLoss')))
