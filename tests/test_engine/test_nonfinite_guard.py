"""The optimizer wrappers' non-finite guard: a NaN / Inf loss or gradient
stops the run naming the samples, or (``nonfinite='skip'``) drops the step
leaving weights and optimizer state untouched, counted; never a silent
step."""
from __future__ import annotations

import copy

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.structures import SegDataSample
from torch import nn

from projects.magnet.engine import (BatchIdentityHook, CPUAmpOptimWrapper,
                                    NonFiniteError, batch_identities)
from projects.magnet.engine.nonfinite_guard import BATCH_INFO_KEY, SKIPPED_KEY


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))


def _wrapper(model, **kwargs):
    return build_optim_wrapper(model, dict(
        type='GuardedOptimWrapper',
        optimizer=dict(type='AdamW', lr=0.1), **kwargs))


def _step(wrapper, model, x):
    with wrapper.optim_context(model):
        loss = model(x).sum()
    wrapper.update_params(loss)


def _samples():
    hub = MessageHub.get_current_instance()
    hub.update_info(BATCH_INFO_KEY, [
        dict(img_path='COCO_train2014_000000000042.jpg', ref_id=7,
             sent_id=70, text='the dog on the left')])
    hub.update_info('iter', 11)


def test_finite_steps_match_the_plain_optim_wrapper():
    x = torch.randn(5, 3)
    a, b = _model(), _model()
    guarded = _wrapper(a)
    plain = build_optim_wrapper(b, dict(type='OptimWrapper',
                                        optimizer=dict(type='AdamW', lr=0.1)))
    for _ in range(3):
        _step(guarded, a, x)
        _step(plain, b, x)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_nan_loss_stops_with_the_iteration_and_the_samples():
    _samples()
    model = _model()
    wrapper = _wrapper(model)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(NonFiniteError) as err:
        _step(wrapper, model, torch.tensor([[float('nan'), 0., 0.]]))
    msg = str(err.value)
    assert 'non-finite loss' in msg and 'iteration 12' in msg
    assert "ref_id=7" in msg and "'the dog on the left'" in msg
    assert 'COCO_train2014_000000000042.jpg' in msg
    assert 'nonfinite="skip"' in msg  # says how to skip instead
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_nan_gradient_is_found_and_named():
    _samples()
    model = _model()
    wrapper = _wrapper(model)
    model[2].weight.register_hook(lambda g: g * float('nan'))
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(NonFiniteError) as err:
        _step(wrapper, model, torch.randn(5, 3))  # the loss is finite
    assert 'non-finite gradient in 2.weight' in str(err.value)
    assert '0.weight' not in str(err.value)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])  # no step was taken


def test_skip_mode_drops_the_step_counts_it_and_continues():
    _samples()
    model = _model()
    wrapper = _wrapper(model, nonfinite='skip', max_consecutive_skips=2)
    x = torch.randn(5, 3)
    _step(wrapper, model, x)
    weights = copy.deepcopy(model.state_dict())
    optim_state = copy.deepcopy(wrapper.optimizer.state_dict())
    _step(wrapper, model, torch.full((5, 3), float('inf')))
    assert wrapper.skipped == 1
    hub = MessageHub.get_current_instance()
    assert hub.get_scalar(SKIPPED_KEY).current() == 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, weights[k])
    state = wrapper.optimizer.state_dict()['state']
    for i, s in optim_state['state'].items():
        assert int(state[i]['step']) == int(s['step'])
        assert torch.equal(state[i]['exp_avg'], s['exp_avg'])
    assert all(p.grad is None or not p.grad.any()
               for p in model.parameters())
    _step(wrapper, model, x)  # a finite step goes through again
    assert any(not torch.equal(v, weights[k])
               for k, v in model.state_dict().items())
    # two in a row: the run stops
    _step(wrapper, model, torch.full((5, 3), float('nan')))
    with pytest.raises(NonFiniteError, match='2 consecutive steps skipped'):
        _step(wrapper, model, torch.full((5, 3), float('nan')))


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        _wrapper(_model(), nonfinite='ignore')
    with pytest.raises(ValueError, match='max_consecutive_skips'):
        _wrapper(_model(), max_consecutive_skips=0)
    with pytest.raises(ValueError, match='supports dtype="bfloat16" only'):
        build_optim_wrapper(_model(), dict(
            type='CPUAmpOptimWrapper', dtype='float16',
            optimizer=dict(type='SGD', lr=0.1)))


def test_cpu_amp_runs_matmuls_in_bf16_and_keeps_fp32_weights():
    model = _model()
    wrapper = build_optim_wrapper(model, dict(
        type='CPUAmpOptimWrapper', optimizer=dict(type='SGD', lr=0.1)))
    assert isinstance(wrapper, CPUAmpOptimWrapper)
    with wrapper.optim_context(model):
        out = model(torch.randn(5, 3))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().sum())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not torch.is_autocast_enabled('cpu')


def test_batch_identity_hook_records_the_samples():
    samples = []
    for i in range(2):
        s = SegDataSample()
        s.set_metainfo(dict(img_path=f'/data/images/{i}.jpg', ref_id=i,
                            sent_id=10 + i, text=f'thing {i}',
                            image_id=100 + i, ori_shape=(4, 4)))
        samples.append(s)
    batch = dict(inputs=[torch.zeros(3, 4, 4)] * 2, data_samples=samples)
    assert batch_identities(batch) == [
        dict(img_path='0.jpg', image_id=100, ref_id=0, sent_id=10,
             text='thing 0'),
        dict(img_path='1.jpg', image_id=101, ref_id=1, sent_id=11,
             text='thing 1')]

    class _Runner:
        message_hub = MessageHub.get_current_instance()

    BatchIdentityHook().before_train_iter(_Runner(), 0, batch)
    assert _Runner.message_hub.get_info(BATCH_INFO_KEY)[1]['ref_id'] == 1
