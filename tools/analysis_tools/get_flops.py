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
    p = B.tool_parser(__doc__)
    p.add_argument('--depth', type=int, default=2,
                   help='module depth of the breakdown')
    p.add_argument('--json', action='store_true', help='print JSON only')
    return p.parse_args(argv)


def get_flops(args):
    model = B.build_model(args.config)
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
    args = parse_args(argv)
    B.run_tool(get_flops, args, show=None if args.json else print_table)

if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
