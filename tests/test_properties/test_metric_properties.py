"""Properties of RefSegMetric on random predictions and GTs.

The reference scores are computed here, sample by sample, with the official
formulas (oIoU = sum I / sum U, mIoU = mean IoU with IoU = 0 when U = 0,
Pr@t = % of IoU >= t), independently of ``refseg_scores``.
"""
from __future__ import annotations

from itertools import chain, zip_longest
from typing import Dict, List, Optional, Sequence

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from projects.magnet.evaluation import RefSegMetric

THRS = (0.5, 0.6, 0.7, 0.8, 0.9)
KEYS = ('oIoU', 'mIoU') + tuple(f'Pr@{t:g}' for t in THRS)
IGNORE = 255
KINDS = ('attribute', 'relation', 'ordinal')


@st.composite
def samples(draw, min_size: int = 1, max_size: int = 12,
            nonempty_gt: bool = False, ignore: bool = True) -> List[dict]:
    """Samples (plain dicts, as ``SegDataSample.to_dict()`` gives) with a
    unique ``(ref_id, sent_id)``, a random kind / text / split and
    {0, 1} masks (GT with some ``ignore_index`` pixels)."""
    n = draw(st.integers(min_size, max_size))
    out = []
    for i in range(n):
        shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, max_side=6))
        gt = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 1)))
        if nonempty_gt and not gt.any():
            gt.flat[draw(st.integers(0, gt.size - 1))] = 1
        if ignore and draw(st.booleans()):
            gt[draw(hnp.arrays(np.bool_, shape))] = IGNORE
            if nonempty_gt and not (gt == 1).any():
                gt.flat[0] = 1
        pred = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 1)))
        sample = dict(pred=pred, gt=gt, ref_id=i // 3, sent_id=i,
                      split_tag=draw(st.sampled_from(['val', 'testA'])),
                      text=' '.join(['w'] * draw(st.integers(0, 12))))
        kind = draw(st.sampled_from(KINDS + (None, )))
        if kind is not None:
            sample['kind'] = kind
        out.append(sample)
    return out


def _packed(sample: dict, pred: Optional[np.ndarray] = None) -> dict:
    """The data sample the metric receives."""
    pred = sample['pred'] if pred is None else pred
    meta = {k: v for k, v in sample.items() if k not in ('pred', 'gt')}
    return dict(meta,
                pred_sem_seg=dict(data=torch.from_numpy(pred)[None]),
                gt_sem_seg=dict(data=torch.from_numpy(sample['gt'])[None]))


def _run(items: Sequence[dict], metric: Optional[RefSegMetric] = None,
         batch: int = 4, **kwargs) -> Dict[str, float]:
    metric = metric or RefSegMetric(split_key=None, **kwargs)
    for start in range(0, len(items), batch):
        metric.process({}, [_packed(s) for s in items[start:start + batch]])
    return metric.evaluate(len(items))


def _iu(sample: dict, pred: Optional[np.ndarray] = None):
    pred = sample['pred'] if pred is None else pred
    valid = sample['gt'] != IGNORE
    p, g = (pred == 1) & valid, sample['gt'] == 1
    return int((p & g).sum()), int((p | g).sum())


def _reference(items: Sequence[dict]) -> Dict[str, float]:
    """Official scores, one sample at a time."""
    cum_i = cum_u = 0
    ious = []
    for s in items:
        i, u = _iu(s)
        cum_i, cum_u = cum_i + i, cum_u + u
        ious.append(i / u if u else 0.0)
    out = dict(oIoU=100.0 * cum_i / cum_u if cum_u else 0.0,
               mIoU=100.0 * sum(ious) / len(ious))
    for t in THRS:
        out[f'Pr@{t:g}'] = 100.0 * sum(iou >= t for iou in ious) / len(ious)
    return out


def _assert_close(actual: Dict[str, float], expected: Dict[str, float],
                  prefix: str = '') -> None:
    for k, v in expected.items():
        assert actual[prefix + k] == pytest.approx(v, rel=1e-9, abs=1e-9), \
            prefix + k


@given(items=samples())
def test_scores_match_the_reference_and_are_bounded(items):
    res = _run(items)
    assert list(res) == list(KEYS)
    assert all(0.0 <= v <= 100.0 for v in res.values())
    _assert_close(res, _reference(items))
    # Pr@t falls as t rises
    prs = [res[f'Pr@{t:g}'] for t in THRS]
    assert prs == sorted(prs, reverse=True)


@given(items=samples(nonempty_gt=True))
def test_perfect_prediction_scores_100(items):
    perfect = [dict(s, pred=(s['gt'] == 1).astype(np.int64)) for s in items]
    assert _run(perfect) == dict.fromkeys(KEYS, 100.0)
    # whatever is predicted on ignored pixels
    noisy = [dict(s, pred=np.where(s['gt'] == IGNORE, 1 - s['pred'],
                                   (s['gt'] == 1).astype(np.int64)))
             for s in items]
    assert _run(noisy) == dict.fromkeys(KEYS, 100.0)


@given(items=samples(nonempty_gt=True))
def test_empty_prediction_scores_0(items):
    empty = [dict(s, pred=np.zeros_like(s['gt'])) for s in items]
    assert _run(empty) == dict.fromkeys(KEYS, 0.0)


@given(items=samples(), data=st.data())
def test_ignored_pixels_do_not_count(items, data):
    """Changing the prediction where the GT is ignore_index changes
    nothing."""
    changed = [dict(s, pred=np.where(
        s['gt'] == IGNORE,
        data.draw(hnp.arrays(np.int64, s['gt'].shape,
                             elements=st.integers(0, 1))), s['pred']))
        for s in items]
    assert _run(changed) == _run(items)


