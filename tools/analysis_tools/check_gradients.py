"""Gradient health of a config: a few training steps, then which trainable
parameters got no gradient, per-module gradient norms and gate openness.

Usage:
    python tools/analysis_tools/check_gradients.py CONFIG [--steps 3]
        [--inputs random|data] [--batch 2] [--shape H W] [--num-tokens N]
        [--pretrained auto|skip] [--checkpoint CKPT] [--depth 2]
        [--seed 0] [--threads T]
        [--cfg-options key=value ...] [--out report.json] [--traceback]

The steps are real training steps (``model.train_step`` with the config's
optimizer wrapper: forward, losses, backward, update) on ``--inputs random``
(images, expressions and masks that no dataset holds; the default) or on
the config's own train dataloader (``--inputs data``). The pretrained
weights named by ``init_cfg`` are loaded when they can be (``auto``) and
skipped with a note when they cannot (no network) or with ``skip``.

Stochastic depth (``drop_path_rate``) drops a block's branch for a whole
sample: with a batch of 1 a block can get no gradient in a few steps by
chance; the default batch of 2 makes that rare (the paper configs' last
blocks drop with p = 0.3: 0.3^6 for 3 steps).

Exit status 1 if a trainable parameter got no gradient (or only zeros) in
every step, or a non-finite one; 0 otherwise. Parameters the model freezes
on purpose (``MagNet.frozen_inert``: kept only for checkpoint loading, or
inert by design) are listed with their reason.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from collections import Counter
from typing import List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.magnet.utils import (  # noqa: E402
    JSON_EXTENSIONS, CfgOptionsAction, InvalidInputError, check_config_keys,
    check_config_values, check_output_file, load_config, run_cli, save_json)
from projects.magnet.utils.cli import check_minimum  # noqa: E402
from projects.magnet.utils.config_check import (  # noqa: E402
    check_option_shapes)
from projects.magnet.utils.output_files import (  # noqa: E402
    check_input_file)

from projects.magnet.engine.benchmarking import drop_pretrained  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('config')
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--inputs', choices=('random', 'data'),
                        default='random')
    parser.add_argument('--batch', type=int, default=2,
                        help='batch size (both input kinds)')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='random image size (default: the config\'s '
                        'img_scale, else 128 128)')
    parser.add_argument('--num-tokens', type=int,
                        help='token slots of the random expressions '
                        '(default: the config\'s max_tokens, else 20)')
    parser.add_argument('--pretrained', choices=('auto', 'skip'),
                        default='auto')
    parser.add_argument('--checkpoint',
                        help='start from these weights (e.g. a trained '
                        'model: how open are its gates, what still gets a '
                        'gradient)')
    parser.add_argument('--depth', type=int, default=2,
                        help='module depth of the gradient-norm groups')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int)
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override settings of the config, key=value')
    parser.add_argument('--out', help='also write the report as JSON here')
    args = parser.parse_args(argv)
    # below these the steps fail deep inside the model, after the build
    check_minimum(parser, args, dict(steps=1, batch=1, shape=1,
                                     num_tokens=1, depth=0, threads=1))
    return args


#: top-level config keys the tool reads (``train_dataloader``: ``--inputs
#: data`` only)
REQUIRED_KEYS = ('model', 'optim_wrapper')


def check_config(cfg, args) -> None:
    """Refuse a config without what the steps need (a test-only config
    has no ``optim_wrapper``), before the model is built."""
    required = REQUIRED_KEYS + (
        ('train_dataloader', ) if args.inputs == 'data' else ())
    missing = [k for k in required if cfg.get(k) is None]
    if missing:
        raise InvalidInputError(
            f'{args.config}: no {", ".join(missing)}; training steps need '
            'a training config (model, optim_wrapper' +
            (', train_dataloader' if args.inputs == 'data' else '') + ')')


def build_model(cfg, pretrained: str, seed: int) -> Tuple[object, str]:
    """The config's model with ``init_weights()`` run; the pretrained
    weights as ``pretrained`` says. Returns (model, note)."""
    import torch
    from mmseg.registry import MODELS
    model_cfg = cfg.model.to_dict()
    if pretrained == 'skip':
        dropped = drop_pretrained(model_cfg)
        note = f'skipped ({", ".join(dropped)})' if dropped else 'none named'
    else:
        torch.manual_seed(seed)
        model = MODELS.build(model_cfg)
        try:
            model.init_weights()
            return model, 'loaded where init_cfg names them'
        except OSError as err:  # not on this machine (no network)
            dropped = drop_pretrained(model_cfg)
            note = (f'not available ({type(err).__name__}: '
                    f'{str(err).splitlines()[0][:160]}); random '
                    f'initialisation instead of {", ".join(dropped)}')
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model, note


def config_shape(cfg) -> Tuple[int, int]:
    scale = cfg.get('img_scale', (128, 128))
    return int(scale[1]), int(scale[0])  # mmcv scale is (w, h)


def vocab_size(model) -> int:
    bert = getattr(getattr(model, 'text_encoder', None), 'bert', None)
    return int(getattr(getattr(bert, 'config', None), 'vocab_size', 30522))


def random_batches(args, cfg, model):
    from projects.magnet.engine import random_training_batch
    shape = tuple(args.shape) if args.shape else config_shape(cfg)
    tokens = args.num_tokens or int(cfg.get('max_tokens', 20))
    vocab = vocab_size(model)
    # a model with a no-target decision (GRES) gets no-target samples too
    mixed = 2 if getattr(getattr(model, 'decode_head', None), 'no_target',
                         None) else 0
    desc = (f'random inputs ({args.batch} x 3 x {shape[0]} x {shape[1]}, '
            f'{tokens} token slots' +
            (', every 2nd sample without a target)' if mixed else ')'))
    return desc, [
        random_training_batch(args.batch, shape, tokens, vocab,
                              seed=args.seed + i, no_target_every=mixed)
        for i in range(args.steps)
    ]


def data_batches(args, cfg):
    from mmengine.runner import Runner
    loader_cfg = cfg.train_dataloader.to_dict()
    loader_cfg.update(batch_size=args.batch, num_workers=0,
                      persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg, seed=args.seed)
    batches = []
    for data in loader:
        batches.append(data)
        if len(batches) == args.steps:
            break
    return f'the config\'s train data (batch {args.batch})', batches


def show(report: dict) -> None:
    from projects.magnet.engine.gradient_health import format_table
    steps = report['steps']
    print(f'{report["config"]}: {steps} training '
          f'step{"s" if steps != 1 else ""} on '
          f'{report["inputs"]}; pretrained weights: {report["pretrained"]}')
    print(f'trainable parameters: {report["trainable"]}; frozen: '
          f'{report["frozen"]} ({len(report["frozen_inert"])} of them '
          'inert by design or kept only for checkpoint loading)')
    dead = report['without_gradient']
    if dead:
        print(f'\nWITHOUT GRADIENT in every step: {len(dead)}')
        for name in dead:
            print(f'  {name}')
    if report['nonfinite']:
        print(f'\nNON-FINITE gradients: {", ".join(report["nonfinite"])}')
    print('\ngradient norm per module (last step):')
    print(format_table(
        [(k, f'{v:.3e}') for k, v in report['group_norms'].items()],
        ('module', 'grad norm')))
    if report['gate_weights']:
        print('\nfusion gates (mean |gate| in the last forward; '
              '|fc1|*|fc2| after the steps):')
        rows = [(k, f'{report["gates"][k]:.3e}' if k in report['gates'] else
                 'not run', f'{v:.3e}')
                for k, v in report['gate_weights'].items()]
        print(format_table(rows, ('gate', 'mean |gate|', '|fc1|*|fc2|')))
    if report['frozen_inert']:
        print('\nfrozen as inert (parameters per reason):')
        for reason, n in Counter(report['frozen_inert'].values()).items():
            print(f'  {n:4d}  {reason}')
    # the verdict last, where a reader of the output's tail finds it
    if dead or report['nonfinite']:
        print(f'\nRESULT: {len(dead)} of {report["trainable"]} trainable '
              'parameters got no gradient in any step, '
              f'{len(report["nonfinite"])} a non-finite one (listed above)')
    else:
        print(f'\nRESULT: every trainable parameter received a non-zero '
              f'gradient ({report["trainable"]} in {steps} '
              f'step{"s" if steps != 1 else ""})')


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.out:  # before the (slow) model build
        check_output_file(args.out, JSON_EXTENSIONS, what='--out',
                          inputs=[args.config, args.checkpoint])
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    import torch
    from mmengine.logging import MMLogger
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    import projects.magnet  # noqa: F401  (registers the modules)
    from projects.magnet.compat import install_checkpoint_loader
    from projects.magnet.engine import check_gradients
    if args.threads:
        torch.set_num_threads(args.threads)
    install_checkpoint_loader()
    cfg = load_config(args.config)
    if args.cfg_options:
        check_option_shapes(cfg, args.cfg_options, args.config)
        cfg.merge_from_dict(args.cfg_options)
    check_config_keys(cfg.keys(), args.config)
    check_config_values(cfg, args.config, args.cfg_options)
    check_config(cfg, args)
    if args.checkpoint:  # missing, a folder, not a checkpoint
        from projects.magnet.compat import check_torch_file
        check_input_file(args.checkpoint, 'checkpoint file',
                         allow_empty=True)
        check_torch_file(args.checkpoint)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    # mmengine logs every parameter's initialisation at INFO
    MMLogger.get_instance('check_gradients', log_level='WARNING')
    model, note = build_model(cfg, args.pretrained, args.seed)
    if args.checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu',
                        strict=True, logger='silent')
        note = f'the weights of {args.checkpoint}'
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    if args.inputs == 'random':
        desc, batches = random_batches(args, cfg, model)
    else:
        desc, batches = data_batches(args, cfg)
    torch.manual_seed(args.seed)
    report = dict(config=args.config, inputs=desc, pretrained=note)
    report.update(check_gradients(model, optim_wrapper, batches, args.depth))
    show(report)
    if args.out:
        save_json(report, args.out, indent=1)
    return 1 if report['without_gradient'] or report['nonfinite'] else 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
