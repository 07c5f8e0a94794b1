"""MagNet's Mask2Former pixel decoder: a multi-scale deformable-attention
encoder over all backbone levels.

MagNet's variant (the official configuration) runs the deformable encoder
over all four backbone levels, stride 4 included: the mask features come
from the encoder output at ``common_stride`` (no FPN levels below the
encoder; a config without the stride-4 level is refused).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, build_norm_layer
from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule, ModuleList
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType
from torch import Tensor

from ..errors import ModelConfigError
from .ms_deform_attn import MSDeformAttn
from .positional_encoding import SinePositionalEncoding

__all__ = [
    'MSDeformAttnEncoderLayer', 'MSDeformAttnEncoder',
    'MSDeformAttnPixelDecoder'
]


class MSDeformAttnEncoderLayer(BaseModule):
    """Post-norm deformable encoder layer: ``LN(x + MSDA)``, ``LN(x + FFN)``.

    Args:
        embed_dims (int): token width C.
        num_levels (int): MSDA levels.
        self_attn_cfg (dict): :class:`MSDeformAttn` options (``num_heads``,
            ``num_points``, ``dropout``, ``pytorch_impl``, ...).
        ffn_cfg (dict): mmcv ``FFN`` options (``feedforward_channels``,
            ``ffn_drop``); ReLU, two layers, identity added.
        norm_cfg (dict): norm after each residual. Defaults to LN.
        query_chunk (int): With the gather core (CPU inference), the layer
            (attention, norms, FFN) runs over chunks of this many queries
            that share one projected value: the same function with ~4x
            smaller transient buffers. 0 disables it.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_levels: int = 4,
                 self_attn_cfg: OptConfigType = None,
                 ffn_cfg: OptConfigType = None,
                 norm_cfg: ConfigType = dict(type='LN'),
                 query_chunk: int = 4096,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.query_chunk = query_chunk
        attn = dict(num_heads=8, num_points=4, dropout=0.0)
        attn.update(self_attn_cfg or {})
        self.self_attn = MSDeformAttn(
            embed_dims=embed_dims, num_levels=num_levels, batch_first=True,
            **attn)
        ffn = dict(feedforward_channels=1024, ffn_drop=attn['dropout'])
        ffn.update(ffn_cfg or {})
        self.ffn = FFN(
            embed_dims=embed_dims,
            num_fcs=2,
            act_cfg=dict(type='ReLU', inplace=True),
            dropout_layer=None,
            add_identity=True,
            **ffn)  # ffn_drop: after the activation and after fc2
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
        value = self.self_attn.project_value(query, spatial_shapes,
                                             rows_per_step=self.query_chunk)
        num_query = query.shape[1]
        chunk = num_query
        if self.query_chunk and value.core == 'fast':
            chunk = self.query_chunk
        if chunk >= num_query:
            return self._block(query, query_pos, reference_points, value,
                               spatial_shapes, level_start_index)
        out = torch.empty_like(query)
        for start in range(0, num_query, chunk):
            rows = slice(start, min(start + chunk, num_query))
            out[:, rows] = self._block(query[:, rows], query_pos[:, rows],
                                       reference_points[:, rows], value,
                                       spatial_shapes, level_start_index)
        return out

    def _block(self, query: Tensor, query_pos: Tensor,
               reference_points: Tensor, value, spatial_shapes: Tensor,
               level_start_index: Tensor) -> Tensor:
        """Attention -> norm -> FFN -> norm for (a chunk of) the queries."""
        query = self.self_attn(
            query=query,
            query_pos=query_pos,
            reference_points=reference_points,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            projected_value=value)
        query = self.norms[0](query)
        return self.norms[1](self.ffn(query))


