"""Visualizer for referring segmentation results."""
from __future__ import annotations

from typing import Optional

import mmcv
import numpy as np
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer


@VISUALIZERS.register_module()
class RefSegLocalVisualizer(SegLocalVisualizer):
    """mmseg's ``SegLocalVisualizer`` for (image, expression) samples.

    MagNet scores masks at the network input size (the official protocol),
    so ``pred_sem_seg``/``gt_sem_seg`` may not have the size of the image
    file the visualization hook reads. The image is resized to the masks'
    size (bilinear) before drawing, ground truth and prediction side by side.
    """

    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: Optional[SegDataSample] = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       with_labels: Optional[bool] = False) -> None:
        if data_sample is not None:
            for key in ('pred_sem_seg', 'gt_sem_seg'):
                if key in data_sample:
                    h, w = getattr(data_sample, key).shape
                    if image.shape[:2] != (h, w):
                        image = mmcv.imresize(image, (w, h),
                                              interpolation='bilinear')
                    break
        super().add_datasample(
            name, image, data_sample, draw_gt=draw_gt, draw_pred=draw_pred,
            show=show, wait_time=wait_time, out_file=out_file, step=step,
            with_labels=with_labels)
