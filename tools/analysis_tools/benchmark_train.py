"""Training-step benchmark of a MagNet config: images/s and peak memory.

Usage:
    python tools/analysis_tools/benchmark_train.py CONFIG [--batch B] \
        [--shape H W] [--device cpu|cuda] [--repeat N] [--warmup N] \
        [--threads T] [--compile] [--channels-last] [--out result.json]

One step = ``model.loss`` (forward + losses) on a random batch with
ground-truth masks, ``parse_losses``, backward and the config's optimizer
update (``optim_wrapper`` of the config, built by mmengine). Random weights
(pretrained ``init_cfg`` entries are dropped). Peak memory: process peak RSS
on CPU, allocator peak on CUDA. ``--compile`` wraps the backbone and pixel
decoder in ``torch.compile``; ``--channels-last`` converts the images and
conv weights. Both are opt-in: measure them on your machine
(docs/performance.md has the numbers measured here). Prints one JSON object.
"""
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from projects.magnet.engine import benchmarking as B  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from benchmark import apply_switches  # noqa: E402


def parse_args(argv=None):
    p = B.tool_parser(
        __doc__, shape=None, batch=None,
        shape_help='default: the config\'s img_scale, else 480 480',
        batch_help='default: the config\'s train batch size')
    p.add_argument('--device', default='cpu')
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--compile', action='store_true')
    p.add_argument('--channels-last', action='store_true')
    return p.parse_args(argv)


def run(args):
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(args.config)
    batch = args.batch or cfg.get('train_dataloader', {}).get('batch_size',
                                                               1)
    shape = args.shape or tuple(cfg.get('img_scale', (480, 480)))[::-1]
    model = B.build_model(cfg, device=args.device, inference=False)
    model.train()
    model = apply_switches(model, args.channels_last, args.compile)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    inputs, samples = B.dummy_batch(batch, shape, args.num_tokens,
                                    args.real_tokens, args.device,
                                    with_gt=True)
    if args.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)

    def step():
        losses = model.loss(inputs, samples)
        loss, _ = model.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return loss

    if str(args.device).startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    timing = B.time_calls(step, args.warmup, args.repeat, args.device)
    peak, kind = B.peak_memory_mib(args.device)
    return dict(
        config=args.config, device=args.device,
        threads=torch.get_num_threads(), torch=torch.__version__,
        batch=batch, shape=list(shape), compile=args.compile,
        channels_last=args.channels_last, warmup=args.warmup,
        repeat=args.repeat, **timing,
        images_per_s=round(batch / timing['median_s'], 4),
        peak_memory_mib=round(peak, 1), peak_memory_kind=kind,
        num_parameters=sum(p.numel() for p in model.parameters()))


def main(argv=None):
    B.run_tool(run, parse_args(argv))


if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
