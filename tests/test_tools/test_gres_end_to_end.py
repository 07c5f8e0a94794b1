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

import pytest

from projects.magnet.datasets import GRefCOCODataset
from projects.magnet.utils import InvalidInputError, OutputPathError

from ..conftest import REPO_ROOT, load_tool

CONFIG = osp.join(
    REPO_ROOT, 'configs', 'magnet',
    'magnet_swin-nano_minilm-l6_1xb8-10min_grefsynth-128x128.py')
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
