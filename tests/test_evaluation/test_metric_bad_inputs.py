"""RefSegMetric on bad samples and bad arguments: the exact error (type and
message naming the sample and the field) or the documented handling."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

import projects.magnet  # noqa: F401  (registers the metric)
from projects.magnet.evaluation import RefSegMetric
from projects.magnet.evaluation import refseg_metric as metric_module

from .utils import capture_print_log

NAME = r'x\.jpg ref_id=3 sent_id=4: '
KEYS = ('oIoU', 'mIoU', 'Pr@0.5', 'Pr@0.6', 'Pr@0.7', 'Pr@0.8', 'Pr@0.9')


def _sample(pred=None, gt=None, **meta) -> SegDataSample:
    meta = dict(dict(img_path='x.jpg', ref_id=3, sent_id=4), **meta)
    s = SegDataSample(metainfo=meta)
    if pred is not None:
        s.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None])
    if gt is not None:
        s.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None])
    return s


def _process(*samples, **kwargs) -> RefSegMetric:
    metric = RefSegMetric(**kwargs)
    metric.process({}, list(samples))
    return metric


@pytest.fixture
def logs(monkeypatch) -> list:
    return capture_print_log(monkeypatch, metric_module)


ONES = np.ones((4, 4), np.int64)


# ---------------------------------------------------------------- samples
def test_shape_mismatch():
    with pytest.raises(ValueError, match=NAME + r'prediction \(4, 4\) and '
                       r'GT \(5, 4\) differ in size; .*'
                       'at_original_resolution'):
        _process(_sample(ONES, np.ones((5, 4), np.int64)))
    # (C, H, W) logits instead of a mask: a size mismatch too
    with pytest.raises(ValueError, match=NAME + r'prediction \(2, 4, 4\) '
                       r'and GT \(4, 4\) differ'):
        _process(dict(_sample(gt=ONES).to_dict(), pred_sem_seg=dict(
            data=torch.ones(2, 4, 4))))


@pytest.mark.parametrize('pred, shown', [
    (np.full((4, 4), 0.7, np.float32), r'16 pixels with other values '
     r'\(0\.7; dtype float32\)'),
    (np.where(np.eye(4) > 0, 2, 1), r'4 pixels with other values '
     r'\(2; dtype int64\)'),
    (np.arange(16).reshape(4, 4) - 3, r'14 pixels with other values '
     r'\(-3, -2, -1, 2, 3, 4, 5, 6, \.\.\.; dtype int64\)'),
])
def test_non_binary_prediction(pred, shown):
    with pytest.raises(ValueError, match=NAME + r'"pred_sem_seg" must hold '
                       r'only the values \[0, 1\] \(a binary mask '
                       r'\(threshold probabilities first\)\), got ' + shown):
        _process(_sample(pred, ONES))


def test_non_binary_gt():
    gt = ONES.copy()
    gt[0, 0] = 2
    with pytest.raises(ValueError, match=NAME + r'"gt_sem_seg" must hold only '
                       r'the values \[0, 1, 255\] \(a binary mask with '
                       r'ignore_index=255\), got 1 pixels with other values '
                       r'\(2; dtype int64\)'):
        _process(_sample(ONES, gt))
    # another ignore_index: 255 is then a bad value
    gt[0, 0] = 255
    with pytest.raises(ValueError, match=r'\[0, 1, -1\].*\(255; dtype'):
        _process(_sample(ONES, gt), ignore_index=-1)


def test_binary_values_of_any_dtype_are_accepted():
    for pred in (ONES, ONES.astype(bool), ONES.astype(np.float32),
                 ONES.astype(np.uint8)):
        metric = _process(_sample(pred, ONES.astype(np.uint8)))
        assert metric.results == [('', ('', 3, 4), 16, 16)]
    gt = ONES.copy()
    gt[0] = 255  # ignored pixels are fine in the GT
    assert _process(_sample(ONES, gt)).results[0][2:] == (12, 12)


def test_missing_gt_and_prediction():
    with pytest.raises(KeyError, match=NAME + r'the sample has no '
                       r'"gt_sem_seg" \(the GT mask: add LoadReferringMask'):
        _process(_sample(ONES, None))
    with pytest.raises(KeyError, match=NAME + r'the sample has no '
                       r'"pred_sem_seg" \(the predicted mask'):
        _process(_sample(None, ONES))
    # scoring at the original size needs the segmentation and ori_shape
    with pytest.raises(KeyError, match=NAME + 'at_original_resolution=True '
                       'needs the "segmentation" meta key'):
        _process(_sample(ONES, None), at_original_resolution=True)
    with pytest.raises(KeyError, match=NAME + 'at_original_resolution=True '
                       'needs the "ori_shape" meta key'):
        _process(dict(_sample(ONES).to_dict(), segmentation=[[0, 0, 2, 0, 2,
                                                              2]]),
                 at_original_resolution=True)


def test_empty_results_at_compute_time():
    metric = RefSegMetric()
    msg = (r'^RefSegMetric: no sample to score \(the results are empty\): '
           r'the evaluation dataloader gave no data sample, or process\(\) '
           r'was not called$')
    with pytest.raises(ValueError, match=msg):
        metric.evaluate(0)
    with pytest.raises(ValueError, match=msg):
        metric.compute_metrics([])


def test_group_key_missing_from_samples(logs):
    """Documented handling: such samples are in no group of that key; their
    number is logged; the overall scores still count them."""
    samples = [_sample(ONES, ONES, ref_id=1, sent_id=1),
               _sample(ONES * 0, ONES, ref_id=1, sent_id=2)]
    res = _process(*samples, group_keys=('kind', )).evaluate(2)
    assert list(res) == list(KEYS)  # no group reported
    assert res['oIoU'] == 50
    assert logs == ['RefSegMetric: samples in no group (meta key absent): '
                    '2 of 2 without "kind"']
    logs.clear()
    samples[0].set_metainfo(dict(kind='relation'))
    res = _process(*samples, group_keys=('kind', )).evaluate(2)
    assert res['relation/oIoU'] == 100 and res['oIoU'] == 50
    assert logs == ['RefSegMetric: samples in no group (meta key absent): '
                    '1 of 2 without "kind"']


def test_non_str_text_with_length_buckets_is_in_no_bucket(logs):
    res = _process(_sample(ONES, ONES, text=None),
                   length_buckets=(1, 4)).evaluate(1)
    assert list(res) == list(KEYS)
    assert logs == ['RefSegMetric: samples in no group (meta key absent): '
                    '1 of 1 without "text"']


# -------------------------------------------------------------- arguments
@pytest.mark.parametrize('edges', [(5, 3), (4, 4), (-1, 2), (), (1.5, ),
                                   (True, 3), 5, '147'])
def test_bad_length_buckets(edges):
    with pytest.raises(ValueError, match=r'^length_buckets must be strictly '
                       r'increasing ints >= 0, got '):
        RefSegMetric(length_buckets=edges)


def test_zero_is_a_valid_first_edge():
    """``0`` is allowed (documented): the first bucket starts at 0 words."""
    res = _process(_sample(ONES, ONES, text=''),
                   length_buckets=(0, 2)).evaluate(1)
    assert res['len0-1/oIoU'] == 100


@pytest.mark.parametrize('thrs', [(50, ), 0.5, ('0.5', ), (0.5, 0.5),
                                  (True, ), (-0.1, ), (0.5, 0.5000001),
                                  '0.5'])
def test_bad_iou_thrs(thrs):
    with pytest.raises(ValueError, match=r'^RefSegMetric: iou_thrs must be a '
                       r'sequence of IoU fractions in \[0, 1\] with distinct '
                       r'Pr@ names'):
        RefSegMetric(iou_thrs=thrs)


def test_custom_and_empty_iou_thrs():
    res = _process(_sample(ONES, ONES), iou_thrs=(0.25, 1)).evaluate(1)
    assert list(res) == ['oIoU', 'mIoU', 'Pr@0.25', 'Pr@1']
    res = _process(_sample(ONES, ONES), iou_thrs=()).evaluate(1)
    assert list(res) == ['oIoU', 'mIoU']


def test_unknown_metric_arguments_and_names():
    with pytest.raises(TypeError, match=r"^RefSegMetric got unknown "
                       r"argument\(s\) \['iou_metrics'\]: it always reports "
                       r"oIoU, mIoU and Pr@t"):
        RefSegMetric(iou_metrics=['mIoU', 'mDice'])
    with pytest.raises(TypeError, match=r"\['metrics', 'nan_to_num'\]"):
        RefSegMetric(metrics=['oIoU'], nan_to_num=0)
    assert RefSegMetric(collect_dir='/tmp/x').collect_dir == '/tmp/x'
    with pytest.raises(KeyError, match='RefSegMetrc is not in the'):
        METRICS.build(dict(type='RefSegMetrc'))
    with pytest.raises(TypeError, match='sequence of str'):
        RefSegMetric(group_keys=('kind', 3))
