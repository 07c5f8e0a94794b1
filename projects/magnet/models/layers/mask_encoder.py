"""Mask encoder of Mask Grounding: a ground-truth mask -> mask tokens."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

Tensor = torch.Tensor


class MaskEncoder(BaseModule):
    """Embed a binary mask as one token per cell of a visual grid.

    The mask is area-resampled to ``patch_size`` x ``patch_size`` cells per
    grid position, so each token sees the shape of the mask inside its cell
    (not only its coverage), then patch-embedded like an image:
    ``Conv(1, C, k=p, s=p) -> GELU -> Conv1x1(C, C) -> LayerNorm``.

    Args:
        channels (int): Token width C.
        patch_size (int): Mask samples per token side. Defaults to 4.
    """

    def __init__(self, channels: int, patch_size: int = 4) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.patch_embed = nn.Conv2d(1, channels, patch_size, patch_size)
        self.act = nn.GELU()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.norm = nn.LayerNorm(channels)

    def forward(self, masks: Tensor, grid: Tuple[int, int]) -> Tensor:
        """Args:
            masks (Tensor): (B, 1, H, W) float in [0, 1] (1 = referent;
                ignored pixels should already be set to 0).
            grid (tuple): (h, w) of the visual tokens.

        Returns:
            Tensor: (B, h * w, C) mask tokens in row-major grid order.
        """
        p = self.patch_size
        size = (grid[0] * p, grid[1] * p)
        masks = masks.to(self.patch_embed.weight.dtype)
        if tuple(masks.shape[-2:]) != size:
            masks = F.adaptive_avg_pool2d(masks, size) if (
                masks.shape[-2] >= size[0] and masks.shape[-1] >= size[1]
            ) else F.interpolate(masks, size=size, mode='bilinear',
                                 align_corners=False)
        tokens = self.proj(self.act(self.patch_embed(masks)))
        return self.norm(tokens.flatten(2).transpose(1, 2))