class MSDeformAttnEncoder(BaseModule):
    """A stack of :class:`MSDeformAttnEncoderLayer` over flattened levels.

    Args:
        num_layers (int): number of layers.
        layer_cfg (dict): kwargs of :class:`MSDeformAttnEncoderLayer`.
    """

    def __init__(self,
                 num_layers: int = 4,
                 layer_cfg: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
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
                spatial_shapes: Tensor, level_start_index: Tensor,
                shapes: Optional[Sequence[Tuple[int, int]]] = None
                ) -> Tensor:
        """Args:
            query (Tensor): ``(B, S, C)``; query_pos ``(B, S, C)``.
            spatial_shapes (Tensor): ``(L, 2)`` int64 ``(H_l, W_l)``.
            level_start_index (Tensor): ``(L, )``.
            shapes (Sequence[tuple[int, int]], optional): the same sizes as
                Python ints, when the caller has them (a tracer then needs
                no tensor-to-int conversion).

        Returns:
            Tensor: ``(B, S, C)``.
        """
        if shapes is None:
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

    Every input is processed coarse to fine: a 1x1 conv + GroupNorm
    (``input_convs[k]``, k = 0 is the coarsest), a DETR sine positional
    encoding plus a learnt level embedding; all levels are flattened into one
    token sequence for the encoder. The mask features are a 1x1 conv of the
    finest encoder output, whose stride must be ``common_stride``.

    Args:
        in_channels (Sequence[int]): channels of the inputs, fine to coarse.
        strides (Sequence[int]): strides of the inputs, fine to coarse.
        feat_channels (int): encoder width. Defaults to 256.
        out_channels (int): mask feature channels. Defaults to 256.
        num_outs (int): number of multi-scale outputs for the transformer
            decoder (coarsest first). Defaults to 3.
        common_stride (int): stride of the mask features (= the finest
            input's). Defaults to 4.
        norm_cfg (dict): norm of the input convs. Defaults to GN(32).
        encoder (dict): :class:`MSDeformAttnEncoder` options:
            ``num_layers`` and ``layer_cfg`` (``self_attn_cfg``,
            ``ffn_cfg``, ``query_chunk``); the width and the number of
            levels are filled in. Defaults to MagNet's: 4 layers, 8 heads, 4
            points, FFN 1024.
        positional_encoding (dict): :class:`SinePositionalEncoding`
            options; ``num_feats`` defaults to ``feat_channels // 2``.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (128, 256, 512, 1024),
                 strides: Sequence[int] = (4, 8, 16, 32),
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_outs: int = 3,
                 common_stride: int = 4,
                 norm_cfg: ConfigType = dict(type='GN', num_groups=32),
                 encoder: ConfigType = dict(
                     num_layers=4,
                     layer_cfg=dict(
                         self_attn_cfg=dict(num_heads=8, num_points=4,
                                            dropout=0.0),
                         ffn_cfg=dict(feedforward_channels=1024,
                                      ffn_drop=0.0))),
                 positional_encoding: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(strides):
            raise ModelConfigError('in_channels and strides differ in length')
        if min(strides) != common_stride:
            raise ModelConfigError(
                f'common_stride={common_stride} must be the finest input '
                f'stride {min(strides)}: MagNet\'s pixel decoder encodes '
                'every level (no FPN levels below the encoder)')
        self.in_channels = list(in_channels)
        self.strides = list(strides)
        self.num_inputs = len(in_channels)
        self.num_outs = num_outs
        self.common_stride = common_stride
        # coarse -> fine
        self.encoder_in_indices = list(range(self.num_inputs))[::-1]
        self.input_convs = ModuleList([
            ConvModule(
                self.in_channels[i],
                feat_channels,
                kernel_size=1,
                bias=True,
                norm_cfg=norm_cfg,
                act_cfg=None) for i in self.encoder_in_indices
        ])
        pos_cfg = dict(num_feats=feat_channels // 2, normalize=True)
        pos_cfg.update(positional_encoding or {})
        self.positional_encoding = SinePositionalEncoding(**pos_cfg)
        self.level_embed = nn.Embedding(self.num_inputs, feat_channels)
        encoder = dict(encoder)
        layer_cfg = dict(encoder.pop('layer_cfg', None) or {})
        layer_cfg.update(embed_dims=feat_channels,
                         num_levels=self.num_inputs)
        self.encoder = MSDeformAttnEncoder(layer_cfg=layer_cfg, **encoder)
        self.mask_feature = nn.Conv2d(
            feat_channels, out_channels, kernel_size=1)

    def init_weights(self) -> None:
        """Initialisation of the reference implementation (training only).

        Xavier-uniform input convs and encoder matrices, MSDA default init,
        normal level embedding, c2-xavier (kaiming-uniform a=1) mask feature
        conv, zero biases.
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
        nn.init.kaiming_uniform_(self.mask_feature.weight, a=1)
        nn.init.constant_(self.mask_feature.bias, 0)
        self._is_init = True

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """Args:
            feats (Sequence[Tensor]): ``num_inputs`` maps ``(B, C_i, H_i,
                W_i)``, fine to coarse.

        Returns:
            tuple:
            - mask_features (Tensor): ``(B, out_channels, H_0, W_0)`` at
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
        spatial_shapes = torch.as_tensor(
            shapes, dtype=torch.long, device=query.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros(
            (1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))

        memory = self.encoder(query, query_pos, spatial_shapes,
                              level_start_index, shapes)
        outs = [
            z.transpose(1, 2).reshape(bs, -1, h, w) for z, (h, w) in zip(
                memory.split([h * w for h, w in shapes], dim=1), shapes)
        ]
        mask_features = self.mask_feature(outs[-1])
        return mask_features, outs[:self.num_outs]
