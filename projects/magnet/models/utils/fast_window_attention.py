"""Inference fast path of mmseg's shifted-window attention (Swin).

mmseg's ``ShiftWindowMSA`` pads the (normalised) tokens to a multiple of the
window size, runs the ``qkv`` and ``proj`` linears on the padded map and
materialises the ``(windows, heads, N, N)`` attention logits three times
(product, + bias, softmax). At inference this computes the same function
with less work and memory:

* ``qkv`` runs on the real tokens only; a padded token is a zero vector, so
  its ``qkv`` is exactly the bias, which is what the padded rows are filled
  with (the official Swin does not mask padding in regular windows);
* the attention is ``F.scaled_dot_product_attention`` with the relative
  position bias (+ the shifted-window mask, -100 as in Swin) as an additive
  mask, so no ``N x N`` logits are kept per window;
* ``proj`` runs after cropping the padding.

Parameters and their names are untouched (the module's class is swapped,
so checkpoints load as before); training uses mmseg's forward.
"""
from __future__ import annotations

from typing import Dict, Tuple

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


def _shift_mask(module, h_pad: int, w_pad: int,
                device: torch.device) -> Tensor:
    """(nW, N, N) additive mask of the shifted windows (0 / -100), cached
    per padded size (it depends on sizes only)."""
    cache: Dict = module.__dict__.setdefault('_shift_mask_cache', {})
    key = (h_pad, w_pad, str(device))
    if key not in cache:
        ws, shift = module.window_size, module.shift_size
        img_mask = torch.zeros((1, h_pad, w_pad, 1), device=device)
        slices = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
        cnt = 0
        for h in slices:
            for w in slices:
                img_mask[:, h, w, :] = cnt
                cnt += 1
        windows = module.window_partition(img_mask).view(-1, ws * ws)
        mask = windows.unsqueeze(1) - windows.unsqueeze(2)
        cache.clear()
        cache[key] = mask.masked_fill(mask != 0, -100.0).masked_fill(
            mask == 0, 0.0)
    return cache[key]


def shift_window_attention(module: ShiftWindowMSA, query: Tensor,
                           hw_shape: Tuple[int, int]) -> Tensor:
    """Same function as ``ShiftWindowMSA.forward`` in eval mode."""
    w_msa = module.w_msa
    B, L, C = query.shape
    H, W = hw_shape
    ws, shift = module.window_size, module.shift_size
    heads = w_msa.num_heads
    head_dim = C // heads
    N = ws * ws

    qkv = w_msa.qkv(query).view(B, H, W, 3 * C)
    pad_r = (ws - W % ws) % ws
    pad_b = (ws - H % ws) % ws
    if pad_r or pad_b:
        qkv = F.pad(qkv, (0, 0, 0, pad_r, 0, pad_b))
        if w_msa.qkv.bias is not None:
            qkv[:, H:, :, :] = w_msa.qkv.bias
            qkv[:, :H, W:, :] = w_msa.qkv.bias
    h_pad, w_pad = H + pad_b, W + pad_r
    if shift > 0:
        qkv = torch.roll(qkv, shifts=(-shift, -shift), dims=(1, 2))
    nh, nw = h_pad // ws, w_pad // ws
    # (B, nh, ws, nw, ws, 3, heads, hd) -> (3, B * nW, heads, N, hd)
    qkv = qkv.view(B, nh, ws, nw, ws, 3, heads, head_dim).permute(
        5, 0, 1, 3, 6, 2, 4, 7).reshape(3, B * nh * nw, heads, N, head_dim)
    q, k, v = qkv.unbind(0)

    bias = w_msa.relative_position_bias_table[
        w_msa.relative_position_index.view(-1)].view(N, N, heads).permute(
            2, 0, 1)  # (heads, N, N)
    if shift > 0:
        mask = _shift_mask(module, h_pad, w_pad, query.device)  # (nW, N, N)
        attn_mask = (bias.unsqueeze(0) + mask.unsqueeze(1)).repeat(
            B, 1, 1, 1)  # (B * nW, heads, N, N)
    else:
        attn_mask = bias.unsqueeze(0).contiguous()
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask.to(q.dtype), scale=w_msa.scale)
    # (B * nW, heads, N, hd) -> (B, H_pad, W_pad, C)
    out = out.view(B, nh, nw, heads, ws, ws, head_dim).permute(
        0, 1, 4, 2, 5, 3, 6).reshape(B, h_pad, w_pad, C)
    if shift > 0:
        out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
    if pad_r or pad_b:
        out = out[:, :H, :W, :]
    out = w_msa.proj(out.reshape(B, L, C))
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