@given(items=samples(min_size=2), data=st.data())
def test_permutation_invariance(items, data):
    shuffled = data.draw(st.permutations(items))
    _assert_close(_run(shuffled, group_keys=('kind', ),
                       length_buckets=(1, 4, 7)),
                  _run(items, group_keys=('kind', ),
                       length_buckets=(1, 4, 7)))


@given(items=samples(min_size=2), data=st.data())
def test_batching_does_not_matter(items, data):
    """Processing in batches of any size, or in two calls split anywhere,
    equals processing all at once."""
    whole = _run(items, batch=len(items), group_keys=('kind', ))
    batch = data.draw(st.integers(1, len(items)))
    assert _run(items, batch=batch, group_keys=('kind', )) == whole
    cut = data.draw(st.integers(0, len(items)))
    metric = RefSegMetric(split_key=None, group_keys=('kind', ))
    metric.process({}, [_packed(s) for s in items[:cut]])
    metric.process({}, [_packed(s) for s in items[cut:]])
    assert metric.evaluate(len(items)) == whole


def _distributed_rows(items: Sequence[dict], world_size: int,
                      **kwargs) -> List[list]:
    """Each rank's ``metric.results`` under mmengine's DefaultSampler
    (shuffle=False): the indices padded to a multiple of the world size by
    repeating the first ones, rank r taking ``indices[r::world_size]``."""
    total = -(-len(items) // world_size) * world_size
    indices = list(range(len(items)))
    indices += indices[:total - len(items)]
    parts = []
    for rank in range(world_size):
        metric = RefSegMetric(**kwargs)
        metric.process({}, [_packed(items[i])
                            for i in indices[rank:total:world_size]])
        parts.append(metric.results)
    return parts


def _merge(parts: List[list], size: Optional[int]) -> list:
    """mmengine's ``collect_results`` (cpu): interleave the ranks' rows,
    then drop the sampler padding (``[:size]``)."""
    rows = [r for r in chain.from_iterable(zip_longest(*parts))
            if r is not None]
    return rows if size is None else rows[:size]


@given(items=samples(), world_size=st.integers(2, 4))
def test_split_across_processes_and_merge_equals_whole(items, world_size):
    kwargs = dict(group_keys=('kind', ), length_buckets=(1, 4, 7))
    whole = _run(items, metric=RefSegMetric(**kwargs))
    parts = _distributed_rows(items, world_size, **kwargs)
    merger = RefSegMetric(**kwargs)
    assert merger.compute_metrics(_merge(parts, len(items))) == whole
    # padding rows that reach the metric (no truncation) are counted once
    assert merger.compute_metrics(_merge(parts, None)) == whole


def _bucket(words: int, edges: Sequence[int]) -> str:
    """Length bucket name, by a linear scan (independent of the metric)."""
    bounds = ([0] if edges[0] > 0 else []) + list(edges)
    for lo, hi in zip(bounds, bounds[1:]):
        if lo <= words < hi:
            return f'len{lo}' if hi - lo == 1 else f'len{lo}-{hi - 1}'
    return f'len{bounds[-1]}+'


EDGES = st.lists(st.integers(0, 13), min_size=1, max_size=4,
                 unique=True).map(sorted)


@given(items=samples(max_size=16), edges=EDGES)
def test_groups_partition_the_samples(items, edges):
    """Splits, kinds and length buckets: each reported group scores its
    members (computed here), and the groups of a source partition the
    split's samples (those with the key): sizes and unions add up."""
    res = _run(items, metric=RefSegMetric(group_keys=('kind', ),
                                          length_buckets=edges))
    splits = sorted({s['split_tag'] for s in items})
    expected_keys = set()
    for split in splits:
        members = [s for s in items if s['split_tag'] == split]
        prefix = f'{split}/' if len(splits) > 1 else ''
        overall = _reference(members)
        _assert_close(res, overall, prefix)
        expected_keys |= {prefix + k for k in KEYS}
        sources = {
            'kind': lambda s: s.get('kind'),
            'text': lambda s: _bucket(len(s['text'].split()), edges),
        }
        for get_label in sources.values():
            groups: Dict[str, list] = {}
            for s in members:
                if get_label(s) is not None:
                    groups.setdefault(get_label(s), []).append(s)
            covered = [s for g in groups.values() for s in g]
            assert len(covered) == len({id(s) for s in covered})  # disjoint
            inter = 0.0  # sum of the groups' I, from their reported oIoU
            weighted = dict.fromkeys(KEYS[1:], 0.0)
            for label, group in groups.items():
                name = f'{prefix}{label}/'
                _assert_close(res, _reference(group), name)
                expected_keys |= {name + k for k in KEYS}
                union = sum(_iu(s)[1] for s in group)
                inter += res[name + 'oIoU'] * union / 100
                for k in weighted:
                    weighted[k] += len(group) * res[name + k]
            if not covered:
                continue
            # per-group intersections (and unions) sum to the total ...
            assert inter == pytest.approx(sum(_iu(s)[0] for s in covered))
            # ... and size-weighted per-group means to the overall mean
            whole = _reference(covered)
            for k, v in weighted.items():
                assert v / len(covered) == pytest.approx(whole[k], abs=1e-9)
    # a kind is never a length bucket name here: no qualified names
    assert set(res) == expected_keys
