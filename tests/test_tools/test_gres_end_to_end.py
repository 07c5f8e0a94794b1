"""GRES end to end on the CPU: generate a tiny gRefCOCO-format set with the
generator's command line (--gres), train the CPU GRES config for 2
iterations with tools/train.py, evaluate val / testA / testB with
tools/test.py (GRefSegMetric)."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

from projects.magnet.datasets import GRefCOCODataset
from projects.magnet.utils import (InvalidInputError, OutputPathError,
                                   load_config)

from ..conftest import REPO_ROOT, load_tool

CONFIG = osp.join(
    REPO_ROOT, 'configs', 'magnet',
    'magnet_swin-nano_minilm-l6_1xb8-30min_grefsynth-128x128.py')
GENERATOR = osp.join('tools', 'dataset_converters',
                     'generate_refer_dataset.py')
SPLITS = ('val', 'testA', 'testB')
KEYS = ('gIoU', 'cIoU', 'T_acc', 'N_acc', 'Pr@0.7', 'Pr@0.8', 'Pr@0.9')


def _run(args):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1'}
    proc = subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _options(root, iters=2):
    opts = [f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}']
    opts += [f'test_dataloader.dataset.datasets.{i}.data_root={root}'
             for i in range(len(SPLITS))]
    return opts + [
        f'max_iters={iters}', f'train_cfg.max_iters={iters}',
        f'default_hooks.checkpoint.interval={iters}',
        'param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
        f'param_scheduler.1.end={iters}', 'train_dataloader.batch_size=2',
        'val_dataloader.batch_size=4', 'test_dataloader.batch_size=4',
        'default_hooks.logger.interval=1']


@pytest.fixture(scope='module')
def gres_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('grefsynth'))
    # a larger no-target share than the default: every split gets some
    out = _run([GENERATOR, '--gres', '--out', root, '--num-train-images',
                '4', '--num-val-images', '4', '--num-test-images', '6',
                '--img-size', '64', '--seed', '1', '--no-progress',
                '--target-mix', 'single=1', 'multi=1', 'no-target=1'])
    summary = json.loads(out[out.index('{'):out.rindex('}') + 1])
    assert summary['dataset'] == 'grefsynth'  # the --gres default name
    assert summary['sentences_per_kind']['no-target'] > 0
    return root


def test_generated_gres_set_has_every_target_kind(gres_root):
    files = sorted(os.listdir(osp.join(gres_root, 'grefsynth')))
    assert {'grefs(unc).json', 'grefs(unc).p', 'instances.json'} <= set(
        files)
    for split in ('train', ) + SPLITS:
        ds = GRefCOCODataset(data_root=gres_root, dataset='grefsynth',
                             split=split, test_mode=True, pipeline=[],
                             serialize_data=False)
        items = [ds.get_data_info(i) for i in range(len(ds))]
        no_target = [it for it in items if it['no_target']]
        assert no_target, split  # no-target sentences in every split
        assert all(it['ann_id'] == [-1] for it in no_target)
        if split == 'train':  # one object and several objects too
            sizes = {len(it['ann_id']) for it in items
                     if not it['no_target']}
            assert 1 in sizes and max(sizes) >= 2


def test_train_then_test_report_gres_scores(gres_root, tmp_path):
    work = str(tmp_path / 'work')
    out = _run([osp.join('tools', 'train.py'), CONFIG, '--work-dir', work,
                '--cfg-options'] + _options(gres_root))
    assert 'Iter(train) [2/2]' in out
    # the no-target decision trains (class branch) beside the masks
    for key in ('decode.loss_cls', 'decode.acc_nt', 'decode.loss_mask',
                'loss_mg'):
        assert key in out, key
    curve = json.load(open(osp.join(work, 'learning_curve.json')))
    assert curve['metric'] == 'gIoU'
    assert set(KEYS) <= set(curve['points'][-1]['metrics'])
    ckpt = osp.join(work, 'iter_2.pth')
    assert osp.isfile(ckpt)

    out = _run([osp.join('tools', 'test.py'), CONFIG, ckpt, '--work-dir',
                work, '--cfg-options'] + _options(gres_root))
    assert 'no-target decisions' in out
    assert 'pred_no_target' not in out  # the model gives the decision
    results = sorted(glob.glob(osp.join(work, '*', '*.json')))
    metrics = json.load(open(results[-1]))
    for split in SPLITS:
        for key in KEYS:
            value = metrics[f'grefsynth_unc_{split}/{key}']
            assert 0 <= value <= 100, (split, key, value)


def test_cli_gres_options(tmp_path, capsys):
    cli = load_tool(GENERATOR)
    out = str(tmp_path / 'data')
    for argv, message in (
            (['--train-kind-weights', 'attribute=2'], 'REFER format only'),
            (['--target-mix', 'single'], 'KIND=WEIGHT'),
            (['--target-mix', 'single=1', 'single=2'], 'given twice')):
        with pytest.raises(SystemExit):
            cli.main(['--gres', '--out', out] + argv)
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --target-mix is GRES-only
        cli.main(['--out', out, '--target-mix', 'single=1'])
    assert 'needs --gres' in capsys.readouterr().err
    # an unknown kind: the generator's error (a UserError: one line from
    # the command line), before anything is written
    with pytest.raises(InvalidInputError,
                       match=r"unknown target kinds \['plural'\]"):
        cli.main(['--gres', '--out', out, '--no-progress',
                  '--target-mix', 'plural=1'])
    assert not osp.exists(osp.join(out, 'grefsynth'))
    # a GRES set is not overwritten without --overwrite
    args = ['--gres', '--out', out, '--no-progress', '--num-train-images',
            '1', '--num-val-images', '0', '--num-test-images', '0',
            '--img-size', '32']
    cli.main(args)
    assert json.loads(capsys.readouterr().out)['dataset'] == 'grefsynth'
    with pytest.raises(OutputPathError, match=r'grefs\(unc\)\.json'):
        cli.main(args)
    cli.main(args + ['--overwrite'])
    # the REFER dataset of the same root would replace the GRES images
    with pytest.raises(OutputPathError, match='1 generated images'):
        cli.main(args[1:])


def test_trivial_baselines_score_as_the_metric_defines(gres_root, tmp_path,
                                                       capsys):
    """always-no-target: every no-target sentence scores 1, the rest 0;
    always-target-whole-image: IoU = the referred area's share of the
    image, and the no-target sentences' whole images join the union."""
    tool = load_tool(osp.join('tools', 'analysis_tools',
                              'gres_baselines.py'))
    out = str(tmp_path / 'baselines.json')
    opts = [o for o in _options(gres_root) if 'data_root' in o]
    assert tool.main([CONFIG, '--data', 'test', '--out', out,
                      '--cfg-options'] + opts) == 0
    printed = capsys.readouterr().out
    assert 'always-no-target' in printed and 'grefsynth_unc_testB' in printed
    scores = json.load(open(out))
    cfg = load_config(CONFIG)
    cfg.merge_from_dict(dict(o.split('=', 1) for o in opts))
    init_default_scope('mmseg')
    for i, split in enumerate(SPLITS):
        ds = DATASETS.build(cfg.test_dataloader.dataset.datasets[i])
        no_target, share, gt_area, img_area = [], [], 0, 0
        for index in range(len(ds)):
            sample = ds[index]['data_samples']
            gt = sample.gt_sem_seg.data.numpy()
            no_target.append(bool(sample.metainfo['no_target']))
            assert (gt.sum() == 0) == no_target[-1]
            img_area += gt.size
            if not no_target[-1]:
                gt_area += int(gt.sum())
                share.append(gt.sum() / gt.size)
        assert any(no_target) and not all(no_target)
        never = scores['always-no-target']
        key = f'grefsynth_unc_{split}/'
        assert never[key + 'gIoU'] == pytest.approx(
            100 * np.mean(no_target))
        assert never[key + 'N_acc'] == 100 and never[key + 'T_acc'] == 0
        assert never[key + 'cIoU'] == 0
        whole = scores['always-target-whole-image']
        assert whole[key + 'gIoU'] == pytest.approx(
            100 * np.sum(share) / len(no_target))
        assert whole[key + 'cIoU'] == pytest.approx(100 * gt_area / img_area)
        assert whole[key + 'T_acc'] == 100 and whole[key + 'N_acc'] == 0


