"""MagNet segmentor: multimodal Swin + BERT, fused both ways, + mask head.

Over 400 lines: the one mmseg segmentor class of the model (its config
checks are in :mod:`.config_checks`, its training-module loading in
:mod:`.training_modules`).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import (ConfigType, OptConfigType, OptMultiConfig,
                         OptSampleList, SampleList, add_prefix)

from ..decode_heads.no_target import no_target_flags
from ..errors import MissingSampleKeyError, ModelConfigError
from ..utils.inert import collect_inert_parameters, param_names
from .config_checks import (OUTPUT_SIZES, SENTENCE_POOLING,
                            check_alignment_loss, check_fusion_widths,
                            check_mask_grounding, check_no_target,
                            check_sentence_pooling, check_stages,
                            check_test_cfg)
from .no_target import apply_no_target, check_whole_mode
from .training_modules import tolerate_training_modules

Tensor = torch.Tensor

__all__ = ['MagNet', 'TEXT_KEYS', 'OUTPUT_SIZES', 'SENTENCE_POOLING']

TEXT_KEYS = ('input_ids', 'attention_mask')


@MODELS.register_module()
class MagNet(EncoderDecoder):
    """MagNet: referring image segmentation with bidirectional fusion.

    Every sample is one (image, expression) pair. The expression travels in
    the data sample's metainfo as ``input_ids`` and ``attention_mask`` (N
    token slots, see the ``TokenizeText`` transform). :meth:`encode` runs the
    vision and language encoders stage by stage::

        for s in stages:
            x_s  = Swin blocks of stage s (x_{s-1}')
            l_s  = BERT layer group s (l_{s-1}')
            Y_s, x_s' = vision fusion (PWAM, alignment module, gate, merge)
            l_s' = language fusion (x_s, l_s)

    and the decode head segments from ``[Y_1..Y_4]``.

    Training adds, when configured, two objectives that do not exist at
    inference: Mask Grounding (``mask_grounding``, a second encoder pass on
    the expression with masked words, see :class:`MaskGroundingHead`) and
    the cross-modal alignment loss (``alignment_loss`` on the head's pixel
    embeddings and ``lang_proj`` of the sentence embedding, see
    :class:`CrossModalAlignmentLoss`). Both also work with the alignment
    module switched off (``backbone.use_alignment=False``, a LAVT-style
    model).

    Args:
        backbone (dict): A :class:`MultimodalSwin` config.
        text_encoder (dict): A :class:`BertLanguageEncoder` config.
        decode_head (dict): A :class:`MagNetHead` config, or any mmseg
            decode head giving 1 channel (sigmoid, ``test_cfg.threshold``)
            or 2 channels (softmax, argmax); with a stock head the alignment
            loss must be off (it needs the head's pixel embeddings).
        lang_proj_dim (int, optional): Width of ``lang_proj``, a sentence
            projection used by training objectives (present in the released
            weights, unused at inference). None to leave it out.
        mask_grounding (dict, optional): A :class:`MaskGroundingHead` config
            (training only).
        alignment_loss (dict, optional): A :class:`CrossModalAlignmentLoss`
            config (training only; needs ``lang_proj_dim`` equal to the
            head's ``mask_channels``).
        sentence_pooling (str): Sentence embedding for the alignment loss:
            ``'mean'`` of the real tokens or the ``'cls'`` token.
        freeze_inert (bool): Freeze (``requires_grad=False``) the parameters
            that no loss of this configuration can move: those kept only so
            that official checkpoints load strictly, those inert by design
            (a key bias before a softmax, a bias an InstanceNorm removes),
            the last language fusion without Mask Grounding and alignment
            loss, ``lang_proj`` without the alignment loss. Each module
            declares its own (``inert_parameters()``); the frozen names and
            reasons are in :attr:`frozen_inert`. Every parameter left
            trainable then receives a gradient in every step, so DDP needs
            no ``find_unused_parameters``. Defaults to True.
        test_cfg (dict): ``mode='whole'``; ``output_size``: ``'input'``
            (masks at the network input size — the official protocol, which
            scores against the resized ground truth) or ``'original'``
            (masks resized to the original image size); ``threshold``
            (default 0.5): the probability above which a pixel of a
            1-channel output is the referent. The one place that decides
            both (``predict``, the API and the visualiser read them here).
            ``no_target_threshold`` (default 0.5; only with a head that
            predicts no-target, ``MagNetHead(no_target=...)``): the
            no-target probability above which a sample is predicted to
            refer to nothing, see :meth:`predict`.

    No-target training (generalised RIS, with ``decode_head.no_target``):
    the head trains the decision and leaves no-target masks out of its mask
    losses; the alignment loss leaves no-target samples out of both terms
    (it aligns pixels with the description of a referent, and there is
    none); Mask Grounding keeps them, with their empty mask as the mask
    context (see ``docs/training.md``, "No-target expressions").
    """

    def __init__(self,
                 backbone: ConfigType,
                 text_encoder: ConfigType,
                 decode_head: ConfigType,
                 lang_proj_dim: Optional[int] = 256,
                 mask_grounding: OptConfigType = None,
                 alignment_loss: OptConfigType = None,
                 sentence_pooling: str = 'mean',
                 freeze_inert: bool = True,
                 auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 pretrained: Optional[str] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        test_cfg = ConfigDict({
            'mode': 'whole',
            'output_size': 'input',
            'threshold': 0.5,
            **(test_cfg or {})
        })
        check_test_cfg(test_cfg)
        check_sentence_pooling(sentence_pooling)
        super().__init__(
            backbone=backbone,
            decode_head=decode_head,
            auxiliary_head=auxiliary_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            pretrained=pretrained,
            init_cfg=init_cfg)
        self.text_encoder = MODELS.build(text_encoder)
        check_no_target(self.test_cfg, self.decode_head)
        if self.predicts_no_target:
            check_whole_mode(self.test_cfg)
        check_stages(self.backbone, self.text_encoder)
        check_fusion_widths(self.backbone, self.text_encoder)
        self.lang_proj = (
            nn.Linear(self.text_encoder.channels, lang_proj_dim)
            if lang_proj_dim else None)
        self.sentence_pooling = sentence_pooling
        self.mask_grounding = (
            MODELS.build(mask_grounding) if mask_grounding else None)
        self.alignment_loss = (
            MODELS.build(alignment_loss) if alignment_loss else None)
        if self.mask_grounding is not None:
            check_mask_grounding(self.mask_grounding, self.backbone,
                                 self.text_encoder)
        if self.alignment_loss is not None:
            check_alignment_loss(self.decode_head, self.lang_proj,
                                 lang_proj_dim)
        self.register_load_state_dict_post_hook(
            tolerate_training_modules)
        #: full parameter name -> why no loss can move it (frozen)
        self.frozen_inert: Dict[str, str] = {}
        if freeze_inert:
            self.frozen_inert = dict(collect_inert_parameters(self))
            params = dict(self.named_parameters())
            for name in self.frozen_inert:
                params[name].requires_grad_(False)

    def inert_parameters(self) -> Dict[str, str]:
        """Modules whose output reaches no loss of this configuration (the
        sub-modules declare their own inert parameters)."""
        out = {}
        fusions = getattr(self.text_encoder, 'fusions', None)
        if fusions is not None and not (self.with_mask_grounding
                                        or self.with_alignment_loss):
            last = len(fusions) - 1
            out.update({
                n: 'the last language fusion reaches no loss (its words are '
                'used by Mask Grounding and the alignment loss only)'
                for n in param_names(fusions[last],
                                     f'text_encoder.fusions.{last}')})
        if self.lang_proj is not None and not self.with_alignment_loss:
            out.update({n: 'sentence projection of the alignment loss only'
                        for n in param_names(self.lang_proj, 'lang_proj')})
        return out

    @property
    def with_mask_grounding(self) -> bool:
        return self.mask_grounding is not None

    @property
    def with_alignment_loss(self) -> bool:
        return self.alignment_loss is not None

    # ------------------------------------------------------------------
    # inputs
    # ------------------------------------------------------------------
    def text_inputs(self, batch_img_metas: List[dict],
                    device: torch.device) -> Tuple[Tensor, Tensor]:
        """Stack the token ids and masks of a batch.

        Returns:
            tuple: input_ids (B, N) int64 and attention_mask (B, N) int64.
        """
        out = []
        for key in TEXT_KEYS:
            rows = []
            for i, meta in enumerate(batch_img_metas):
                if key not in meta:
                    raise MissingSampleKeyError(
                        f'data sample {i} has no "{key}" in its metainfo: '
                        'add the TokenizeText transform to the pipeline and '
                        f'{TEXT_KEYS} to PackSegInputs.meta_keys')
                rows.append(torch.as_tensor(np.asarray(meta[key])))
            lengths = {r.shape for r in rows}
            if len(lengths) != 1:
                raise ModelConfigError(
                    f'"{key}" has different lengths in one batch: '
                    f'{sorted(lengths)}; give every TokenizeText of the '
                    'pipelines the same max_length')
            out.append(torch.stack(rows).to(device=device, dtype=torch.long))
        return out[0], out[1]

    # ------------------------------------------------------------------
    # encoder
    # ------------------------------------------------------------------
    def encode(self,
               inputs: Tensor,
               input_ids: Tensor,
               attention_mask: Tensor,
               return_words: bool = False) -> Dict[str, object]:
        """Bidirectional multimodal encoding.

        Args:
            inputs (Tensor): Images, (B, 3, H, W).
            input_ids (Tensor): (B, N) token ids.
            attention_mask (Tensor): (B, N), 1 for real tokens.
            return_words (bool): Also run the last language fusion (its
                output does not reach the segmentation).

        Returns:
            dict: ``feats`` (list of (B, C_s, H_s, W_s)), ``words`` (B, N, L)
            (after the last fusion if ``return_words`` else before it),
            ``additive_mask`` (B, 1, 1, N).
        """
        backbone, text = self.backbone, self.text_encoder
        x, hw_shape = backbone.embed(inputs)
        words, additive_mask = text.embed(input_ids, attention_mask)
        num_stages = len(backbone.stages)
        feats = []
        for s in range(num_stages):
            last = s == num_stages - 1
            x = backbone.forward_blocks(s, x, hw_shape)
            words = text.forward_stage(s, words, additive_mask)
            feat, x_next, next_hw = backbone.fuse(
                s, x, hw_shape, words, attention_mask, need_next=not last)
            if not last or return_words:
                words = text.fuse(s, x, words, additive_mask)
            feats.append(feat)
            x, hw_shape = x_next, next_hw
        return dict(feats=feats, words=words, additive_mask=additive_mask)

    def extract_feat(self, inputs: Tensor,
                     batch_img_metas: Optional[List[dict]] = None
                     ) -> List[Tensor]:
        """Multimodal features [Y_1..Y_4] for the decode head."""
        if batch_img_metas is None:
            raise ValueError('MagNet needs the expression: pass the batch '
                             'metainfo (with input_ids/attention_mask)')
        ids, mask = self.text_inputs(batch_img_metas, inputs.device)
        return self.encode(inputs, ids, mask)['feats']

    # ------------------------------------------------------------------
    # mmseg segmentor API
    # ------------------------------------------------------------------
    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: List[dict]) -> Tensor:
        """Mask logits at the input size, (B, 1, H, W)."""
        feats = self.extract_feat(inputs, batch_img_metas)
        return self.decode_head.predict(feats, batch_img_metas,
                                        self.test_cfg)

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Segmentation losses (``decode.*``), the auxiliary heads'
        (``aux.*``) and, when configured, ``loss_mg`` / ``acc_mg`` (Mask
        Grounding) and ``loss_cal_p2p`` / ``loss_cal_p2t`` (alignment)."""
        metas = [s.metainfo for s in data_samples]
        ids, mask = self.text_inputs(metas, inputs.device)
        enc = self.encode(inputs, ids, mask,
                          return_words=self.with_alignment_loss)
        feats = enc['feats']
        losses = dict()
        if self.with_alignment_loss:
            outputs = self.decode_head.forward(feats)
            if not isinstance(outputs, dict) or 'mask_features' not in outputs:
                raise KeyError(
                    f'alignment_loss needs pixel embeddings: '
                    f'{type(self.decode_head).__name__}.forward() returned '
                    f'no "mask_features"')
            losses.update(
                add_prefix(
                    self.decode_head.loss_by_feat(outputs, data_samples),
                    'decode'))
            losses.update(
                self.alignment_loss(outputs['mask_features'],
                                    self.sentence_embedding(
                                        enc['words'], mask),
                                    self._gt_labels(data_samples),
                                    self._target_samples(data_samples)))
        else:
            losses.update(
                self._decode_head_forward_train(feats, data_samples))
        if self.with_auxiliary_head:
            losses.update(
                self._auxiliary_head_forward_train(feats, data_samples))
        if self.with_mask_grounding:
            losses.update(self.mask_grounding_loss(inputs, data_samples,
                                                   ids, mask))
        return losses

    # ------------------------------------------------------------------
    # training objectives
    # ------------------------------------------------------------------
    def sentence_embedding(self, words: Tensor,
                           attention_mask: Tensor) -> Tensor:
        """``lang_proj`` of the pooled words: (B, N, L) -> (B, D)."""
        if self.sentence_pooling == 'cls':
            pooled = words[:, 0]
        else:
            weights = attention_mask.to(words.dtype)[..., None]
            pooled = (words * weights).sum(1) / weights.sum(1).clamp(min=1)
        return self.lang_proj(pooled)

    @property
    def predicts_no_target(self) -> bool:
        """Whether the decode head decides "refers to nothing"."""
        return getattr(self.decode_head, 'predicts_no_target', False)

    def _target_samples(self, data_samples: SampleList) -> Optional[Tensor]:
        """(B, ) bool, False for a no-target sample, when the head trains
        no-target (None otherwise: every sample has a referent)."""
        if not self.predicts_no_target:
            return None
        return ~no_target_flags(data_samples, self._gt_labels(data_samples),
                                self.decode_head.ignore_index)

    def _gt_labels(self, data_samples: SampleList) -> Tensor:
        """(B, 1, H, W) int64 ground truth of the batch."""
        gt = torch.stack([ds.gt_sem_seg.data for ds in data_samples]).long()
        return gt[:, None] if gt.dim() == 3 else gt

    def word_embeddings(self) -> Tensor:
        """The language encoder's word-embedding matrix (V, L)."""
        return self.text_encoder.bert.embeddings.word_embeddings.weight

    def mask_grounding_loss(self, inputs: Tensor, data_samples: SampleList,
                            input_ids: Tensor,
                            attention_mask: Tensor) -> Dict[str, Tensor]:
        """Mask Grounding loss (``loss_mg``, ``acc_mg``) on the first
        ``ceil(sample_ratio * B)`` samples of the batch."""
        ratio = getattr(self.mask_grounding, 'sample_ratio', 1.0)
        if ratio < 1:
            k = max(1, math.ceil(ratio * inputs.shape[0]))
            inputs, data_samples = inputs[:k], data_samples[:k]
            input_ids, attention_mask = input_ids[:k], attention_mask[:k]
        return self.mask_grounding.loss(*self._mask_grounding_inputs(
            inputs, data_samples, input_ids, attention_mask))

    def _mask_grounding_inputs(self,
                               inputs: Tensor,
                               data_samples: SampleList,
                               input_ids: Tensor,
                               attention_mask: Tensor,
                               generator: Optional[torch.Generator] = None
                               ) -> tuple:
        """Mask the expressions and encode them with the images again (the
        first, unmasked pass cannot be reused: its features carry the hidden
        words). Returns the arguments of ``MaskGroundingHead.loss`` /
        ``predict``: words, attention mask, visual map, GT masks, labels,
        word embeddings."""
        head = self.mask_grounding
        masked_ids, labels = head.mask_tokens(input_ids, attention_mask,
                                              generator)
        enc = self.encode(inputs, masked_ids, attention_mask,
                          return_words=True)
        masks = (self._gt_labels(data_samples) == 1).to(inputs.dtype)
        return (enc['words'], attention_mask, enc['feats'][head.visual_level],
                masks, labels, self.word_embeddings())

    def _forward(self, inputs: Tensor,
                 data_samples: OptSampleList = None) -> dict:
        """Raw head outputs (``pred_masks`` (B, Q, H/4, W/4), ...)."""
        if data_samples is None:
            raise ValueError('MagNet._forward needs data samples carrying '
                             'input_ids/attention_mask')
        feats = self.extract_feat(inputs, [s.metainfo for s in data_samples])
        return self.decode_head.forward(feats)

    def predict(self, inputs: Tensor,
                data_samples: OptSampleList = None) -> SampleList:
        """mmseg's ``predict``; with a no-target head each sample also gets
        ``pred_no_target`` (bool: ``no_target_score >
        test_cfg.no_target_threshold``), ``no_target_score`` (float, the
        head's no-target probability) and, when ``pred_no_target``, an
        all-background ``pred_sem_seg`` (``seg_logits`` keeps the mask
        probabilities, for analysis)."""
        if not self.predicts_no_target:
            return super().predict(inputs, data_samples)
        check_whole_mode(self.test_cfg)
        if data_samples is None:
            raise ValueError('MagNet.predict needs data samples carrying '
                             'input_ids/attention_mask')
        metas = [s.metainfo for s in data_samples]
        feats = self.extract_feat(inputs, metas)
        logits, scores = self.decode_head.predict_with_no_target(
            feats, metas, self.test_cfg)
        samples = self.postprocess_result(logits, data_samples)
        return apply_no_target(
            samples, scores,
            float(self.test_cfg.get('no_target_threshold', 0.5)))

    def postprocess_result(self, seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """Referent probabilities and binary masks.

        ``seg_logits`` (B, C, H, W) are the head's logits at the (padded)
        input size. Per sample, after removing padding and (``test_cfg.
        output_size='original'``) resizing to the original image:

        * C == 1 (MagNet, or a stock head with ``out_channels=1``):
          ``seg_logits`` = ``sigmoid`` (1, H, W) and ``pred_sem_seg`` =
          ``prob > test_cfg.threshold``;
        * C >= 2 (a stock head with softmax classes): ``seg_logits`` =
          ``softmax`` over the classes, (C, H, W), and ``pred_sem_seg`` =
          their argmax (mmseg's rule); for C == 2 class 1 is the referent.
        """
        B, C = seg_logits.shape[:2]
        if data_samples is None:
            data_samples = [SegDataSample() for _ in range(B)]
        H, W = seg_logits.shape[-2:]
        threshold = float(self.test_cfg['threshold'])
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            logits = seg_logits[i:i + 1]
            if 'img_shape' in meta:
                left, right, top, bottom = meta.get('padding_size',
                                                    [0, 0, 0, 0])
                logits = logits[..., top:H - bottom, left:W - right]
            if self.test_cfg['output_size'] == 'original' and \
                    'ori_shape' in meta and \
                    tuple(logits.shape[-2:]) != tuple(meta['ori_shape'][:2]):
                logits = F.interpolate(
                    logits, size=tuple(meta['ori_shape'][:2]),
                    mode='bilinear', align_corners=self.align_corners)
            if C == 1:
                prob = logits[0].sigmoid()
                pred = (prob > threshold).long()
            else:
                prob = logits[0].softmax(0)
                pred = prob.argmax(0, keepdim=True)
            sample.set_data({
                'seg_logits': PixelData(data=prob),
                'pred_sem_seg': PixelData(data=pred)
            })
        return data_samples
