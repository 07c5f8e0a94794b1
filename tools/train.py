"""Train a MagNet (or any mmseg) model with mmengine's Runner.

Usage:
    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp]
        [--cfg-options key=value ...] [--launcher {none,pytorch,slurm,mpi}]
        [--traceback]

A bad input (missing file, malformed annotation, misspelt config key, ...)
ends with one ``error: ...`` line and exit status 1; ``--traceback`` (or
MAGNET_TRACEBACK=1) shows the traceback.
"""
import argparse
import os.path as osp
import sys
from typing import Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config  # noqa: E402

from projects.magnet.compat.runner_setup import (  # noqa: E402
    add_runner_arguments, build_runner, runner_config)
from projects.magnet.engine.benchmarking import (  # noqa: E402
    keep_freed_memory)
from projects.magnet.utils import (  # noqa: E402
    InvalidInputError, run_cli)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='resume from the latest checkpoint in the work_dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: CUDA autocast (fp16 with dynamic loss '
        'scaling, or --amp-dtype bfloat16), CPU bf16 autocast without a GPU')
    parser.add_argument(
        '--amp-dtype', choices=['float16', 'bfloat16'], default=None,
        help='autocast dtype with --amp (CUDA default float16; the CPU '
        'supports bfloat16 only)')
    add_runner_arguments(parser, 'the dir to save logs and models')
    return parser.parse_args()


#: --amp: the wrapper types it switches from -> to (CUDA, CPU)
AMP_WRAPPERS = {
    'OptimWrapper': ('AmpOptimWrapper', None),
    'GuardedOptimWrapper': ('GuardedAmpOptimWrapper', 'CPUAmpOptimWrapper'),
}


def enable_amp(cfg: Config, dtype: Optional[str] = None) -> None:
    """Switch ``cfg.optim_wrapper`` to mixed precision for this machine."""
    import torch
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    amp_types = {t for pair in AMP_WRAPPERS.values() for t in pair if t}
    if wrapper in amp_types:
        print(f'AMP training is already enabled in the config ({wrapper}).')
        return
    if wrapper not in AMP_WRAPPERS:
        raise InvalidInputError(
            f'--amp needs optim_wrapper.type to be one of '
            f'{sorted(AMP_WRAPPERS)}, got {wrapper!r}')
    cuda_type, cpu_type = AMP_WRAPPERS[wrapper]
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = cuda_type
        cfg.optim_wrapper.loss_scale = 'dynamic'
        if dtype is not None:
            cfg.optim_wrapper.dtype = dtype
        return
    if cpu_type is None:
        raise InvalidInputError(
            f'--amp without CUDA needs optim_wrapper.type '
            f'GuardedOptimWrapper (CPU bf16 autocast), got {wrapper!r}')
    if dtype not in (None, 'bfloat16'):
        raise InvalidInputError(
            f'--amp on the CPU supports --amp-dtype bfloat16 only, got '
            f'{dtype}')
    cfg.optim_wrapper.type = cpu_type


def main():
    args = parse_args()
    cfg = runner_config(args)  # checked: keys, value types, work_dir
    if args.amp:
        enable_amp(cfg, args.amp_dtype)
    cfg.resume = args.resume
    # freed activations stay with malloc for the next step instead of being
    # unmapped and page-faulted again (same arithmetic; docs/performance.md)
    keep_freed_memory()
    build_runner(cfg, args.config).train()


if __name__ == '__main__':
    sys.exit(run_cli(main))
