"""Test (evaluate) a MagNet (or any mmseg) model with mmengine's Runner.

Usage:
    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
        [--show] [--show-dir DIR] [--cfg-options ...] [--launcher ...]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from projects.magnet.compat.runner_setup import (  # noqa: E402
    add_runner_arguments, build_runner, runner_config)
from projects.magnet.utils import (  # noqa: E402
    InvalidInputError, check_output_dir, run_cli)
from projects.magnet.utils.output_files import (  # noqa: E402
    check_input_file)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a '
                                     'segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved (a relative '
        'path is taken under the work dir)')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    add_runner_arguments(
        parser, 'directory for the evaluation metrics (and trusted '
        'checkpoints: files under it may be fully unpickled)')
    return parser.parse_args()


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        raise InvalidInputError(
            '--show/--show-dir need a "visualization" hook in '
            'default_hooks (e.g. SegVisualizationHook)')
    hook = default_hooks['visualization']
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir is not None:
        visualizer = cfg.visualizer
        visualizer['save_dir'] = check_output_dir(
            osp.join(cfg.work_dir, args.show_dir), what='--show-dir')
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
    from projects.magnet.compat import check_torch_file

    # missing, a folder, empty, text: refused before the Runner is built
    check_input_file(args.checkpoint, 'checkpoint file', allow_empty=True)
    check_torch_file(args.checkpoint)
    if args.show_dir is not None and not args.show_dir.strip():
        raise InvalidInputError('--show-dir: empty path; expected a folder')
    cfg = runner_config(args)  # checked: keys, value types, work_dir
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir is not None:
        cfg = trigger_visualization_hook(cfg, args)
    runner = build_runner(cfg, args.config)
    # mmengine loads load_from with strict=False: another model's weights
    # would be tested with random ones, silently. Refuse a mismatch first.
    verify_checkpoint(runner.model, args.checkpoint)
    runner.test()


if __name__ == '__main__':
    sys.exit(run_cli(main))
