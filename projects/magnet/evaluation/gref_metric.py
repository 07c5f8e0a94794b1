"""Generalised referring segmentation metric (GRES / gRefCOCO): ReLA's
gIoU, cIoU, T_acc, N_acc and Pr@t.

The arithmetic is in :mod:`.gref_scores`; this module is the mmengine
metric that collects one row of counts per sentence.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from mmseg.registry import METRICS

from .errors import (MetricConfigError, SampleError, SampleKeyError,
                     reject_unknown_arguments, require_results)
from .gref_scores import gres_scores, no_target_counts
from .refseg_metric import RefSegMetric
from .refseg_scores import intersection_union

__all__ = ['GRefSegMetric']


def _as_flag(value: Any, name: str, field: str) -> bool:
    """A no-target flag as a Python bool: ``bool``, ``numpy.bool_`` or a
    one-element bool tensor (a model's output); anything else (a
    probability, an int, a string) is a :class:`SampleError`."""
    if isinstance(value, torch.Tensor) and value.dtype == torch.bool \
            and value.numel() == 1:
        return bool(value.item())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise SampleError(
        f'{name}: "{field}" must be a bool (True: the expression names no '
        f'object), got {value!r} of type {type(value).__name__}')


@METRICS.register_module()
class GRefSegMetric(BaseMetric):
    """ReLA's GRES scores over every evaluated sentence of gRefCOCO.

    Each data sample gives the truth as metainfo ``no_target`` (bool) and
    ``gt_sem_seg`` (the union mask of the referred objects, (1, H, W),
    all background for a no-target sentence), and the prediction as the
    field ``pred_no_target`` (bool, or a one-element bool tensor) and
    ``pred_sem_seg`` ((1, H, W), empty when ``pred_no_target``). The
    prediction must have the GT's size (score at the network input size,
    as ReLA does). A sample without ``pred_no_target`` (a model without the
    no-target decision, ``decode_head.no_target`` off) counts as predicted
    to have a target, with one warning per evaluation.

    Counting, as ReLA's evaluator (``gres_model/evaluation/
    refer_evaluation.py`` after its "fix eval metrics" commit, cited as
    ``ReLA :line``; see :mod:`.gref_scores` for every rule):

    * I and U of a sentence are first counted between the predicted and
      the GT foreground masks whatever the flags (ReLA :14-18, :126), with
      GT pixels equal to ``ignore_index`` counting for neither (ReLA has no
      ignored pixel; with a 0/1 GT this changes nothing);
    * the no-target decision is the predicted flag ``pred_no_target``,
      never the emptiness of the predicted mask (ReLA :134, :156);
    * no-target predicted no-target: IoU 1, adds nothing to ΣI and ΣU
      (ReLA :134-141);
    * no-target predicted target: IoU 0, adds its predicted area to ΣU
      (ReLA :144-151);
    * target predicted no-target: I = 0, U as counted from the masks,
      IoU 0 (ReLA :156-158, :164-168);
    * target predicted target: IoU = I / U (0 when U = 0, ReLA :164),
      also when its predicted mask is empty (I = 0, U = the GT area).

    Reported (in ReLA's order, all in percent): ``gIoU`` (mean IoU over
    all sentences, ReLA :190), ``cIoU`` (ΣI / ΣU, :191), ``T_acc`` (target
    sentences not flagged no-target, TN / (TN + FP), :195), ``N_acc``
    (no-target sentences flagged no-target, TP / (TP + FN), :196; both 0
    when there is no no-target sentence, :197-198), ``Pr@t`` for t in
    ``iou_thrs`` (share of the *target* sentences with IoU >= t, :172-174,
    :202). ReLA prints T_acc and N_acc as fractions; here they are
    percentages like the rest. A score undefined on the evaluated set
    (cIoU when ΣU = 0, T_acc and Pr@t without a target sentence; ReLA
    stops with a division by zero there) is reported as 0 and named in
    the log. The TP / TN / FP / FN counts are logged (ReLA :193).

    Splits and distributed evaluation are as in
    :class:`~projects.magnet.evaluation.RefSegMetric`: one row per sample
    in ``self.results``, gathered by :meth:`BaseMetric.evaluate` (which
    drops the sampler's padding); rows with the same
    ``(split_tag, ref_id, sent_id)`` are counted once; with several
    ``split_key`` values the keys are ``'<split_tag>/gIoU'``..., with one
    they are plain (``'gIoU'``...), e.g.::

        test_evaluator = dict(type='GRefSegMetric')

    Args:
        iou_thrs (Sequence[float]): thresholds of the ``Pr@t`` scores.
            Defaults to ReLA's (0.7, 0.8, 0.9).
        ignore_index (int): GT value excluded from I and U.
            Defaults to 255.
        split_key (str, optional): meta key grouping the rows into splits;
            None reports everything as one split. Defaults to 'split_tag'.
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): metric name prefix. Defaults to None.
        **kwargs: ``collect_dir`` of :class:`BaseMetric`; nothing else.

    Raises (every error is a :class:`~projects.magnet.utils.UserError`,
    see :mod:`.errors`; a sample is named by ``img_path``, ``ref_id`` and
    ``sent_id``):
        MetricArgumentError (a TypeError): an unknown argument.
        MetricConfigError (a ValueError): bad ``iou_thrs``.
        SampleKeyError (a KeyError): a sample without ``no_target``,
            ``pred_sem_seg`` or ``gt_sem_seg``.
        SampleError (a ValueError): a flag that is not a bool; prediction
            and GT of different sizes; masks that are not binary (the GT
            may also hold ``ignore_index``); a no-target sentence whose GT
            has foreground; nothing processed when the metrics are
            computed.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 iou_thrs: Sequence[float] = (0.7, 0.8, 0.9),
                 ignore_index: int = 255,
                 split_key: Optional[str] = 'split_tag',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        reject_unknown_arguments(
            'GRefSegMetric', kwargs, 'it always reports gIoU, cIoU, T_acc, '
            'N_acc and Pr@t for t in iou_thrs')
        super().__init__(
            collect_device=collect_device, prefix=prefix, **kwargs)
        try:  # the same checks (numbers in [0, 1], distinct Pr@ names)
            self.iou_thrs = RefSegMetric._check_thrs(iou_thrs)
        except MetricConfigError:
            raise MetricConfigError(
                'GRefSegMetric: iou_thrs must be a sequence of IoU fractions '
                'in [0, 1] with distinct Pr@ names (e.g. (0.7, 0.8, 0.9)), '
                f'got {iou_thrs!r}') from None
        self.ignore_index = ignore_index
        self.split_key = split_key
        self._warned_no_decision = False

    def _warn_no_decision(self, name: str) -> None:
        """One warning per evaluation (per process) that the model makes
        no no-target decision and every sentence counts as a target."""
        if self._warned_no_decision:
            return
        self._warned_no_decision = True
        print_log(
            f'GRefSegMetric: the predictions have no "pred_no_target" '
            f'(first: {name}): the model makes no no-target decision '
            '(decode_head.no_target is off), so every sentence is counted '
            'as predicted to have a target (N_acc is 0 when there are '
            'no-target sentences)', logger='current', level=logging.WARNING)

    def evaluate(self, size: int) -> dict:
        """:meth:`BaseMetric.evaluate`; the next evaluation warns again
        about a model without the no-target decision."""
        try:
            return super().evaluate(size)
        finally:
            self._warned_no_decision = False

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Count I and U and read both no-target flags of every sample
        (one row per sample).

        Args:
            data_batch (Any): unused.
            data_samples (Sequence[dict | SegDataSample]): outputs with
                ``pred_no_target`` (missing: False), ``pred_sem_seg``
                (1, H, W),
                ``gt_sem_seg`` (1, H, W) and metainfo ``no_target``.
        """
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            name = (f'{sample.get("img_path", "<sample>")} ref_id='
                    f'{sample.get("ref_id")} sent_id={sample.get("sent_id")}')
            if 'no_target' not in sample:
                raise SampleKeyError(
                    f'{name}: the sample has no "no_target" meta key (the '
                    'truth: load it with GRefCOCODataset and keep it in '
                    'PackSegInputs.meta_keys)')
            gt_nt = _as_flag(sample['no_target'], name, 'no_target')
            if 'pred_no_target' in sample:
                pred_nt = _as_flag(sample['pred_no_target'], name,
                                   'pred_no_target')
            else:  # a model without the no-target decision
                pred_nt = False
                self._warn_no_decision(name)
            # the same field lookup and value checks as RefSegMetric
            pred = RefSegMetric._field(
                sample, 'pred_sem_seg', name,
                'the predicted mask: run the model in predict mode'
            ).squeeze(0)
            gt = RefSegMetric._field(
                sample, 'gt_sem_seg', name,
                'the GT union mask: add LoadGRefMask to the test pipeline'
            ).squeeze(0).to(pred.device)
            if pred.shape != gt.shape:
                raise SampleError(
                    f'{name}: prediction {tuple(pred.shape)} and GT '
                    f'{tuple(gt.shape)} differ in size; return the '
                    'prediction at the GT size (img_shape)')
            RefSegMetric._check_values(
                pred, (0, 1), name, 'pred_sem_seg',
                'a binary mask (threshold probabilities first)')
            RefSegMetric._check_values(
                gt, (0, 1, self.ignore_index), name, 'gt_sem_seg',
                f'a binary mask with ignore_index={self.ignore_index}')
            if gt_nt and bool((gt == 1).any()):
                raise SampleError(
                    f'{name}: "no_target" is True but "gt_sem_seg" has '
                    f'{int((gt == 1).sum())} foreground pixels; a no-target '
                    'expression has an all-background GT mask')
            inter, union = intersection_union(pred, gt, self.ignore_index)
            split = sample.get(self.split_key, '') if self.split_key else ''
            key = None
            if 'ref_id' in sample:
                key = (split, sample['ref_id'], sample.get('sent_id'))
            self.results.append((split, key, gt_nt, pred_nt, inter, union))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """Scores per split (plain keys when there is a single split).

        Raises:
            SampleError (a ValueError): ``results`` is empty (no sample
                was processed).
        """
        require_results('GRefSegMetric', results)
        seen = set()
        splits: Dict[str, List[tuple]] = OrderedDict()
        duplicates = 0
        for split, key, *row in results:
            if key is not None:
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
            splits.setdefault(split, []).append(tuple(row))
        if duplicates:
            print_log(
                f'GRefSegMetric: ignored {duplicates} duplicated '
                '(split_tag, ref_id, sent_id) rows', logger='current')
        metrics: Dict[str, float] = OrderedDict()
        for split, rows in splits.items():
            prefix = f'{split}/' if len(splits) > 1 else ''
            gt_nt, pred_nt, inter, union = (np.asarray(c) for c in zip(*rows))
            scores, undefined = gres_scores(gt_nt.astype(bool),
                                            pred_nt.astype(bool), inter,
                                            union, self.iou_thrs)
            where = f' of split "{split}"' if len(splits) > 1 else ''
            print_log(
                f'GRefSegMetric: no-target decisions{where} (no-target is '
                f'the positive class): '
                f'{dict(no_target_counts(gt_nt, pred_nt))}',
                logger='current')
            if undefined:
                print_log(
                    f'GRefSegMetric: {", ".join(undefined)}{where} '
                    'undefined on these sentences (a zero denominator: no '
                    'target sentence, or no foreground at all), reported '
                    'as 0', logger='current')
            for key, value in scores.items():
                metrics[f'{prefix}{key}'] = value
        return metrics
