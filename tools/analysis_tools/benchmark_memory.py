"""Peak memory of one training step with gradient checkpointing / AMP.

Usage:
    python tools/analysis_tools/benchmark_memory.py CONFIG [--batch B] \
        [--shape H W] [--device cpu|cuda] [--threads T] \
        [--variants plain swin_cp bert_cp both amp amp_both] [--out r.json]

Each variant runs in its own process (a fresh allocator): build the
config's model for training (random weights), one warm-up step (creates the
optimizer state), then one measured step = ``model.loss`` + backward +
the config's optimizer update. Reported per variant, and as a ratio to
``plain`` measured in the same run:

* ``step_peak_mib``: peak memory of the step above what was resident
  before it: on CUDA the allocator's peak (``max_memory_allocated``), on
  the CPU the process's peak RSS (``VmHWM``, reset through
  ``/proc/self/clear_refs`` right before the step; Linux);
* ``saved_activations_mib``: bytes autograd keeps for the backward pass
  (unique storages packed by ``saved_tensors_hooks``, parameters and
  buffers excluded): what checkpointing removes, independent of the
  allocator and the machine.

Variants: ``swin_cp`` = ``backbone.with_cp``, ``bert_cp`` =
``text_encoder.with_cp``, ``both``; ``amp`` = the mixed-precision wrapper
``tools/train.py --amp`` picks (bf16 autocast on the CPU), ``amp_both`` =
AMP + both checkpointing switches. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import torch  # noqa: E402

from projects.magnet.engine import benchmarking as B  # noqa: E402

VARIANTS: Dict[str, dict] = {
    'plain': dict(swin=False, bert=False, amp=False),
    'swin_cp': dict(swin=True, bert=False, amp=False),
    'bert_cp': dict(swin=False, bert=True, amp=False),
    'both': dict(swin=True, bert=True, amp=False),
    'amp': dict(swin=False, bert=False, amp=True),
    'amp_both': dict(swin=True, bert=True, amp=True),
}


def parse_args(argv=None):
    p = B.tool_parser(__doc__, shape=None, batch=None,
                      shape_help="default: the config's img_scale",
                      batch_help="default: the config's train batch size")
    p.add_argument('--device', default='cpu')
    p.add_argument('--variants', nargs='+', default=list(VARIANTS),
                   choices=list(VARIANTS))
    p.add_argument('--child', choices=list(VARIANTS), help=argparse.SUPPRESS)
    return p.parse_args(argv)



def _hwm_mib() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    raise OSError('no VmHWM in /proc/self/status')


def _reset_hwm() -> None:
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def measure(args) -> dict:
    """One variant, in this process."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    import projects.magnet.engine  # noqa: F401  (the optimizer wrappers)
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    from train import enable_amp
    variant = VARIANTS[args.child]
    cfg = Config.fromfile(args.config)
    cfg.model.backbone.with_cp = variant['swin']
    cfg.model.text_encoder.with_cp = variant['bert']
    if variant['amp']:
        enable_amp(cfg)
    batch = args.batch or cfg.get('train_dataloader', {}).get('batch_size',
                                                               1)
    shape = args.shape or tuple(cfg.get('img_scale', (480, 480)))[::-1]
    model = B.build_model(cfg, device=args.device, inference=False)
    model.train()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    inputs, samples = B.dummy_batch(batch, shape, args.num_tokens,
                                    args.real_tokens, args.device,
                                    with_gt=True)
    saved: Dict[int, int] = {}
    # weights saved for backward are resident anyway: not activations
    resident = {p.untyped_storage().data_ptr() for p in model.parameters()}
    resident |= {b.untyped_storage().data_ptr() for b in model.buffers()}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in resident:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    def step(record: bool = False):
        torch.manual_seed(0)
        with wrapper.optim_context(model):
            if record:
                with torch.autograd.graph.saved_tensors_hooks(
                        pack, lambda t: t):
                    losses = model.loss(inputs, samples)
            else:
                losses = model.loss(inputs, samples)
        loss, _ = model.parse_losses(losses)
        wrapper.update_params(loss)
        return float(loss)

    step()  # warm-up: optimizer state, allocator pools
    cuda = str(args.device).startswith('cuda')
    if cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
    else:
        before = B.current_rss_mib()
        _reset_hwm()
    loss = step(record=True)
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _hwm_mib()
    return dict(variant=args.child, loss=round(loss, 4),
                resident_before_mib=round(before, 1),
                step_peak_mib=round(peak - before, 1),
                saved_activations_mib=round(sum(saved.values()) / 2**20, 1),
                batch=batch, shape=list(shape))


def run(args) -> dict:
    results = {}
    for name in args.variants:
        cmd = [sys.executable, osp.abspath(__file__), args.config,
               '--child', name, '--device', args.device,
               '--num-tokens', str(args.num_tokens),
               '--real-tokens', str(args.real_tokens)]
        if args.batch:
            cmd += ['--batch', str(args.batch)]
        if args.shape:
            cmd += ['--shape', *map(str, args.shape)]
        if args.threads:
            cmd += ['--threads', str(args.threads)]
        env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f'variant {name} failed:\n' +
                               proc.stderr[-2000:])
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    base = results.get('plain')
    for r in results.values():
        if base:
            for key in ('step_peak_mib', 'saved_activations_mib'):
                r[key.replace('_mib', '_ratio')] = round(
                    r[key] / base[key], 3) if base[key] else None
    return dict(config=args.config, device=args.device,
                threads=torch.get_num_threads(), torch=torch.__version__,
                variants=results)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        if args.threads:
            torch.set_num_threads(args.threads)
        os.environ.setdefault('HF_HUB_OFFLINE', '1')
        print(json.dumps(measure(args)))
        return
    B.run_tool(run, args)


if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
