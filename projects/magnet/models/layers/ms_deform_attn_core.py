"""Cores of multi-scale deformable attention (MSDA): the sampling and
weighted sum, after the projections (which :class:`~.ms_deform_attn.
MSDeformAttn` owns).

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

:func:`select_core` is the one place where the core is chosen: mmcv's
compiled kernel for CUDA tensors when compiled mmcv ops are installed; on
CPU (or under ``mmcv-lite``) the gather core without autograd and
``grid_sample`` with it (its backward measured faster on CPU: 0.89 vs 1.09 s
per training step of the CPU config). :func:`multi_scale_deformable_attn`
runs the chosen core.
"""
from __future__ import annotations

from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttnFunction, multi_scale_deformable_attn_pytorch)
from torch import Tensor

from ...compat import has_compiled_mmcv_ops
from ..errors import ModelConfigError
from ..utils.precision import float32_region

__all__ = [
    'CORES', 'select_core', 'msda_value_table', 'fill_value_table',
    'value_table_length', 'gather_layout', 'sample_planes',
    'multi_scale_deformable_attn_fast', 'multi_scale_deformable_attn'
]

#: ``'mmcv_cuda'`` (compiled kernel), ``'fast'`` (gather), ``'grid_sample'``
#: (mmcv's pure-PyTorch reference, the official formulation)
CORES = ('mmcv_cuda', 'fast', 'grid_sample')

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


def _padded_size(shape: Tuple[int, int]) -> int:
    pad = _PAD_BEFORE + _PAD_AFTER
    return (shape[0] + pad) * (shape[1] + pad)


def value_table_length(shapes: Sequence[Tuple[int, int]]) -> int:
    """Pixels per image of the zero-bordered gather table of ``shapes``."""
    return sum(_padded_size(s) for s in shapes)


def msda_value_table(value: Tensor,
                     value_spatial_shapes: Tensor | Sequence) -> Tensor:
    """The gather table of :func:`multi_scale_deformable_attn_fast`.

    Every level of ``value`` ``(B, S, heads, C_h)`` with a zero border,
    flattened to ``(B * S_pad * heads, C_h)``; row
    ``(b * S_pad + pixel) * heads + head``.
    """
    bs, _, num_heads, head_dims = value.shape
    shapes = _shapes_as_list(value_spatial_shapes)
    table = value.new_empty(bs, value_table_length(shapes),
                            num_heads * head_dims)
    fill_value_table(table, shapes,
                     lambda rows: value[:, rows].flatten(2))
    return table.view(-1, head_dims)


