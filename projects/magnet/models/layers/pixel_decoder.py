"""Mask2Former-style multi-scale deformable-attention pixel decoder.

MagNet's variant (Section 2.6 of the design spec) runs the deformable encoder
over all four backbone levels, stride 4 included, so no extra FPN level is
built and the mask features come from the stride-4 encoder output. The general
Mask2Former case (encoder on the coarse levels + FPN levels down to
``common_stride``) is supported as well.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_norm_layer
from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule, ModuleList
from mmseg.registry import MODELS
from torch import Tensor

from ...compat import has_compiled_mmcv_ops
from .ms_deform_attn import (MSDeformAttn, fill_value_table, gather_layout,
                             sample_planes, value_table_length)

__all__ = [
    'SinePositionalEncoding', 'MSDeformAttnEncoderLayer',
    'MSDeformAttnEncoder', 'MSDeformAttnPixelDecoder'
]


class SinePositionalEncoding(nn.Module):
    """DETR sine positional encoding of an unpadded feature map.

    ``pos[:, :F]`` encodes the row (y), ``pos[:, F:]`` the column (x) with
    interleaved sin/cos of ``coord / temperature^(2*floor(i/2)/F)``. With
    ``normalize`` the 1-based coordinates are divided by ``(size + eps)`` and
    multiplied by ``scale``. Float32 arithmetic follows the DETR/Mask2Former
    reference step by step (the cumulative-sum coordinates of an all-valid
    mask are the exact integers ``1..size``).

    Args:
        num_feats (int): features per axis (output has ``2 * num_feats``).
        temperature (int): Defaults to 10000.
        normalize (bool): Defaults to True.
        scale (float): Defaults to ``2 * pi``.
        eps (float): Defaults to 1e-6.
    """

    def __init__(self,
                 num_feats: int = 128,
                 temperature: int = 10000,
                 normalize: bool = True,
                 scale: float = 2 * math.pi,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.num_feats = num_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = scale
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Args: x (Tensor): ``(B, *, H, W)``; only its shape/device are used.

        Returns:
            Tensor: ``(B, 2 * num_feats, H, W)`` float32 (batch-expanded).
        """
        bs, height, width = x.shape[0], x.shape[-2], x.shape[-1]
        device = x.device
        y_embed = torch.arange(
            1, height + 1, dtype=torch.float32, device=device).view(
                1, height, 1).expand(1, height, width)
        x_embed = torch.arange(
            1, width + 1, dtype=torch.float32, device=device).view(
                1, 1, width).expand(1, height, width)
        if self.normalize:
            y_embed = y_embed / (y_embed[:, -1:, :] + self.eps) * self.scale
            x_embed = x_embed / (x_embed[:, :, -1:] + self.eps) * self.scale
        dim_t = torch.arange(
            self.num_feats, dtype=torch.float32, device=device)
        dim_t = self.temperature**(
            2 * torch.div(dim_t, 2, rounding_mode='floor') / self.num_feats)
        pos_x = x_embed[..., None] / dim_t
        pos_y = y_embed[..., None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()),
                            dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()),
                            dim=4).flatten(3)
        pos = torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
        return pos.expand(bs, -1, -1, -1)


