"""DETR sine positional encoding (pixel decoder and query decoder).

mmcv has no sine positional encoding (mmdet's ``SinePositionalEncoding``
needs mmdet, which the project does not depend on); this one follows the
DETR / Mask2Former reference arithmetic exactly (float32), which the parity
with the official implementation needs.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ['SinePositionalEncoding']


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
