"""Evaluation with 2 processes (torchrun, gloo) equals 1 process: the same
metrics, every sentence scored exactly once (the distributed sampler pads
an odd-sized split with repeats; they must not be counted)."""
from __future__ import annotations

import glob
import json
import os
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from projects.magnet.datasets import RefCOCODataset
from projects.magnet.datasets.refsynth import generate_refer_dataset

from ..conftest import REPO_ROOT

CONFIG = osp.join(REPO_ROOT, 'configs', 'magnet',
                  'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py')
NUM_SENTENCES = 7  # odd: 2 processes see 4 + 4 with one padding repeat


def _config(tmp, root: str, record: str) -> str:
    text = f'''
_base_ = [{CONFIG!r}]
custom_imports = dict(imports=['tests.test_engine.probe_hooks'],
                      allow_failed_imports=False)
test_dataloader = dict(
    _delete_=True, batch_size=2, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='RefCOCODataset', test_mode=True, split='val',
                 data_root={root!r}, dataset='refsynth', split_by='unc',
                 indices={NUM_SENTENCES},
                 pipeline={{{{_base_.test_pipeline}}}}))
test_evaluator = [
    dict(type='RefSegMetric', group_keys=('kind', ),
         length_buckets=(1, 4, 7, 10)),
    dict(type='RecordSamplesMetric', out_file={record!r})]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
# random weights give probabilities of ~0.15-0.45: a threshold inside that
# range makes partial masks whose IoU differs from sample to sample
model = dict(test_cfg=dict(threshold=0.3))
'''
    path = osp.join(str(tmp), f'cfg_{osp.basename(record)}.py')
    with open(path, 'w') as f:
        f.write(text)
    return path


def _run(args):
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    proc = subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _metrics(work):
    files = sorted(glob.glob(osp.join(work, '*', '*.json')))
    assert files, f'no metrics json in {work}'
    return json.load(open(files[-1]))


def test_two_processes_score_like_one(tmp_path):
    root = str(tmp_path / 'data')
    generate_refer_dataset(root, num_train_images=2, num_val_images=4,
                           num_test_images=2, img_size=64, seed=11,
                           progress=False)
    init_default_scope('mmseg')
    # random weights, seeded: predictions differ from sample to sample
    cfg = Config.fromfile(CONFIG)
    model_cfg = cfg.model.to_dict()
    model_cfg['text_encoder'].pop('init_cfg', None)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    ckpt = str(tmp_path / 'random.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)

    expected = RefCOCODataset(data_root=root, dataset='refsynth',
                              split_by='unc', split='val', test_mode=True,
                              indices=NUM_SENTENCES, lazy_init=False)
    assert len(expected) == NUM_SENTENCES
    want = sorted([d['split_tag'], d['ref_id'], d['sent_id']]
                  for d in (expected.get_data_info(i)
                            for i in range(len(expected))))

    results = {}
    for procs in (1, 2):
        work = str(tmp_path / f'np{procs}')
        record = str(tmp_path / f'samples_np{procs}.json')
        config = _config(tmp_path, root, record)
        test = [osp.join('tools', 'test.py'), config, ckpt,
                '--work-dir', work]
        if procs == 1:
            _run(test)
        else:
            _run(['-m', 'torch.distributed.run', '--nproc_per_node=2',
                  '--master_port=29547'] + test + ['--launcher', 'pytorch'])
        got = json.load(open(record))
        assert sorted(got) == want, f'{procs} process(es)'  # once each
        results[procs] = _metrics(work)

    one, two = results[1], results[2]
    scores = {k: v for k, v in one.items() if 'IoU' in k or 'Pr@' in k}
    assert 'oIoU' in scores and any('/oIoU' in k for k in scores)
    assert 0 < scores['oIoU'] < 100  # not a trivial all-empty prediction
    for key, value in scores.items():
        assert two[key] == value, key
    assert one.keys() == two.keys()