def test_trivial_baselines_need_a_gres_evaluator(tmp_path):
    tool = load_tool(osp.join('tools', 'analysis_tools',
                              'gres_baselines.py'))
    with pytest.raises(OutputPathError, match='--out'):  # before any work
        tool.main([CONFIG, '--out', str(tmp_path / 'scores.png')])
    refer = osp.join(REPO_ROOT, 'configs', 'magnet',
                     'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-'
                     '128x128.py')
    with pytest.raises(InvalidInputError, match='no GRefSegMetric'):
        tool.score_baselines(load_config(refer), 'val')


def test_probe_no_target_auc_and_report(gres_root, tmp_path):
    probe = load_tool(osp.join('.dev_scripts', 'probe_no_target.py'))
    rng = np.random.default_rng(0)
    labels = rng.random(40) < 0.3
    scores = np.round(rng.random(40), 1)  # ties count half
    pairs = [(p > n) + 0.5 * (p == n) for p in scores[labels]
             for n in scores[~labels]]
    assert probe.roc_auc(labels, scores) == pytest.approx(np.mean(pairs))
    out = str(tmp_path / 'probe.json')
    assert probe.main([CONFIG, 'none', '--num-train', '12', '--split',
                       'val', '--data-root', gres_root, '--batch-size', '4',
                       '--out', out]) == 0
    result = json.load(open(out))
    assert set(result['auc']) == set(probe.FEATURES)
    assert all(0 <= v <= 1 for v in result['auc'].values())
    assert 0 < result['test_no_target_share'] < 1
