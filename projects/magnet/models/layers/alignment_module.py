"""Cross-modal Alignment Module (CAM).

Injects global context into the pixel-word fusion: the stage's visual map is
average-pooled at several pyramid sizes, each pooled map goes through a small
MLP and its own PWAM (fused with the words), is upsampled back, and a mixer
MLP merges the pyramid outputs with the full-resolution PWAM output. The
mixer output is the multimodal feature map that MagNet's decode head receives.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ..errors import ModelConfigError
from .pwam import PWAM


class PyramidContext(BaseModule):
    """Pool to ``pool_size`` x ``pool_size`` and project C -> C / reduction.

    Pool -> 1x1 conv C->4C -> LayerNorm(eps 1e-6) over channels -> 1x1 conv
    4C->C -> GELU -> 1x1 conv C->C/reduction, all without bias. 1x1 convs on
    pooled tokens are written as ``nn.Linear`` over the channel axis
    (numerically the same map).
    """

    def __init__(self, channels: int, out_channels: int, pool_size: int,
                 expand_ratio: int = 4, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.pool_size = pool_size
        hidden = channels * expand_ratio
        self.expand = nn.Linear(channels, hidden, bias=False)
        self.norm = nn.LayerNorm(hidden, eps=1e-6)
        self.squeeze = nn.Linear(hidden, channels, bias=False)
        self.reduce = nn.Linear(channels, out_channels, bias=False)

    def init_weights(self) -> None:
        """The official effective initialisation: the three 1x1 convolutions
        of the official code keep PyTorch's default (kaiming-uniform, the
        same law for this Linear form); the LayerNorm (1, 0)."""
        for m in (self.expand, self.squeeze, self.reduce):
            m.reset_parameters()
        nn.init.ones_(self.norm.weight)
        nn.init.zeros_(self.norm.bias)

    def forward(self, x_map: torch.Tensor) -> torch.Tensor:
        """Args: x_map (B, C, H, W). Returns pooled tokens (B, p*p, C_out)."""
        pooled = F.adaptive_avg_pool2d(x_map, self.pool_size)
        tokens = pooled.flatten(2).transpose(1, 2)  # (B, p*p, C)
        tokens = F.gelu(self.squeeze(self.norm(self.expand(tokens))))
        return self.reduce(tokens)


class CrossModalAlignment(BaseModule):
    """Multi-scale cross-modal alignment module of one backbone stage.

    Args:
        channels (int): Stage width C.
        text_channels (int): Word feature width L.
        pool_sizes (Sequence[int]): Pyramid pooling sizes (1, 2, 3, 6).
        reduction (int): Pyramid branch width is C // reduction.
        num_heads (int): Heads of the per-scale PWAMs.
        dropout (float): PWAM dropout.
    """

    def __init__(self, channels: int, text_channels: int,
                 pool_sizes: Sequence[int] = (1, 2, 3, 6),
                 reduction: int = 4, num_heads: int = 1,
                 dropout: float = 0.0, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if channels % reduction:
            raise ModelConfigError(
                f'channels ({channels}) must be divisible by '
                f'reduction ({reduction})')
        self.pool_sizes = tuple(pool_sizes)
        branch = channels // reduction
        self.pyramids = nn.ModuleList(
            PyramidContext(channels, branch, p) for p in self.pool_sizes)
        self.pwams = nn.ModuleList(
            PWAM(branch, text_channels, num_heads, dropout)
            for _ in self.pool_sizes)
        mixed = branch * len(self.pool_sizes) + channels
        self.mixer = nn.Sequential(
            nn.Linear(mixed, channels), nn.LayerNorm(channels),
            nn.Linear(channels, channels), nn.GELU())

    def forward(self, x: torch.Tensor, hw_shape: Tuple[int, int],
                residual: torch.Tensor, words: torch.Tensor,
                word_mask: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x (Tensor): Stage output (before fusion), (B, HW, C).
            hw_shape (tuple[int, int]): (H, W) of the stage.
            residual (Tensor): Full-resolution PWAM output, (B, HW, C).
            words (Tensor): Words, (B, N, L).
            word_mask (Tensor): 1 for real words, (B, N).

        Returns:
            Tensor: Aligned multimodal features, (B, C, H, W).
        """
        B, HW, C = x.shape
        H, W = hw_shape
        # one NCHW copy for the pooling (pooling the channel-last view would
        # convert it once per pyramid level)
        x_map = x.transpose(1, 2).reshape(B, C, H, W).contiguous()
        widths = [pyramid.reduce.out_features for pyramid in self.pyramids]
        # mixer input (B, H, W, sum(widths) + C), written in place instead
        # of concatenating transposed copies
        mixed = x.new_empty(B, H, W, sum(widths) + C)
        start = 0
        for p, pyramid, pwam, width in zip(self.pool_sizes, self.pyramids,
                                           self.pwams, widths):
            tokens = pwam(pyramid(x_map), words, word_mask)  # (B, p*p, c)
            ctx = tokens.transpose(1, 2).reshape(B, width, p, p)
            ctx = F.interpolate(
                ctx, size=(H, W), mode='bilinear', align_corners=True)
            mixed[..., start:start + width] = ctx.permute(0, 2, 3, 1)
            start += width
        mixed[..., start:] = residual.view(B, H, W, C)
        out = self.mixer(mixed.view(B, HW, -1))  # (B, HW, C)
        # contiguous NCHW: the consumers (pixel decoder convs and norms) are
        # faster on it than on the channels-last view
        return out.transpose(1, 2).reshape(B, C, H, W).contiguous()
