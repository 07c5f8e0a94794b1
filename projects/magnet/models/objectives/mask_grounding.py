"""Mask Grounding: predict masked expression words from text, vision and
the ground-truth mask (training only).

The released MagNet code contains no training code; this module follows what
the paper and the released code tell (tokens masked before the language
encoder; a masked-token predictor over the concatenation of language, visual
and mask tokens; cross-entropy on the masked tokens) and fills the
unpublished parts with BERT/ovr-cnn practice, every choice a constructor
argument. See docs/training.md, "What is inferred".

The head does not know the segmentor. A segmentor that uses it:

1. masks the expression: ``masked_ids, labels = head.mask_tokens(ids, am)``;
2. encodes the image with the *masked* expression (its own multimodal
   encoder, a second pass; the first, unmasked pass must not be reused, its
   features carry the hidden words) -> words ``(B, N, L)`` and a visual map
   ``(B, C, h, w)``;
3. calls ``head.loss(words, am, visual, gt_masks, labels,
   word_embeddings)``.

:class:`~projects.magnet.models.segmentors.MagNet` does this when its
``mask_grounding`` argument is set (also with the alignment module off, the
LAVT-style baseline). Nothing of it runs at inference.

A no-target expression (generalised RIS) keeps its Mask Grounding pass with
an all-zero mask as the mask context: its words are still predictable from
the sentence and the image, and the empty mask tells the predictor that
nothing is referred to (with ``referent_conditioning`` the pooled referent
is then zero). Nothing here depends on the mask being non-empty.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmseg.registry import MODELS

from ..errors import ModelConfigError
from ..layers.mask_encoder import MaskEncoder
from ..layers.positional_encoding import SinePositionalEncoding
from ..language.bert_encoder import additive_attention_mask
from ..utils.inert import attention_key_biases

Tensor = torch.Tensor

#: token-type ids of the predictor's input
TEXT, VISUAL, MASK = 0, 1, 2

@MODELS.register_module()
class MaskGroundingHead(BaseModule):
    """Masked-token predictor over language, visual and mask tokens.

    Input sequence (``T = N + 2 * h * w`` tokens, width ``D``)::

        [ LN(Linear(words)) + type_0 (+ Linear(r))        N text tokens
        | LN(Linear(visual)) + pos + type_1               h*w visual tokens
        | MaskEncoder(gt mask) + pos + type_2 ]           h*w mask tokens
        -> LayerNorm, dropout -> num_layers x BertLayer (padding masked)
        -> text positions -> BertPredictionHeadTransform
        -> vocabulary logits (decoder tied to the word embeddings, + bias)

    ``r`` (``referent_conditioning``) is the referent's appearance: the
    projected visual tokens averaged under the ground-truth mask (mask
    coverage of each cell as weight; 0 for an empty mask). Adding it to the
    text tokens gives every word a direct view of the masked region, which
    attention over ``2 h w`` tokens otherwise has to learn first.

    Args:
        text_channels (int): Width L of the language features.
        visual_channels (int): Width C of the visual map.
        hidden_channels (int, optional): Predictor width D. Defaults to
            ``text_channels`` (needed when the decoder is tied).
        num_layers (int): BertLayers of the predictor. Defaults to 1.
        num_heads (int): Attention heads. Defaults to 12.
        ffn_channels (int, optional): FFN width. Defaults to 4 * D.
        vocab_size (int): Defaults to 30522 (bert-base-uncased).
        visual_level (int): Which encoder output feeds the visual tokens
            (index into the segmentor's stage features). Defaults to -1
            (the coarsest, stride 32).
        visual_grid (tuple, optional): Average-pool the visual map to at
            most this (h, w) grid of tokens (a fine level has too many
            cells to attend over); the referent is pooled at the map's full
            resolution. Defaults to None (one token per cell).
        mask_patch_size (int): Mask samples per token side, see
            :class:`MaskEncoder`.
        tie_word_embeddings (bool): Use the language encoder's word
            embedding matrix as the vocabulary classifier. Defaults to True.
        referent_conditioning (bool): Add the mask-pooled visual feature to
            the text tokens (see above). A project addition, not in the
            paper's formulation (a predictor over the concatenated masked
            text, visual and mask tokens): off by default and in the paper
            configs. Defaults to False.
        dropout (float): Dropout of the predictor. Defaults to 0.1.
        sample_ratio (float): Fraction of each training batch that gets the
            Mask Grounding pass (the first ``ceil(ratio * B)`` samples of
            the shuffled batch). The pass re-runs the whole multimodal
            encoder, so it is ~40% of a step at ratio 1 (the paper's
            setting, the default); a CPU budget can trade it for more
            steps.
        masking (dict): :class:`TokenMasker` config.
        loss (dict): Cross-entropy config (mmseg ``CrossEntropyLoss``).
    """

    def __init__(self,
                 text_channels: int,
                 visual_channels: int,
                 hidden_channels: Optional[int] = None,
                 num_layers: int = 1,
                 num_heads: int = 12,
                 ffn_channels: Optional[int] = None,
                 vocab_size: int = 30522,
                 visual_level: int = -1,
                 visual_grid: Optional[Tuple[int, int]] = None,
                 mask_patch_size: int = 4,
                 tie_word_embeddings: bool = True,
                 referent_conditioning: bool = False,
                 dropout: float = 0.1,
                 sample_ratio: float = 1.0,
                 masking: dict = dict(type='TokenMasker'),
                 loss: dict = dict(
                     type='mmseg.CrossEntropyLoss',
                     use_sigmoid=False,
                     loss_weight=1.0,
                     avg_non_ignore=True,
                     loss_name='loss_mg'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        from transformers import BertConfig
        from transformers.models.bert.modeling_bert import (
            BertLayer,
            BertPredictionHeadTransform,
        )
        hidden = hidden_channels or text_channels
        if hidden % 2:
            raise ModelConfigError(
                f'hidden_channels must be even, got {hidden}')
        if tie_word_embeddings and hidden != text_channels:
            raise ModelConfigError(
                'tie_word_embeddings needs hidden_channels == text_channels '
                f'(the word-embedding width), got {hidden} and '
                f'{text_channels}')
        if not 0 < sample_ratio <= 1:
            raise ModelConfigError(
                f'sample_ratio must lie in (0, 1], got {sample_ratio}')
        self.sample_ratio = float(sample_ratio)
        self.visual_level = visual_level
        self.visual_grid = tuple(visual_grid) if visual_grid else None
        self.text_channels = text_channels
        self.visual_channels = visual_channels
        self.vocab_size = vocab_size
        self.tie_word_embeddings = tie_word_embeddings
        self.masker = MODELS.build(
            {**dict(vocab_size=vocab_size), **masking})
        if self.masker.vocab_size != vocab_size:
            raise ModelConfigError(
                f'masking.vocab_size {self.masker.vocab_size} != vocab_size '
                f'{vocab_size}')

        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            intermediate_size=ffn_channels or 4 * hidden,
            hidden_act='gelu',
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            layer_norm_eps=1e-12)
        config._attn_implementation = 'sdpa'
        self.text_proj = nn.Sequential(
            nn.Linear(text_channels, hidden), nn.LayerNorm(hidden))
        self.visual_proj = nn.Sequential(
            nn.Linear(visual_channels, hidden), nn.LayerNorm(hidden))
        self.mask_encoder = MaskEncoder(hidden, mask_patch_size)
        self.referent_proj = (nn.Linear(hidden, hidden)
                              if referent_conditioning else None)
        self.position = SinePositionalEncoding(hidden // 2)
        self.type_embed = nn.Embedding(3, hidden)
        self.input_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            BertLayer(config, layer_idx=i) for i in range(num_layers))
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = (None if tie_word_embeddings else nn.Linear(
            hidden, vocab_size, bias=False))
        self.decoder_bias = nn.Parameter(torch.zeros(vocab_size))
        self.loss_decode = MODELS.build(loss)

    def inert_parameters(self) -> dict:
        """The predictor layers' key biases (a softmax follows)."""
        return attention_key_biases(self.layers, 'layers')

    def init_weights(self) -> None:
        """BERT-style init: trunc-normal(0.02) linears/embeddings, zero
        biases, unit LayerNorms (mask-encoder convs keep PyTorch's)."""
        super().init_weights()
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                trunc_normal_(m.weight, std=0.02)
                if getattr(m, 'bias', None) is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.decoder_bias)

    # ------------------------------------------------------------------
    def mask_tokens(self, input_ids: Tensor, attention_mask: Tensor,
                    generator: Optional[torch.Generator] = None,
                    mask_only: bool = False) -> Tuple[Tensor, Tensor]:
        """(B, N) ids -> masked ids (B, N) and labels (B, N) (original id
        where masked, ``masker.ignore_index`` elsewhere); see
        :class:`TokenMasker`."""
        return self.masker(input_ids, attention_mask, generator, mask_only)

    def forward(self, words: Tensor, attention_mask: Tensor, visual: Tensor,
                masks: Tensor) -> Tensor:
        """Contextualised text tokens.

        Args:
            words (Tensor): (B, N, L) features of the masked expression.
            attention_mask (Tensor): (B, N), 1 for real tokens.
            visual (Tensor): (B, C, h, w) visual map.
            masks (Tensor): (B, 1, H, W) ground-truth masks in [0, 1].

        Returns:
            Tensor: (B, N, D) predictor outputs at the text positions.
        """
        B, N = words.shape[:2]
        types = self.type_embed.weight
        text = self.text_proj(words) + types[TEXT]
        vis = self.visual_proj(visual.flatten(2).transpose(1, 2))
        if self.referent_proj is not None:
            referent = self.pool_referent(vis, masks, visual.shape[-2:])
            text = text + self.referent_proj(referent)[:, None]
        if self.visual_grid is not None:
            grid = (min(self.visual_grid[0], visual.shape[-2]),
                    min(self.visual_grid[1], visual.shape[-1]))
            if grid != tuple(visual.shape[-2:]):
                visual = F.adaptive_avg_pool2d(visual, grid)
                vis = self.visual_proj(visual.flatten(2).transpose(1, 2))
        h, w = visual.shape[-2:]
        pos = self.position(visual).to(visual.dtype).flatten(2).transpose(
            1, 2)  # (B, hw, D)
        vis = vis + pos + types[VISUAL]
        msk = self.mask_encoder(masks, (h, w)) + pos + types[MASK]
        tokens = self.dropout(self.input_norm(torch.cat([text, vis, msk], 1)))
        valid = torch.cat(
            [attention_mask,
             attention_mask.new_ones(B, 2 * h * w)], dim=1)
        additive = additive_attention_mask(valid, tokens.dtype)
        for layer in self.layers:
            out = layer(tokens, additive)
            tokens = out[0] if isinstance(out, tuple) else out
        return tokens[:, :N]

    @staticmethod
    def pool_referent(tokens: Tensor, masks: Tensor,
                      grid: Tuple[int, int]) -> Tensor:
        """Mask-weighted mean of grid tokens.

        Args:
            tokens (Tensor): (B, h * w, D) tokens in row-major grid order.
            masks (Tensor): (B, 1, H, W) masks in [0, 1].
            grid (tuple): (h, w).

        Returns:
            Tensor: (B, D); zeros where the mask is empty.
        """
        cover = F.adaptive_avg_pool2d(masks.to(tokens.dtype),
                                      grid).flatten(1)  # (B, hw)
        return (cover[..., None] * tokens).sum(1) / cover.sum(
            1, keepdim=True).clamp(min=1e-6)

    def logits(self, hidden: Tensor,
               word_embeddings: Optional[Tensor] = None) -> Tensor:
        """(..., D) predictor outputs -> (..., vocab_size) logits."""
        hidden = self.transform(hidden)
        if self.decoder is not None:
            return self.decoder(hidden) + self.decoder_bias
        if word_embeddings is None:
            raise ValueError('tie_word_embeddings=True: pass the language '
                             "encoder's word embedding matrix (V, D)")
        if tuple(word_embeddings.shape) != (self.vocab_size,
                                            hidden.shape[-1]):
            raise ValueError(
                f'word_embeddings has shape {tuple(word_embeddings.shape)}, '
                f'expected ({self.vocab_size}, {hidden.shape[-1]})')
        return F.linear(hidden, word_embeddings, self.decoder_bias)

    def predict(self, words: Tensor, attention_mask: Tensor, visual: Tensor,
                masks: Tensor, labels: Tensor,
                word_embeddings: Optional[Tensor] = None
                ) -> Tuple[Tensor, Tensor]:
        """Logits (M, V) and targets (M, ) of the M masked positions."""
        selected = labels != self.masker.ignore_index
        hidden = self.forward(words, attention_mask, visual, masks)
        return self.logits(hidden[selected], word_embeddings), \
            labels[selected]

    def loss(self, words: Tensor, attention_mask: Tensor, visual: Tensor,
             masks: Tensor, labels: Tensor,
             word_embeddings: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Cross-entropy on the masked tokens.

        Args: as :meth:`forward`, plus ``labels`` (B, N) from
            :meth:`mask_tokens` and the tied ``word_embeddings`` (V, D).

        Returns:
            dict: ``loss_mg`` (mean over masked tokens; 0 with a graph when
            nothing is masked) and ``acc_mg`` (masked-token accuracy, %,
            logged only).
        """
        logits, target = self.predict(words, attention_mask, visual, masks,
                                      labels, word_embeddings)
        name = self.loss_decode.loss_name
        if target.numel() == 0:
            # keep every parameter in the graph (DDP) with a zero loss
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            return {name: zero + words.sum() * 0.0,
                    'acc_mg': words.new_zeros(())}
        loss = self.loss_decode(logits.float(), target,
                                avg_factor=target.numel())
        with torch.no_grad():
            acc = (logits.argmax(-1) == target).float().mean() * 100
        return {name: loss, 'acc_mg': acc}
