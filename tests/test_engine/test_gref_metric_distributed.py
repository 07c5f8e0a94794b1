"""GRefSegMetric with 2 processes (gloo) equals 1 process: each process
scores its share of the sentences as mmengine's DefaultSampler deals them
(interleaved, the odd-sized set padded with a repeat), mmengine's
``collect_results`` gathers the rows, and both processes get exactly the
single-process metrics."""
from __future__ import annotations

import json
import math
import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.dist import get_world_size
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

NUM_SENTENCES = 25  # odd: 13 + 13 with one padding repeat
WORLD = 2


def _samples() -> list:
    """The same seeded sentences in every process: targets and no-target
    ones, each flag right and wrong, masks of different sizes."""
    rng = np.random.default_rng(7)
    samples = []
    for n in range(NUM_SENTENCES):
        h, w = (int(x) for x in rng.integers(2, 9, 2))
        no_target = bool(n % 3 == 0)
        pred_no_target = bool(rng.random() < (0.7 if no_target else 0.2))
        gt = np.zeros((h, w), np.uint8) if no_target else (
            rng.random((h, w)) < 0.5).astype(np.uint8)
        pred = (rng.random((h, w)) < 0.4).astype(np.uint8)
        if pred_no_target:
            pred[:] = 0
        s = SegDataSample(metainfo=dict(
            img_path=f'{n}.jpg', ref_id=n // 2, sent_id=n,
            no_target=no_target))
        s.pred_no_target = torch.tensor(pred_no_target)
        s.pred_sem_seg = PixelData(data=torch.from_numpy(pred)[None])
        s.gt_sem_seg = PixelData(data=torch.from_numpy(gt)[None])
        samples.append(s)
    return samples


def _score(samples: list) -> dict:
    import projects.magnet  # noqa: F401  (registers the metric)
    from projects.magnet.evaluation import GRefSegMetric
    metric = GRefSegMetric()
    for start in range(0, len(samples), 2):  # batches of 2
        metric.process({}, samples[start:start + 2])
    return metric.evaluate(NUM_SENTENCES)


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ['OMP_NUM_THREADS'] = '1'
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=WORLD)
    try:
        samples = _samples()
        # DefaultSampler(shuffle=False): pad to a multiple of the world
        # size by repeating from the start, then rank r takes r::WORLD
        total = math.ceil(NUM_SENTENCES / WORLD) * WORLD
        indices = (list(range(NUM_SENTENCES)) * 2)[:total][rank::WORLD]
        metrics = _score([samples[i] for i in indices])
        with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
            json.dump(dict(metrics=metrics, world=get_world_size(),
                           scored=len(indices)), f)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_processes_score_like_one(tmp_path):
    one = _score(_samples())
    assert 0 < one['cIoU'] < 100 and 0 < one['N_acc'] < 100
    assert 0 < one['T_acc'] < 100  # both flags right and wrong
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD,
             join=True)
    for rank in range(WORLD):
        got = json.load(open(tmp_path / f'rank{rank}.json'))
        # really distributed: each process scored only its share
        assert (got['world'], got['scored']) == (WORLD, 13)
        got = got['metrics']
        assert list(got) == list(one), rank
        assert got == one, rank  # the very same floats
