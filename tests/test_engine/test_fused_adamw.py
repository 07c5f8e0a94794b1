"""The CPU schedule's fused AdamW: the same update as the per-parameter
(for-loop) AdamW, with the schedule's parameter groups and clipping."""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from ..conftest import REPO_ROOT

SCHEDULE = osp.join(REPO_ROOT, 'configs', '_base_', 'schedules',
                    'schedule_10min_cpu.py')


class _Net(torch.nn.Module):
    """Two linears around a norm (a group without weight decay)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(6, 8)
        self.norm = torch.nn.LayerNorm(8)
        self.fc2 = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 6) -> (N, 3)."""
        return self.fc2(torch.nn.functional.gelu(self.norm(self.fc1(x))))


def _model():
    torch.manual_seed(0)
    return _Net()


def _train(optim_cfg, steps=5):
    import projects.magnet  # noqa: F401  (registers GuardedOptimWrapper)
    init_default_scope('mmseg')
    model = _model()
    wrapper = build_optim_wrapper(model, optim_cfg)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 6, generator=gen)
        wrapper.update_params(model(x).square().mean() * 50)
    return model


def test_schedule_uses_fused_adamw_with_the_same_updates():
    cfg = Config.fromfile(SCHEDULE).optim_wrapper
    assert cfg.optimizer.fused is True
    fused = _train(cfg.to_dict())
    loop_cfg = cfg.to_dict()
    loop_cfg['optimizer'] = {**loop_cfg['optimizer'], 'fused': False,
                             'foreach': False}
    loop = _train(loop_cfg)
    for (name, a), (_, b) in zip(fused.named_parameters(),
                                 loop.named_parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
