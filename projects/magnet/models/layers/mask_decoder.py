"""Masked-attention transformer decoder (the Mask2Former predictor).

Learnt queries attend, layer by layer, to one of the multi-scale pixel
decoder outputs (cycling through them), restricted to the foreground of the
mask predicted by the previous layer. A prediction head (shared by all
layers) turns every intermediate query state into class logits and mask
logits (dot product with the per-pixel mask features). MagNet's official
configuration uses one query and 9 layers.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
from mmengine.model import BaseModule, ModuleList
from mmseg.registry import MODELS
from torch import Tensor

from .positional_encoding import SinePositionalEncoding

__all__ = ['MaskedAttentionDecoderLayer', 'MaskedAttentionDecoder']


class MaskedAttentionDecoderLayer(BaseModule):
    """Masked cross-attention -> self-attention -> FFN, each with residual.

    Post-norm (default): ``q = LN(q + Attn(q))`` for each of the three
    sub-layers; pre-norm: ``q = q + Attn(LN(q))``.

    Args:
        embed_dims (int): query width.
        num_heads (int): attention heads.
        feedforward_channels (int): FFN hidden width (ReLU).
        dropout (float): attention / FFN dropout. Defaults to 0.0.
        pre_norm (bool): pre-norm instead of post-norm. Defaults to False.
        norm_cfg (dict): Defaults to LN.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 feedforward_channels: int = 2048,
                 dropout: float = 0.0,
                 pre_norm: bool = False,
                 norm_cfg: dict = dict(type='LN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.pre_norm = pre_norm
        attn_cfg = dict(
            embed_dims=embed_dims,
            num_heads=num_heads,
            attn_drop=dropout,
            proj_drop=dropout,
            dropout_layer=None,
            batch_first=True)
        self.cross_attn = MultiheadAttention(**attn_cfg)
        self.self_attn = MultiheadAttention(**attn_cfg)
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=feedforward_channels,
            num_fcs=2,
            act_cfg=dict(type='ReLU', inplace=True),
            ffn_drop=dropout,  # after the activation and after fc2
            dropout_layer=None,
            add_identity=True)
        # norms[0]: cross-attn, norms[1]: self-attn, norms[2]: FFN
        self.norms = ModuleList(
            [build_norm_layer(norm_cfg, embed_dims)[1] for _ in range(3)])

    def forward(self,
                query: Tensor,
                query_pos: Tensor,
                memory: Tensor,
                memory_pos: Tensor,
                attn_mask: Optional[Tensor] = None) -> Tensor:
        """Args:
            query (Tensor): ``(B, Q, C)``; query_pos ``(B, Q, C)``.
            memory (Tensor): ``(B, HW, C)``; memory_pos ``(B, HW, C)``.
            attn_mask (Tensor, optional): ``(B * heads, Q, HW)`` bool, True =
                blocked.

        Returns:
            Tensor: ``(B, Q, C)``.
        """
        if self.pre_norm:
            normed = self.norms[0](query)
            query = self.cross_attn(
                query=normed,
                key=memory,
                value=memory,
                identity=query,
                query_pos=query_pos,
                key_pos=memory_pos,
                attn_mask=attn_mask)
            normed = self.norms[1](query)
            query = self.self_attn(
                query=normed,
                identity=query,
                query_pos=query_pos,
                key_pos=query_pos)
            return self.ffn(self.norms[2](query), identity=query)

        query = self.norms[0](
            self.cross_attn(
                query=query,
                key=memory,
                value=memory,
                query_pos=query_pos,
                key_pos=memory_pos,
                attn_mask=attn_mask))
        query = self.norms[1](
            self.self_attn(
                query=query, query_pos=query_pos, key_pos=query_pos))
        return self.norms[2](self.ffn(query))


