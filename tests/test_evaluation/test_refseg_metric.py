"""RefSegMetric against hand-computed cases and the official formula."""
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

import projects.magnet  # noqa: F401  (mmseg under mmcv-lite)
from projects.magnet.evaluation import RefSegMetric

KEYS = ('oIoU', 'mIoU', 'Pr@0.5', 'Pr@0.6', 'Pr@0.7', 'Pr@0.8', 'Pr@0.9')


def _sample(pred, gt, **meta):
    s = SegDataSample(metainfo=meta)
    s.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
    if gt is not None:
        s.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
    return s


def _evaluate(samples, metric=None):
    metric = metric or RefSegMetric()
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def _official(preds, gts):
    """The official evaluation loop, written out with plain numpy."""
    cum_i = cum_u = 0
    ious, correct = [], np.zeros(5)
    for pred, gt in zip(preds, gts):
        i = np.sum(np.logical_and(pred, gt))
        u = np.sum(np.logical_or(pred, gt))
        iou = 0.0 if u == 0 else i * 1.0 / u
        ious.append(iou)
        cum_i += i
        cum_u += u
        for k, t in enumerate([.5, .6, .7, .8, .9]):
            correct[k] += iou >= t
    out = dict(oIoU=cum_i * 100. / cum_u, mIoU=np.mean(ious) * 100.)
    for k, t in enumerate(KEYS[2:]):
        out[t] = correct[k] * 100. / len(preds)
    return out


def test_hand_computed_cases():
    z = np.zeros((4, 4), np.int64)
    full = np.ones((4, 4), np.int64)
    half = z.copy()
    half[:2] = 1
    quarter = z.copy()
    quarter[:1] = 1
    samples = [
        _sample(full, full),  # I=16 U=16 IoU 1
        _sample(z, z),  # I=0 U=0 -> IoU 0 (official), adds nothing to oIoU
        _sample(half, full),  # I=8 U=16 IoU .5
        _sample(quarter, half),  # I=4 U=8 IoU .5
        _sample(half, quarter + np.roll(quarter, 3, 0)),  # I=4 U=12 IoU 1/3
    ]
    res = _evaluate(samples)
    assert list(res) == list(KEYS)
    assert res['oIoU'] == pytest.approx(100 * 32 / 52)
    assert res['mIoU'] == pytest.approx(100 * (1 + 0 + .5 + .5 + 1 / 3) / 5)
    assert res['Pr@0.5'] == pytest.approx(60)
    assert res['Pr@0.6'] == res['Pr@0.9'] == pytest.approx(20)


def test_empty_prediction_and_gt_scores_zero():
    z = np.zeros((3, 3), np.int64)
    res = _evaluate([_sample(z, z)])
    assert res == dict.fromkeys(KEYS, 0.0)


def test_ignore_index():
    gt = np.array([[1, 1, 255], [0, 0, 255]])
    pred = np.array([[1, 0, 1], [1, 0, 1]])
    res = _evaluate([_sample(pred, gt)])  # I=1, U=3 (ignored pixels out)
    assert res['oIoU'] == pytest.approx(100 / 3)


def test_random_cases_match_the_official_formula():
    rng = np.random.default_rng(0)
    preds, gts, samples = [], [], []
    for n in range(200):
        h, w = rng.integers(1, 12, 2)
        gt = rng.random((h, w)) < rng.random()
        pred = gt ^ (rng.random((h, w)) < rng.random() * 0.6)
        if n % 17 == 0:
            pred[:] = gt[:] = False
        preds.append(pred)
        gts.append(gt)
        samples.append(_sample(pred.astype(np.int64), gt.astype(np.int64)))
    res = _evaluate(samples)
    expected = _official(preds, gts)
    for k in KEYS:
        assert res[k] == pytest.approx(expected[k], abs=1e-9), k


def test_size_mismatch_is_an_error():
    s = _sample(np.zeros((4, 4), np.int64), np.zeros((5, 4), np.int64),
                img_path='x.jpg', ref_id=3, sent_id=4)
    with pytest.raises(ValueError, match=r'x\.jpg ref_id=3 sent_id=4.*size'):
        _evaluate([s])


def test_splits_are_reported_separately_and_deduplicated():
    one = np.ones((2, 2), np.int64)
    z = np.zeros((2, 2), np.int64)
    samples = [
        _sample(one, one, split_tag='refcoco_unc_val', ref_id=1, sent_id=1),
        _sample(z, one, split_tag='refcoco_unc_val', ref_id=1, sent_id=2),
        _sample(one, one, split_tag='refcoco_unc_testA', ref_id=2,
                sent_id=3),
        # padding repeated by a distributed sampler: counted once
        _sample(one, one, split_tag='refcoco_unc_val', ref_id=1, sent_id=1),
    ]
    res = _evaluate(samples)
    assert res['refcoco_unc_val/oIoU'] == pytest.approx(50)
    assert res['refcoco_unc_val/mIoU'] == pytest.approx(50)
    assert res['refcoco_unc_testA/Pr@0.9'] == pytest.approx(100)
    assert len(res) == 2 * len(KEYS)
    res = _evaluate(samples, RefSegMetric(split_key=None, prefix='refer'))
    assert res['refer/mIoU'] == pytest.approx(100 * 2 / 3)


