"""tools/analysis_tools/run_ablations.py on a tiny generated dataset."""
import json
import os
import os.path as osp
import subprocess
import sys

from ..conftest import REPO_ROOT

SUFFIX = 'swin-nano_minilm-l6_cpu-500it_refsynth-128x128.py'


def test_ablation_table_is_written(tmp_path):
    configs = [
        osp.join('configs', 'magnet', 'magnet_' + SUFFIX),
        osp.join('configs', 'magnet', 'ablations', 'lavt-style_' + SUFFIX),
    ]
    work = tmp_path / 'abl'
    opts = ['param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
            'train_dataloader.batch_size=2',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.persistent_workers=False']
    cmd = [sys.executable,
           osp.join('tools', 'analysis_tools', 'run_ablations.py'),
           '--configs', *configs, '--work-dir', str(work),
           '--max-iters', '2', '--data-root', str(tmp_path / 'data'),
           '--num-train-images', '4', '--num-val-images', '2',
           '--num-test-images', '2', '--mg-repeats', '1',
           '--cfg-options', *opts]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.load(open(work / 'ablations.json'))
    assert result['iters'] == 2
    rows = {r['name']: r for r in result['results']}
    assert set(rows) == {'magnet', 'lavt-style'}
    assert (rows['magnet']['mg'], rows['magnet']['cam']) == ('yes', 'yes')
    assert (rows['lavt-style']['mg'], rows['lavt-style']['cam']) == ('no',
                                                                     'no')
    assert 0 <= rows['magnet']['metrics']['oIoU'] <= 100
    acc = rows['magnet']['mg_acc']
    assert set(acc) == {'real', 'blank image', 'blank mask', 'blank both'}
    assert all(0 <= v <= 100 for v in acc.values())
    assert rows['magnet']['mg_tokens'] > 0
    assert rows['lavt-style']['mg_acc'] is None
    table = (work / 'ablations.md').read_text()
    assert '| magnet | yes | yes | yes |' in table
    assert '| lavt-style | no | no | no |' in table
    # no in-training validation: one evaluation per config
    log = proc.stdout + proc.stderr
    assert log.count('Iter(val)') == 0

    # the probe of the trained checkpoint agrees with the table
    probe = tmp_path / 'probe.json'
    data_root = str(tmp_path / 'data')
    proc = subprocess.run(
        [sys.executable,
         osp.join('tools', 'analysis_tools', 'probe_mask_grounding.py'),
         configs[0], rows['magnet']['checkpoint'], '--out', str(probe),
         '--cfg-options', f'val_dataloader.dataset.data_root={data_root}',
         'val_dataloader.num_workers=0',
         'val_dataloader.persistent_workers=False'],
        cwd=REPO_ROOT, capture_output=True, text=True,
        env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.load(open(probe))
    assert result['tokens'] == rows['magnet']['mg_tokens']
    for k, v in acc.items():
        assert abs(result['accuracy'][k] - v) < 1e-6, k
    assert set(result['feature_maps']) == {'Y1', 'Y2', 'Y3', 'Y4'}
    assert sum(w['n'] for w in result['per_word'].values()) <= result[
        'tokens']
