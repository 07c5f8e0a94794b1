"""Referring segmentation metrics with the official MagNet/LAVT protocol.

The counting and the scores are in :mod:`.refseg_scores` (re-exported
here); this module is the mmengine metric that collects them per sample,
split and group.
"""
from __future__ import annotations

import numbers
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement
from mmseg.registry import METRICS

from ..datasets.transforms.mask_loading import decode_refer_mask
from .errors import (MetricArgumentError, MetricConfigError, SampleError,
                     SampleKeyError, reject_unknown_arguments,
                     require_results)
from .refseg_scores import (intersection_union, length_bucket_names,
                            refseg_scores)

__all__ = [
    'RefSegMetric', 'refseg_scores', 'length_bucket_names',
    'intersection_union'
]


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

    Scores per group (diagnostics), in addition to the overall ones of each
    split:

    * ``group_keys``: for each listed meta key (add it to
      ``PackSegInputs.meta_keys``), scores per value of the key, e.g. per
      expression ``kind`` of the generated dataset (``'attribute'``,
      ``'relation'``...): ``'<value>/oIoU'``... with a single split,
      ``'<split_tag>/<value>/oIoU'``... with several. Samples without the
      key belong to no group of that key (their number is logged).
    * ``length_buckets``: scores per expression length, the number of
      words of the ``text`` meta key (``text.split()``), bucketed by edges
      named as :func:`length_bucket_names` says: ``(1, 4, 7, 10)`` reports
      ``'len0'`` (empty text), ``'len1-3'``, ``'len4-6'``, ``'len7-9'`` and
      ``'len10+'``, as ``'len4-6/oIoU'`` or ``'<split_tag>/len4-6/oIoU'``.
      Works on any REFER data (only ``text`` is needed).

    Only non-empty groups are reported, after the split's overall scores:
    the ``group_keys`` groups in key order then sorted by value, then the
    length buckets in order. A group name that two sources share (say a
    value ``'len1-3'`` of a group key) is reported as ``'<key>=<value>'``
    (``'text'`` being the key of the length buckets). With neither option
    the keys are exactly the overall ones. For example::

        val_evaluator = dict(type='RefSegMetric', group_keys=('kind', ),
                             length_buckets=(1, 4, 7, 10))
        # -> 'oIoU', ..., 'relation/oIoU', ..., 'len4-6/mIoU', ...

    Args:
        iou_thrs (Sequence[float]): thresholds of the ``Pr@t`` scores.
        ignore_index (int): GT value excluded from I and U. Defaults to 255.
        at_original_resolution (bool): see above. Defaults to False.
        split_key (str, optional): meta key grouping the rows into splits;
            None reports everything as one split. Defaults to 'split_tag'.
        group_keys (Sequence[str]): meta keys scored per value (see above).
            Defaults to ().
        length_buckets (Sequence[int], optional): edges of the expression
            length buckets (see above); None: no length scores.
            Defaults to None.
        collect_device (str): 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): metric name prefix. Defaults to None.
        **kwargs: ``collect_dir`` of :class:`BaseMetric`; nothing else.

    Raises (every error is a :class:`~projects.magnet.utils.UserError`,
    see :mod:`.errors`):
        MetricArgumentError (a TypeError): an unknown argument (e.g.
            mmseg's ``iou_metrics``: the metric always reports oIoU, mIoU
            and the ``Pr@t``), or ``group_keys`` not a sequence of str.
        MetricConfigError (a ValueError): ``iou_thrs`` not numbers in
            [0, 1] with distinct ``Pr@t`` names; bad ``length_buckets``
            (:func:`length_bucket_names`).

    Bad samples and results (the message names the sample by ``img_path``,
    ``ref_id`` and ``sent_id``, and the field):

    * no ``pred_sem_seg`` (or no ``gt_sem_seg`` when scoring at the input
      size, or no ``segmentation`` / ``ori_shape`` at the original one):
      ``SampleKeyError`` (a ``KeyError``);
    * prediction and GT of different sizes: ``SampleError`` (a
      ``ValueError``);
    * a prediction with values other than 0 and 1 (probabilities, logits,
      class indices), a GT with values other than 0, 1 and
      ``ignore_index``: ``SampleError``;
    * nothing processed when the metrics are computed: ``SampleError``;
    * a sample without a ``group_keys`` key (or a non-str ``text`` with
      ``length_buckets``): in no group of that key, counted in the log.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 iou_thrs: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                 ignore_index: int = 255,
                 at_original_resolution: bool = False,
                 split_key: Optional[str] = 'split_tag',
                 group_keys: Sequence[str] = (),
                 length_buckets: Optional[Sequence[int]] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        reject_unknown_arguments(
            'RefSegMetric', kwargs, 'it always reports oIoU, mIoU and Pr@t '
            'for t in iou_thrs (there is no metric selection such as '
            'mmseg\'s iou_metrics)')
        super().__init__(
            collect_device=collect_device, prefix=prefix, **kwargs)
        self.iou_thrs = self._check_thrs(iou_thrs)
        self.ignore_index = ignore_index
        self.at_original_resolution = at_original_resolution
        self.split_key = split_key
        if isinstance(group_keys, str) or not all(
                isinstance(k, str) for k in group_keys):
            raise MetricArgumentError(
                'RefSegMetric: group_keys must be a sequence of '
                f'str (e.g. ("kind",)), got {group_keys!r}')
        self.group_keys = tuple(group_keys)
        self._bucket_names = None if length_buckets is None else \
            length_bucket_names(length_buckets)
        self.length_buckets = None if length_buckets is None else tuple(
            int(e) for e in length_buckets)
        #: group sources: the group keys, then 'text' for the lengths
        self._sources = self.group_keys + (
            ('text', ) if length_buckets is not None else ())

    @staticmethod
    def _check_thrs(iou_thrs: Any) -> Tuple[float, ...]:
        """``iou_thrs`` as a tuple, checked (numbers in [0, 1] with
        distinct ``Pr@t`` names)."""
        bad = MetricConfigError(
            'RefSegMetric: iou_thrs must be a sequence of IoU fractions in '
            '[0, 1] with distinct Pr@ names (e.g. (0.5, 0.7, 0.9)), got '
            f'{iou_thrs!r}')
        if isinstance(iou_thrs, (str, bytes)):
            raise bad
        try:
            thrs = tuple(iou_thrs)
        except TypeError:  # a scalar
            raise bad from None
        if any(not isinstance(t, numbers.Real) or isinstance(t, bool)
               or not 0 <= t <= 1 for t in thrs):
            raise bad
        if len({f'{t:g}' for t in thrs}) != len(thrs):
            raise bad
        return tuple(float(t) for t in thrs)

    def _length_bucket(self, text: Any) -> Optional[str]:
        """Bucket name of a ``text`` meta value (None: not a str)."""
        if not isinstance(text, str):
            return None
        n = len(text.split())
        index = int(np.searchsorted(self.length_buckets, n, side='right'))
        if self.length_buckets[0] > 0:
            return self._bucket_names[index]
        return self._bucket_names[index - 1]

    def _labels(self, sample: dict) -> Tuple[Optional[str], ...]:
        """Group of the sample per source (None: it has no such key)."""
        labels = []
        for key in self.group_keys:
            value = sample.get(key)
            labels.append(None if value is None else str(value))
        if self.length_buckets is not None:
            labels.append(self._length_bucket(sample.get('text')))
        return tuple(labels)

    @staticmethod
    def _field(sample: dict, key: str, name: str, hint: str) -> Any:
        """``sample[key]['data']``, or a :class:`SampleKeyError` (a
        KeyError) naming the field."""
        field = sample.get(key)
        if field is None or 'data' not in field:
            raise SampleKeyError(f'{name}: the sample has no "{key}" ({hint})')
        return field['data']

    def _pred_and_gt(self, sample: dict, name: str):
        pred = self._field(sample, 'pred_sem_seg', name,
                           'the predicted mask: run the model in predict '
                           'mode').squeeze(0)
        if not self.at_original_resolution:
            gt = self._field(
                sample, 'gt_sem_seg', name,
                'the GT mask: add LoadReferringMask to the test pipeline, '
                'or set at_original_resolution=True').squeeze(0).to(
                    pred.device)
            if pred.shape != gt.shape:
                raise SampleError(
                    f'{name}: prediction {tuple(pred.shape)} and GT '
                    f'{tuple(gt.shape)} differ in size; the official protocol '
                    'scores at the network input size (return the prediction '
                    'at img_shape) or set at_original_resolution=True')
            return pred, gt
        if 'segmentation' not in sample:
            raise SampleKeyError(
                f'{name}: at_original_resolution=True needs the '
                '"segmentation" meta key; add it to PackSegInputs.meta_keys')
        if 'ori_shape' not in sample:
            raise SampleKeyError(
                f'{name}: at_original_resolution=True needs the "ori_shape" '
                'meta key')
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
            self._check_values(pred, (0, 1), name, 'pred_sem_seg',
                               'a binary mask (threshold probabilities '
                               'first)')
            self._check_values(gt, (0, 1, self.ignore_index), name,
                               'gt_sem_seg', 'a binary mask with '
                               f'ignore_index={self.ignore_index}')
            inter, union = intersection_union(pred, gt, self.ignore_index)
            split = sample.get(self.split_key, '') if self.split_key else ''
            key = None
            if 'ref_id' in sample:
                key = (split, sample['ref_id'], sample.get('sent_id'))
            if self._sources:
                self.results.append(
                    (split, key, inter, union, self._labels(sample)))
            else:
                self.results.append((split, key, inter, union))

    @staticmethod
    def _check_values(mask: torch.Tensor, allowed: Tuple[int, ...],
                      name: str, field: str, expected: str) -> None:
        """:class:`SampleError` (a ValueError) unless every value of
        ``mask`` is in ``allowed``."""
        bad = torch.ones_like(mask, dtype=torch.bool)
        for value in allowed:
            bad &= mask != value
        if bool(bad.any()):
            values = torch.unique(mask[bad]).cpu().tolist()
            shown = ', '.join(f'{v:g}' for v in values[:8]) + (
                ', ...' if len(values) > 8 else '')
            raise SampleError(
                f'{name}: "{field}" must hold only the values '
                f'{list(allowed)} ({expected}), got {int(bad.sum())} pixels '
                f'with other values ({shown}; dtype '
                f'{str(mask.dtype).replace("torch.", "")})')

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """Scores per split (plain keys when there is a single split),
        then per group of each split (see the class docstring).

        Raises:
            SampleError (a ValueError): ``results`` is empty (no sample
                was processed).
        """
        require_results('RefSegMetric', results)
        seen = set()
        groups: Dict[str, List[tuple]] = OrderedDict()
        # split -> source index -> label -> [(I, U), ...]
        subgroups: Dict[str, List[Dict[str, List[tuple]]]] = {}
        missing = [0] * len(self._sources)
        duplicates = 0
        for split, key, inter, union, *rest in results:
            if key is not None:
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
            groups.setdefault(split, []).append((inter, union))
            if not self._sources:
                continue
            per_source = subgroups.setdefault(
                split, [dict() for _ in self._sources])
            labels = rest[0] if rest else (None, ) * len(self._sources)
            for s, label in enumerate(labels):
                if label is None:
                    missing[s] += 1
                else:
                    per_source[s].setdefault(label, []).append(
                        (inter, union))
        if duplicates:
            print_log(
                f'RefSegMetric: ignored {duplicates} duplicated '
                '(split_tag, ref_id, sent_id) rows', logger='current')
        if any(missing):
            total = sum(len(rows) for rows in groups.values())
            print_log(
                'RefSegMetric: samples in no group (meta key absent): ' +
                ', '.join(f'{n} of {total} without "{src}"'
                          for src, n in zip(self._sources, missing) if n),
                logger='current')
        names = self._group_names(subgroups)
        metrics: Dict[str, float] = OrderedDict()
        for split, rows in groups.items():
            prefix = f'{split}/' if len(groups) > 1 else ''
            self._add_scores(metrics, prefix, rows)
            for s, by_label in enumerate(subgroups.get(split, ())):
                for label in self._ordered(s, by_label):
                    self._add_scores(metrics,
                                     f'{prefix}{names[s, label]}/',
                                     by_label[label])
        return metrics

    def _add_scores(self, metrics: dict, prefix: str,
                    rows: List[tuple]) -> None:
        inter, union = np.asarray(rows, dtype=np.int64).reshape(-1, 2).T
        for name, value in refseg_scores(inter, union,
                                         self.iou_thrs).items():
            metrics[f'{prefix}{name}'] = value

    def _ordered(self, source: int, by_label: dict) -> List[str]:
        """Group keys' values sorted; length buckets in edge order."""
        if source == len(self.group_keys):  # the length buckets
            return [b for b in self._bucket_names if b in by_label]
        return sorted(by_label)

    def _group_names(self, subgroups: dict) -> Dict[tuple, str]:
        """Reported name of each (source, label): the label, or
        ``'<source>=<label>'`` when several sources share the label."""
        sources_of: Dict[str, set] = {}
        for per_source in subgroups.values():
            for s, by_label in enumerate(per_source):
                for label in by_label:
                    sources_of.setdefault(label, set()).add(s)
        return {(s, label): label if len(srcs) == 1 else
                f'{self._sources[s]}={label}'
                for label, srcs in sources_of.items() for s in srcs}