def fill_value_table(table: Tensor, shapes: Sequence[Tuple[int, int]],
                     rows_fn, rows_per_step: int = 0) -> None:
    """Write every level into ``table`` ``(B, S_pad, C)`` with its zero
    border, in place.

    ``rows_fn(slice)`` returns the values ``(B, n, C)`` of the flattened
    (unpadded) token rows ``slice``; with ``rows_per_step`` it is called for
    whole image rows of at most that many tokens at a time (so a projection
    can be computed straight into the table without a full-size copy).
    """
    bs, _, channels = table.shape
    pad = _PAD_BEFORE + _PAD_AFTER
    table_start = value_start = 0
    for h, w in shapes:
        level = table[:, table_start:table_start + _padded_size((h, w))]
        level = level.view(bs, h + pad, w + pad, channels)
        level[:, :_PAD_BEFORE].zero_()
        level[:, _PAD_BEFORE + h:].zero_()
        level[:, _PAD_BEFORE:_PAD_BEFORE + h, :_PAD_BEFORE].zero_()
        level[:, _PAD_BEFORE:_PAD_BEFORE + h, _PAD_BEFORE + w:].zero_()
        step = h if rows_per_step <= 0 else max(1, rows_per_step // w)
        for y in range(0, h, step):
            y_end = min(y + step, h)
            rows = slice(value_start + y * w, value_start + y_end * w)
            level[:, _PAD_BEFORE + y:_PAD_BEFORE + y_end,
                  _PAD_BEFORE:_PAD_BEFORE + w] = rows_fn(rows).view(
                      bs, y_end - y, w, channels)
        table_start += _padded_size((h, w))
        value_start += h * w


class GatherLayout:
    """Per-(level, point) constants of the gather of
    :func:`multi_scale_deformable_attn_fast` (depend on the level shapes,
    heads and points only; cached).

    Attributes:
        size (Tensor): ``(2, L * P)`` map width (row 0) and height (row 1).
        half (Tensor): ``size / 2``.
        row_stride (Tensor): ``(L * P, )`` padded width.
        base (Tensor): ``(heads, L * P)`` table row of padded pixel (0, 0)
            of the level minus the (-1, -1) corner offset, per head.
        corner (Tensor): ``(4, L * P)`` row offsets of the corners
            (y, x) = (0, 0), (0, 1), (1, 0), (1, 1).
        padded_len (int): padded pixels of all levels (one image).
    """

    def __init__(self, shapes: Sequence[Tuple[int, int]], num_heads: int,
                 num_points: int, device: torch.device, dtype: torch.dtype,
                 index_dtype: torch.dtype) -> None:
        pad = _PAD_BEFORE + _PAD_AFTER
        num_lp = len(shapes) * num_points
        wh = torch.tensor([[w, h] for h, w in shapes], dtype=dtype)
        self.size = wh.t().repeat_interleave(num_points, 1).to(device)
        self.half = self.size * 0.5
        self.row_stride = self.size[0] + pad
        starts, acc = [], 0
        for shape in shapes:
            starts.append(acc)
            acc += _padded_size(shape)
        self.padded_len = acc
        level_start = torch.tensor(starts).repeat_interleave(num_points)
        # pixel (x, y) of a level -> padded row (y + 1) * stride + (x + 1)
        stride = self.row_stride.cpu().long()
        first = level_start + (stride + 1) * _PAD_BEFORE
        self.base = (first[None, :] * num_heads +
                     torch.arange(num_heads)[:, None]).to(index_dtype).to(
                         device)
        stride_rows = stride * num_heads
        self.corner = torch.stack([
            torch.zeros(num_lp, dtype=torch.long),
            torch.full((num_lp, ), num_heads), stride_rows,
            stride_rows + num_heads
        ]).to(index_dtype).to(device)
        self.num_heads = num_heads
        self.index_dtype = index_dtype


@torch.compiler.disable  # cached constants: not traced by dynamo
@lru_cache(maxsize=32)
def gather_layout(shapes: Tuple[Tuple[int, int], ...], num_heads: int,
                  num_points: int, device: str, dtype: torch.dtype,
                  index_dtype: torch.dtype) -> GatherLayout:
    """:class:`GatherLayout` of ``shapes`` (cached; do not modify)."""
    return GatherLayout(shapes, num_heads, num_points, torch.device(device),
                        dtype, index_dtype)


def sample_planes(table: Tensor, planes: Tensor, attention: Tensor,
                  layout: GatherLayout,
                  batch_offset: Optional[Tensor] = None) -> Tensor:
    """Bilinear sampling + attention-weighted sum of one chunk of queries.

    Args:
        table (Tensor): :func:`msda_value_table` ``(rows, C_h)``.
        planes (Tensor): ``(n, heads, 2, L * P)`` contiguous normalised
            sampling locations, x in plane 0 and y in plane 1 (a scratch
            buffer: overwritten).
        attention (Tensor): ``(n, heads, L * P)`` attention weights.
        layout (GatherLayout): constants of the level shapes.
        batch_offset (Tensor, optional): ``(n, )`` table row offset of each
            query's image (``None`` for one image).

    Returns:
        Tensor: ``(n, heads * C_h)``.
    """
    n, heads, _, num_lp = planes.shape
    # in-place / out= arithmetic without autograd, functional ops with it
    grad = torch.is_grad_enabled() and (planes.requires_grad
                                        or attention.requires_grad)
    # pixel coordinates exactly as grid_sample(align_corners=False)
    # un-normalises its grid (grid = 2 * loc - 1)
    if grad:
        pix = (planes * 2 - 1 + 1) * layout.half - 0.5
    else:
        pix = planes.mul_(2).sub_(1).add_(1).mul_(layout.half).sub_(0.5)
    # Anything left of -1 / right of size samples only zero padding;
    # clamping keeps that result (the border corner gets weight 1).
    if grad:
        pix = torch.minimum(pix.clamp(min=-1.0), layout.size)
    else:
        torch.minimum(pix.clamp_(min=-1.0), layout.size, out=pix)
    pix0 = pix.detach().floor()
    frac = pix - pix0 if grad else pix.sub_(pix0)
    # x0 + y0 * padded width (exact small integers)
    pixel = torch.addcmul(pix0[:, :, 0], pix0[:, :, 1], layout.row_stride)
    index = pixel.to(layout.index_dtype).mul_(heads).add_(layout.base)
    if batch_offset is not None:
        index += batch_offset.to(layout.index_dtype)[:, None, None]
    index = index[:, :, None, :] + layout.corner  # (n, heads, 4, LP)

    attn = attention.to(frac.dtype)
    frac_x, frac_y = frac[:, :, 0], frac[:, :, 1]
    attn_y1 = attn * frac_y
    attn_y0 = attn - attn_y1
    left = 1 - frac_x
    corners = ((attn_y0, left), (attn_y0, frac_x), (attn_y1, left),
               (attn_y1, frac_x))
    if grad:
        weight = torch.stack([a * b for a, b in corners], 2)
    else:
        weight = attn.new_empty(n, heads, 4, num_lp)
        for k, (a, b) in enumerate(corners):
            torch.mul(a, b, out=weight[:, :, k])
    out = F.embedding_bag(
        index.view(n * heads, 4 * num_lp),
        table,
        per_sample_weights=weight.view(n * heads, 4 * num_lp).to(table.dtype),
        mode='sum')
    return out.view(n, -1)


def multi_scale_deformable_attn_fast(
        value: Optional[Tensor],
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
        value (Tensor, optional): ``(B, S, num_heads, C_h)`` with
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
            same value); built here otherwise. ``value`` may then be None.

    Returns:
        Tensor: ``(B, Lq, num_heads * C_h)``.
    """
    (bs, num_query, num_heads, num_levels, num_points,
     _) = sampling_locations.shape
    shapes = _shapes_as_list(value_spatial_shapes)
    if len(shapes) != num_levels:
        raise ValueError(f'{len(shapes)} spatial shapes for {num_levels} '
                         'sampling levels')
    if value is None:
        if value_table is None:
            raise ValueError('give value or value_table')
        head_dims = value_table.shape[-1]
    else:
        head_dims = value.shape[-1]
        if sum(h * w for h, w in shapes) != value.shape[1]:
            raise ValueError('value length does not match the spatial shapes')
    device = sampling_locations.device
    num_lp = num_levels * num_points
    total = bs * num_query
    if total == 0:
        return sampling_locations.new_zeros(bs, num_query,
                                            num_heads * head_dims)

    table = (msda_value_table(value, shapes)
             if value_table is None else value_table)
    index_dtype = torch.int32 if table.shape[0] < 2**31 else torch.int64
    # Coordinates are computed in at least float32 (exact integer indices).
    coord_dtype = torch.promote_types(sampling_locations.dtype, torch.float32)
    layout = gather_layout(tuple(shapes), num_heads, num_points, str(device),
                           coord_dtype, index_dtype)
    # (rows, heads, LP, 2) -> x / y planes per chunk
    locations = sampling_locations.reshape(total, num_heads, num_lp, 2)
    weights = attention_weights.reshape(total, num_heads, num_lp)
    if query_chunk_size is None:
        query_chunk_size = _CPU_QUERY_CHUNK if device.type == 'cpu' else total
    query_chunk_size = max(1, int(query_chunk_size))

    outputs = []
    for start in range(0, total, query_chunk_size):
        end = min(start + query_chunk_size, total)
        planes = locations.new_empty(end - start, num_heads, 2, num_lp,
                                     dtype=coord_dtype)
        planes.copy_(locations[start:end].transpose(2, 3))
        batch_offset = None
        if bs > 1:
            batch_offset = (torch.arange(start, end, device=device) //
                            num_query) * (layout.padded_len * num_heads)
        outputs.append(
            sample_planes(table, planes, weights[start:end], layout,
                          batch_offset))
    output = outputs[0] if len(outputs) == 1 else torch.cat(outputs, 0)
    return output.view(bs, num_query, num_heads * head_dims)


def select_core(value: Tensor, needs_grad: bool,
                pytorch_impl: str = 'auto') -> str:
    """The MSDA core for ``value`` (one of :data:`CORES`).

    Args:
        value (Tensor): the attention's value (its device decides).
        needs_grad (bool): whether the core must be differentiable.
        pytorch_impl (str): the pure-PyTorch core: ``'auto'`` (``'fast'``
            without a gradient, ``'grid_sample'`` with one), ``'fast'`` or
            ``'grid_sample'``. Ignored for CUDA tensors with compiled mmcv.
    """
    if value.is_cuda and has_compiled_mmcv_ops():
        return 'mmcv_cuda'
    if pytorch_impl == 'auto':
        return 'grid_sample' if needs_grad else 'fast'
    if pytorch_impl not in ('fast', 'grid_sample'):
        raise ModelConfigError(f'unknown pytorch_impl {pytorch_impl!r}')
    return pytorch_impl


@float32_region  # sub-pixel bilinear sampling: fp32 under AMP
def multi_scale_deformable_attn(value: Tensor,
                                spatial_shapes: Tensor,
                                level_start_index: Tensor,
                                sampling_locations: Tensor,
                                attention_weights: Tensor,
                                core: str,
                                im2col_step: int = 64,
                                value_table: Optional[Tensor] = None
                                ) -> Tensor:
    """Run the MSDA ``core`` (see :func:`select_core`).

    Shapes as in :func:`multi_scale_deformable_attn_fast`; ``value`` may be
    None for the ``'fast'`` core when its ``value_table`` is given.
    ``level_start_index`` ``(L, )`` is only used by the compiled kernel.
    """
    if core == 'mmcv_cuda':
        return MultiScaleDeformableAttnFunction.apply(value, spatial_shapes,
                                                      level_start_index,
                                                      sampling_locations,
                                                      attention_weights,
                                                      im2col_step)
    if core == 'fast':
        return multi_scale_deformable_attn_fast(value, spatial_shapes,
                                                sampling_locations,
                                                attention_weights,
                                                value_table=value_table)
    if core == 'grid_sample':
        return multi_scale_deformable_attn_pytorch(value, spatial_shapes,
                                                   sampling_locations,
                                                   attention_weights)
    raise ValueError(f'unknown MSDA core {core!r}')
