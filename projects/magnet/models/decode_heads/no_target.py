"""The no-target decision of :class:`MagNetHead` (generalised RIS).

A gRefCOCO expression may refer to nothing in the image (metainfo
``no_target=True``, ``gt_sem_seg`` all background). With
``MagNetHead(no_target=dict(...))`` the decision is the query's existing
class branch: its last output is Mask2Former's no-object class, so "no
target" = every query is no-object. Reusing it (instead of a new 2-way
layer) adds no parameter, so every checkpoint loads unchanged, the branch is
deep-supervised like the masks (every decoder layer), and with several
queries the sample-level score follows the rule that already picks the mask
(the best query's object probability).

* training: the class cross-entropy labels every query of a no-target
  sample no-object with weight ``loss_weight`` (a referent's matched query
  has weight 1, the unmatched queries of a target sample
  ``no_object_weight``); the mask losses see the target samples only;
* inference: ``no_target_score`` = ``min_q softmax(cls_q)[no-object]``, the
  no-object probability of the query most likely to be the referent.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from mmseg.utils import SampleList

from ...utils.errors import InvalidInputError
from ..errors import MissingSampleKeyError, ModelConfigError

Tensor = torch.Tensor

__all__ = ['parse_no_target_cfg', 'no_target_flags', 'no_target_score']

#: the keys ``MagNetHead(no_target=...)`` takes, with their defaults
NO_TARGET_DEFAULTS = dict(loss_weight=1.0)


def parse_no_target_cfg(no_target: Optional[dict],
                        has_loss_cls: bool) -> Optional[dict]:
    """``no_target`` checked and completed (None: the switch is off).

    Raises:
        ModelConfigError: not a dict, an unknown key, a weight that is not a
            number > 0, or no class loss to train the decision with.
    """
    if no_target is None:
        return None
    if not isinstance(no_target, dict):
        raise ModelConfigError(
            f'MagNetHead: no_target must be None or a dict like '
            f'{NO_TARGET_DEFAULTS}, got {no_target!r}')
    unknown = sorted(set(no_target) - set(NO_TARGET_DEFAULTS))
    if unknown:
        raise ModelConfigError(
            f'MagNetHead: no_target has unknown keys {unknown}; it takes '
            f'{sorted(NO_TARGET_DEFAULTS)}')
    cfg = {**NO_TARGET_DEFAULTS, **dict(no_target)}
    weight = cfg['loss_weight']
    if isinstance(weight, bool) or not isinstance(
            weight, (int, float)) or not weight > 0:
        raise ModelConfigError(
            f'MagNetHead: no_target.loss_weight must be a number > 0, got '
            f'{weight!r}')
    if not has_loss_cls:
        raise ModelConfigError(
            'MagNetHead: no_target is decided by the class branch, which '
            'needs loss_cls; set loss_cls (e.g. the default '
            'mmseg.CrossEntropyLoss) or no_target=None')
    cfg['loss_weight'] = float(weight)
    return cfg


def no_target_flags(batch_data_samples: SampleList, gt: Tensor,
                    ignore_index: int) -> Tensor:
    """Metainfo ``no_target`` of each sample, checked against its mask.

    Args:
        batch_data_samples (list[SegDataSample]): with metainfo
            ``no_target`` (bool).
        gt (Tensor): ``(B, 1, H, W)`` int64 labels of the same samples.
        ignore_index (int): the ignored label.

    Returns:
        Tensor: ``(B, )`` bool on ``gt``'s device.

    Raises:
        MissingSampleKeyError: a sample without ``no_target``.
        InvalidInputError: a no-target sample whose mask has foreground
            (the ground truth contradicts itself).
    """
    flags = []
    for i, sample in enumerate(batch_data_samples):
        meta = sample.metainfo
        if 'no_target' not in meta:
            raise MissingSampleKeyError(
                f'data sample {i} has no "no_target" in its metainfo, which '
                'MagNetHead(no_target=...) trains on: add "no_target" to '
                'PackSegInputs.meta_keys (GRefCOCODataset gives it)')
        flags.append(bool(meta['no_target']))
    flags = torch.tensor(flags, dtype=torch.bool, device=gt.device)
    foreground = ((gt > 0) & (gt != ignore_index)).flatten(1).sum(1)
    wrong = (flags & (foreground > 0)).nonzero()[:, 0].tolist()
    if wrong:
        i = wrong[0]
        raise InvalidInputError(
            f'data sample {i} has metainfo no_target=True but '
            f'{int(foreground[i])} foreground pixels in gt_sem_seg; a '
            'no-target sample must have an all-background mask')
    return flags


def no_target_score(cls_pred: Tensor) -> Tensor:
    """Probability that a sample refers to nothing.

    Args:
        cls_pred (Tensor): ``(B, Q, num_classes + 1)`` class logits, the
            last class = no-object.

    Returns:
        Tensor: ``(B, )`` float32 in [0, 1], ``min_q p_q(no-object)``.
    """
    return cls_pred.float().softmax(-1)[..., -1].min(1).values


def split_target_rows(keep: Optional[Tensor],
                      tensors: Sequence[Tensor]) -> list:
    """``tensors`` restricted to the rows where ``keep`` is True (all rows
    when ``keep`` is None or all True: the tensors themselves)."""
    if keep is None or bool(keep.all()):
        return list(tensors)
    return [t[keep] for t in tensors]
