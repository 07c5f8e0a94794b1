"""Gradient health: every trainable parameter of every shipped config family
trains from the real initial state (nothing opened by hand), the parameters
no loss can move are frozen and named, the hook reports a dead branch in the
first iterations, and the command-line check says the same."""
from __future__ import annotations

import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from projects.magnet.engine import (DeadParametersError, GradientHealthHook,
                                    check_gradients, random_training_batch)
from projects.magnet.engine.gradient_health import parameter_group

from ..conftest import REPO_ROOT, load_tool

tool = load_tool('tools/analysis_tools/check_gradients.py')

CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'magnet', '*nano*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', 'magnet', 'ablations',
                       '*nano*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', 'pretrain', '*.py')))
PAPER = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'magnet', '*swin-b*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', 'magnet', 'ablations',
                       '*swin-b*.py')))


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmseg')


def test_parameter_groups():
    assert parameter_group(
        'backbone.stages.0.blocks.1.attn.w_msa.qkv.weight') == \
        'backbone.stages.0'
    assert parameter_group('text_encoder.fusions.2.gate.fc1.weight') == \
        'text_encoder.fusions.2'
    assert parameter_group('lang_proj.weight') == 'lang_proj'
    assert parameter_group('backbone.norm0.bias', depth=1) == 'backbone'
    assert parameter_group('decode_head.pixel_decoder.level_embed.weight',
                           depth=3) == 'decode_head.pixel_decoder.level_embed'


def _train(path, shape=(64, 64), steps=3, batch=2, options=None, seed=0):
    cfg = tool.load_config(path)
    if options:
        cfg.merge_from_dict(options)
    model, _ = tool.build_model(cfg, 'auto', seed)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    vocab = tool.vocab_size(model)
    # a model with a no-target decision sees target and no-target samples
    mixed = 2 if getattr(model.decode_head, 'no_target', None) else 0
    batches = [random_training_batch(batch, shape, 12, vocab, seed=100 + i,
                                     no_target_every=mixed)
               for i in range(steps)]
    report = check_gradients(model, wrapper, batches)
    return model, before, report


def _changed(model, before):
    return {n for n, p in model.named_parameters()
            if not torch.equal(p.detach(), before[n])}


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_every_trainable_parameter_trains(path):
    """Three steps on inputs no dataset holds: every parameter with
    ``requires_grad`` gets a non-zero gradient and moves; every frozen one
    stays; the gates that run are open (|gate| > 0) and moved."""
    model, before, report = _train(path)
    assert report['steps'] == 3
    assert report['without_gradient'] == [], report['without_gradient']
    assert report['nonfinite'] == []
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    changed = _changed(model, before)
    assert trainable <= changed, sorted(trainable - changed)[:5]
    assert not changed - trainable  # frozen parameters stay
    for gate, value in report['gates'].items():
        assert value > 0, gate
        assert f'{gate}.fc1.weight' in changed, gate
    if 'backbone.gates.0' in report['gate_weights']:
        # both the vision gates and the language-side fusion ran
        assert {'backbone.gates.0', 'text_encoder.fusions.0.gate'} <= set(
            report['gates'])


def test_inert_parameters_are_frozen_and_named():
    path = [c for c in CONFIGS if osp.basename(c).startswith('magnet_')
            and '_refsynth-' in c][0]
    model, _, report = _train(path, steps=1)
    inert = model.frozen_inert
    assert report['frozen_inert'] == inert
    expected = {
        'backbone.norm0.weight': 'checkpoint',  # alignment module on
        'backbone.gates.3.fc2.weight': 'no next stage',
        'backbone.pwams.1.attn.key_proj.bias': 'softmax',
        'backbone.alignments.0.pwams.2.attn.key_proj.bias': 'softmax',
        'text_encoder.fusions.0.attn.key_proj.bias': 'InstanceNorm',
        'text_encoder.fusions.2.attn.out_proj.bias': 'InstanceNorm',
        'text_encoder.fusions.1.norm.weight': 'checkpoint',
        'text_encoder.bert.encoder.layer.0.attention.self.key.bias':
        'softmax',
        'mask_grounding.layers.0.attention.self.key.bias': 'softmax',
    }
    for name, word in expected.items():
        assert word in inert[name], (name, inert[name])
    params = dict(model.named_parameters())
    assert all(not params[n].requires_grad for n in inert)
    # used in this configuration: trainable
    for name in ('backbone.gates.2.fc1.weight', 'lang_proj.weight',
                 'text_encoder.fusions.3.mm_proj.weight',
                 'backbone.pwams.0.attn.key_proj.weight'):
        assert params[name].requires_grad and name not in inert