@MODELS.register_module()
class MaskedAttentionDecoder(BaseModule):
    """Mask2Former transformer decoder with its prediction head.

    Args:
        in_channels (int): channels of the multi-scale features.
        hidden_channels (int): query width. A 1x1 conv projects the
            features when it differs from ``in_channels`` (or when
            ``enforce_input_proj``); otherwise no projection exists.
        mask_channels (int): mask feature channels (mask-embed output).
        num_classes (int): number of classes; the class head has
            ``num_classes + 1`` outputs (last = no object).
        num_queries (int): number of learnt queries.
        num_heads (int): attention heads.
        num_layers (int): number of decoder layers actually built.
        feedforward_channels (int): FFN hidden width.
        num_feature_levels (int): number of multi-scale inputs cycled through
            (layer i attends level ``i % num_feature_levels``).
        dropout (float): Defaults to 0.0.
        pre_norm (bool): Defaults to False.
        enforce_input_proj (bool): Defaults to False.
        masked_attention (bool): Restrict each layer's cross-attention to
            the mask the previous layer predicted (Mask2Former, the paper).
            False: every layer attends to the whole map (a project option,
            for a single query trained from scratch, which otherwise can only
            look inside its current, possibly wrong, mask). Defaults to True.
    """

    def __init__(self,
                 in_channels: int = 256,
                 hidden_channels: int = 256,
                 mask_channels: int = 256,
                 num_classes: int = 1,
                 num_queries: int = 1,
                 num_heads: int = 8,
                 num_layers: int = 9,
                 feedforward_channels: int = 2048,
                 num_feature_levels: int = 3,
                 dropout: float = 0.0,
                 pre_norm: bool = False,
                 enforce_input_proj: bool = False,
                 masked_attention: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.masked_attention = masked_attention
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.num_queries = num_queries
        self.num_classes = num_classes
        self.num_feature_levels = num_feature_levels
        self.positional_encoding = SinePositionalEncoding(
            num_feats=hidden_channels // 2, normalize=True)
        self.layers = ModuleList([
            MaskedAttentionDecoderLayer(
                embed_dims=hidden_channels,
                num_heads=num_heads,
                feedforward_channels=feedforward_channels,
                dropout=dropout,
                pre_norm=pre_norm) for _ in range(num_layers)
        ])
        self.post_norm = nn.LayerNorm(hidden_channels)
        self.query_feat = nn.Embedding(num_queries, hidden_channels)
        self.query_embed = nn.Embedding(num_queries, hidden_channels)
        self.level_embed = nn.Embedding(num_feature_levels, hidden_channels)
        if in_channels != hidden_channels or enforce_input_proj:
            self.input_proj = ModuleList([
                nn.Conv2d(in_channels, hidden_channels, kernel_size=1)
                for _ in range(num_feature_levels)
            ])
        else:
            self.input_proj = None
        self.cls_embed = nn.Linear(hidden_channels, num_classes + 1)
        self.mask_embed = nn.Sequential(
            nn.Linear(hidden_channels, hidden_channels), nn.ReLU(inplace=True),
            nn.Linear(hidden_channels, hidden_channels), nn.ReLU(inplace=True),
            nn.Linear(hidden_channels, mask_channels))

    def init_weights(self) -> None:
        """Reference initialisation (training only): xavier-uniform matrices
        of the decoder layers, c2-xavier input projections, PyTorch defaults
        elsewhere."""
        if self.init_cfg is not None:
            super().init_weights()
            return
        for p in self.layers.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        if self.input_proj is not None:
            for conv in self.input_proj:
                nn.init.kaiming_uniform_(conv.weight, a=1)
                nn.init.constant_(conv.bias, 0)
        self._is_init = True

    def forward_head(
        self,
        query: Tensor,
        mask_features: Tensor,
        attn_mask_size: Optional[Tuple[int, int]] = None
    ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """Prediction head on the current queries.

        Args:
            query (Tensor): ``(B, Q, C)``.
            mask_features (Tensor): ``(B, C_m, H, W)``.
            attn_mask_size (tuple, optional): ``(h, w)`` of the memory the
                next layer attends to; no attention mask when None.

        Returns:
            tuple:
            - cls_pred (Tensor): ``(B, Q, num_classes + 1)``.
            - mask_pred (Tensor): ``(B, Q, H, W)`` mask logits.
            - attn_mask (Tensor | None): ``(B * heads, Q, h * w)`` bool,
              True where the resized mask has probability < 0.5.
        """
        decoder_out = self.post_norm(query)
        cls_pred = self.cls_embed(decoder_out)
        mask_embed = self.mask_embed(decoder_out)
        mask_pred = torch.einsum('bqc,bchw->bqhw', mask_embed, mask_features)
        if attn_mask_size is None:
            return cls_pred, mask_pred, None
        attn_mask = F.interpolate(
            mask_pred,
            size=attn_mask_size,
            mode='bilinear',
            align_corners=False)
        attn_mask = attn_mask.sigmoid().flatten(2).unsqueeze(1).repeat(
            1, self.num_heads, 1, 1).flatten(0, 1) < 0.5
        return cls_pred, mask_pred, attn_mask.detach()

    def forward(self, multi_scale_feats: Sequence[Tensor],
                mask_features: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        """Args:
            multi_scale_feats (Sequence[Tensor]): ``num_feature_levels`` maps
                ``(B, in_channels, h_k, w_k)``.
            mask_features (Tensor): ``(B, mask_channels, H, W)``.

        Returns:
            tuple[list[Tensor], list[Tensor]]: ``num_layers + 1`` class
            predictions ``(B, Q, num_classes + 1)`` and mask predictions
            ``(B, Q, H, W)`` (initial queries first, last layer last).
        """
        if len(multi_scale_feats) != self.num_feature_levels:
            raise ValueError(f'expected {self.num_feature_levels} feature '
                             f'levels, got {len(multi_scale_feats)}')
        bs = mask_features.shape[0]
        memories, memory_pos, sizes = [], [], []
        for level, feat in enumerate(multi_scale_feats):
            sizes.append(tuple(feat.shape[-2:]))
            memory_pos.append(
                self.positional_encoding(feat).flatten(2).transpose(1, 2))
            if self.input_proj is not None:
                feat = self.input_proj[level](feat)
            memory = feat.flatten(2) + self.level_embed.weight[level][None, :,
                                                                       None]
            memories.append(memory.transpose(1, 2))

        query_pos = self.query_embed.weight.unsqueeze(0).repeat(bs, 1, 1)
        query = self.query_feat.weight.unsqueeze(0).repeat(bs, 1, 1)

        cls_preds, mask_preds = [], []
        masked = self.masked_attention
        cls_pred, mask_pred, attn_mask = self.forward_head(
            query, mask_features,
            sizes[0] if self.num_layers > 0 and masked else None)
        cls_preds.append(cls_pred)
        mask_preds.append(mask_pred)
        for i, layer in enumerate(self.layers):
            level = i % self.num_feature_levels
            if attn_mask is not None:
                # a query whose mask blocks every position attends everywhere
                attn_mask[torch.where(
                    attn_mask.sum(-1) == attn_mask.shape[-1])] = False
            query = layer(query, query_pos, memories[level],
                          memory_pos[level], attn_mask)
            next_size = (
                sizes[(i + 1) % self.num_feature_levels]
                if i + 1 < self.num_layers and masked else None)
            cls_pred, mask_pred, attn_mask = self.forward_head(
                query, mask_features, next_size)
            cls_preds.append(cls_pred)
            mask_preds.append(mask_pred)
        return cls_preds, mask_preds
