"""The main job (``make demo``), shortened: generate -> train -> evaluate ->
metric table -> overlays, on a tiny dataset written to a temp dir."""
import glob
import os
import os.path as osp
import subprocess
import sys

import numpy as np
from PIL import Image

from ..conftest import REPO_ROOT, load_tool


def test_main_job_end_to_end(tmp_path):
    work, data = str(tmp_path / 'work'), str(tmp_path / 'data')
    opts = ['train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
            'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.persistent_workers=False',
            'test_dataloader.persistent_workers=False',
            'param_scheduler.0.end=1', 'param_scheduler.1.begin=1']
    cmd = [sys.executable, osp.join('tools', 'main_job.py'), '--work-dir',
           work, '--data-root', data, '--num-train-images', '4',
           '--num-val-images', '2', '--num-test-images', '2',
           '--max-iters', '2', '--num-overlays', '2', '--unseen-scenes', '4',
           '--cfg-options'] + opts
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert osp.isfile(osp.join(data, 'refsynth', 'refs(unc).p'))
    # the metric table: one row per split, 7 numbers each
    rows = [line.split() for line in proc.stdout.splitlines()
            if line.startswith('refsynth_unc_')]
    assert [r[0] for r in rows] == ['refsynth_unc_val', 'refsynth_unc_testA',
                                   'refsynth_unc_testB']
    assert all(len(r) == 8 and 0 <= float(r[1]) <= 100 for r in rows)
    overlays = sorted(glob.glob(osp.join(work, 'overlays', '*.png')))
    assert len(overlays) == 2
    img = np.asarray(Image.open(overlays[0]))
    assert img.ndim == 3 and img.shape[2] == 3 and img.shape[0] >= 128
    # the per-kind / per-length table: one row per group present, one
    # column per split, and the same numbers in metrics.json
    import json
    with open(osp.join(work, 'metrics.json')) as f:
        metrics = json.load(f)
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith('oIoU by kind / length'))
    assert lines[start].split()[-3:] == ['val', 'testA', 'testB']
    group_rows = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        name, *values = line.split()
        group_rows[name] = values
    kinds = {k.split('/')[1] for k in metrics
             if k.count('/') == 2 and not k.split('/')[1].startswith('len')}
    assert kinds and kinds <= set(group_rows)
    some = sorted(kinds)[0]
    value = metrics.get(f'refsynth_unc_val/{some}/oIoU')
    if value is not None:
        assert abs(float(group_rows[some][0]) - value) < 0.006
    # the grid of predictions and the learning curve
    grid = np.asarray(Image.open(osp.join(work, 'predictions_grid.png')))
    assert grid.shape[1] > 4 * 128
    curve = json.load(open(osp.join(work, 'learning_curve.json')))
    assert curve['points'] and curve['points'][-1]['iter'] == 2
    assert osp.isfile(osp.join(work, 'learning_curve.png'))
    # the scenes drawn by other code: scores per kind, and their grid
    unseen = json.load(open(osp.join(work, 'unseen_scenes',
                                     'unseen_scenes.json')))
    assert unseen['scores']['overall']['count'] > 0
    assert all(0 <= s['oIoU'] <= 100 for s in unseen['scores'].values())
    assert 'colour+shape' in proc.stdout or 'colour ' in proc.stdout


def test_dataset_is_regenerated_when_its_settings_differ(tmp_path):
    """A generated dataset records its settings; the main job reuses it only
    when they are the ones it wants (a changed default or config would
    otherwise silently train on the old data)."""
    main_job = load_tool('tools/main_job.py')
    from projects.magnet.datasets.refsynth import generate_refer_dataset
    root = str(tmp_path / 'data')
    opts = dict(num_train_images=2, num_val_images=1, num_test_images=0,
                seed=3, min_objects=2, max_objects=3)
    assert main_job.dataset_mismatch(root, opts) == 'no dataset'
    generate_refer_dataset(root, progress=False, **opts)
    assert main_job.dataset_mismatch(root, opts) is None
    reason = main_job.dataset_mismatch(root, dict(opts, max_objects=4))
    assert reason == 'other settings: max_objects 3 -> 4'
    reason = main_job.dataset_mismatch(root, dict(opts, seed=4))
    assert 'seed 3 -> 4' in reason
    os.remove(osp.join(root, 'refsynth', 'generator.json'))
    assert 'made by an older generator' in main_job.dataset_mismatch(
        root, opts)
    # the command line the main job would run carries every setting
    cli = main_job._generator_cli(dict(opts, num_shapes=(2, 3),
                                       train_kind_weights={'attribute': 2}))
    assert cli[cli.index('--max-objects') + 1] == '3'
    assert cli[cli.index('--num-shapes') + 1:][:2] == ['2', '3']
    assert cli[cli.index('--train-kind-weights') + 1] == 'attribute=2'