class MSDeformAttnEncoderLayer(BaseModule):
    """Post-norm deformable encoder layer: ``LN(x + MSDA)``, ``LN(x + FFN)``.

    Args:
        embed_dims (int): token width C.
        num_heads (int): MSDA heads.
        num_levels (int): MSDA levels.
        num_points (int): MSDA points per head and level.
        feedforward_channels (int): FFN hidden width (ReLU).
        dropout (float): dropout of MSDA output and FFN.
        norm_cfg (dict): norm after each residual. Defaults to LN.
        inference_chunk (int): Without autograd and with the pure-PyTorch
            MSDA core, the layer runs over chunks of this many queries
            (value projection once, then MSDA, output projection, norms and
            FFN per chunk): the same function with ~4x smaller transient
            buffers. 0 disables it.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 4,
                 feedforward_channels: int = 1024,
                 dropout: float = 0.0,
                 norm_cfg: dict = dict(type='LN'),
                 inference_chunk: int = 4096,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.inference_chunk = inference_chunk
        self.self_attn = MSDeformAttn(
            embed_dims=embed_dims,
            num_heads=num_heads,
            num_levels=num_levels,
            num_points=num_points,
            dropout=dropout,
            batch_first=True)
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=feedforward_channels,
            num_fcs=2,
            act_cfg=dict(type='ReLU', inplace=True),
            ffn_drop=dropout,  # after the activation and after fc2
            dropout_layer=None,
            add_identity=True)
        self.norms = ModuleList(
            [build_norm_layer(norm_cfg, embed_dims)[1] for _ in range(2)])

    def forward(self, query: Tensor, query_pos: Tensor,
                reference_points: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor) -> Tensor:
        """Args:
            query (Tensor): ``(B, S, C)`` tokens of all levels.
            query_pos (Tensor): ``(B, S, C)`` positional + level embedding.
            reference_points (Tensor): ``(B, S, L, 2)`` normalised (x, y).
            spatial_shapes (Tensor): ``(L, 2)``; level_start_index ``(L, )``.

        Returns:
            Tensor: ``(B, S, C)``.
        """
        if self._use_chunks(query):
            return self._forward_chunked(query, query_pos, reference_points,
                                         spatial_shapes)
        query = self.self_attn(
            query=query,
            value=query,
            query_pos=query_pos,
            reference_points=reference_points,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index)
        query = self.norms[0](query)
        query = self.norms[1](self.ffn(query))
        return query


    def _use_chunks(self, query: Tensor) -> bool:
        attn = self.self_attn
        return (bool(self.inference_chunk) and not torch.is_grad_enabled()
                and attn.batch_first and attn.pytorch_impl != 'grid_sample'
                and query.shape[1] > self.inference_chunk
                and not (query.is_cuda and has_compiled_mmcv_ops()))

    def _forward_chunked(self, query: Tensor, query_pos: Tensor,
                         reference_points: Tensor,
                         spatial_shapes: Tensor) -> Tensor:
        """:meth:`forward` over query chunks (inference only).

        The value projection is written level by level straight into the
        zero-bordered gather table, and the sampling locations of a chunk
        are built directly as the x / y planes that
        :func:`~.ms_deform_attn.sample_planes` reads (same arithmetic as
        ``reference_points + offsets / (W, H)``).
        """
        attn = self.self_attn
        bs, num_query, channels = query.shape
        heads, levels, points = (attn.num_heads, attn.num_levels,
                                 attn.num_points)
        num_lp = levels * points
        chunk = self.inference_chunk
        shapes = [tuple(s) for s in spatial_shapes.tolist()]
        table = query.new_empty(bs, value_table_length(shapes), channels)
        fill_value_table(table, shapes,
                         lambda rows: attn.value_proj(query[:, rows]),
                         rows_per_step=chunk)
        table = table.view(-1, channels // heads)
        index_dtype = torch.int32 if table.shape[0] < 2**31 else torch.int64
        layout = gather_layout(
            tuple(shapes), heads, points, str(query.device),
            torch.promote_types(query.dtype, torch.float32), index_dtype)
        # (W_l, H_l) of every (xy, level, point), and the reference points
        # repeated over the points: (B, S, 1, 2, L * P)
        normalizer = layout.size.view(1, 1, 1, 2, num_lp)
        ref_planes = reference_points.transpose(2, 3)[..., None].expand(
            bs, num_query, 2, levels, points).reshape(bs, num_query, 1, 2,
                                                      num_lp)
        image_rows = layout.padded_len * heads  # table rows per image
        out = torch.empty_like(query)
        for start in range(0, num_query, chunk):
            end = min(start + chunk, num_query)
            n = end - start
            identity = query[:, start:end]
            q = identity + query_pos[:, start:end]
            offsets = attn.sampling_offsets(q).view(bs, n, heads, levels,
                                                    points, 2)
            planes = q.new_empty(bs, n, heads, 2, num_lp,
                                 dtype=normalizer.dtype)
            torch.div(offsets.permute(0, 1, 2, 5, 3, 4).flatten(4),
                      normalizer, out=planes)
            planes += ref_planes[:, start:end]
            weights = attn.attention_weights(q).view(bs, n, heads,
                                                     num_lp).softmax(-1)
            offset = None if bs == 1 else torch.arange(
                bs, device=query.device).repeat_interleave(n) * image_rows
            sampled = sample_planes(
                table, planes.view(bs * n, heads, 2, num_lp),
                weights.view(bs * n, heads, num_lp), layout,
                offset).view(bs, n, channels)
            x = self.norms[0](
                attn.dropout(attn.output_proj(sampled)) + identity)
            out[:, start:end] = self.norms[1](self.ffn(x))
        return out


class MSDeformAttnEncoder(BaseModule):
    """A stack of :class:`MSDeformAttnEncoderLayer` over flattened levels.

    Args:
        num_layers (int): number of layers.
        layer_cfg (dict): kwargs of :class:`MSDeformAttnEncoderLayer`.
    """

    def __init__(self,
                 num_layers: int = 6,
                 layer_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        layer_cfg = layer_cfg or {}
        self.layers = ModuleList([
            MSDeformAttnEncoderLayer(**layer_cfg) for _ in range(num_layers)
        ])

    @staticmethod
    def get_reference_points(spatial_shapes: Sequence[Tuple[int, int]],
                             num_levels: int,
                             device: torch.device) -> Tensor:
        """Pixel-centre reference points of all levels (no padding).

        Returns:
            Tensor: ``(1, S, num_levels, 2)`` normalised ``(x, y)``, the
            same point repeated for every level.
        """
        points = []
        for height, width in spatial_shapes:
            ref_y = (torch.arange(height, dtype=torch.float32, device=device) +
                     0.5) / height
            ref_x = (torch.arange(width, dtype=torch.float32, device=device) +
                     0.5) / width
            ref_y, ref_x = torch.meshgrid(ref_y, ref_x, indexing='ij')
            points.append(torch.stack((ref_x.reshape(-1), ref_y.reshape(-1)),
                                      -1))
        points = torch.cat(points, 0)
        return points[None, :, None, :].expand(1, -1, num_levels, 2)

    def forward(self, query: Tensor, query_pos: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor) -> Tensor:
        """Args:
            query (Tensor): ``(B, S, C)``; query_pos ``(B, S, C)``.
            spatial_shapes (Tensor): ``(L, 2)`` int64 ``(H_l, W_l)``.
            level_start_index (Tensor): ``(L, )``.

        Returns:
            Tensor: ``(B, S, C)``.
        """
        shapes = [tuple(s) for s in spatial_shapes.tolist()]
        reference_points = self.get_reference_points(
            shapes, len(shapes), query.device).expand(query.shape[0], -1, -1,
                                                      -1)
        for layer in self.layers:
            query = layer(query, query_pos, reference_points, spatial_shapes,
                          level_start_index)
        return query


@MODELS.register_module()
class MSDeformAttnPixelDecoder(BaseModule):
    """Pixel decoder with a multi-scale deformable-attention encoder.

    The encoder runs over the last ``num_encoder_levels`` inputs, processed
    coarse to fine: each goes through a 1x1 conv + GroupNorm
    (``input_convs[k]``, k = 0 is the coarsest), gets a DETR sine positional
    encoding plus a learnt level embedding, and all levels are flattened into
    one token sequence. ``log2(min encoder stride / common_stride)`` extra FPN
    levels (lateral 1x1 conv + GN + ReLU, bilinear top-down upsampling, 3x3
    conv + GN + ReLU) are appended from the first inputs when the encoder does
    not reach ``common_stride``; MagNet has none.

    Args:
        in_channels (Sequence[int]): channels of the inputs, fine to coarse.
        strides (Sequence[int]): strides of the inputs, fine to coarse.
        feat_channels (int): encoder / FPN width. Defaults to 256.
        out_channels (int): mask feature channels. Defaults to 256.
        num_outs (int): number of multi-scale outputs for the transformer
            decoder (coarsest first). Defaults to 3.
        num_encoder_levels (int, optional): number of (coarsest) inputs fed
            to the encoder. Defaults to all inputs.
        num_encoder_layers (int): Defaults to 6.
        num_heads (int): MSDA heads. Defaults to 8.
        num_points (int): MSDA points. Defaults to 4.
        feedforward_channels (int): encoder FFN width. Defaults to 1024.
        dropout (float): encoder dropout. Defaults to 0.0.
        common_stride (int): stride of the mask features. Defaults to 4.
        norm_cfg (dict): norm of input/FPN convs. Defaults to GN(32).
        act_cfg (dict): activation of FPN convs. Defaults to ReLU.
        num_pos_feats (int, optional): positional features per axis.
            Defaults to ``feat_channels // 2``.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (128, 256, 512, 1024),
                 strides: Sequence[int] = (4, 8, 16, 32),
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_outs: int = 3,
                 num_encoder_levels: Optional[int] = None,
                 num_encoder_layers: int = 6,
                 num_heads: int = 8,
                 num_points: int = 4,
                 feedforward_channels: int = 1024,
                 dropout: float = 0.0,
                 common_stride: int = 4,
                 norm_cfg: dict = dict(type='GN', num_groups=32),
                 act_cfg: dict = dict(type='ReLU'),
                 num_pos_feats: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(strides):
            raise ValueError('in_channels and strides differ in length')
        self.in_channels = list(in_channels)
        self.strides = list(strides)
        self.num_inputs = len(in_channels)
        self.num_encoder_levels = (
            self.num_inputs
            if num_encoder_levels is None else int(num_encoder_levels))
        if not 1 <= self.num_encoder_levels <= self.num_inputs:
            raise ValueError(
                f'num_encoder_levels={num_encoder_levels} not in '
                f'[1, {self.num_inputs}]')
        self.num_outs = num_outs
        self.common_stride = common_stride
        encoder_indices = list(
            range(self.num_inputs - self.num_encoder_levels,
                  self.num_inputs))
        # coarse -> fine
        self.encoder_in_indices = encoder_indices[::-1]

        self.input_convs = ModuleList([
            ConvModule(
                self.in_channels[i],
                feat_channels,
                kernel_size=1,
                bias=True,
                norm_cfg=norm_cfg,
                act_cfg=None) for i in self.encoder_in_indices
        ])
        self.positional_encoding = SinePositionalEncoding(
            num_feats=num_pos_feats or feat_channels // 2, normalize=True)
        self.level_embed = nn.Embedding(self.num_encoder_levels,
                                        feat_channels)
        self.encoder = MSDeformAttnEncoder(
            num_layers=num_encoder_layers,
            layer_cfg=dict(
                embed_dims=feat_channels,
                num_heads=num_heads,
                num_levels=self.num_encoder_levels,
                num_points=num_points,
                feedforward_channels=feedforward_channels,
                dropout=dropout))

        min_encoder_stride = min(self.strides[i] for i in encoder_indices)
        num_fpn_levels = math.log2(min_encoder_stride) - math.log2(
            common_stride)
        if num_fpn_levels < 0 or num_fpn_levels != int(num_fpn_levels):
            raise ValueError(
                f'common_stride={common_stride} must be the minimum encoder '
                f'stride {min_encoder_stride} divided by a power of 2')
        self.num_fpn_levels = int(num_fpn_levels)
        if self.num_fpn_levels > self.num_inputs:
            raise ValueError(
                f'{self.num_fpn_levels} FPN levels needed to reach stride '
                f'{common_stride}, but only {self.num_inputs} inputs given')
        # lateral_convs[i] / output_convs[i] process input i (fine -> coarse
        # order); they are applied top-down, i.e. from the last one.
        self.lateral_convs = ModuleList([
            ConvModule(
                self.in_channels[i],
                feat_channels,
                kernel_size=1,
                bias=True,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg) for i in range(self.num_fpn_levels)
        ])
        self.output_convs = ModuleList([
            ConvModule(
                feat_channels,
                feat_channels,
                kernel_size=3,
                padding=1,
                bias=True,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg) for _ in range(self.num_fpn_levels)
        ])
        self.mask_feature = nn.Conv2d(
            feat_channels, out_channels, kernel_size=1)

    def init_weights(self) -> None:
        """Initialisation of the reference implementation (training only).

        Xavier-uniform input convs and encoder matrices, MSDA default init,
        normal level embedding, c2-xavier (kaiming-uniform a=1) FPN and mask
        feature convs, zero biases.
        """
        if self.init_cfg is not None:
            super().init_weights()
            return
        for conv in self.input_convs:
            nn.init.xavier_uniform_(conv.conv.weight, gain=1)
            nn.init.constant_(conv.conv.bias, 0)
        for p in self.encoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.encoder.modules():
            if isinstance(m, MSDeformAttn):
                m.init_weights()
        nn.init.normal_(self.level_embed.weight)
        for conv in [*self.lateral_convs, *self.output_convs]:
            nn.init.kaiming_uniform_(conv.conv.weight, a=1)
            nn.init.constant_(conv.conv.bias, 0)
        nn.init.kaiming_uniform_(self.mask_feature.weight, a=1)
        nn.init.constant_(self.mask_feature.bias, 0)
        self._is_init = True

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """Args:
            feats (Sequence[Tensor]): ``num_inputs`` maps ``(B, C_i, H_i,
                W_i)``, fine to coarse.

        Returns:
            tuple:
            - mask_features (Tensor): ``(B, out_channels, H_0', W_0')`` at
              ``common_stride``.
            - multi_scale_features (list[Tensor]): ``num_outs`` maps
              ``(B, feat_channels, h, w)``, coarsest first.
        """
        if len(feats) != self.num_inputs:
            raise ValueError(
                f'expected {self.num_inputs} feature maps, got {len(feats)}')
        bs = feats[0].shape[0]
        tokens, pos_tokens, shapes = [], [], []
        for level, idx in enumerate(self.encoder_in_indices):
            # deformable attention runs in float32 (as the reference)
            feat = feats[idx].float()
            src = self.input_convs[level](feat)
            height, width = src.shape[-2:]
            shapes.append((height, width))
            pos = self.positional_encoding(feat).flatten(2).transpose(1, 2)
            pos = pos + self.level_embed.weight[level].view(1, 1, -1)
            tokens.append(src.flatten(2).transpose(1, 2))
            pos_tokens.append(pos)
        query = torch.cat(tokens, 1)
        query_pos = torch.cat(pos_tokens, 1)
        del tokens, pos_tokens, src, pos  # free the per-level copies
        device = query.device
        spatial_shapes = torch.as_tensor(
            shapes, dtype=torch.long, device=device)
        level_start_index = torch.cat((spatial_shapes.new_zeros(
            (1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))

        memory = self.encoder(query, query_pos, spatial_shapes,
                              level_start_index)

        outs = [
            z.transpose(1, 2).reshape(bs, -1, h, w) for z, (h, w) in zip(
                memory.split([h * w for h, w in shapes], dim=1), shapes)
        ]
        for idx in range(self.num_fpn_levels - 1, -1, -1):
            lateral = self.lateral_convs[idx](feats[idx].float())
            top_down = F.interpolate(
                outs[-1],
                size=lateral.shape[-2:],
                mode='bilinear',
                align_corners=False)
            outs.append(self.output_convs[idx](lateral + top_down))

        mask_features = self.mask_feature(outs[-1])
        return mask_features, outs[:self.num_outs]