def test_what_is_inert_follows_the_configuration():
    lavt = [c for c in CONFIGS if osp.basename(c).startswith('lavt-style_')]
    # two steps: the deformable attention's level embedding is reached
    # through the zero-initialised sampling offsets from the second on
    model, _, report = _train(lavt[0], steps=2)
    inert = model.frozen_inert
    # no alignment module: the stage norms feed the head and train
    assert 'backbone.norm0.weight' not in inert
    # no Mask Grounding, no alignment loss: the last language fusion and
    # the sentence projection reach no loss
    assert 'text_encoder.fusions.3.mm_proj.weight' in inert
    assert 'lang_proj.weight' in inert
    assert report['without_gradient'] == []
    # freeze_inert=False keeps them trainable, and the check names them
    cfg = tool.load_config(lavt[0])
    cfg.model.freeze_inert = False
    model, _ = tool.build_model(cfg, 'auto', 0)
    assert model.frozen_inert == {}
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    report = check_gradients(model, wrapper, [random_training_batch(
        2, (64, 64), 12, tool.vocab_size(model))])
    dead = set(report['without_gradient'])
    assert {'backbone.gates.3.fc1.weight', 'lang_proj.weight',
            'text_encoder.fusions.3.mm_proj.weight'} <= dead


def test_zero_gates_are_found_dead():
    """The defect this check exists for: gates with both layers at zero
    never receive a gradient."""
    path = [c for c in CONFIGS if osp.basename(c).startswith('magnet_')
            and '_refsynth-' in c][0]
    model, before, report = _train(
        path, steps=2, options={'model.backbone.gate_init': 'zeros',
                                'model.text_encoder.gate_init': 'zeros'})
    dead = set(report['without_gradient'])
    for s in range(3):
        assert {f'backbone.gates.{s}.fc1.weight',
                f'backbone.gates.{s}.fc2.weight'} <= dead
    for s in range(4):
        assert f'text_encoder.fusions.{s}.gate.fc1.weight' in dead
    assert all(v == 0 for v in report['gates'].values())
    # behind closed language gates the whole language-side fusion is dead:
    # vision never reaches the words
    assert 'text_encoder.fusions.0.word_proj.weight' in dead
    assert 'text_encoder.fusions.2.attn.value_proj.weight' in dead
    assert all('.gates.' in n or n.startswith('text_encoder.fusions.')
               for n in dead), dead


def test_command_line_check(tmp_path, capsys):
    path = [c for c in CONFIGS if osp.basename(c).startswith('magnet-wo-cal')]
    out = str(tmp_path / 'report.json')
    rc = tool.main([path[0], '--steps', '2', '--shape', '64', '64', '--out',
                    out])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert 'every trainable parameter received a non-zero gradient' in text
    assert 'backbone.gates.0' in text and 'text_encoder.fusions.0' in text
    report = json.load(open(out))
    assert report['steps'] == 2 and report['without_gradient'] == []
    assert report['group_norms']['backbone.pwams.0'] > 0
    # a dead branch: exit status 1 and its parameters named
    rc = tool.main([path[0], '--steps', '1', '--shape', '64', '64',
                    '--cfg-options', 'model.text_encoder.gate_init=zeros'])
    text = capsys.readouterr().out
    assert rc == 1
    assert 'WITHOUT GRADIENT' in text
    assert 'text_encoder.fusions.1.gate.fc2.weight' in text


def test_a_stock_head_on_every_level_trains_every_parameter():
    """The stock-head family: mmseg's UPerHead reading all four stages in
    place of MagNetHead (no alignment loss: no pixel embeddings)."""
    path = [c for c in CONFIGS if osp.basename(c).startswith('magnet_')
            and '_refsynth-' in c][0]
    head = dict(_delete_=True, type='UPerHead', in_channels=[32, 64, 128, 256],
                in_index=(0, 1, 2, 3), pool_scales=(1, 2), channels=16,
                num_classes=2, out_channels=1,
                norm_cfg=dict(type='GN', num_groups=4), align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True))
    model, before, report = _train(path, steps=3, options={
        'model.decode_head': head, 'model.alignment_loss': None})
    assert report['without_gradient'] == [], report['without_gradient']
    assert 'lang_proj.weight' in model.frozen_inert  # no alignment loss
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable <= _changed(model, before)


