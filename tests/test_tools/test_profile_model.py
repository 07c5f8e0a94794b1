"""``.dev_scripts/profile_model.py --mode train``: the split of a training
step adds up (no assertions on the speed itself); its pieces in
``projects/magnet/engine/profiling.py``."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from projects.magnet.engine import profiling

from ..conftest import (REPO_ROOT, load_tool, make_data_samples,
                        tiny_magnet_cfg)

CPU_CONFIG = osp.join(
    REPO_ROOT, 'configs', 'magnet',
    'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py')
TOOL = osp.join(REPO_ROOT, '.dev_scripts', 'profile_model.py')
SMALL = ['--mode', 'train', '--batch', '2', '--shape', '64', '64',
         '--repeat', '1', '--threads', '1']
TOL = 2e-3  # seconds: rounding and the timers' own calls


def _run(args):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    proc = subprocess.run([sys.executable, TOOL, CPU_CONFIG] + args,
                          cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout[proc.stdout.index('{'):]), proc.stderr


def _check_step(res):
    parts = res['forward_parts_s']
    assert list(parts) == ['vision_stages', 'language_stages',
                           'vision_fusion', 'language_fusion', 'decode_head',
                           'alignment_loss', 'mask_grounding_pass', 'other']
    timed = {k: v for k, v in parts.items() if v is not None}
    assert all(v >= 0 for v in timed.values()), parts
    named = sum(v for k, v in timed.items() if k != 'other')
    assert named <= res['forward_s'] + TOL
    assert named >= 0.8 * res['forward_s']  # the parts cover the forward
    encode = sum(parts[k] for k in list(parts)[:4])
    assert 0 < encode <= res['main_encode_s'] + TOL
    for key in ('vision_stages', 'language_stages', 'vision_fusion',
                'language_fusion', 'decode_head'):
        assert parts[key] > 0, key
    for key in ('backward_s', 'optimizer_s', 'forward_s', 'step_s'):
        assert res[key] > 0, key
    assert res['parse_losses_s'] >= 0
    assert res['step_s'] == pytest.approx(
        res['forward_s'] + res['parse_losses_s'] + res['backward_s'] +
        res['optimizer_s'], abs=TOL)
    assert res['optimizer_s'] == pytest.approx(
        sum(res['optimizer_parts_s'].values()), abs=TOL)
    assert res['images_per_s'] == pytest.approx(
        res['batch'] / res['step_s'], rel=1e-2)
    assert res['mode'] == 'train'
    assert res['threads'] == 1 and res['torch'] == torch.__version__
    assert res['matmul_peak_gflop_s'] > 0 and len(res['times_s']) == 1


def test_profile_train_step_default(tmp_path):
    out = tmp_path / 'profile.json'
    res, table = _run(SMALL + ['--top', '3', '--out', str(out)])
    assert res == json.loads(out.read_text())
    assert res['batch'] == 2 and res['shape'] == [64, 64]
    assert res['data_loading'] is None and res['real_data'] is False
    _check_step(res)
    parts = res['forward_parts_s']
    # the CPU config trains with Mask Grounding and the alignment loss
    assert parts['alignment_loss'] > 0
    mg = res['mask_grounding']
    assert parts['mask_grounding_pass'] > 0
    assert mg['encode_s'] > 0 and mg['head_s'] > 0 and mg['other_s'] >= 0
    assert mg['encode_s'] + mg['head_s'] <= parts['mask_grounding_pass'] + TOL
    assert sum(mg['encode_parts_s'].values()) <= mg['encode_s'] + TOL
    assert all(v > 0 for v in mg['encode_parts_s'].values())
    # per-module view: the Swin blocks run in both encodes
    from mmengine.config import Config
    depths = Config.fromfile(CPU_CONFIG).model.backbone.depths
    modules = {m['module']: m for m in res['modules']}
    assert modules['backbone.stages.*.blocks.*']['calls'] == 2 * sum(depths)
    assert len(res['ops']) == 3
    assert 0 < res['matrix_split']['matrix_share'] < 1
    assert 'mask_grounding_pass' in table and 'backward' in table


def test_profile_train_step_real_data_without_mg(tmp_path):
    data = str(tmp_path / 'refsynth')
    gen = load_tool('tools/dataset_converters/generate_refer_dataset.py')
    gen.main(['--out', data, '--num-train-images', '4', '--num-val-images',
              '2', '--num-test-images', '2', '--no-progress'])
    res, table = _run(SMALL + [
        '--real-data', '--depth', '0', '--cfg-options',
        'model.mask_grounding=None', f'train_dataloader.dataset.data_root='
        f'{data}'
    ])
    _check_step(res)
    assert res['real_data'] is True and res['batch'] == 2
    assert res['shape'] == [128, 128]  # the pipeline's, not --shape
    assert res['forward_parts_s']['mask_grounding_pass'] is None
    assert res['mask_grounding'] is None
    assert res['modules'] == [] and res['ops'] is None
    loading = res['data_loading']
    assert loading['batches'] == 1 and loading['num_workers'] == 0
    assert loading['per_batch_s'] > 0 and loading['fetch_collate_s'] > 0
    assert loading['per_batch_s'] == pytest.approx(
        loading['fetch_collate_s'] + loading['preprocess_s'], abs=1e-4)
    assert 0 < loading['share_of_step'] < 1
    assert 'data loading' in table


def test_part_timer_nesting_context_and_removal():

    class Thing:
        def outer(self):
            return self.inner() + 1

        def inner(self):
            return 1

    thing = Thing()
    own = thing.inner  # an instance attribute that must come back
    thing.inner = own
    timer = profiling.PartTimer()
    timer.wrap(thing, 'outer', 'part', context='inside')
    timer.wrap(thing, 'inner', 'part')
    timer.wrap(thing, 'inner', 'other')
    assert thing.outer() == 2 and timer.attached
    totals = timer.pop()
    # the nested call of the same part counts once, inside the context
    assert set(totals) == {'main.part', 'inside.other'}
    assert totals['inside.other'] <= totals['main.part']
    assert timer.context == 'main' and not timer.pop()
    timer.remove()
    assert not timer.attached
    assert 'outer' not in vars(thing) and vars(thing)['inner'] is own


def test_attach_timers_on_magnet():
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(tiny_magnet_cfg()).train()
    samples = make_data_samples(2)
    timer = profiling.attach_timers(model)
    try:
        model.loss(torch.randn(2, 3, 64, 64), samples)
    finally:
        timer.remove()
    totals = timer.pop()
    for key in ('vision_stages', 'language_stages', 'vision_fusion',
                'language_fusion', 'decode_head', 'encode'):
        assert totals[f'main.{key}'] > 0, key
    assert not any('mask_grounding' in key for key in totals)
    # the instances are back to the class methods
    for obj in (model, model.backbone, model.text_encoder,
                model.decode_head):
        assert not any(callable(v) and getattr(v, '__name__', '') == 'timed'
                       for v in vars(obj).values())
    with pytest.raises(TypeError, match='not a MagNet'):
        profiling.attach_timers(torch.nn.Linear(2, 2))
