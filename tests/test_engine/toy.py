"""A toy model, dataset and metric for the engine tests (fast Runner runs)
and a fake clock each training step advances."""
from __future__ import annotations

import torch
import torch.nn as nn
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmseg.registry import DATASETS, METRICS
from torch.utils.data import Dataset


def toy_dataloader(sampler: str = 'InfiniteSampler',
                   shuffle: bool = True) -> dict:
    """Dataloader config of the 16 :class:`ToyEngineDataset` items in
    batches of 4 (a training loader by default)."""
    return dict(dataset=dict(type='ToyEngineDataset', n=16),
                sampler=dict(type=sampler, shuffle=shuffle),
                batch_size=4, num_workers=0,
                collate_fn=dict(type='default_collate'))


class FakeClock:
    """``time.perf_counter`` stand-in: advances only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ToyModel(BaseModel):
    """``y = w x``; every training forward advances ``clock`` by
    ``step_s`` (and by ``extra[iteration]`` once, if set)."""

    def __init__(self, clock: FakeClock = None, step_s: float = 0.1,
                 extra: dict = None) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.clock, self.step_s = clock, step_s
        self.extra = dict(extra or {})
        self.steps = 0

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            if self.clock is not None:
                self.clock.advance(self.step_s + self.extra.pop(self.steps,
                                                                0.0))
            self.steps += 1
            return dict(loss=((out[:, 0] - targets)**2).mean())
        if mode == 'predict':
            return [dict(pred=o, target=t) for o, t in zip(out[:, 0],
                                                           targets)]
        return out


@DATASETS.register_module(force=True)
class ToyEngineDataset(Dataset):
    """``n`` items of ``x`` (2,) and ``y = x0 - x1``."""

    metainfo = dict(name='toy')

    def __init__(self, n: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 2, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], targets=self.x[i, 0] - self.x[i, 1])


@METRICS.register_module(force=True)
class ToyEngineMetric(BaseMetric):
    """``score`` = 100 - mean absolute error x 10, and the item count."""

    def process(self, data_batch, data_samples) -> None:
        for s in data_samples:
            self.results.append(float((s['pred'] - s['target']).abs()))

    def compute_metrics(self, results) -> dict:
        return dict(score=100 - 10 * sum(results) / len(results),
                    count=float(len(results)))
