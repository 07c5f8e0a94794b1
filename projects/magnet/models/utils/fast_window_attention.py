"""Inference fast path of mmseg's shifted-window attention (Swin).

mmseg's ``ShiftWindowMSA`` pads the (normalised) tokens to a multiple of the
window size, runs the ``qkv`` and ``proj`` linears on the padded map, rolls
and partitions the map with several full copies, repeats the
``(windows, heads, N, N)`` shifted-window mask for every image and
materialises the attention logits three times (product, + bias, softmax).
At inference this computes the same function with less work and memory:

* ``qkv`` runs on the real tokens only; a padded token is a zero vector, so
  its ``qkv`` is exactly the bias, which is what padding positions read (the
  official Swin does not mask padding in regular windows);
* padding, the cyclic shift and the window partition are one row gather
  (``index_select`` with a cached index), and their inverse plus the crop
  are one gather of the real tokens, instead of pad + roll + permute copies
  in each direction;
* the attention is ``F.scaled_dot_product_attention`` with the relative
  position bias as an additive mask. Of the shifted windows only those in
  the last window row/column have a non-zero shift mask (-100 as in Swin);
  the gather puts them last, so the others share the broadcast bias and the
  ``(windows, heads, N, N)`` mask is only built for the border windows.

Parameters and their names are untouched (the module's class is swapped,
so checkpoints load as before); training uses mmseg's forward.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import torch
import torch.nn.functional as F
from mmseg.models.backbones.swin import ShiftWindowMSA

Tensor = torch.Tensor


class FastShiftWindowMSA(ShiftWindowMSA):
    """``ShiftWindowMSA`` with :func:`shift_window_attention` at inference.
    """

    def forward(self, query: Tensor, hw_shape: Tuple[int, int]) -> Tensor:
        if self.training or torch.is_grad_enabled():
            return super().forward(query, hw_shape)
        return shift_window_attention(self, query, hw_shape)


@torch.compiler.disable  # cached index tensors: not traced by dynamo
@lru_cache(maxsize=16)
def window_layout(height: int, width: int, window: int, shift: int,
                  device: str) -> Tuple[Tensor, Tensor, Tensor, int]:
    """Gather layout of one image's tokens in shifted windows.

    The padded map (``height`` x ``width`` padded right/bottom to multiples
    of ``window``) is rolled by ``-shift`` and cut into windows, as in Swin.
    Windows whose shift mask is all zero come first, border windows last.

    Returns:
        tuple:
        - source (Tensor): ``(nW * N, )`` int64, for every window slot the
          token index ``y * width + x`` it reads, ``height * width`` for
          padding;
        - slot (Tensor): ``(height * width, )`` int64, the window slot of
          every real token (the inverse of ``source``);
        - mask (Tensor): ``(n_border, N, N)`` float32 shift mask (0 / -100)
          of the border windows, in their gather order;
        - n_inner (int): windows before the border windows.
    """
    dev = torch.device(device)
    h_pad = -(-height // window) * window
    w_pad = -(-width // window) * window
    nh, nw = h_pad // window, w_pad // window
    n = window * window
    # coordinates in the padded frame read by (window row a, window col b,
    # in-window row r, in-window col c) after rolling by -shift
    ys = (torch.arange(h_pad) + shift) % h_pad
    xs = (torch.arange(w_pad) + shift) % w_pad
    ys = ys.view(nh, window)[:, None, :, None]
    xs = xs.view(nw, window)[None, :, None, :]
    valid = (ys < height) & (xs < width)
    source = torch.where(valid, ys * width + xs,
                         torch.full_like(ys * xs, height * width))
    source = source.reshape(nh * nw, n)
    if shift > 0:
        # Swin's region labels in the rolled frame
        labels = torch.zeros(h_pad, w_pad)
        cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
        count = 0
        for hs in cuts:
            for ws in cuts:
                labels[hs, ws] = count
                count += 1
        labels = labels.view(nh, window, nw, window).permute(0, 2, 1, 3)
        labels = labels.reshape(nh * nw, n)
        diff = labels[:, None, :] - labels[:, :, None]
        mask = torch.zeros_like(diff).masked_fill_(diff != 0, -100.0)
        border = (diff != 0).flatten(1).any(1)
    else:
        border = torch.zeros(nh * nw, dtype=torch.bool)
        mask = torch.zeros(nh * nw, n, n)
    order = torch.cat([(~border).nonzero()[:, 0], border.nonzero()[:, 0]])
    source = source[order].reshape(-1)
    slot = torch.empty(height * width, dtype=torch.long)
    real = source < height * width
    slot[source[real]] = real.nonzero()[:, 0]
    mask = mask[border]
    n_inner = int((~border).sum())
    return source.to(dev), slot.to(dev), mask.to(dev), n_inner


def shift_window_attention(module: ShiftWindowMSA, query: Tensor,
                           hw_shape: Tuple[int, int]) -> Tensor:
    """Same function as ``ShiftWindowMSA.forward`` in eval mode.

    Args:
        query (Tensor): ``(B, H * W, C)`` normalised tokens.
        hw_shape (tuple): ``(H, W)``.

    Returns:
        Tensor: ``(B, H * W, C)``.
    """
    w_msa = module.w_msa
    B, L, C = query.shape
    H, W = hw_shape
    ws = module.window_size
    heads = w_msa.num_heads
    head_dim = C // heads
    N = ws * ws
    source, slot, border_mask, n_inner = window_layout(
        H, W, ws, module.shift_size, str(query.device))
    n_windows = source.numel() // N

    # qkv of the real tokens plus one padding row (= the bias): (B*L+1, 3C)
    weight, bias = w_msa.qkv.weight, w_msa.qkv.bias
    rows = query.new_empty(B * L + 1, 3 * C)
    if bias is None:
        torch.mm(query.reshape(B * L, C), weight.t(), out=rows[:-1])
        rows[-1] = 0
    else:
        torch.addmm(bias, query.reshape(B * L, C), weight.t(), out=rows[:-1])
        rows[-1] = bias
    # window-ordered row index over the batch: the inner windows of every
    # image, then the border windows of every image
    batch_source = torch.where(
        source < L, source + torch.arange(B, device=query.device)[:, None] * L,
        B * L)  # (B, nW * N); padding reads the last row
    split = n_inner * N
    index = batch_source.view(-1) if B == 1 else torch.cat(
        [batch_source[:, :split].reshape(-1),
         batch_source[:, split:].reshape(-1)])
    windows = rows.index_select(0, index)
    # (B * nW, N, 3, heads, hd) -> q, k, v: (B * nW, heads, N, hd) views
    q, k, v = windows.view(B * n_windows, N, 3, heads,
                           head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    rel_bias = w_msa.relative_position_bias_table[
        w_msa.relative_position_index.view(-1)].view(N, N, heads).permute(
            2, 0, 1).unsqueeze(0).to(q.dtype)  # (1, heads, N, N)
    n_in = B * n_inner
    outs = []
    if n_in:
        outs.append(
            F.scaled_dot_product_attention(
                q[:n_in], k[:n_in], v[:n_in], attn_mask=rel_bias,
                scale=w_msa.scale))
    if n_in < q.shape[0]:
        mask = (rel_bias + border_mask.unsqueeze(1).to(q.dtype))
        if B > 1:
            mask = mask.repeat(B, 1, 1, 1)
        outs.append(
            F.scaled_dot_product_attention(
                q[n_in:], k[n_in:], v[n_in:], attn_mask=mask,
                scale=w_msa.scale))
    out = outs[0] if len(outs) == 1 else torch.cat(outs)
    # back to token order: the window slot of every real token, per image
    # (B, L), shifted to the batch's gather order
    image = torch.arange(B, device=query.device)[:, None]
    slot_b = torch.where(slot < split, slot + image * split,
                         B * split + image * (source.numel() - split) +
                         (slot - split))
    out = out.permute(0, 2, 1, 3).reshape(-1, heads * head_dim)
    out = out.index_select(0, slot_b.view(-1)).view(B, L, C)
    out = w_msa.proj(out)
    return module.drop(w_msa.proj_drop(out))


def use_fast_window_attention(backbone: torch.nn.Module) -> int:
    """Swap every ``ShiftWindowMSA`` of ``backbone`` to the fast inference
    class; returns how many were swapped."""
    count = 0
    for m in backbone.modules():
        if type(m) is ShiftWindowMSA:
            m.__class__ = FastShiftWindowMSA
            count += 1
    return count
