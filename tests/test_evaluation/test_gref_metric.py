"""GRefSegMetric (ReLA's GRES scores) against hand-computed cases, an
independent re-implementation of ReLA's formulas and bad samples."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

import projects.magnet  # noqa: F401  (registers the metric)
from projects.magnet.evaluation import GRefSegMetric
from projects.magnet.evaluation import gref_metric as metric_module
from projects.magnet.utils.errors import UserError

from .utils import capture_print_log

KEYS = ['gIoU', 'cIoU', 'T_acc', 'N_acc', 'Pr@0.7', 'Pr@0.8', 'Pr@0.9']
NAME = r'x\.jpg ref_id=3 sent_id=4: '

Z = np.zeros((4, 4), np.int64)
FULL = np.ones((4, 4), np.int64)  # 16 px
HALF = Z.copy()
HALF[:2] = 1  # rows 0-1: 8 px
MID = Z.copy()
MID[1:3] = 1  # rows 1-2: 8 px, 4 of them in HALF
THREE = Z.copy()
THREE[3, :3] = 1  # 3 px, outside HALF


def _sample(pred, gt, no_target, pred_no_target, **meta) -> SegDataSample:
    meta = dict(dict(img_path='x.jpg', ref_id=3, sent_id=4), **meta)
    if no_target is not None:
        meta['no_target'] = no_target
    s = SegDataSample(metainfo=meta)
    if pred_no_target is not None:
        s.pred_no_target = pred_no_target
    if pred is not None:
        s.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
    if gt is not None:
        s.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
    return s


def _evaluate(samples, metric=None) -> dict:
    metric = metric or GRefSegMetric()
    for i, s in enumerate(samples):  # the default ids: distinct sentences
        if (s.ref_id, s.sent_id) == (3, 4):
            s.set_metainfo(dict(sent_id=1000 + i))
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def _check(res: dict, **expected) -> None:
    assert list(res) == KEYS
    for key, value in expected.items():
        assert res[key] == pytest.approx(value), key


@pytest.fixture
def logs(monkeypatch) -> list:
    return capture_print_log(monkeypatch, metric_module)


def _pr(res):
    return [res['Pr@0.7'], res['Pr@0.8'], res['Pr@0.9']]


# ------------------------------------------------------- each rule alone
def test_no_target_predicted_no_target_scores_one_and_adds_nothing():
    res = _evaluate([
        _sample(Z, Z, True, True),  # TP: IoU 1, I += 0, U += 0
        _sample(MID, HALF, False, False),  # TN: I=4 U=12, IoU 1/3
    ])
    # gIoU = (1 + 1/3) / 2; cIoU = 4 / 12 (the TP adds no U)
    _check(res, gIoU=100 * (4 / 3) / 2, cIoU=100 * 4 / 12,
           T_acc=100, N_acc=100)  # TN/(TN+FP) = 1/1, TP/(TP+FN) = 1/1
    assert _pr(res) == [0, 0, 0]  # the only target sentence: IoU 1/3


def test_no_target_predicted_target_scores_zero_and_adds_its_area():
    res = _evaluate([
        _sample(THREE, Z, True, False),  # FN: IoU 0, I += 0, U += 3
        _sample(HALF, HALF, False, False),  # TN: I=8 U=8, IoU 1
    ])
    # gIoU = (0 + 1) / 2; cIoU = 8 / (3 + 8)
    _check(res, gIoU=50, cIoU=100 * 8 / 11, T_acc=100, N_acc=0)
    assert _pr(res) == [100] * 3  # 1 of 1 target sentence


def test_target_predicted_no_target_has_zero_intersection():
    res = _evaluate([
        # FP with an empty mask (the interface): I = 0, U = GT area 8
        _sample(Z, HALF, False, True),
        # FP whose mask still holds pixels: the masks give I=4 U=12;
        # ReLA keeps U = 12 and sets I = 0
        _sample(MID, HALF, False, True),
        _sample(FULL, FULL, False, False),  # TN: I=16 U=16, IoU 1
        _sample(Z, Z, True, True),  # TP: IoU 1, adds nothing
    ])
    # gIoU = (0 + 0 + 1 + 1) / 4; cIoU = 16 / (8 + 12 + 16)
    # T_acc = TN / (TN + FP) = 1 / 3; N_acc = 1 / 1
    _check(res, gIoU=50, cIoU=100 * 16 / 36, T_acc=100 / 3, N_acc=100)
    assert _pr(res) == [pytest.approx(100 / 3)] * 3  # 1 of 3 targets


def test_the_flag_decides_not_the_empty_mask():
    res = _evaluate([
        # target, empty mask, not flagged: a TN with I=0, U=8, IoU 0
        _sample(Z, HALF, False, False),
        # no-target, empty mask, not flagged: an FN, IoU 0, U += 0
        _sample(Z, Z, True, False),
        _sample(Z, Z, True, True),  # TP: IoU 1
    ])
    # gIoU = (0 + 0 + 1) / 3; cIoU = 0 / 8
    # T_acc = 1 / (1 + 0) (the empty mask is not a no-target prediction);
    # N_acc = 1 / (1 + 1)
    _check(res, gIoU=100 / 3, cIoU=0, T_acc=100, N_acc=50)
    assert _pr(res) == [0, 0, 0]


def test_target_with_empty_gt_and_empty_prediction_scores_zero():
    res = _evaluate([
        _sample(Z, Z, False, False),  # U = 0 -> IoU 0 (ReLA), in Pr
        _sample(HALF, HALF, False, False),  # IoU 1
        _sample(Z, Z, True, True),  # TP
    ])
    _check(res, gIoU=100 * 2 / 3, cIoU=100, T_acc=100, N_acc=100)
    assert _pr(res) == [50] * 3  # 1 of 2 target sentences


def test_precision_thresholds_are_inclusive_over_targets_only():
    ten = np.zeros((10, 10), np.int64)
    gt = ten.copy()
    gt[:, :10] = 1  # 100 px
    pred7, pred8, pred9 = ten.copy(), ten.copy(), ten.copy()
    pred7[:7] = 1  # IoU 70/100 exactly
    pred8[:8] = 1
    pred9[:9] = 1
    res = _evaluate([
        _sample(pred7, gt, False, False), _sample(pred8, gt, False, False),
        _sample(pred9, gt, False, False),
        _sample(ten, ten, True, True)])  # TP: IoU 1, not in Pr
    assert _pr(res) == [100, pytest.approx(200 / 3), pytest.approx(100 / 3)]
    _check(res, gIoU=100 * (.7 + .8 + .9 + 1) / 4, cIoU=100 * 240 / 300)


# ------------------------------------------------------ degenerate sets
def test_all_no_target(logs):
    res = _evaluate([_sample(Z, Z, True, True), _sample(Z, Z, True, True)])
    # gIoU 1; cIoU 0/0, T_acc 0/0 and Pr@t over 0 targets undefined -> 0
    _check(res, gIoU=100, cIoU=0, T_acc=0, N_acc=100)
    assert _pr(res) == [0, 0, 0]
    assert any('cIoU, T_acc, Pr@0.7, Pr@0.8, Pr@0.9 undefined' in m
               for m in logs), logs
    assert any("'TP': 2" in m for m in logs), logs
    logs.clear()
    res = _evaluate([_sample(Z, Z, True, True), _sample(THREE, Z, True,
                                                        False)])
    _check(res, gIoU=50, cIoU=0, N_acc=50)  # cIoU = 0 / 3, defined
    assert any('T_acc, Pr@0.7' in m and 'cIoU' not in m for m in logs)


def test_all_target(logs):
    res = _evaluate([
        _sample(HALF, HALF, False, False),  # IoU 1, I=U=8
        _sample(MID, HALF, False, False),  # IoU 1/3, I=4 U=12
        _sample(Z, HALF, False, True)])  # FP: IoU 0, I=0 U=8
    # ReLA reports T_acc = N_acc = 0 when no sentence is no-target
    _check(res, gIoU=100 * (4 / 3) / 3, cIoU=100 * 12 / 28, T_acc=0,
           N_acc=0)
    assert _pr(res) == [pytest.approx(100 / 3)] * 3
    assert not any('undefined' in m for m in logs)


# ------------------------------------------ random vs ReLA's formulas
def _rela_formulas(rows, thrs=(.7, .8, .9)) -> dict:
    """ReLA's scores written out from their definitions, one sentence at a
    time (rows: gt_nt, pred_nt, pred mask, gt mask)."""
    cum_i = cum_u = iou_sum = 0.
    tp = tn = fp = fn = 0
    target_ious = []
    for gt_nt, pred_nt, pred, gt in rows:
        i = np.sum(np.logical_and(pred, gt))
        u = np.sum(np.logical_or(pred, gt))
        if gt_nt and pred_nt:
            tp += 1
            iou_sum += 1
        elif gt_nt:
            fn += 1
            cum_u += u
        else:
            if pred_nt:
                fp += 1
                i = 0
            else:
                tn += 1
            iou = i / u if u else 0.
            iou_sum += iou
            cum_i += i
            cum_u += u
            target_ious.append(iou)
    out = dict(gIoU=100 * iou_sum / len(rows), cIoU=100 * cum_i / cum_u)
    if tp + fn:
        out['T_acc'] = 100 * tn / (tn + fp)
        out['N_acc'] = 100 * tp / (tp + fn)
    else:
        out['T_acc'] = out['N_acc'] = 0
    for t in thrs:
        out[f'Pr@{t}'] = 100 * sum(x >= t for x in target_ious) / len(
            target_ious)
    return out


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_cases_match_relas_formulas(seed):
    rng = np.random.default_rng(seed)
    rows, samples = [], []
    for n in range(150):
        h, w = rng.integers(1, 10, 2)
        gt_nt = bool(rng.random() < 0.3)
        pred_nt = bool(rng.random() < (0.6 if gt_nt else 0.15))
        gt = np.zeros((h, w), bool) if gt_nt else \
            rng.random((h, w)) < rng.random()
        pred = gt ^ (rng.random((h, w)) < rng.random() * 0.5)
        if pred_nt and rng.random() < 0.7:
            pred[:] = False  # the interface; else ReLA's U rule is tested
        rows.append((gt_nt, pred_nt, pred, gt))
        samples.append(_sample(pred.astype(np.uint8), gt.astype(np.uint8),
                               gt_nt, pred_nt, ref_id=n, sent_id=n))
    res = _evaluate(samples)
    expected = _rela_formulas(rows)
    assert list(res) == KEYS
    for key in KEYS:
        assert res[key] == pytest.approx(expected[key], abs=1e-9), key


# ------------------------------------------------------- usage & options
def test_flags_as_tensors_and_numpy_and_the_registry():
    metric = METRICS.build(dict(type='GRefSegMetric'))
    res = _evaluate([
        _sample(Z, Z, np.bool_(True), torch.tensor(True)),
        _sample(HALF, HALF, False, torch.tensor([False]))], metric)
    _check(res, gIoU=100, cIoU=100, T_acc=100, N_acc=100)


def test_splits_dedup_prefix_and_evaluator():
    samples = [
        _sample(HALF, HALF, False, False, split_tag='grefcoco_unc_val',
                ref_id=1, sent_id=1),
        _sample(Z, Z, True, False, split_tag='grefcoco_unc_val', ref_id=2,
                sent_id=2),
        _sample(Z, HALF, False, True, split_tag='grefcoco_unc_testA',
                ref_id=3, sent_id=3),
        # a repeat (distributed padding): counted once
        _sample(Z, Z, True, False, split_tag='grefcoco_unc_val', ref_id=2,
                sent_id=2)]
    evaluator = Evaluator(GRefSegMetric())
    evaluator.process(samples[:2], None)
    evaluator.process(samples[2:], None)
    res = evaluator.evaluate(4)
    assert list(res) == [f'grefcoco_unc_val/{k}' for k in KEYS] + [
        f'grefcoco_unc_testA/{k}' for k in KEYS]
    assert res['grefcoco_unc_val/gIoU'] == pytest.approx(50)  # (1 + 0) / 2
    assert res['grefcoco_unc_val/N_acc'] == 0
    assert res['grefcoco_unc_testA/Pr@0.7'] == 0
    res = _evaluate(samples[:3], GRefSegMetric(split_key=None,
                                               prefix='gres'))
    assert res['gres/gIoU'] == pytest.approx(100 / 3)
    res = _evaluate([_sample(HALF, HALF, False, False)],
                    GRefSegMetric(iou_thrs=(0.5, )))
    assert list(res) == KEYS[:4] + ['Pr@0.5']


def test_ignore_index():
    gt = np.array([[1, 1, 255], [0, 0, 255]])
    pred = np.array([[1, 0, 1], [1, 0, 1]])
    res = _evaluate([_sample(pred, gt, False, False)])  # I=1, U=3
    assert res['cIoU'] == pytest.approx(100 / 3)


# ------------------------------------------------------------ bad input
@pytest.mark.parametrize('drop,field', [
    ('no_target', 'no_target'), ('pred', 'pred_sem_seg'),
    ('gt', 'gt_sem_seg')])
def test_missing_fields_name_the_sample_and_field(drop, field):
    args = dict(pred=Z, gt=Z, no_target=False, pred_no_target=False)
    args[drop] = None
    with pytest.raises(KeyError, match=NAME + f'.*"{field}"') as err:
        GRefSegMetric().process({}, [_sample(**args)])
    assert isinstance(err.value, UserError)


@pytest.mark.parametrize('field', ['no_target', 'pred_no_target'])
@pytest.mark.parametrize('value', [0.7, 1, 'yes', torch.tensor(0.9),
                                   torch.tensor([True, False])])
def test_non_bool_flags(field, value):
    args = dict(pred=Z, gt=Z, no_target=False, pred_no_target=False)
    args[field] = value
    with pytest.raises(ValueError, match=NAME + f'"{field}" must be a bool'):
        GRefSegMetric().process({}, [_sample(**args)])


def test_size_mismatch_non_binary_and_inconsistent_truth():
    metric = GRefSegMetric()
    with pytest.raises(ValueError, match=NAME + r'.*\(5, 4\).*\(4, 4\)'):
        metric.process({}, [_sample(np.zeros((5, 4)), Z, False, False)])
    with pytest.raises(ValueError, match=NAME + '"pred_sem_seg".*0.5'):
        metric.process({}, [_sample(Z + 0.5, Z, False, False)])
    with pytest.raises(ValueError, match=NAME + '"no_target" is True but '
                       '"gt_sem_seg" has 8 foreground'):
        metric.process({}, [_sample(Z, HALF, True, True)])
    assert metric.results == []  # nothing half-written


def test_bad_arguments_and_empty_results():
    with pytest.raises(TypeError, match='iou_metrics'):
        GRefSegMetric(iou_metrics=['mIoU'])
    with pytest.raises(ValueError, match='GRefSegMetric: iou_thrs'):
        GRefSegMetric(iou_thrs=(0.7, 1.5))
    with pytest.raises(ValueError, match='no sample to score'):
        GRefSegMetric().compute_metrics([])
