"""Where the inference time of a MagNet config goes: per module and per op.

Usage:
    python .dev_scripts/profile_inference.py CONFIG [--shape H W] \
        [--batch B] [--threads T] [--num-tokens N] [--real-tokens R] \
        [--depth D] [--repeat N] [--top K] [--out FILE]

Two views of ``model.predict`` under ``torch.inference_mode`` (random
weights, the dummy input of ``benchmark.py``), after one warm-up call:

* ``modules``: inclusive wall time of every module with fewer than
  ``--depth`` dots in its name, summed over its calls and averaged over
  ``--repeat`` calls (forward pre/post hooks; indices are folded,
  ``stages.*.blocks.*``). Modules whose methods are called directly rather
  than through ``__call__`` are inside their parent's time only. FLOPs per
  module: ``get_flops.py``;
* ``ops``: the ``--top`` ATen ops by self CPU time of one call
  (``torch.profiler``; the profiler adds overhead to many small ops, so
  read these as shares, and time A/B changes with ``benchmark.py``);
* ``matrix_split``: that profiled call split into the matrix-product
  kernels (``addmm``, ``mm``, ``bmm``, ``baddbmm``, the CPU
  ``scaled_dot_product_attention`` kernel, convolutions) and everything
  else, with the matrix-product FLOPs (``get_flops.py``'s counter), the
  rate they run at and the time they would take at the matmul peak
  measured in the same run. This is the floor of the forward as written:
  no reordering of the same kernels gets below ``matrix_at_peak_s``, and
  ``other_s`` is what fused kernels could still remove.

``total_s`` is the median wall time of the calls with hooks attached.
Output: one JSON object (printed, and written to ``--out``).
"""
import collections
import os.path as osp
import re
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from projects.magnet.engine import benchmarking as B  # noqa: E402


def parse_args(argv=None):
    p = B.tool_parser(__doc__)
    p.add_argument('--depth', type=int, default=5,
                   help='deepest module name (dots) that is timed')
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--top', type=int, default=20)
    return p.parse_args(argv)


def module_key(name: str) -> str:
    """``backbone.stages.2.blocks.11.attn`` -> ``backbone.stages.*.blocks.*.
    attn`` (repeated modules are summed)."""
    return re.sub(r'\.\d+(?=\.|$)', '.*', name)


def time_modules(model, call, depth: int, repeat: int):
    """Summed inclusive wall time per folded module name, per call."""
    totals = collections.defaultdict(float)
    calls = collections.Counter()
    starts = {}

    def pre(module, args):
        starts[id(module)] = time.perf_counter()

    def post_for(key):
        def post(module, args, output):
            totals[key] += time.perf_counter() - starts.pop(id(module))
            calls[key] += 1
        return post

    handles = []
    for name, module in model.named_modules():
        if name and name.count('.') < depth:
            handles.append(module.register_forward_pre_hook(pre))
            handles.append(
                module.register_forward_hook(post_for(module_key(name))))
    walls = []
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            call()
            walls.append(time.perf_counter() - start)
    finally:
        for handle in handles:
            handle.remove()
    return ({k: v / repeat for k, v in totals.items()},
            {k: v // repeat for k, v in calls.items()},
            statistics.median(walls))


# ATen ops that run the matrix products FlopCounterMode counts
MATRIX_OPS = frozenset({
    'aten::addmm', 'aten::mm', 'aten::bmm', 'aten::baddbmm',
    'aten::_scaled_dot_product_flash_attention_for_cpu',
    'aten::mkldnn_convolution', 'aten::convolution_overrideable',
    'aten::_convolution', 'aten::thnn_conv2d'
})


def profile_ops(call, top: int):
    """The ``top`` ops by self CPU time of one call, and the call's split
    into matrix-product kernels and the rest (seconds)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        call()
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows) or 1.0
    matrix = sum(e.self_cpu_time_total for e in rows if e.key in MATRIX_OPS)
    ops = [
        dict(op=e.key, self_s=round(e.self_cpu_time_total / 1e6, 4),
             share=round(e.self_cpu_time_total / total, 4), calls=e.count)
        for e in rows[:top]
    ]
    return ops, matrix / 1e6, (total - matrix) / 1e6


def matrix_split(matrix_s: float, other_s: float, gflop: float,
                 peak_gflop_s: float) -> dict:
    """Matrix products vs the rest of one profiled call."""
    return dict(
        matrix_gflop=round(gflop, 2),
        matrix_s=round(matrix_s, 4),
        other_s=round(other_s, 4),
        matrix_share=round(matrix_s / max(matrix_s + other_s, 1e-9), 4),
        matrix_gflop_s=round(gflop / max(matrix_s, 1e-9), 1),
        matrix_at_peak_s=round(gflop / peak_gflop_s, 4))


def profile_inference(args) -> dict:
    model = B.build_model(args.config)
    inputs, samples = B.dummy_batch(args.batch, args.shape, args.num_tokens,
                                    args.real_tokens)

    def call():
        with torch.inference_mode():
            model.predict(inputs, samples)

    call()  # warm-up
    seconds, counts, total = time_modules(model, call, args.depth,
                                          args.repeat)
    modules = [
        dict(module=key, seconds=round(sec, 4), calls=counts[key])
        for key, sec in sorted(seconds.items(), key=lambda kv: -kv[1])
    ]
    ops, matrix_s, other_s = profile_ops(call, args.top)
    with torch.inference_mode():
        flops, _ = B.count_flops(lambda: model.predict(inputs, samples))
    peak = B.matmul_peak_gflops()
    return dict(
        config=args.config, shape=list(args.shape), batch=args.batch,
        threads=torch.get_num_threads(), total_s=round(total, 4),
        matmul_peak_gflop_s=round(peak, 1),
        matrix_split=matrix_split(matrix_s, other_s, flops / 1e9, peak),
        modules=modules, ops=ops)


def main(argv=None):
    B.run_tool(profile_inference, parse_args(argv))


if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
