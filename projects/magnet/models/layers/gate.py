"""Tanh residual gate used to inject a fusion output into a feature stream."""
from __future__ import annotations

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_init
from ..errors import ModelConfigError

GATE_INITS = ('trunc_normal', 'zeros')


class ResidualGate(BaseModule):
    """``x + tanh(fc2(act(fc1(r)))) * r``: element-wise gated residual.

    MagNet gates the pixel-word attention output into the Swin stream (GELU
    inside the gate) and the word-pixel attention output into the BERT stream
    (ReLU inside the gate). Both linear layers have no bias.

    Initialisation (:meth:`init_weights`):

    * ``'trunc_normal'`` (default): both layers truncated normal with
      ``std`` (0.02), so the gate starts almost closed (``|gate| ~ 1e-3``)
      *and trainable*. This is the official effective initialisation of the
      vision gates: the official backbone zeroes them in its constructor and
      its ``init_weights`` then re-initialises every Linear this way.
    * ``'zeros'``: both layers zero. The gate is closed and can never open:
      ``d gate / d fc2 = act(fc1 r) = 0`` and ``d gate / d fc1`` is
      proportional to ``fc2 = 0``, so neither layer ever receives a
      gradient. Only useful to reproduce a constructor-state model or to
      load trained weights over it.

    Args:
        channels (int): Feature width C.
        act_cfg (dict): Activation between the two linear layers.
        init (str): ``'trunc_normal'`` or ``'zeros'``.
        std (float): Standard deviation of the truncated normal.
    """

    def __init__(self, channels: int, act_cfg: dict = dict(type='GELU'),
                 init: str = 'trunc_normal', std: float = 0.02,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        if init not in GATE_INITS:
            raise ModelConfigError(
                f'gate init must be one of {GATE_INITS}, got '
                f'{init!r}')
        self.init = init
        self.std = std
        self.fc1 = nn.Linear(channels, channels, bias=False)
        self.act = build_activation_layer(act_cfg)
        self.fc2 = nn.Linear(channels, channels, bias=False)

    def init_weights(self) -> None:
        super().init_weights()
        for fc in (self.fc1, self.fc2):
            if self.init == 'zeros':
                nn.init.zeros_(fc.weight)
            else:
                trunc_normal_init(fc, std=self.std)

    def gate_values(self, residual: torch.Tensor) -> torch.Tensor:
        """The gate ``tanh(fc2(act(fc1(r))))``, (..., C) -> (..., C)."""
        return torch.tanh(self.fc2(self.act(self.fc1(residual))))

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """x, residual: (..., C) -> (..., C)."""
        return x + self.gate_values(residual) * residual
