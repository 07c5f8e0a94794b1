"""Referring segmentation metrics with the official MagNet/LAVT protocol."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from mmseg.registry import METRICS

from ..datasets.transforms.loading import decode_refer_mask

__all__ = ['RefSegMetric', 'refseg_scores']


def refseg_scores(intersections: np.ndarray,
                  unions: np.ndarray,
                  iou_thrs: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9)
                  ) -> Dict[str, float]:
    """Official scores from per-sentence intersections and unions.

    Args:
        intersections (np.ndarray): (S,) foreground intersection per sentence.
        unions (np.ndarray): (S,) foreground union per sentence.
        iou_thrs (Sequence[float]): thresholds of the precision scores.

    Returns:
        dict: ``oIoU`` = ΣI / ΣU × 100; ``mIoU`` = mean(I / U) × 100 with
        IoU = 0 when U = 0 (empty prediction and empty GT score 0, as in the
        official code); ``Pr@t`` = % of sentences with IoU >= t.
    """
    inter = np.asarray(intersections, dtype=np.int64)
    union = np.asarray(unions, dtype=np.int64)
    iou = np.divide(
        inter, union, out=np.zeros(len(inter)), where=union > 0)
    total_union = union.sum()
    scores = OrderedDict(
        oIoU=float(inter.sum() / total_union * 100) if total_union else 0.,
        mIoU=float(iou.mean() * 100) if len(iou) else 0.)
    for t in iou_thrs:
        scores[f'Pr@{t:g}'] = float((iou >= t).mean() * 100) \
            if len(iou) else 0.
    return scores


@METRICS.register_module()
class RefSegMetric(BaseMetric):
    """oIoU, mIoU and Pr@{0.5..0.9} over every evaluated sentence.

    For every data sample, ``I`` and ``U`` are counted between the predicted
    foreground (``pred_sem_seg.data == 1``, shape (1, H, W)) and the GT
    foreground (``gt_sem_seg.data == 1``, (1, H, W)); GT pixels equal to
    ``ignore_index`` are excluded from both. Official protocol: the GT is the
    mask resized (nearest) to the network input size, so the model must
    return its prediction at that size; a size mismatch is an error.

    ``at_original_resolution=True`` scores instead at the original image
    size: the GT is re-decoded from the ``segmentation`` meta key (add
    ``'segmentation'`` to ``PackSegInputs.meta_keys``) at ``ori_shape``, and
    a prediction of another size is resized to ``ori_shape`` with nearest
    interpolation (return it at ``ori_shape`` for a logit-level resize).

    Distributed evaluation: one row per sample is kept in ``self.results``
    and gathered by :meth:`BaseMetric.evaluate` (which drops the sampler's
    padding). As a safety net, rows with the same
    ``(split_tag, ref_id, sent_id)`` are counted once.

    Several splits in one run: give ``test_dataloader`` a ``ConcatDataset``
    of ``RefCOCODataset``s and add ``'split_tag'`` to the meta keys; each
    item carries its dataset's ``split_tag``
    (``'<dataset>_<split_by>_<split>'`` by default) and the metric reports
    ``'<split_tag>/oIoU'``, ``'<split_tag>/mIoU'``... per split. With a
    single split the keys are plain (``'oIoU'``...), e.g. for
    ``save_best='oIoU'``::

        test_dataloader = dict(dataset=dict(type='ConcatDataset', datasets=[
            dict(type='RefCOCODataset', split='val', **common),
            dict(type='RefCOCODataset', split='testA', **common)]), ...)
        test_evaluator = dict(type='RefSegMetric')

    Args:
        iou_thrs (Sequence[float]): thresholds of the ``Pr@t`` scores.
        ignore_index (int): GT value excluded from I and U. Defaults to 255.
        at_original_resolution (bool): see above. Defaults to False.
        split_key (str, optional): meta key grouping the rows into splits;
            None reports everything as one split. Defaults to 'split_tag'.
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): metric name prefix. Defaults to None.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 iou_thrs: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                 ignore_index: int = 255,
                 at_original_resolution: bool = False,
                 split_key: Optional[str] = 'split_tag',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(
            collect_device=collect_device, prefix=prefix, **kwargs)
        self.iou_thrs = tuple(iou_thrs)
        self.ignore_index = ignore_index
        self.at_original_resolution = at_original_resolution
        self.split_key = split_key

    def _pred_and_gt(self, sample: dict, name: str):
        pred = sample['pred_sem_seg']['data'].squeeze(0)
        if not self.at_original_resolution:
            gt = sample['gt_sem_seg']['data'].squeeze(0).to(pred.device)
            if pred.shape != gt.shape:
                raise ValueError(
                    f'{name}: prediction {tuple(pred.shape)} and GT '
                    f'{tuple(gt.shape)} differ in size; the official protocol '
                    'scores at the network input size (return the prediction '
                    'at img_shape) or set at_original_resolution=True')
            return pred, gt
        if 'segmentation' not in sample:
            raise KeyError(
                f'{name}: at_original_resolution=True needs the '
                '"segmentation" meta key; add it to PackSegInputs.meta_keys')
        height, width = sample['ori_shape'][:2]
        gt = torch.from_numpy(
            decode_refer_mask(sample['segmentation'], height, width,
                              f'{name}: "segmentation"')).to(pred.device)
        if tuple(pred.shape) != (height, width):
            pred = F.interpolate(
                pred[None, None].float(), size=(height, width),
                mode='nearest')[0, 0].to(pred.dtype)
        return pred, gt

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Count I and U of every sample (one row per sample).

        Args:
            data_batch (Any): unused.
            data_samples (Sequence[dict | SegDataSample]): outputs with
                ``pred_sem_seg`` and (unless ``at_original_resolution``)
                ``gt_sem_seg``.
        """
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            name = (f'{sample.get("img_path", "<sample>")} ref_id='
                    f'{sample.get("ref_id")} sent_id={sample.get("sent_id")}')
            pred, gt = self._pred_and_gt(sample, name)
            valid = gt != self.ignore_index
            pred_fg = (pred == 1) & valid
            gt_fg = gt == 1
            inter = int((pred_fg & gt_fg).sum())
            union = int((pred_fg | gt_fg).sum())
            split = sample.get(self.split_key, '') if self.split_key else ''
            key = None
            if 'ref_id' in sample:
                key = (split, sample['ref_id'], sample.get('sent_id'))
            self.results.append((split, key, inter, union))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """Scores per split (plain keys when there is a single split)."""
        seen = set()
        groups: Dict[str, List[tuple]] = OrderedDict()
        duplicates = 0
        for split, key, inter, union in results:
            if key is not None:
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
            groups.setdefault(split, []).append((inter, union))
        if duplicates:
            print_log(
                f'RefSegMetric: ignored {duplicates} duplicated '
                '(split_tag, ref_id, sent_id) rows', logger='current')
        metrics: Dict[str, float] = OrderedDict()
        for split, rows in groups.items():
            inter, union = np.asarray(rows, dtype=np.int64).reshape(-1, 2).T
            scores = refseg_scores(inter, union, self.iou_thrs)
            for name, value in scores.items():
                full = f'{split}/{name}' if len(groups) > 1 else name
                metrics[full] = value
        return metrics
