"""FLOPs and parameters of a MagNet config at an input shape.

Usage:
    python tools/analysis_tools/get_flops.py CONFIG [--shape H W] \
        [--batch B] [--num-tokens N] [--real-tokens R] [--depth D] [--json]

Counts one inference call (``model.predict`` under ``torch.inference_mode``)
with ``torch.utils.flop_counter.FlopCounterMode`` (matmul, conv and
attention kernels, the CPU ``scaled_dot_product_attention`` kernel
included, 2 FLOPs per multiply-add; elementwise ops, norms and softmax are
not counted). Random weights; pretrained ``init_cfg`` entries
are dropped. ``--depth`` prints the per-module breakdown to that depth.
"""
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from projects.magnet.engine import benchmarking as B  # noqa: E402


def parse_args(argv=None):
    from projects.magnet.utils.cli import check_minimum
    p = B.tool_parser(__doc__)
    p.add_argument('--depth', type=int, default=2,
                   help='module depth of the breakdown')
    p.add_argument('--json', action='store_true', help='print JSON only')
    args = p.parse_args(argv)
    # sizes below these fail deep inside the model, after it is built
    check_minimum(p, args, dict(batch=1, shape=1, num_tokens=1,
                                real_tokens=1, depth=0, threads=1))
    if args.real_tokens > args.num_tokens:
        p.error(f'--real-tokens ({args.real_tokens}) must be <= '
                f'--num-tokens ({args.num_tokens})')
    return args


def get_flops(args):
    model = B.build_model(args.cfg)
    inputs, samples = B.dummy_batch(args.batch, args.shape, args.num_tokens,
                                    args.real_tokens)
    counter = B.flop_counter(depth=args.depth)
    with torch.inference_mode(), counter:
        model.predict(inputs, samples)
    modules = {
        name: round(sum(ops.values()) / 1e9, 3)
        for name, ops in counter.get_flop_counts().items()
        if name != 'Global'
    }
    return dict(
        config=args.config, shape=list(args.shape), batch=args.batch,
        num_tokens=args.num_tokens,
        gflops=round(counter.get_total_flops() / 1e9, 3),
        params_m=round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        by_module_gflops=modules)


def print_table(res: dict) -> None:
    print(f'config: {res["config"]}')
    print(f'input: {res["batch"]} x 3 x {res["shape"][0]} x '
          f'{res["shape"][1]}, {res["num_tokens"]} token slots')
    print(f'FLOPs: {res["gflops"]:.2f} G   params: {res["params_m"]:.2f} M')
    for name, g in res['by_module_gflops'].items():
        print(f'  {name:<40} {g:10.3f} G')


def main(argv=None):
    from projects.magnet.utils import (JSON_EXTENSIONS, check_output_file,
                                       load_config, save_json)
    args = parse_args(argv)
    # before the model is built: the output path, then the config
    out, args.out = args.out, None
    if out:
        check_output_file(out, JSON_EXTENSIONS, inputs=[args.config],
                          what='--out')
    args.cfg = load_config(args.config)  # names the file in its errors
    result = B.run_tool(get_flops, args,
                        show=None if args.json else print_table)
    if out:
        save_json(result, out, indent=1)  # atomic

if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
