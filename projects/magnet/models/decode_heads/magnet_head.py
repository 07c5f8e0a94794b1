"""MagNet decode head: Mask2Former pixel decoder + masked-attention decoder.

Over 400 lines: one mmseg decode head whose losses and prediction belong
together (the no-target rules are in :mod:`.no_target`).

Inference follows the official evaluation path
(``docs/official_checkpoints.md``): the mask logits of the last decoder
layer are upsampled with bilinear ``align_corners=True`` interpolation;
probability = sigmoid(logits), binary mask = probability > 0.5. The class
head does not influence the output (the official code softmaxes the class
logits over the singleton query axis).

Training losses (inferred, see ``docs/training.md``): Mask2Former-style
deep supervision over every prediction (initial queries + every layer) with
sigmoid BCE + dice on the matched query's mask and a class cross-entropy
(referent = class 0, no-object = class ``num_classes``).

``no_target`` (off by default) adds the generalised-RIS decision "this
expression refers to nothing" on the same class branch (see
:mod:`.no_target`).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmengine.model import BaseModule
from mmseg.models.utils import get_uncertain_point_coords_with_randomness
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, SampleList
from torch import Tensor

from ..errors import ModelConfigError
from ..utils.precision import float32_region
from .no_target import (no_target_flags, no_target_score,
                        parse_no_target_cfg, split_target_rows)

__all__ = ['MagNetHead']


def _fill(cfg: ConfigType, name: str, **shared) -> dict:
    """``cfg`` with the widths the head shares with its sub-module."""
    cfg = dict(cfg)
    for key, value in shared.items():
        given = cfg.get(key, value)
        if isinstance(given, list):
            given = tuple(given)
        if given != value:
            raise ModelConfigError(
                f'MagNetHead: {name}.{key}={cfg[key]!r} differs from the '
                f'head\'s {value!r}; set it on the head (it is shared)')
        cfg[key] = value
    return cfg


@MODELS.register_module()
class MagNetHead(BaseModule):
    """MagNet's Mask2Former head for referring segmentation (one mask).

    Composed like mmdet's ``Mask2FormerHead``: the pixel decoder and the
    transformer decoder are registered modules given as nested configs; the
    head fills in the widths they share (``in_channels``, ``strides``,
    ``feat_channels``, ``mask_channels``, ``num_queries``, ``num_classes``,
    ``num_transformer_feat_level``), and a nested config that sets one of
    them to another value is an error.

    Several queries (``num_queries > 1``, the best-scoring mask is taken)
    are kept for the generalised-RIS (gRefCOCO) configs; MagNet has one.

    Args:
        in_channels (Sequence[int]): input channels, fine to coarse
            (s1..s4). Defaults to ``(128, 256, 512, 1024)``.
        strides (Sequence[int]): input strides. Defaults to
            ``(4, 8, 16, 32)``.
        feat_channels (int): pixel-decoder width (official ``CONVS_DIM``).
        mask_channels (int): pixel-embedding width (``MASK_DIM``).
        num_queries (int): Defaults to 1.
        num_classes (int): classes of the class head (+1 no-object) and of
            the segmentor. Defaults to 1.
        num_transformer_feat_level (int): pixel-decoder outputs cycled
            through by the decoder. Defaults to 3.
        pixel_decoder (dict): config of the pixel decoder, e.g.
            ``dict(type='MSDeformAttnPixelDecoder', num_encoder_layers=4,
            num_heads=8, feedforward_channels=1024)``.
        transformer_decoder (dict): config of the query decoder, e.g.
            ``dict(type='MaskedAttentionDecoder', hidden_channels=256,
            num_heads=8, num_layers=9, feedforward_channels=2048)``.
        align_corners (bool): upsampling of the mask logits in ``predict``
            (and, through the segmentor, to the original image). Defaults to
            True (official).
        ignore_index (int): GT value ignored by the losses. Defaults to 255.
        loss_cls (dict, optional): softmax class loss config (called with
            per-query weights and ``avg_factor``); None disables it.
        loss_mask (dict, optional): sigmoid BCE config (called with
            ``ignore_index`` and ``avg_factor`` = number of valid points).
        loss_dice (dict, optional): dice config; mmseg ``DiceLoss`` must use
            ``use_sigmoid=True, activate=True`` (ignored points are excluded
            by driving their logits to -1e4).
        no_object_weight (float): class-loss weight of unmatched queries.
            Defaults to 0.1.
        point_sample_cfg (dict, optional): ``num_points``,
            ``oversample_ratio``, ``importance_sample_ratio`` of uncertainty
            point sampling for the mask losses; None computes them densely on
            the GT resized (nearest) to the mask resolution.
        dense_loss_at_gt_size (bool): With ``point_sample_cfg=None``,
            upsample the mask logits (bilinear) to the GT size instead and
            compute the dense losses there: the loss then sees the object
            boundaries inside each stride-4 cell (small images, small
            objects). Defaults to False.
        no_target (dict, optional): Train and predict "refers to nothing"
            (gRefCOCO) on the class branch, e.g. ``dict(loss_weight=1.0)``:
            the queries of a sample with metainfo ``no_target=True`` are
            labelled no-object in ``loss_cls`` with weight ``loss_weight``,
            and its mask is left out of the mask losses (BCE, dice, every
            decoder layer); ``acc_nt`` (logged only) is the last layer's
            accuracy of the decision at probability 0.5. At inference
            :meth:`predict_with_no_target` also gives each sample's
            no-target probability (the segmentor thresholds it with
            ``test_cfg.no_target_threshold``). Needs ``loss_cls``. None
            (default): off, no-target metainfo is not read.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (128, 256, 512, 1024),
                 strides: Sequence[int] = (4, 8, 16, 32),
                 feat_channels: int = 256,
                 mask_channels: int = 256,
                 num_queries: int = 1,
                 num_classes: int = 1,
                 num_transformer_feat_level: int = 3,
                 pixel_decoder: ConfigType = dict(
                     type='MSDeformAttnPixelDecoder'),
                 transformer_decoder: ConfigType = dict(
                     type='MaskedAttentionDecoder'),
                 align_corners: bool = True,
                 ignore_index: int = 255,
                 loss_cls: OptConfigType = dict(
                     type='mmseg.CrossEntropyLoss',
                     use_sigmoid=False,
                     loss_weight=2.0,
                     reduction='mean',
                     avg_non_ignore=True),
                 loss_mask: OptConfigType = dict(
                     type='mmseg.CrossEntropyLoss',
                     use_sigmoid=True,
                     loss_weight=5.0,
                     reduction='mean',
                     avg_non_ignore=True),
                 loss_dice: OptConfigType = dict(
                     type='mmseg.DiceLoss',
                     use_sigmoid=True,
                     activate=True,
                     naive_dice=True,
                     eps=1.0,
                     loss_weight=5.0,
                     reduction='mean'),
                 no_object_weight: float = 0.1,
                 point_sample_cfg: OptConfigType = dict(
                     num_points=12544,
                     oversample_ratio=3.0,
                     importance_sample_ratio=0.75),
                 dense_loss_at_gt_size: bool = False,
                 no_target: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        # attributes read by mmseg's EncoderDecoder
        self.align_corners = align_corners
        self.num_classes = num_classes
        self.out_channels = 1
        # forward() returns a dict with the pixel embeddings
        # ("mask_features"), which the alignment loss uses
        self.provides_pixel_embeddings = True
        self.mask_channels = mask_channels
        self.ignore_index = ignore_index

        self.num_queries = num_queries
        self.no_object_weight = no_object_weight
        self.point_sample_cfg = (
            dict(point_sample_cfg) if point_sample_cfg is not None else None)
        self.dense_loss_at_gt_size = dense_loss_at_gt_size

        self.pixel_decoder = MODELS.build(
            _fill(pixel_decoder, 'pixel_decoder',
                  in_channels=tuple(in_channels), strides=tuple(strides),
                  feat_channels=feat_channels, out_channels=mask_channels,
                  num_outs=num_transformer_feat_level))
        self.transformer_decoder = MODELS.build(
            _fill(transformer_decoder, 'transformer_decoder',
                  in_channels=feat_channels, mask_channels=mask_channels,
                  num_classes=num_classes, num_queries=num_queries,
                  num_feature_levels=num_transformer_feat_level))

        self.loss_cls = MODELS.build(loss_cls) if loss_cls else None
        self.loss_mask = MODELS.build(loss_mask) if loss_mask else None
        self.loss_dice = MODELS.build(loss_dice) if loss_dice else None
        if self.loss_dice is not None and not (
                getattr(self.loss_dice, 'use_sigmoid', True)
                and getattr(self.loss_dice, 'activate', True)):
            raise ModelConfigError(
                'loss_dice must apply a sigmoid to the mask '
                'logits (use_sigmoid=True, activate=True)')
        #: the checked ``no_target`` config, None when off
        self.no_target = parse_no_target_cfg(no_target,
                                             self.loss_cls is not None)

    @property
    def predicts_no_target(self) -> bool:
        """Whether the head trains and predicts the no-target decision."""
        return self.no_target is not None

    # ------------------------------------------------------------------
    # forward / inference
    # ------------------------------------------------------------------
    def forward(self, inputs: Sequence[Tensor]) -> Dict:
        """Args:
            inputs (Sequence[Tensor]): backbone features s1..s4,
                ``(B, C_i, H_i, W_i)`` fine to coarse.

        Returns:
            dict:
            - pred_logits (Tensor): ``(B, Q, num_classes + 1)``, last layer.
            - pred_masks (Tensor): ``(B, Q, H_1, W_1)`` mask logits at
              ``common_stride``, last layer.
            - aux_outputs (list[dict]): the earlier predictions (initial
              queries first), each with ``pred_logits`` and ``pred_masks``.
            - mask_features (Tensor): ``(B, mask_channels, H_1, W_1)``.
        """
        mask_features, multi_scale_feats = self.pixel_decoder(inputs)
        cls_preds, mask_preds = self.transformer_decoder(
            multi_scale_feats, mask_features)
        return dict(
            pred_logits=cls_preds[-1],
            pred_masks=mask_preds[-1],
            aux_outputs=[
                dict(pred_logits=c, pred_masks=m)
                for c, m in zip(cls_preds[:-1], mask_preds[:-1])
            ],
            mask_features=mask_features)

    def _select_mask(self, cls_pred: Tensor, mask_pred: Tensor) -> Tensor:
        """One mask per image, ``(B, 1, H, W)``.

        With one query (MagNet) this is its mask. With several queries the
        one with the highest object probability
        (``1 - softmax(cls)[no-object]``) is taken (not in the official code,
        which has a single query).
        """
        if mask_pred.shape[1] == 1:
            return mask_pred
        score = 1 - cls_pred.softmax(-1)[..., -1]
        best = score.argmax(1)
        return mask_pred[torch.arange(mask_pred.shape[0]), best][:, None]

    def predict(self, inputs: Sequence[Tensor], batch_img_metas: List[dict],
                test_cfg: OptConfigType = None) -> Tensor:
        """Mask logits upsampled to the (padded) input size.

        Args:
            inputs (Sequence[Tensor]): backbone features s1..s4.
            batch_img_metas (list[dict]): uses ``pad_shape`` if present, else
                ``img_shape`` of the first image.
            test_cfg (dict, optional): unused.

        Returns:
            Tensor: ``(B, 1, H, W)`` mask logits (the segmentor applies the
            sigmoid and its ``test_cfg.threshold``).
        """
        return self.predict_with_no_target(inputs, batch_img_metas,
                                           test_cfg)[0]

    def predict_with_no_target(self, inputs: Sequence[Tensor],
                               batch_img_metas: List[dict],
                               test_cfg: OptConfigType = None
                               ) -> Tuple[Tensor, Tensor]:
        """:meth:`predict` and each sample's no-target probability.

        Returns:
            tuple: mask logits ``(B, 1, H, W)`` as :meth:`predict`, and
            ``(B, )`` float32 probabilities that the expression refers to
            nothing (:func:`.no_target.no_target_score`; meaningful when
            the head was trained with ``no_target``).
        """
        outputs = self.forward(inputs)
        mask_logits = self._select_mask(outputs['pred_logits'],
                                        outputs['pred_masks'])
        meta = batch_img_metas[0]
        size = meta['pad_shape'] if 'pad_shape' in meta else meta['img_shape']
        return F.interpolate(
            mask_logits,
            size=tuple(size[:2]),
            mode='bilinear',
            align_corners=self.align_corners), no_target_score(
                outputs['pred_logits'])

    # ------------------------------------------------------------------
    # losses
    # ------------------------------------------------------------------
    def loss(self, inputs: Sequence[Tensor], batch_data_samples: SampleList,
             train_cfg: OptConfigType = None) -> Dict[str, Tensor]:
        """Forward and deep-supervised losses.

        Args:
            inputs (Sequence[Tensor]): backbone features s1..s4.
            batch_data_samples (list[SegDataSample]): ``gt_sem_seg.data``
                ``(1, H, W)`` with 0 = background, 1 = referent,
                ``ignore_index`` = ignored (all of the same, padded size).
            train_cfg (dict, optional): unused.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_mask``, ``loss_dice`` of
            the last prediction and ``d{i}.loss_*`` of the earlier ones
            (``d0`` = initial queries); with ``no_target`` also ``acc_nt``
            and metainfo ``no_target`` is read (see the class docstring).
        """
        outputs = self.forward(inputs)
        return self.loss_by_feat(outputs, batch_data_samples)

    def loss_by_feat(self, outputs: Dict,
                     batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Losses of every prediction in ``outputs`` (see :meth:`loss`)."""
        gt = torch.stack(
            [ds.gt_sem_seg.data for ds in batch_data_samples]).long()
        if gt.dim() == 3:
            gt = gt[:, None]
        no_target = (no_target_flags(batch_data_samples, gt,
                                     self.ignore_index)
                     if self.predicts_no_target else None)
        predictions = [*outputs['aux_outputs'],
                       dict(pred_logits=outputs['pred_logits'],
                            pred_masks=outputs['pred_masks'])]
        losses = {}
        last = len(predictions) - 1
        for i, pred in enumerate(predictions):
            single = self._loss_single(pred['pred_logits'],
                                       pred['pred_masks'], gt, no_target)
            prefix = '' if i == last else f'd{i}.'
            losses.update({prefix + k: v for k, v in single.items()})
        if no_target is not None:
            with torch.no_grad():
                said = no_target_score(outputs['pred_logits']) > 0.5
                losses['acc_nt'] = (said == no_target).float().mean() * 100
        return losses

    def _match(self, cls_pred: Tensor, mask_pred: Tensor, target: Tensor,
               valid: Tensor) -> Tensor:
        """Index of the query assigned to the (single) referent, ``(B, )``.

        With one query it is 0. Otherwise the query of minimum matching cost
        ``-p(referent) + BCE + dice`` on the GT resized to the mask
        resolution (the optimal assignment of a single target).
        """
        bs, num_queries = mask_pred.shape[:2]
        if num_queries == 1:
            return mask_pred.new_zeros(bs, dtype=torch.long)
        with torch.no_grad():
            logits = mask_pred.float().flatten(2)  # (B, Q, N)
            tgt = target.flatten(1)[:, None].expand_as(logits)
            w = valid.flatten(1)[:, None].float()
            bce = (F.binary_cross_entropy_with_logits(
                logits, tgt, reduction='none') * w).sum(-1) / w.sum(-1).clamp(
                    min=1)
            prob = logits.sigmoid() * w
            dice = 1 - (2 * (prob * tgt).sum(-1) + 1) / (
                prob.sum(-1) + (tgt * w).sum(-1) + 1)
            cls_cost = -cls_pred.float().softmax(-1)[..., 0]
            return (cls_cost + bce + dice).argmin(1)

    @float32_region  # the losses stay fp32 under AMP
    def _loss_single(self, cls_pred: Tensor, mask_pred: Tensor,
                     gt: Tensor,
                     no_target: Optional[Tensor] = None
                     ) -> Dict[str, Tensor]:
        """Losses of one prediction.

        Args:
            cls_pred (Tensor): ``(B, Q, num_classes + 1)``.
            mask_pred (Tensor): ``(B, Q, h, w)`` logits.
            gt (Tensor): ``(B, 1, H, W)`` int64 labels.
            no_target (Tensor, optional): ``(B, )`` bool; its samples have
                every query labelled no-object (weight
                ``no_target['loss_weight']``) and no mask loss. A batch of
                only such samples gives mask losses of 0 with a graph.
        """
        bs, num_queries, height, width = mask_pred.shape
        losses = {}
        gt_valid = gt != self.ignore_index
        gt_fg = ((gt > 0) & gt_valid).float()

        # GT at the mask resolution (matching and dense losses)
        gt_small = F.interpolate(
            gt.float(), size=(height, width), mode='nearest')
        valid_small = gt_small != self.ignore_index
        fg_small = ((gt_small > 0) & valid_small).float()
        matched = self._match(cls_pred, mask_pred, fg_small[:, 0],
                              valid_small[:, 0])

        if self.loss_cls is not None:
            labels = cls_pred.new_full((bs, num_queries),
                                       self.num_classes,
                                       dtype=torch.long)
            labels[torch.arange(bs), matched] = 0
            weights = torch.where(labels == self.num_classes,
                                  self.no_object_weight, 1.0).to(cls_pred)
            if no_target is not None:
                labels[no_target] = self.num_classes
                weights[no_target] = self.no_target['loss_weight']
            losses['loss_cls'] = self.loss_cls(
                cls_pred.float().flatten(0, 1),
                labels.flatten(),
                weights.flatten().float(),
                avg_factor=weights.sum().float())

        if self.loss_mask is None and self.loss_dice is None:
            return losses
        logits = mask_pred[torch.arange(bs), matched][:, None].float()
        keep = None if no_target is None else ~no_target
        if keep is not None and not bool(keep.any()):
            # no referent in the batch: zero mask losses, still in the graph
            zero = mask_pred.sum() * 0.0
            if self.loss_mask is not None:
                losses['loss_mask'] = zero
            if self.loss_dice is not None:
                losses['loss_dice'] = zero
            return losses
        logits, gt, gt_fg, gt_valid, fg_small, valid_small = \
            split_target_rows(keep, (logits, gt, gt_fg, gt_valid, fg_small,
                                     valid_small))
        if self.point_sample_cfg is not None:
            with torch.no_grad():
                # labels are unused for a 1-channel prediction
                points = get_uncertain_point_coords_with_randomness(
                    logits, None, **self.point_sample_cfg)
                # border padding: no artificial background at image borders
                target = point_sample(
                    gt_fg, points, padding_mode='border')[:, 0]
                valid = point_sample(
                    gt_valid.float(), points,
                    padding_mode='border')[:, 0] > 1 - 1e-4
            pred = point_sample(logits, points, padding_mode='border')[:, 0]
        elif self.dense_loss_at_gt_size:
            target = gt_fg.flatten(1)
            valid = gt_valid.flatten(1)
            pred = F.interpolate(
                logits, size=gt.shape[-2:], mode='bilinear',
                align_corners=self.align_corners).flatten(1)
        else:
            target = fg_small.flatten(1)
            valid = valid_small.flatten(1)
            pred = logits.flatten(1)
        # (B, N) logits, soft targets in [0, 1], bool validity

        num_valid = valid.sum().float().clamp(min=1)
        if self.loss_mask is not None:
            labels = torch.where(valid, target,
                                 torch.full_like(target, self.ignore_index))
            kwargs = dict(ignore_index=self.ignore_index)
            if getattr(self.loss_mask, 'reduction', 'mean') == 'mean':
                kwargs['avg_factor'] = num_valid
            losses['loss_mask'] = self.loss_mask(pred, labels, **kwargs)
        if self.loss_dice is not None:
            # ignored points: sigmoid(-1e4) == 0 and target 0 -> no
            # contribution to the dice sums (and no gradient)
            dice_pred = pred.masked_fill(~valid, -1e4)
            dice_target = target * valid
            losses['loss_dice'] = self.loss_dice(dice_pred[:, None, :, None],
                                                 dice_target[:, None, :,
                                                             None])
        return losses
