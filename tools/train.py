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
import os
import os.path as osp
import sys
from typing import Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from projects.magnet.compat import (  # noqa: E402
    init_cpu_distributed, install_checkpoint_loader, trust_directory)
from projects.magnet.utils import (  # noqa: E402
    CfgOptionsAction, check_config_keys, load_config, run_cli)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
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
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override settings of the config, key=value (xxx=yyy format)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


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
        raise ValueError(f'--amp needs optim_wrapper.type to be one of '
                         f'{sorted(AMP_WRAPPERS)}, got {wrapper!r}')
    cuda_type, cpu_type = AMP_WRAPPERS[wrapper]
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = cuda_type
        cfg.optim_wrapper.loss_scale = 'dynamic'
        if dtype is not None:
            cfg.optim_wrapper.dtype = dtype
        return
    if cpu_type is None:
        raise ValueError(f'--amp without CUDA needs optim_wrapper.type '
                         f'GuardedOptimWrapper (CPU bf16 autocast), got '
                         f'{wrapper!r}')
    if dtype not in (None, 'bfloat16'):
        raise ValueError(f'--amp on the CPU supports --amp-dtype bfloat16 '
                         f'only, got {dtype}')
    cfg.optim_wrapper.type = cpu_type


def main():
    args = parse_args()
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file not found: {args.config}')
    cfg = load_config(args.config)  # names the file in a syntax error
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    check_config_keys(cfg.keys(), args.config)  # misspelt top-level keys

    # work_dir: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    # checkpoints written by this run may be fully unpickled on resume
    install_checkpoint_loader()  # the project's checkpoint trust policy
    trust_directory(cfg.work_dir)

    if args.amp:
        enable_amp(cfg, args.amp_dtype)

    cfg.resume = args.resume

    init_cpu_distributed(args.launcher, cfg)  # torchrun without CUDA
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    sys.exit(run_cli(main))