def test_with_mmengine_evaluator():
    one = np.ones((2, 2), np.int64)
    evaluator = Evaluator(RefSegMetric())
    evaluator.process([_sample(one, one, ref_id=1, sent_id=1)], None)
    evaluator.process([_sample(one * 0, one, ref_id=1, sent_id=2)], None)
    assert evaluator.evaluate(2) == {
        **dict.fromkeys(KEYS, 50.0), 'oIoU': 50.0
    }


def test_at_original_resolution():
    # object: x in [0, 4), y in [0, 2) of an 8x6 (w x h) image
    seg = [[0, 0, 4, 0, 4, 2, 0, 2]]
    pred = np.zeros((3, 4), np.int64)  # prediction at 4x3 input size
    pred[:1, :2] = 1  # nearest-upsampled to 8x6 -> x<4, y<2
    s = _sample(pred, np.zeros((3, 4), np.int64), segmentation=seg,
                ori_shape=(6, 8))
    res = _evaluate([s], RefSegMetric(at_original_resolution=True))
    assert res['oIoU'] == pytest.approx(100)
    s2 = _sample(pred, None, ori_shape=(6, 8))
    with pytest.raises(KeyError, match='segmentation'):
        _evaluate([s2], RefSegMetric(at_original_resolution=True))


# ------------------------------------------------------- groups and lengths
def _iu(i, u=16, **meta):
    """A sample with exactly ``i`` intersection and ``u`` union pixels."""
    gt = np.zeros((1, u), np.int64)
    gt[0, :u] = 1
    pred = np.zeros((1, u), np.int64)
    pred[0, :i] = 1
    return _sample(pred, gt, **meta)


def _keys(*groups, split=''):
    return [f'{split}{g}{k}' for g in groups for k in KEYS]


def test_group_keys_hand_computed():
    samples = [
        _iu(16, kind='attribute', ref_id=1, sent_id=1),  # IoU 1
        _iu(8, kind='relation', ref_id=1, sent_id=2),  # IoU .5
        _iu(4, 8, kind='relation', ref_id=2, sent_id=3),  # IoU .5
        _iu(2, kind='relation', ref_id=2, sent_id=4),  # IoU 1/8
        _iu(12, kind='attribute', ref_id=3, sent_id=5),  # IoU .75
    ]
    res = _evaluate(samples, RefSegMetric(group_keys=('kind', )))
    # overall first, then the groups sorted by value
    assert list(res) == _keys('', 'attribute/', 'relation/')
    assert res['oIoU'] == pytest.approx(100 * 42 / 72)
    assert res['attribute/oIoU'] == pytest.approx(100 * 28 / 32)
    assert res['attribute/mIoU'] == pytest.approx(100 * 1.75 / 2)
    assert res['attribute/Pr@0.9'] == pytest.approx(50)
    assert res['relation/oIoU'] == pytest.approx(100 * 14 / 40)
    assert res['relation/mIoU'] == pytest.approx(100 * 1.125 / 3)
    assert res['relation/Pr@0.5'] == pytest.approx(100 * 2 / 3)
    assert res['relation/Pr@0.6'] == 0
    # the overall scores do not change with the option
    plain = _evaluate(samples)
    assert {k: res[k] for k in KEYS} == plain


def test_group_keys_with_several_splits_and_duplicates():
    samples = [
        _iu(16, split_tag='val', kind='ordinal', ref_id=1, sent_id=1),
        _iu(0, split_tag='val', kind='between', ref_id=1, sent_id=2),
        _iu(8, split_tag='testA', kind='ordinal', ref_id=2, sent_id=3),
        # sampler padding: counted once in the split and in the group
        _iu(16, split_tag='val', kind='ordinal', ref_id=1, sent_id=1),
    ]
    metric = RefSegMetric(group_keys=('kind', ), prefix='refer')
    res = _evaluate(samples, metric)
    assert list(res) == ['refer/' + k for k in (
        _keys('', 'between/', 'ordinal/', split='val/') +
        _keys('', 'ordinal/', split='testA/'))]
    assert res['refer/val/oIoU'] == pytest.approx(50)
    assert res['refer/val/ordinal/oIoU'] == pytest.approx(100)
    assert res['refer/val/ordinal/mIoU'] == pytest.approx(100)
    assert res['refer/val/between/oIoU'] == 0
    assert res['refer/testA/ordinal/oIoU'] == pytest.approx(50)


