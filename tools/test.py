"""Test (evaluate) a MagNet (or any mmseg) model with mmengine's Runner.

Usage:
    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
        [--show] [--show-dir DIR] [--cfg-options ...] [--launcher ...]
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.runner import Runner  # noqa: E402

from projects.magnet.compat import (  # noqa: E402
    init_cpu_distributed, install_checkpoint_loader, trust_directory)
from projects.magnet.utils import (  # noqa: E402
    CfgOptionsAction, check_config_keys, load_config, run_cli)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a '
                                     'segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='directory for the evaluation metrics (and trusted '
        'checkpoints: files under it may be fully unpickled)')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved (a relative '
        'path is taken under the work dir)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
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
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise RuntimeError(
            '--show/--show-dir need a "visualization" hook in '
            'default_hooks (e.g. SegVisualizationHook)')
    hook = default_hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        visualizer = cfg.visualizer
        visualizer['save_dir'] = osp.join(cfg.work_dir, args.show_dir)
    return cfg


def verify_checkpoint(model, checkpoint: str) -> None:
    """Load ``checkpoint`` (trust policy applies) and refuse it unless its
    keys are ``model``'s (training-only modules may differ)."""
    from mmengine.model import is_model_wrapper
    from mmengine.runner.checkpoint import CheckpointLoader

    from projects.magnet.apis import check_checkpoint_matches
    from projects.magnet.compat import check_torch_file
    if osp.isfile(checkpoint):
        check_torch_file(checkpoint)
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    check_checkpoint_matches(
        model.module if is_model_wrapper(model) else model, ckpt,
        checkpoint)


def main():
    args = parse_args()
    for path, what in ((args.config, 'config'),
                       (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} file not found: {path}')
    cfg = load_config(args.config)  # names the file in a syntax error
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    check_config_keys(cfg.keys(), args.config)  # misspelt top-level keys

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    install_checkpoint_loader()  # the project's checkpoint trust policy
    trust_directory(cfg.work_dir)

    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    init_cpu_distributed(args.launcher, cfg)  # torchrun without CUDA
    runner = Runner.from_cfg(cfg)
    # mmengine loads load_from with strict=False: another model's weights
    # would be tested with random ones, silently. Refuse a mismatch first.
    verify_checkpoint(runner.model, args.checkpoint)
    runner.test()


if __name__ == '__main__':
    sys.exit(run_cli(main))
