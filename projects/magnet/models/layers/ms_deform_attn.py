"""Multi-scale deformable attention: mmcv's module with a device-aware core.

:class:`MSDeformAttn` has the parameters, parameter names and initialisation
of mmcv's :class:`~mmcv.ops.MultiScaleDeformableAttention`; its one forward
serves training and inference. The core (sampling + weighted sum) is chosen
in one place, :func:`~.ms_deform_attn_core.select_core`: mmcv's compiled
kernel for CUDA tensors when compiled mmcv ops are installed (mmcv's own
forward would call it for any CUDA tensor, which fails under ``mmcv-lite``),
else a pure-PyTorch core.

Queries can be processed in chunks that share one projected value
(:meth:`MSDeformAttn.project_value`, then ``forward(...,
projected_value=...)`` per chunk): the pixel-decoder layer uses it at
inference to keep its transient buffers small; the arithmetic is the same as
one call over all queries.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttention
from mmseg.registry import MODELS
from torch import Tensor

from ..errors import ModelConfigError
from .ms_deform_attn_core import (fill_value_table,
                                  multi_scale_deformable_attn, select_core,
                                  value_table_length)

__all__ = ['MSDeformAttn', 'ProjectedValue']


class ProjectedValue(NamedTuple):
    """The projected value of one attention call, in its core's layout.

    Attributes:
        core (str): the MSDA core it was prepared for.
        value (Tensor, optional): ``(B, S, heads, C_h)`` (``'mmcv_cuda'``,
            ``'grid_sample'``), None for ``'fast'``.
        table (Tensor, optional): the zero-bordered gather table
            ``(B * S_pad * heads, C_h)`` of the ``'fast'`` core.
    """
    core: str
    value: Optional[Tensor]
    table: Optional[Tensor]


@MODELS.register_module()
class MSDeformAttn(MultiScaleDeformableAttention):
    """mmcv ``MultiScaleDeformableAttention`` with a device-aware core.

    Parameters (``sampling_offsets``, ``attention_weights``, ``value_proj``,
    ``output_proj``), their initialisation and the residual ``identity +
    dropout(output)`` are mmcv's.

    Args:
        pytorch_impl (str): the pure-PyTorch core when the compiled kernel
            is not used: ``'auto'`` (default; gather core without a
            gradient, ``grid_sample`` with one), ``'fast'`` or
            ``'grid_sample'``.
        Other args: see :class:`mmcv.ops.MultiScaleDeformableAttention`
            (``embed_dims``, ``num_heads``, ``num_levels``, ``num_points``,
            ``im2col_step``, ``dropout``, ``batch_first``, ``norm_cfg``,
            ``init_cfg``, ``value_proj_ratio``).
    """

    def __init__(self, *args, pytorch_impl: str = 'auto', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if pytorch_impl not in ('auto', 'fast', 'grid_sample'):
            raise ModelConfigError(f'unknown pytorch_impl {pytorch_impl!r}')
        self.pytorch_impl = pytorch_impl

    def core(self, value: Tensor) -> str:
        """The core a call on ``value`` uses now (grad mode, device)."""
        needs_grad = torch.is_grad_enabled() and (value.requires_grad
                                                  or self.training)
        return select_core(value, needs_grad, self.pytorch_impl)

    def project_value(self,
                      value: Tensor,
                      spatial_shapes: Tensor,
                      key_padding_mask: Optional[Tensor] = None,
                      rows_per_step: int = 4096) -> ProjectedValue:
        """``value_proj`` of ``value`` in the layout of the current core.

        Args:
            value (Tensor): ``(B, S, C)`` (``batch_first``) or ``(S, B, C)``.
            spatial_shapes (Tensor): ``(L, 2)`` ``(H_l, W_l)``.
            key_padding_mask (Tensor, optional): ``(B, S)`` bool, True =
                padding (value zeroed).
            rows_per_step (int): the gather table is filled this many tokens
                at a time (the projection is written straight into it).
        """
        if not self.batch_first:
            value = value.permute(1, 0, 2)
        bs, num_value, channels = value.shape
        core = self.core(value)

        def project(rows) -> Tensor:
            out = self.value_proj(value[:, rows])
            if key_padding_mask is not None:
                out = out.masked_fill(key_padding_mask[:, rows, None], 0.0)
            return out

        if core == 'fast':
            shapes = [tuple(s) for s in spatial_shapes.tolist()]
            width = self.value_proj.out_features
            table = value.new_empty(bs, value_table_length(shapes), width)
            fill_value_table(table, shapes, project, rows_per_step)
            return ProjectedValue(
                core, None, table.view(-1, width // self.num_heads))
        projected = project(slice(None)).view(bs, num_value, self.num_heads,
                                              -1)
        return ProjectedValue(core, projected, None)

    def forward(self,
                query: Tensor,
                key: Optional[Tensor] = None,
                value: Optional[Tensor] = None,
                identity: Optional[Tensor] = None,
                query_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None,
                reference_points: Optional[Tensor] = None,
                spatial_shapes: Optional[Tensor] = None,
                level_start_index: Optional[Tensor] = None,
                projected_value: Optional[ProjectedValue] = None,
                **kwargs) -> Tensor:
        """Deformable attention with residual connection.

        Args:
            query (Tensor): ``(B, Lq, C)`` if ``batch_first`` else
                ``(Lq, B, C)``.
            key (Tensor, optional): unused (kept for API compatibility).
            value (Tensor, optional): ``(B, S, C)`` (or ``(S, B, C)``);
                defaults to ``query``. Not needed with ``projected_value``.
            identity (Tensor, optional): residual, defaults to ``query``
                (before ``query_pos`` is added).
            query_pos (Tensor, optional): added to ``query`` only.
            key_padding_mask (Tensor, optional): ``(B, S)`` bool, True =
                padding (value zeroed).
            reference_points (Tensor): ``(B, Lq, L, 2)`` normalised
                ``(x, y)`` or ``(B, Lq, L, 4)`` boxes ``(cx, cy, w, h)``.
            spatial_shapes (Tensor): ``(L, 2)`` ``(H_l, W_l)`` int64.
            level_start_index (Tensor): ``(L, )``.
            projected_value (ProjectedValue, optional): from
                :meth:`project_value` (computed once for several query
                chunks); computed here when None.

        Returns:
            Tensor: same layout as ``query``.
        """
        if projected_value is None:
            projected_value = self.project_value(
                query if value is None else value, spatial_shapes,
                key_padding_mask)
        if identity is None:
            identity = query
        if query_pos is not None:
            query = query + query_pos
        if not self.batch_first:
            query = query.permute(1, 0, 2)
        # From here to the core call: mmcv's own arithmetic, line for line
        # (test_forward_gives_mmcv_module_numbers). mmcv's forward cannot be
        # called instead: it projects the value itself (no pre-projected
        # value shared by query chunks), picks its core by device alone
        # (its compiled kernel for any CUDA tensor, absent under mmcv-lite)
        # and has no gather core; the core itself is mmcv's
        # multi_scale_deformable_attn_pytorch / kernel where they are used.
        bs, num_query, _ = query.shape
        sampling_offsets = self.sampling_offsets(query).view(
            bs, num_query, self.num_heads, self.num_levels, self.num_points,
            2)
        attention_weights = self.attention_weights(query).view(
            bs, num_query, self.num_heads,
            self.num_levels * self.num_points).softmax(-1).view(
                bs, num_query, self.num_heads, self.num_levels,
                self.num_points)
        if reference_points.shape[-1] == 2:
            # (L, P, 2) float (W, H) of each level: the int64 (L, 2) table
            # broadcast over tiny inner dimensions made the division (and its
            # backward) 2-3x slower; the quotients are the same (type
            # promotion divides in the offsets' dtype either way)
            offset_normalizer = torch.stack(
                [spatial_shapes[..., 1], spatial_shapes[..., 0]],
                -1).to(sampling_offsets.dtype)
            offset_normalizer = offset_normalizer[:, None, :].expand(
                self.num_levels, self.num_points, 2).contiguous()
            sampling_locations = (
                reference_points[:, :, None, :, None, :] +
                sampling_offsets / offset_normalizer)
        elif reference_points.shape[-1] == 4:
            sampling_locations = (
                reference_points[:, :, None, :, None, :2] +
                sampling_offsets / self.num_points *
                reference_points[:, :, None, :, None, 2:] * 0.5)
        else:
            raise ValueError('Last dim of reference_points must be 2 or 4, '
                             f'but got {reference_points.shape[-1]}.')
        output = multi_scale_deformable_attn(
            projected_value.value,
            spatial_shapes,
            level_start_index,
            sampling_locations,
            attention_weights,
            core=projected_value.core,
            im2col_step=self.im2col_step,
            value_table=projected_value.table)
        output = self.output_proj(output)
        if not self.batch_first:
            output = output.permute(1, 0, 2)
        return self.dropout(output) + identity
