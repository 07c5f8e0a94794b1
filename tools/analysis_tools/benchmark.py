"""Inference benchmark of a MagNet config: latency, throughput, peak memory,
FLOPs and achieved GFLOP/s next to the machine's fp32 matmul peak.

Usage:
    python tools/analysis_tools/benchmark.py CONFIG [--checkpoint CKPT] \
        [--shape H W] [--batch B] [--device cpu|cuda] [--repeat N] \
        [--warmup N] [--threads T] [--channels-last] [--compile] \
        [--out result.json]

Random weights unless ``--checkpoint`` is given (pretrained ``init_cfg``
entries are dropped, so nothing is downloaded). The input is a random
normalised image batch with a 20-slot expression (10 real tokens); the timed
call is ``model.predict`` (encoder, head, upsampling, sigmoid/threshold)
under ``torch.inference_mode``. Peak memory is the process peak RSS on CPU
(build + timed runs, read before FLOP counting) and the allocator peak on
CUDA. FLOPs come from ``torch.utils.flop_counter`` (matmul/conv/attention).
Prints one JSON object (and writes it to ``--out``).
"""
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from projects.magnet.engine import benchmarking as B  # noqa: E402


def parse_args(argv=None):
    parser = B.tool_parser(__doc__)
    parser.add_argument('--checkpoint')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--grad-mode', choices=('inference', 'no_grad'),
                        default='inference',
                        help='torch.inference_mode (default) or no_grad')
    parser.add_argument('--channels-last', action='store_true',
                        help='channels-last images and conv weights')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the Swin blocks and the head')
    parser.add_argument('--no-flops', action='store_true')
    parser.add_argument('--no-matmul-peak', action='store_true')
    return parser.parse_args(argv)


def apply_switches(model, channels_last=False, compile=False):
    """The optional speed switches shared with the training benchmark."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:
        # in place (``nn.Module.compile``): parameter names are unchanged;
        # the segmentor drives the backbone stage by stage, so its blocks
        # are compiled one by one. Static shapes: the blocks share one code
        # object and see a different map size per stage, which by default
        # switches dynamo to symbolic shapes after the first recompile (its
        # sympy work took longer than 30 CPU-minutes for the CPU config);
        # blocks of one stage share a graph, so a stage costs one
        # compilation per (shape, shift) and the limit is raised to fit.
        torch._dynamo.config.recompile_limit = max(
            torch._dynamo.config.recompile_limit,
            4 * len(model.backbone.stages))
        for stage in model.backbone.stages:
            for block in stage.blocks:
                block.compile(dynamic=False)
        model.decode_head.pixel_decoder.compile(dynamic=False)
        model.decode_head.transformer_decoder.compile(dynamic=False)
    return model


def run(args):
    device = args.device
    model = B.build_model(args.config, args.checkpoint, device)
    model = apply_switches(model, args.channels_last, args.compile)
    inputs, samples = B.dummy_batch(args.batch, args.shape, args.num_tokens,
                                    args.real_tokens, device)
    if args.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    grad_ctx = (torch.inference_mode
                if args.grad_mode == 'inference' else torch.no_grad)

    def call():
        with grad_ctx():
            return model.predict(inputs, samples)

    if str(device).startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    timing = B.time_calls(call, args.warmup, args.repeat, device)
    peak, peak_kind = B.peak_memory_mib(device)
    result = dict(
        config=args.config, checkpoint=args.checkpoint, device=device,
        threads=torch.get_num_threads(), torch=torch.__version__,
        batch=args.batch, shape=list(args.shape),
        num_tokens=args.num_tokens, real_tokens=args.real_tokens,
        grad_mode=args.grad_mode, channels_last=args.channels_last,
        compile=args.compile, warmup=args.warmup, repeat=args.repeat,
        **timing,
        throughput_img_s=round(args.batch / timing['median_s'], 4),
        peak_memory_mib=round(peak, 1), peak_memory_kind=peak_kind,
        num_parameters=sum(p.numel() for p in model.parameters()))
    gflops = None
    if not args.no_flops:
        flops, by_op = B.count_flops(call)
        gflops = flops / 1e9
        result['flops_by_op_g'] = {k: round(v / 1e9, 3)
                                   for k, v in sorted(by_op.items())}
    result['gflops'] = None if gflops is None else round(gflops, 3)
    result['achieved_gflop_s'] = (None if gflops is None else round(
        gflops / timing['median_s'], 2))
    peak_mm = (None if args.no_matmul_peak else round(
        B.matmul_peak_gflops(device), 2))
    result['matmul_peak_gflop_s'] = peak_mm
    result['fraction_of_matmul_peak'] = (
        round(result['achieved_gflop_s'] / peak_mm, 3)
        if peak_mm and gflops is not None else None)
    return result


def main(argv=None):
    B.run_tool(run, parse_args(argv))


if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
