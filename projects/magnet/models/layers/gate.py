"""Tanh residual gate used to inject a fusion output into a feature stream."""
from __future__ import annotations

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer
from mmengine.model import BaseModule


class ResidualGate(BaseModule):
    """``x + tanh(fc2(act(fc1(r)))) * r``: element-wise gated residual.

    MagNet gates the pixel-word attention output into the Swin stream (GELU
    inside the gate) and the word-pixel attention output into the BERT stream
    (ReLU inside the gate). Both linear layers have no bias and are
    zero-initialised, so a freshly built gate is closed (the residual adds 0).

    Args:
        channels (int): Feature width C.
        act_cfg (dict): Activation between the two linear layers.
    """

    def __init__(self, channels: int, act_cfg: dict = dict(type='GELU'),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.fc1 = nn.Linear(channels, channels, bias=False)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Linear(channels, channels, bias=False)

    def init_weights(self) -> None:
        super().init_weights()
        nn.init.zeros_(self.fc1.weight)
        nn.init.zeros_(self.fc2.weight)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """x, residual: (..., C) -> (..., C)."""
        gate = torch.tanh(self.fc2(self.act(self.fc1(residual))))
        return x + gate * residual
