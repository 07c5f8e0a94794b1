"""Multi-scale deformable attention (MSDA) with a fast pure-PyTorch core.

The MagNet pixel decoder runs MSDA over four feature levels, including the
stride-4 one (19,125 tokens for a 480x480 image). The official code always uses
the ``F.grid_sample`` reference implementation; mmcv's
``multi_scale_deformable_attn_pytorch`` is the same algorithm. Both
materialise a ``(B*heads, C_h, Lq, L*P)`` tensor and run one ``grid_sample``
per level.

:func:`multi_scale_deformable_attn_fast` computes the same function
(bilinear sampling, zero padding, ``align_corners=False``) as a weighted
gather: every sampling point contributes its four bilinear corners, the
attention weight is folded into the corner weights, and a single
``F.embedding_bag(mode='sum')`` per chunk of queries gathers and sums the
``L * P * 4`` value rows of every (query, head) pair. Zero padding is realised
by padding every level of the value table with a zero border, so out-of-map
corners read zeros and no per-corner validity masks are needed. It is
differentiable w.r.t. value, sampling locations and attention weights, and
runs on any device.

:class:`MSDeformAttn` is mmcv's :class:`MultiScaleDeformableAttention` (same
parameters and parameter names) whose forward dispatches to mmcv's compiled
kernel for CUDA tensors when compiled mmcv ops are installed, and to the
pure-PyTorch core otherwise.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttention,
    MultiScaleDeformableAttnFunction,
    multi_scale_deformable_attn_pytorch,
)
from mmseg.registry import MODELS
from torch import Tensor

from ...compat import has_compiled_mmcv_ops

__all__ = [
    'msda_value_table', 'multi_scale_deformable_attn_fast',
    'multi_scale_deformable_attn', 'MSDeformAttn'
]

# Number of (batch * query) rows processed per embedding_bag call on CPU.
# Small enough that every intermediate stays in cache-friendly, recycled
# allocations (large fresh allocations are dominated by page faults), large
# enough that the python loop overhead is negligible.
_CPU_QUERY_CHUNK = 4096

# Zero border added around every level of the value table: 1 row/column
# before and 2 after, so that both corners of any clamped coordinate in
# [-1, size] are inside the padded map of the same level.
_PAD_BEFORE, _PAD_AFTER = 1, 2


def _shapes_as_list(spatial_shapes: Tensor | Sequence) -> List[Tuple[int,
                                                                       int]]:
    if isinstance(spatial_shapes, Tensor):
        spatial_shapes = spatial_shapes.tolist()
    return [(int(h), int(w)) for h, w in spatial_shapes]


def msda_value_table(value: Tensor,
                     value_spatial_shapes: Tensor | Sequence) -> Tensor:
    """The gather table of :func:`multi_scale_deformable_attn_fast`.

    Every level of ``value`` ``(B, S, heads, C_h)`` with a zero border,
    flattened to ``(B * S_pad * heads, C_h)``; row
    ``(b * S_pad + pixel) * heads + head``.
    """
    bs, _, num_heads, head_dims = value.shape
    shapes = _shapes_as_list(value_spatial_shapes)
    pad = _PAD_BEFORE + _PAD_AFTER
    levels = value.split([h * w for h, w in shapes], dim=1)
    table = torch.cat([
        F.pad(
            v.reshape(bs, h, w, num_heads * head_dims),
            (0, 0, _PAD_BEFORE, _PAD_AFTER, _PAD_BEFORE, _PAD_AFTER)).reshape(
                bs, (h + pad) * (w + pad), num_heads * head_dims)
        for v, (h, w) in zip(levels, shapes)
    ], 1)
    return table.reshape(-1, head_dims)


def multi_scale_deformable_attn_fast(
        value: Tensor,
        value_spatial_shapes: Tensor | Sequence,
        sampling_locations: Tensor,
        attention_weights: Tensor,
        query_chunk_size: Optional[int] = None,
        value_table: Optional[Tensor] = None) -> Tensor:
    """Pure-PyTorch multi-scale deformable attention (gather formulation).

    Numerically equivalent (up to float rounding) to
    :func:`mmcv.ops.multi_scale_deformable_attn_pytorch`, i.e. bilinear
    ``grid_sample`` with ``padding_mode='zeros'`` and ``align_corners=False``
    on every level, weighted by the attention weights and summed over levels
    and points.

    Args:
        value (Tensor): ``(B, S, num_heads, C_h)`` with
            ``S = sum_l H_l * W_l`` (levels flattened row-major, in the order
            of ``value_spatial_shapes``).
        value_spatial_shapes (Tensor | Sequence): ``(L, 2)`` ``(H_l, W_l)``.
        sampling_locations (Tensor):
            ``(B, Lq, num_heads, L, P, 2)`` normalised ``(x, y)`` locations,
            ``(0, 0)`` = top-left corner, ``(1, 1)`` = bottom-right corner of
            the map. Values outside ``[0, 1]`` are allowed (zero padding).
        attention_weights (Tensor): ``(B, Lq, num_heads, L, P)``.
        query_chunk_size (int, optional): number of ``B * Lq`` rows processed
            per gather. Defaults to 4096 on CPU and everything at once on
            other devices.
        value_table (Tensor, optional): ``msda_value_table(value, shapes)``
            computed once by the caller (when several query chunks sample the
            same value); built here otherwise.

    Returns:
        Tensor: ``(B, Lq, num_heads * C_h)``.
    """
    bs, num_value, num_heads, head_dims = value.shape
    _, num_query, _, num_levels, num_points, _ = sampling_locations.shape
    shapes = _shapes_as_list(value_spatial_shapes)
    if len(shapes) != num_levels:
        raise ValueError(f'{len(shapes)} spatial shapes for {num_levels} '
                         'sampling levels')
    if sum(h * w for h, w in shapes) != num_value:
        raise ValueError('value length does not match the spatial shapes')
    device = value.device
    num_lp = num_levels * num_points
    pad = _PAD_BEFORE + _PAD_AFTER

    table = (msda_value_table(value, shapes)
             if value_table is None else value_table)
    padded_len = table.shape[0] // (bs * num_heads)
    index_dtype = torch.int32 if table.shape[0] < 2**31 else torch.int64

    # Coordinates are computed in at least float32 (exact integer indices).
    coord_dtype = torch.promote_types(sampling_locations.dtype, torch.float32)
    # per (level, point) column constants
    size_wh = torch.tensor([[w, h] for h, w in shapes],
                           dtype=coord_dtype,
                           device=device)  # (L, 2) = (W_l, H_l)
    size_wh = size_wh[:, None, :].expand(num_levels, num_points,
                                         2).reshape(num_lp, 2)
    half_size = size_wh * 0.5
    row_stride = size_wh[:, 0] + pad  # padded width, (LP, )
    level_start, acc = [], 0
    for h, w in shapes:
        level_start.append(acc)
        acc += (h + pad) * (w + pad)
    level_start = torch.tensor(
        level_start, device=device).repeat_interleave(num_points)
    # row offset of (level, head) inside one batch element: (1, heads, LP)
    base = (level_start[None, None, :] * num_heads +
            torch.arange(num_heads, device=device)[None, :, None]).to(
                index_dtype)
    stride_rows = (row_stride * num_heads).to(index_dtype)
    # offsets of the 4 bilinear corners (y, x) = (0,0), (0,1), (1,0), (1,1)
    corner_offset = torch.stack([
        torch.zeros_like(stride_rows),
        torch.full_like(stride_rows, num_heads), stride_rows,
        stride_rows + num_heads
    ], 0)  # (4, LP)

    locations = sampling_locations.reshape(bs * num_query, num_heads, num_lp,
                                           2).to(coord_dtype)
    weights = attention_weights.reshape(bs * num_query, num_heads, num_lp)
    total = bs * num_query
    if total == 0:
        return value.new_zeros(bs, num_query, num_heads * head_dims)
    if query_chunk_size is None:
        query_chunk_size = _CPU_QUERY_CHUNK if device.type == 'cpu' else total
    query_chunk_size = max(1, int(query_chunk_size))

    outputs = []
    for start in range(0, total, query_chunk_size):
        end = min(start + query_chunk_size, total)
        n = end - start
        # Pixel coordinates exactly as grid_sample(align_corners=False)
        # un-normalises its grid (grid = 2 * loc - 1).
        pix = (locations[start:end] * 2 - 1 + 1) * half_size - 0.5
        # Anything left of -1 / right of size samples only zero padding;
        # clamping keeps that result (the border corner gets weight 1).
        pix = torch.minimum(pix.clamp(min=-1.0), size_wh)
        pix0 = pix.floor()
        frac = pix - pix0
        # linear pixel index inside the padded level (exact small integers)
        pixel = (pix0[..., 1] + _PAD_BEFORE) * row_stride + (
            pix0[..., 0] + _PAD_BEFORE)  # (n, heads, LP)
        batch_offset = (torch.arange(start, end, device=device) // num_query *
                        (padded_len * num_heads)).to(index_dtype)
        index = torch.add(
            base + batch_offset[:, None, None],
            pixel.to(index_dtype),
            alpha=num_heads)  # (n, heads, LP)
        index = index[:, :, None, :] + corner_offset  # (n, heads, 4, LP)

        frac_x, frac_y = frac[..., 0], frac[..., 1]
        attn = weights[start:end].to(coord_dtype)
        attn_y1 = attn * frac_y
        weight_y = torch.stack((attn - attn_y1, attn_y1), 2)  # (n,heads,2,LP)
        weight_x = torch.stack((1 - frac_x, frac_x), 2)
        corner_weight = weight_y[:, :, :, None, :] * weight_x[:, :, None]
        out = F.embedding_bag(
            index.reshape(n * num_heads, 4 * num_lp),
            table,
            per_sample_weights=corner_weight.reshape(
                n * num_heads, 4 * num_lp).to(table.dtype),
            mode='sum')
        outputs.append(out.view(n, num_heads * head_dims))
    output = outputs[0] if len(outputs) == 1 else torch.cat(outputs, 0)
    return output.view(bs, num_query, num_heads * head_dims)


def multi_scale_deformable_attn(value: Tensor,
                                spatial_shapes: Tensor,
                                level_start_index: Tensor,
                                sampling_locations: Tensor,
                                attention_weights: Tensor,
                                im2col_step: int = 64,
                                pytorch_impl: str = 'fast') -> Tensor:
    """Dispatch MSDA to mmcv's compiled kernel or a pure-PyTorch core.

    The compiled kernel is used for CUDA tensors when compiled mmcv ops are
    installed; otherwise ``pytorch_impl`` selects the pure-PyTorch core:
    ``'fast'`` (:func:`multi_scale_deformable_attn_fast`) or
    ``'grid_sample'`` (mmcv's ``multi_scale_deformable_attn_pytorch``, the
    official reference formulation).

    Shapes as in :func:`multi_scale_deformable_attn_fast`;
    ``level_start_index`` ``(L, )`` is only used by the compiled kernel.
    """
    if value.is_cuda and has_compiled_mmcv_ops():
        return MultiScaleDeformableAttnFunction.apply(value, spatial_shapes,
                                                      level_start_index,
                                                      sampling_locations,
                                                      attention_weights,
                                                      im2col_step)
    if pytorch_impl == 'fast':
        return multi_scale_deformable_attn_fast(value, spatial_shapes,
                                                sampling_locations,
                                                attention_weights)
    if pytorch_impl == 'grid_sample':
        return multi_scale_deformable_attn_pytorch(value, spatial_shapes,
                                                   sampling_locations,
                                                   attention_weights)
    raise ValueError(f'unknown pytorch_impl {pytorch_impl!r}')


@MODELS.register_module()
class MSDeformAttn(MultiScaleDeformableAttention):
    """mmcv ``MultiScaleDeformableAttention`` with a device-aware core.

    Parameters, their names (``sampling_offsets``, ``attention_weights``,
    ``value_proj``, ``output_proj``), initialisation and the residual
    ``identity + dropout(output)`` are mmcv's. Only the core differs: compiled
    mmcv kernel for CUDA tensors when available, else the pure-PyTorch core
    selected by ``pytorch_impl`` (mmcv itself would call the compiled kernel
    for any CUDA tensor, which fails under ``mmcv-lite``).

    Args:
        pytorch_impl (str): ``'auto'`` (default): the gather core
            (``'fast'``) when no gradient is needed, ``'grid_sample'`` when
            one is (its backward is faster on CPU: 0.89 vs 1.09 s per train
            step of the CPU config); or force either.
        Other args: see :class:`mmcv.ops.MultiScaleDeformableAttention`
        (``embed_dims``, ``num_heads``, ``num_levels``, ``num_points``,
        ``im2col_step``, ``dropout``, ``batch_first``, ``norm_cfg``,
        ``init_cfg``, ``value_proj_ratio``).
    """

    def __init__(self, *args, pytorch_impl: str = 'auto', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if pytorch_impl not in ('auto', 'fast', 'grid_sample'):
            raise ValueError(f'unknown pytorch_impl {pytorch_impl!r}')
        self.pytorch_impl = pytorch_impl

    def _core_impl(self, value: Tensor) -> str:
        if self.pytorch_impl != 'auto':
            return self.pytorch_impl
        needs_grad = torch.is_grad_enabled() and (
            value.requires_grad or self.training)
        return 'grid_sample' if needs_grad else 'fast'

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
                **kwargs) -> Tensor:
        """Deformable attention with residual connection.

        Args:
            query (Tensor): ``(B, Lq, C)`` if ``batch_first`` else
                ``(Lq, B, C)``.
            key (Tensor, optional): unused (kept for API compatibility).
            value (Tensor, optional): ``(B, S, C)`` (or ``(S, B, C)``);
                defaults to ``query``.
            identity (Tensor, optional): residual, defaults to ``query``
                (before ``query_pos`` is added).
            query_pos (Tensor, optional): added to ``query`` only.
            key_padding_mask (Tensor, optional): ``(B, S)`` bool, True =
                padding (value zeroed).
            reference_points (Tensor): ``(B, Lq, L, 2)`` normalised
                ``(x, y)`` or ``(B, Lq, L, 4)`` boxes ``(cx, cy, w, h)``.
            spatial_shapes (Tensor): ``(L, 2)`` ``(H_l, W_l)`` int64.
            level_start_index (Tensor): ``(L, )``.

        Returns:
            Tensor: same layout as ``query``.
        """
        if value is None:
            value = query
        if identity is None:
            identity = query
        if query_pos is not None:
            query = query + query_pos
        if not self.batch_first:
            query = query.permute(1, 0, 2)
            value = value.permute(1, 0, 2)
        bs, num_query, _ = query.shape
        _, num_value, _ = value.shape

        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(bs, num_value, self.num_heads, -1)
        sampling_offsets = self.sampling_offsets(query).view(
            bs, num_query, self.num_heads, self.num_levels, self.num_points,
            2)
        attention_weights = self.attention_weights(query).view(
            bs, num_query, self.num_heads,
            self.num_levels * self.num_points).softmax(-1)
        attention_weights = attention_weights.view(bs, num_query,
                                                   self.num_heads,
                                                   self.num_levels,
                                                   self.num_points)
        if reference_points.shape[-1] == 2:
            offset_normalizer = torch.stack(
                [spatial_shapes[..., 1], spatial_shapes[..., 0]], -1)
            sampling_locations = (
                reference_points[:, :, None, :, None, :] +
                sampling_offsets /
                offset_normalizer[None, None, None, :, None, :])
        elif reference_points.shape[-1] == 4:
            sampling_locations = (
                reference_points[:, :, None, :, None, :2] +
                sampling_offsets / self.num_points *
                reference_points[:, :, None, :, None, 2:] * 0.5)
        else:
            raise ValueError('Last dim of reference_points must be 2 or 4, '
                             f'but got {reference_points.shape[-1]}.')

        output = multi_scale_deformable_attn(
            value,
            spatial_shapes,
            level_start_index,
            sampling_locations,
            attention_weights,
            im2col_step=self.im2col_step,
            pytorch_impl=self._core_impl(value))
        output = self.output_proj(output)
        if not self.batch_first:
            output = output.permute(1, 0, 2)
        return self.dropout(output) + identity