def test_a_stock_head_on_one_level_leaves_the_other_stages_dead():
    """A user's mix: an FCN head reading stage 0 only. The check names the
    stages whose output reaches no loss (they need freezing, or DDP's
    find_unused_parameters)."""
    path = [c for c in CONFIGS if osp.basename(c).startswith('magnet_')
            and '_refsynth-' in c][0]
    head = dict(_delete_=True, type='FCNHead', in_channels=32, in_index=0,
                channels=16, num_convs=1, concat_input=False, num_classes=2,
                out_channels=1, norm_cfg=dict(type='GN', num_groups=4),
                align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=True))
    _, _, report = _train(path, steps=2, options={
        'model.decode_head': head, 'model.alignment_loss': None})
    dead = report['without_gradient']
    assert any(n.startswith('backbone.alignments.3.') for n in dead)
    assert not any(n.startswith('decode_head.') for n in dead)
    assert not any(n.startswith('backbone.stages.0.') for n in dead)


@pytest.mark.slow
@pytest.mark.parametrize('path', PAPER, ids=osp.basename)
def test_every_trainable_parameter_trains_paper_configs(path):
    """Full size (Swin-B, BERT-base), random weights, small inputs; batch
    2: with one sample, stochastic depth (rate up to 0.3) can drop a
    block's branch in all three steps."""
    model, before, report = _train(path, shape=(96, 96), batch=2)
    assert report['without_gradient'] == [], report['without_gradient']
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable <= _changed(model, before)


# -------------------------------------------------------------------------
# the hook in a Runner
# -------------------------------------------------------------------------
def _runner(tmp_path, model, **hook):
    from mmengine.runner import Runner

    from .toy import toy_dataloader
    return Runner(
        model=model,
        work_dir=str(tmp_path),
        train_dataloader=toy_dataloader(),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=6),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=10**9,
                            by_epoch=False),
            gradient_health=dict(type='GradientHealthHook', **hook)),
        visualizer=dict(type='Visualizer',
                        vis_backends=[dict(type='LocalVisBackend')]),
        default_scope='mmseg',
        # a logger (and log file) of its own: runners built in the same
        # second would otherwise share mmengine's timestamp-named logger
        experiment_name=f'gradient_health_{tmp_path.name}',
        log_level='INFO')


def _toy(dead: bool):
    from .toy import ToyModel
    torch.manual_seed(0)
    model = ToyModel()
    if dead:
        model.unused = torch.nn.Linear(2, 2)  # reaches no loss
    return model


def _log(runner) -> str:
    files = glob.glob(osp.join(runner.log_dir, '*.log'))
    return open(files[0]).read()


def test_hook_warns_in_the_first_iterations(tmp_path):
    runner = _runner(tmp_path, _toy(dead=True), check_iters=2, interval=0)
    runner.train()
    log = _log(runner)
    assert '2 of 4 trainable parameters received no gradient in the first ' \
        '2 iterations' in log
    assert 'unused: weight, bias' in log


def test_hook_strict_stops_the_run(tmp_path):
    runner = _runner(tmp_path, _toy(dead=True), check_iters=2, strict=True)
    with pytest.raises(DeadParametersError, match='unused'):
        runner.train()
    assert runner.iter == 1  # the second (last checked) iteration


def test_hook_logs_gradient_norms_as_scalars(tmp_path):
    runner = _runner(tmp_path, _toy(dead=False), check_iters=2, interval=3)
    runner.train()
    log = _log(runner)
    assert 'all 2 trainable parameters received a gradient' in log
    assert 'GradientHealthHook iter 3' in log
    rows = [json.loads(line) for line in open(
        osp.join(runner.log_dir, 'vis_data', 'scalars.json'))]
    norms = [r for r in rows if 'grad_norm/linear' in r]
    assert [r['step'] for r in norms] == [3, 6]
    assert all(r['grad_norm/linear'] > 0 for r in norms)


def test_hook_arguments_are_checked():
    with pytest.raises(ValueError, match='check_iters'):
        GradientHealthHook(check_iters=-1)
