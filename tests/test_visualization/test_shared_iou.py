"""The visualizer's per-sample IoU is the metric's own I / U count."""
import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from projects.magnet.evaluation.refseg_metric import (RefSegMetric,
                                                      intersection_union)
from projects.magnet.visualization import sample_iou


def test_sample_iou_equals_the_metric_on_random_masks():
    rng = np.random.default_rng(7)
    for i in range(20):
        pred = (rng.random((17, 23)) > rng.random()).astype(np.int64)
        gt = (rng.random((17, 23)) > rng.random()).astype(np.int64)
        gt[rng.random((17, 23)) > 0.8] = 255  # ignored pixels
        metric = RefSegMetric()
        sample = SegDataSample(metainfo=dict(ref_id=i, sent_id=0))
        sample.pred_sem_seg = PixelData(data=torch.from_numpy(pred)[None])
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(gt)[None])
        metric.process({}, [sample])
        inter, union = metric.results[0][2:4]
        assert (inter, union) == intersection_union(pred, gt)
        assert (inter, union) == intersection_union(torch.from_numpy(pred),
                                                    torch.from_numpy(gt))
        expected = inter / union if union else 0.0
        assert sample_iou(pred, gt) == expected
        # counted by hand: ignored GT pixels are in neither I nor U
        valid = gt != 255
        p, g = (pred == 1) & valid, gt == 1
        assert inter == (p & g).sum() and union == (p | g).sum()