def test_length_bucket_names():
    from projects.magnet.evaluation.refseg_metric import length_bucket_names
    assert length_bucket_names((1, 4, 7, 10)) == [
        'len0', 'len1-3', 'len4-6', 'len7-9', 'len10+'
    ]
    assert length_bucket_names((0, 2)) == ['len0-1', 'len2+']
    assert length_bucket_names((3, )) == ['len0-2', 'len3+']
    assert length_bucket_names([2, 3, np.int64(5)]) == [
        'len0-1', 'len2', 'len3-4', 'len5+'
    ]
    for bad in ((), (4, 4), (5, 3), (-1, 2), (1.5, ), (True, 3)):
        with pytest.raises(ValueError, match='strictly increasing'):
            RefSegMetric(length_buckets=bad)


def test_length_bucket_edges():
    # intersection = number of words (union 16): each bucket's oIoU tells
    # exactly which sentences it holds
    counts = (0, 1, 3, 4, 6, 7, 9, 10, 15)
    samples = [
        _iu(n, text=' '.join(['w'] * n) + ('  \t' if n % 2 else ''),
            ref_id=n, sent_id=n) for n in counts
    ]
    res = _evaluate(samples, RefSegMetric(length_buckets=(1, 4, 7, 10)))
    assert list(res) == _keys('', 'len0/', 'len1-3/', 'len4-6/', 'len7-9/',
                              'len10+/')
    expected = {'len0': (0, ), 'len1-3': (1, 3), 'len4-6': (4, 6),
                'len7-9': (7, 9), 'len10+': (10, 15)}
    for name, members in expected.items():
        assert res[f'{name}/oIoU'] == pytest.approx(
            100 * sum(members) / (16 * len(members))), name
    # empty buckets are not reported; the first edge may be 0
    res = _evaluate(samples[3:6], RefSegMetric(length_buckets=(0, 5)))
    assert list(res) == _keys('', 'len0-4/', 'len5+/')
    assert res['len0-4/oIoU'] == pytest.approx(100 * 4 / 16)
    assert res['len5+/oIoU'] == pytest.approx(100 * 13 / 32)


def test_groups_and_lengths_together_with_missing_keys(monkeypatch):
    from projects.magnet.evaluation import refseg_metric
    logs = []
    monkeypatch.setattr(refseg_metric, 'print_log',
                        lambda msg, **kwargs: logs.append(msg))
    samples = [
        _iu(16, kind='relation', text='the cup left of the plate'),
        _iu(8, text='man on the left'),  # RefCOCO-like: no kind
        _iu(4, kind='relation'),  # no text
        _iu(2, kind=7, text='a b'),  # non-str values are str()-ed
    ]
    metric = RefSegMetric(group_keys=('kind', ), length_buckets=(1, 4))
    res = _evaluate(samples, metric)
    assert list(res) == _keys('', '7/', 'relation/', 'len1-3/', 'len4+/')
    assert res['oIoU'] == pytest.approx(100 * 30 / 64)
    assert res['relation/oIoU'] == pytest.approx(100 * 20 / 32)
    assert res['7/oIoU'] == pytest.approx(100 * 2 / 16)
    assert res['len1-3/oIoU'] == pytest.approx(100 * 2 / 16)
    assert res['len4+/oIoU'] == pytest.approx(100 * 24 / 32)
    assert logs == ['RefSegMetric: samples in no group (meta key absent): '
                    '1 of 4 without "kind", 1 of 4 without "text"']
    # rows stay small picklable tuples (distributed collect)
    import pickle
    rows = pickle.loads(pickle.dumps(metric.results))
    assert all(isinstance(r, tuple) and len(r) == 5 for r in rows)
    assert all(isinstance(x, (str, type(None))) for r in rows for x in r[4])


def test_group_name_clash_is_qualified():
    samples = [
        _iu(16, kind='len1-3', text='a b'),
        _iu(8, kind='other', text='a b c d'),
    ]
    res = _evaluate(
        samples, RefSegMetric(group_keys=('kind', ), length_buckets=(1, 4)))
    assert list(res) == _keys('', 'kind=len1-3/', 'other/', 'text=len1-3/',
                              'len4+/')
    assert res['kind=len1-3/oIoU'] == res['text=len1-3/oIoU'] == 100


def test_without_options_rows_and_keys_are_unchanged():
    metric = RefSegMetric()
    res = _evaluate([_iu(8, kind='relation', text='a b', ref_id=1,
                         sent_id=1)], metric)
    assert list(res) == list(KEYS)
    metric.process({}, [_iu(8, kind='relation', ref_id=1, sent_id=1)])
    assert metric.results == [('', ('', 1, 1), 8, 16)]


def test_bad_group_keys():
    with pytest.raises(TypeError, match='sequence of str'):
        RefSegMetric(group_keys='kind')
