"""Training throughput table: images/s and peak memory per batch size, with
gradient checkpointing and AMP on/off.

Usage:
    python tools/analysis_tools/train_throughput.py [CONFIG ...] \
        [--device cpu|cuda] [--batches 1 2 4 8] [--checkpointing off on] \
        [--amp off on] [--threads T] [--repeat N] [--warmup N] \
        [--shape H W] [--timeout S] [--out table.json]

Configs default to the CPU config
(``magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128``) and the paper
config (``magnet_swin-b_bert-base_8xb4-40e_refcoco-480x480``); random
weights (pretrained ``init_cfg`` entries dropped, nothing is downloaded).

Every cell (config x batch x checkpointing x AMP) runs in a fresh child
process: build the training model and the config's optimizer
(``benchmarking.build_for_training``), a dummy batch with ground-truth masks
(``benchmarking.dummy_batch``; ``--shape``, default the config's
``img_scale``), ``--warmup`` steps (optimizer state, allocator pools), then
``--repeat`` timed steps (``benchmarking.time_calls``). A step is
``tools/train.py``'s: ``model.loss`` inside ``optim_context`` (autocast
under AMP), ``parse_losses``, ``update_params``, each seeded alike.

* ``images_per_s`` = batch / median step time;
* ``peak_memory_mib``: on the CPU the child's peak RSS (build, warm-up and
  timed steps: everything the process held at its high-water mark); on
  CUDA the allocator's peak (``max_memory_allocated``, reset after the
  build);
* checkpointing ``on`` = ``backbone.with_cp`` and ``text_encoder.with_cp``
  (the ``both`` variant of ``benchmark.py --mode memory``); AMP ``on`` =
  the wrapper ``tools/train.py --amp`` picks (bf16 autocast on the CPU);
* the fp32 matmul peak (``benchmarking.matmul_peak_gflops``, same threads
  and device) is measured in this process before and after the cells, so
  that a table is read against the machine's speed during the run.

A cell that fails (out of memory, ``--timeout``) is reported with its
error instead of numbers; the others still run. Prints a Markdown table
and writes the JSON (``--out``).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import os.path as osp
import sys
import tempfile
from typing import List

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from projects.magnet.engine import benchmarking as B  # noqa: E402
from projects.magnet.utils.errors import InvalidInputError  # noqa: E402
from projects.magnet.utils.output_files import check_output_file  # noqa: E402

CPU_CONFIG = 'configs/magnet/' \
    'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py'
PAPER_CONFIG = 'configs/magnet/' \
    'magnet_swin-b_bert-base_8xb4-40e_refcoco-480x480.py'
#: (checkpointing, amp) -> the shared training variant
VARIANT = {('off', 'off'): 'plain', ('on', 'off'): 'both',
           ('off', 'on'): 'amp', ('on', 'on'): 'amp_both'}
#: keys of one cell of the JSON ``cells`` list
CELL_KEYS = ('config', 'batch', 'shape', 'checkpointing', 'amp', 'variant',
             'images_per_s', 'median_s', 'times_s', 'peak_memory_mib',
             'peak_memory_kind', 'loss', 'error')


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    p.add_argument('configs', nargs='*', metavar='CONFIG',
                   default=[CPU_CONFIG, PAPER_CONFIG])
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    p.add_argument('--batches', type=int, nargs='+', default=[1, 2, 4, 8])
    p.add_argument('--checkpointing', nargs='+', choices=('off', 'on'),
                   default=['off', 'on'])
    p.add_argument('--amp', nargs='+', choices=('off', 'on'),
                   default=['off', 'on'])
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: torch default)')
    p.add_argument('--repeat', type=int, default=2, help='timed steps')
    p.add_argument('--warmup', type=int, default=1, help='untimed steps')
    p.add_argument('--shape', type=int, nargs=2, default=None,
                   metavar=('H', 'W'),
                   help="default: the config's img_scale")
    p.add_argument('--num-tokens', type=int, default=20)
    p.add_argument('--real-tokens', type=int, default=10)
    p.add_argument('--timeout', type=float, default=None,
                   help='seconds per cell (default: none)')
    p.add_argument('--out', help='also write the JSON here')
    p.add_argument('--child', help=argparse.SUPPRESS)
    p.add_argument('--config-file', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name, low in (('batches', 1), ('repeat', 1), ('warmup', 0),
                      ('threads', 1), ('shape', 1), ('num_tokens', 1),
                      ('real_tokens', 1), ('timeout', 1)):
        value = getattr(args, name)
        items = value if isinstance(value, (list, tuple)) else [value]
        if any(v is not None and v < low for v in items):
            raise InvalidInputError(
                f'--{name.replace("_", "-")} {value}: expected values >= '
                f'{low}')
    if args.real_tokens > args.num_tokens:
        raise InvalidInputError(f'--real-tokens {args.real_tokens} is more '
                                f'than --num-tokens {args.num_tokens}')
    if args.device == 'cuda' and not args.child and \
            not torch.cuda.is_available():
        raise InvalidInputError('--device cuda: no CUDA device here')
    return args


# ---------------------------------------------------------------- child ---
def measure_cell(args) -> dict:
    """One cell (``args.child`` = ``'VARIANT BATCH'``) in this process."""
    variant, batch = args.child.split()
    cfg = B.load_config(args.config_file)
    B.configure_train_variant(cfg, variant)
    batch, shape = B.train_batch_shape(cfg, int(batch), args.shape)
    model, wrapper = B.build_for_training(cfg, args.device)
    inputs, samples = B.dummy_batch(batch, shape, args.num_tokens,
                                    args.real_tokens, args.device,
                                    with_gt=True)
    step = B.make_train_step(model, wrapper, inputs, samples, seed=0)
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    losses = []
    timing = B.time_calls(lambda: losses.append(step()), args.warmup,
                          args.repeat, args.device)
    peak, kind = B.peak_memory_mib(args.device)
    return dict(batch=batch, shape=list(shape), variant=variant, **timing,
                images_per_s=round(batch / timing['median_s'], 3),
                peak_memory_mib=round(peak, 1), peak_memory_kind=kind,
                loss=round(losses[-1], 5))


# --------------------------------------------------------------- parent ---
def child_command(args, config_file: str, variant: str, batch: int) -> list:
    cmd = [sys.executable, osp.abspath(__file__), '--child',
           f'{variant} {batch}', '--config-file', config_file, '--device',
           args.device, '--repeat', str(args.repeat), '--warmup',
           str(args.warmup), '--num-tokens', str(args.num_tokens),
           '--real-tokens', str(args.real_tokens)]
    if args.shape:
        cmd += ['--shape', *map(str, args.shape)]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    return cmd


def run_table(args) -> dict:
    # every config is read (and refused) before any cell runs
    configs = {c: B.load_config(c) for c in args.configs}
    peaks = [B.matmul_peak_gflops(args.device)]
    cells: List[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, cfg) in enumerate(configs.items()):
            config_file = osp.join(tmp, f'config{i}.py')
            cfg.dump(config_file)
            for batch, cp, amp in itertools.product(
                    args.batches, args.checkpointing, args.amp):
                variant = VARIANT[(cp, amp)]
                cell = dict.fromkeys(CELL_KEYS)
                cell.update(config=name, batch=batch, checkpointing=cp,
                            amp=amp, variant=variant)
                try:
                    cell.update(B.run_child(
                        child_command(args, config_file, variant, batch),
                        args.timeout, what=f'{osp.basename(name)} batch '
                        f'{batch} {variant}'))
                except RuntimeError as e:
                    cell['error'] = str(e).strip().splitlines()[0] + (
                        ' ' + str(e).strip().splitlines()[-1]
                        if '\n' in str(e).strip() else '')
                cells.append(cell)
                print(markdown_row(cell), file=sys.stderr, flush=True)
    peaks.append(B.matmul_peak_gflops(args.device))
    return dict(device=args.device, threads=torch.get_num_threads(),
                torch=torch.__version__, repeat=args.repeat,
                warmup=args.warmup,
                matmul_peak_gflop_s=[round(p, 1) for p in peaks],
                cells=cells)


HEADER = ('| config | batch | shape | grad. checkpointing | AMP | images/s '
          '| step (s) | peak memory (MiB) |\n'
          '|---|---:|---|---|---|---:|---:|---:|')


def markdown_row(cell: dict) -> str:
    shape = 'x'.join(map(str, cell['shape'])) if cell['shape'] else '-'
    if cell['error']:
        numbers = f'failed: {cell["error"][:60]} | | '
    else:
        numbers = (f'{cell["images_per_s"]:.3f} | {cell["median_s"]:.3f} | '
                   f'{cell["peak_memory_mib"]:.0f}')
    name = osp.splitext(osp.basename(cell['config']))[0]
    return (f'| {name} | {cell["batch"]} | {shape} | {cell["checkpointing"]}'
            f' | {cell["amp"]} | {numbers} |')


def show(result: dict) -> None:
    kind = next((c['peak_memory_kind'] for c in result['cells']
                 if c['peak_memory_kind']), '')
    print(f'Training throughput, {result["device"]}, {result["threads"]} '
          f'threads, torch {result["torch"]}, median of {result["repeat"]} '
          f'steps after {result["warmup"]}; fp32 matmul peak '
          f'{result["matmul_peak_gflop_s"]} GFLOP/s (before, after); peak '
          f'memory: {kind}\n')
    print(HEADER)
    for cell in result['cells']:
        print(markdown_row(cell))


def main(argv=None):
    args = parse_args(argv)
    if args.child:  # one cell, for run_table's parent process
        os.environ.setdefault('HF_HUB_OFFLINE', '1')
        if args.threads:
            torch.set_num_threads(args.threads)
        print(json.dumps(measure_cell(args)))
        return
    if args.out:  # before any work
        check_output_file(args.out, ('.json', ), inputs=args.configs,
                          what='--out')
    if args.threads:
        torch.set_num_threads(args.threads)
    B.report(run_table(args), args.out, show)


if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
