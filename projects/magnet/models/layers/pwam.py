"""Pixel-Word Attention Module (PWAM): pixels attend to the words.

Vision-side fusion of MagNet (inherited from LAVT, with Linear+LayerNorm
query/output projections): every pixel gathers a language feature from the
words of the expression and multiplies it element-wise with a projection of
itself.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, trunc_normal_init

from ..errors import ModelConfigError
from ..utils.inert import KEY_BIAS
from ..utils.precision import float32_region

# Additive constant that removes padded words from the softmax. The released
# models were trained with +-1e4 (not -inf); keep it for identical numerics.
WORD_MASK_VALUE = 1e4


class PixelWordAttention(BaseModule):
    """Pixels (queries) attend over words (keys/values).

    Args:
        channels (int): Pixel feature width C (query, key, value and output
            width).
        text_channels (int): Word feature width L.
        num_heads (int): Attention heads. The scale is always ``C ** -0.5``
            (the total key width), as in the released models.
    """

    def __init__(self, channels: int, text_channels: int, num_heads: int = 1,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if channels % num_heads:
            raise ModelConfigError(
                f'channels ({channels}) must be divisible by '
                f'num_heads ({num_heads})')
        self.channels = channels
        self.num_heads = num_heads
        self.query_proj = nn.Linear(channels, channels)
        self.query_norm = nn.LayerNorm(channels)
        self.key_proj = nn.Linear(text_channels, channels)
        self.value_proj = nn.Linear(text_channels, channels)
        self.out_proj = nn.Linear(channels, channels)
        self.out_norm = nn.LayerNorm(channels)

    def inert_parameters(self) -> dict:
        """The key bias: the softmax runs over the words."""
        return {'key_proj.bias': KEY_BIAS}

    @float32_region  # the +-1e4 mask arithmetic stays fp32 under AMP
    def forward(self, x: torch.Tensor, words: torch.Tensor,
                word_mask: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x (Tensor): Pixels, (B, HW, C).
            words (Tensor): Words, (B, N, L).
            word_mask (Tensor): 1 for real words, 0 for padding, (B, N).

        Returns:
            Tensor: One language feature per pixel, (B, HW, C).
        """
        B, HW, C = x.shape
        N = words.shape[1]
        heads, head_dim = self.num_heads, C // self.num_heads
        mask = word_mask.to(x.dtype)[:, None, None, :]  # (B, 1, 1, N)

        query = self.query_norm(self.query_proj(x))
        query = query.view(B, HW, heads, head_dim).transpose(1, 2)
        key = self.key_proj(words) * mask[:, 0, 0, :, None]  # (B, N, C)
        value = self.value_proj(words) * mask[:, 0, 0, :, None]
        key = key.view(B, N, heads, head_dim).permute(0, 2, 3, 1)
        value = value.view(B, N, heads, head_dim).transpose(1, 2)

        sim = (C**-0.5) * torch.matmul(query, key)  # (B, heads, HW, N)
        sim = sim + (WORD_MASK_VALUE * mask - WORD_MASK_VALUE)
        attn = F.softmax(sim, dim=-1)
        out = torch.matmul(attn, value)  # (B, heads, HW, head_dim)
        out = out.transpose(1, 2).reshape(B, HW, C)
        return self.out_norm(self.out_proj(out))


class PWAM(BaseModule):
    """Pixel-Word Attention Module.

    ``r = GELU(mm_proj(GELU(vis_proj(x)) * attn(x, words)))``

    Args:
        channels (int): Pixel feature width C.
        text_channels (int): Word feature width L.
        num_heads (int): Heads of the pixel-word attention.
        dropout (float): Dropout after both projections (0 in the paper).
    """

    def __init__(self, channels: int, text_channels: int, num_heads: int = 1,
                 dropout: float = 0.0, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.vis_proj = nn.Linear(channels, channels)
        self.attn = PixelWordAttention(channels, text_channels, num_heads)
        self.mm_proj = nn.Linear(channels, channels)
        self.dropout = nn.Dropout(dropout)

    def init_weights(self) -> None:
        """The official effective initialisation: the layers that are 1x1
        convolutions in the official code (``vis_proj``, ``mm_proj``, the
        key and value projections) keep PyTorch's default (kaiming-uniform
        weight and uniform bias, the same law for a Linear and a 1x1 conv);
        the Linear query / output projections are truncated normal (std
        0.02, bias 0); the LayerNorms (1, 0). docs/initialisation.md."""
        attn = self.attn
        for m in (self.vis_proj, self.mm_proj, attn.key_proj,
                  attn.value_proj):
            m.reset_parameters()
        for m in (attn.query_proj, attn.out_proj):
            trunc_normal_init(m, std=.02, bias=0.)
        for m in (attn.query_norm, attn.out_norm):
            constant_init(m, val=1.0, bias=0.)

    def forward(self, x: torch.Tensor, words: torch.Tensor,
                word_mask: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x (Tensor): Pixels, (B, HW, C).
            words (Tensor): Words, (B, N, L).
            word_mask (Tensor): 1 for real words, 0 for padding, (B, N).

        Returns:
            Tensor: Multimodal pixel features, (B, HW, C).
        """
        vis = self.dropout(F.gelu(self.vis_proj(x)))
        lang = self.attn(x, words, word_mask)
        return self.dropout(F.gelu(self.mm_proj(vis * lang)))
