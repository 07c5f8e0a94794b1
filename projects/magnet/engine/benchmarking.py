"""Shared pieces of the benchmark tools (``tools/analysis_tools/benchmark.py``
in its three modes, ``get_flops.py``, ``.dev_scripts/profile_model.py``).

Model building without pretrained downloads (for inference, or for training
with the config's optimizer), a dummy (image, expression) batch, the
optional speed switches, FLOP counting with ``torch.utils.flop_counter``, a
dense fp32 matmul peak, peak-memory readings, a timing loop and the shared
command line. Nothing here is used by the model itself. The profiler's
pieces are in :mod:`projects.magnet.engine.profiling`.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..utils.errors import InvalidInputError
from ..utils.output_files import atomic_write, check_output_file

#: Keys of the JSON object written by ``tools/analysis_tools/benchmark.py``.
BENCHMARK_KEYS = ('config', 'device', 'threads', 'torch', 'batch', 'shape',
                  'num_tokens', 'warmup', 'repeat', 'times_s', 'median_s',
                  'min_s', 'max_s', 'throughput_img_s', 'peak_memory_mib',
                  'peak_memory_kind', 'gflops', 'achieved_gflop_s',
                  'matmul_peak_gflop_s', 'fraction_of_matmul_peak',
                  'num_parameters')


def drop_pretrained(model_cfg: dict) -> List[str]:
    """Set every ``init_cfg`` of type Pretrained in ``model_cfg`` (nested
    at any depth) to None, in place; return the checkpoints dropped."""
    dropped = []

    def walk(node):
        if isinstance(node, dict):
            init = node.get('init_cfg')
            if isinstance(init, dict) and init.get('type') == 'Pretrained':
                dropped.append(str(init.get('checkpoint')))
                node['init_cfg'] = None
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(model_cfg)
    return dropped


def strip_pretrained(model_cfg: dict) -> dict:
    """Copy of a model config whose modules load no pretrained weights
    (random initialisation, so building never reads files or the network).
    """
    cfg = copy.deepcopy(model_cfg)
    drop_pretrained(cfg)
    cfg.pop('pretrained', None)
    return cfg


def build_model(config, checkpoint: Optional[str] = None,
                device: str = 'cpu', seed: int = 0,
                inference: bool = True) -> torch.nn.Module:
    """Build the segmentor of ``config`` (a path or an mmengine Config),
    random weights (``seed``) or ``checkpoint``, in eval mode.

    ``inference`` builds it without the training-only modules, as
    ``projects.magnet.apis.init_model`` does; pass False to time training.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmseg.registry import MODELS

    import projects.magnet  # noqa: F401  (registers the modules)
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model_cfg = strip_pretrained(cfg.model.to_dict() if hasattr(
        cfg.model, 'to_dict') else dict(cfg.model))
    torch.manual_seed(seed)
    if inference:
        from projects.magnet.models.segmentors import inference_model_cfg
        model_cfg = inference_model_cfg(model_cfg)
    model = MODELS.build(model_cfg)
    if checkpoint:
        from projects.magnet.compat import install_checkpoint_loader
        install_checkpoint_loader()
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model.to(device).eval()


def load_config(path: str, cfg_options: Optional[dict] = None):
    """The config at ``path`` with ``--cfg-options`` merged in, checked as
    ``tools/train.py`` checks it (a missing or unreadable file, an option
    that replaces a dict, a value of the wrong type: one ``UserError``
    naming the file or the key)."""
    from ..utils.config_check import (check_config_values,
                                      check_option_shapes)
    from ..utils.config_check import load_config as read_config
    cfg = read_config(path)
    if cfg_options:
        check_option_shapes(cfg, cfg_options, path)
        cfg.merge_from_dict(cfg_options)
    check_config_values(cfg, path, cfg_options)
    return cfg


def train_batch_shape(cfg, batch: Optional[int] = None,
                      shape: Optional[Sequence[int]] = None
                      ) -> Tuple[int, Tuple[int, int]]:
    """``batch`` and ``(H, W)``, or by default the config's train batch size
    and ``img_scale`` (``(W, H)``; 480x480 without one)."""
    batch = batch or cfg.get('train_dataloader', {}).get('batch_size', 1)
    shape = tuple(shape or tuple(cfg.get('img_scale', (480, 480)))[::-1])
    return int(batch), shape


#: glibc ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of returning
    it to the OS (Linux / glibc only; a no-op elsewhere). Returns whether
    it was applied.

    By default every CPU tensor above glibc's mmap threshold (dynamic, at
    most 32 MiB) is a fresh ``mmap`` and the top of the heap is trimmed
    once 2x the threshold is free, so the large activations of a training
    step are page-faulted (and zeroed by the kernel) again at every step:
    measured here, the MSDA core's ``grid_sample`` forward + backward took
    0.38 s instead of 0.18 s for the CPU config's batch. With both
    thresholds raised, freed blocks are reused; the arithmetic is
    unchanged. The peak RSS does not grow (the same blocks are reused);
    memory freed after the peak stays with the process. No library offers
    this switch (PyTorch's CPU allocator is plain malloc; jemalloc /
    tcmalloc would need ``LD_PRELOAD`` before start), hence ``ctypes``.
    """
    if not sys.platform.startswith('linux'):
        return False
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    # 1 GiB: only larger blocks are mmapped; trim only above 2 GiB free
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(
        mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1))


def build_for_training(cfg, device: str = 'cpu', channels_last=False,
                       compile=False):
    """The config's model in train mode (random weights, training-only
    modules included, the speed switches applied) and its ``optim_wrapper``
    built by mmengine. Returns ``(model, optim_wrapper)``.

    On the CPU, :func:`keep_freed_memory` is applied first."""
    from mmengine.optim import build_optim_wrapper
    if str(device) == 'cpu':
        keep_freed_memory()
    model = build_model(cfg, device=device, inference=False)
    model.train()
    model = apply_switches(model, channels_last, compile)
    return model, build_optim_wrapper(model, cfg.optim_wrapper)


#: Training variants of ``benchmark.py --mode memory`` and
#: ``train_throughput.py``: Swin / BERT gradient checkpointing
#: (``with_cp``), mixed precision (the wrapper ``tools/train.py --amp``
#: picks: bf16 autocast on the CPU, fp16 with a dynamic loss scale on CUDA).
TRAIN_VARIANTS: Dict[str, dict] = {
    'plain': dict(swin=False, bert=False, amp=False),
    'swin_cp': dict(swin=True, bert=False, amp=False),
    'bert_cp': dict(swin=False, bert=True, amp=False),
    'both': dict(swin=True, bert=True, amp=False),
    'amp': dict(swin=False, bert=False, amp=True),
    'amp_both': dict(swin=True, bert=True, amp=True),
}


def configure_train_variant(cfg, name: str) -> None:
    """Apply the :data:`TRAIN_VARIANTS` entry ``name`` to ``cfg`` in place
    (``with_cp`` of the backbone and the text encoder; AMP through
    ``tools/train.py``'s own switch, so that the benchmark trains as
    ``--amp`` does)."""
    variant = TRAIN_VARIANTS[name]
    cfg.model.backbone.with_cp = variant['swin']
    cfg.model.text_encoder.with_cp = variant['bert']
    if variant['amp']:
        tools = os.path.join(
            os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.dirname(os.path.abspath(__file__))))), 'tools')
        if tools not in sys.path:
            sys.path.insert(0, tools)
        from train import enable_amp  # the switch of tools/train.py --amp
        enable_amp(cfg)


def make_train_step(model: torch.nn.Module, optim_wrapper,
                    inputs: torch.Tensor, samples: list,
                    seed: Optional[int] = None) -> Callable[[], float]:
    """One training step as ``tools/train.py`` runs it: ``model.loss``
    inside ``optim_wrapper.optim_context`` (autocast under AMP),
    ``parse_losses``, ``update_params`` (backward, clipping, step,
    zero_grad). With ``seed``, every call first seeds torch (same
    drop-path / masking draws each step). Returns the total loss."""

    def step() -> float:
        if seed is not None:
            torch.manual_seed(seed)
        with optim_wrapper.optim_context(model):
            losses = model.loss(inputs, samples)
        loss, _ = model.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return float(loss)

    return step


def run_child(cmd: List[str], timeout: Optional[float] = None,
              what: str = 'child') -> dict:
    """Run ``cmd`` (a benchmark tool's child process, offline) and return
    the JSON object of its last stdout line.

    Raises:
        RuntimeError: the child failed or timed out (with its stderr tail).
    """
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f'{what} timed out after {timeout} s') from None
    if proc.returncode != 0:
        raise RuntimeError(f'{what} failed (exit {proc.returncode}):\n' +
                           proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def apply_switches(model: torch.nn.Module, channels_last: bool = False,
                   compile: bool = False) -> torch.nn.Module:
    """The optional speed switches (``--channels-last``, ``--compile``) of
    the inference and training benchmarks."""
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


def dummy_batch(batch: int = 1,
                shape: Sequence[int] = (480, 480),
                num_tokens: int = 20,
                real_tokens: int = 10,
                device: str = 'cpu',
                seed: int = 0,
                with_gt: bool = False) -> Tuple[torch.Tensor, list]:
    """Normalised random images and data samples carrying a tokenised
    expression (``real_tokens`` real ids of ``num_tokens`` slots) and, with
    ``with_gt``, a random rectangular ground-truth mask."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    h, w = int(shape[0]), int(shape[1])
    inputs = torch.randn(batch, 3, h, w, generator=gen).to(device)
    samples = []
    for _ in range(batch):
        ids = np.zeros(num_tokens, dtype=np.int64)
        ids[:real_tokens] = torch.randint(
            1000, 2000, (real_tokens, ), generator=gen).numpy()
        mask = np.zeros(num_tokens, dtype=np.int64)
        mask[:real_tokens] = 1
        sample = SegDataSample(metainfo=dict(
            img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w),
            input_ids=ids, attention_mask=mask))
        if with_gt:
            gt = torch.zeros(1, h, w, dtype=torch.long)
            y0, x0 = (int(v) for v in torch.randint(0, h // 2, (2, ),
                                                    generator=gen))
            gt[:, y0:y0 + h // 3, x0:x0 + w // 3] = 1
            sample.gt_sem_seg = PixelData(data=gt.to(device))
        samples.append(sample)
    return inputs, samples


def dummy_inputs(args: argparse.Namespace, batch: int,
                 shape: Sequence[int], with_gt: bool = False):
    """:func:`dummy_batch` from the shared options (``--num-tokens``,
    ``--real-tokens``, ``--device``, ``--channels-last`` when present):
    ``(inputs (B, 3, H, W), data samples)``."""
    inputs, samples = dummy_batch(batch, shape, args.num_tokens,
                                  args.real_tokens,
                                  getattr(args, 'device', 'cpu'),
                                  with_gt=with_gt)
    if getattr(args, 'channels_last', False):
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs, samples


def synchronize(device: str) -> None:
    if str(device).startswith('cuda'):
        torch.cuda.synchronize()


def time_calls(fn: Callable[[], object], warmup: int, repeat: int,
               device: str = 'cpu') -> Dict[str, object]:
    """Wall-clock seconds of ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return dict(times_s=[round(t, 4) for t in times],
                median_s=round(statistics.median(times), 4),
                min_s=round(min(times), 4), max_s=round(max(times), 4))


def _cpu_sdpa_flop(query, key, value, *args, out_shape=None, **kwargs):
    from torch.utils.flop_counter import sdpa_flop_count
    return sdpa_flop_count(query, key, value)


def flop_counter(depth: int = 2):
    """``torch.utils.flop_counter.FlopCounterMode`` that also counts the CPU
    flash-attention kernel of ``scaled_dot_product_attention`` (torch's
    table only has the CUDA kernels)."""
    from torch.utils.flop_counter import FlopCounterMode
    mapping = {}
    op = getattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu',
                 None)
    if op is not None:
        mapping[op] = _cpu_sdpa_flop  # wrapped by FlopCounterMode
    return FlopCounterMode(display=False, depth=depth, custom_mapping=mapping)


def count_flops(fn: Callable[[], object]) -> Tuple[float, Dict[str, float]]:
    """FLOPs of one call (``torch.utils.flop_counter``: matmul, conv and
    attention kernels; 2 FLOPs per multiply-add). Returns (total, by op)."""
    counter = flop_counter()
    with counter:
        fn()
    by_op: Dict[str, float] = {}
    for ops in counter.get_flop_counts().values():
        for op, n in ops.items():
            by_op[str(op)] = max(by_op.get(str(op), 0), n)
    return float(counter.get_total_flops()), by_op


def matmul_peak_gflops(device: str = 'cpu', size: int = 2048,
                       repeat: int = 5) -> float:
    """Best-of-``repeat`` fp32 ``torch.mm`` throughput, GFLOP/s."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    torch.mm(a, b)
    synchronize(device)
    best = float('inf')
    for _ in range(repeat):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def peak_memory_mib(device: str = 'cpu') -> Tuple[float, str]:
    """Peak memory so far: allocator peak on CUDA, process peak RSS on CPU.
    """
    if str(device).startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20, 'cuda_max_allocated'
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is KiB on Linux, bytes on macOS
    scale = 2**20 if sys.platform == 'darwin' else 2**10
    return peak / scale, 'process_peak_rss'


def proc_status_mib(field: str = 'VmRSS') -> Optional[float]:
    """A ``/proc/self/status`` memory field (``VmRSS``: resident now,
    ``VmHWM``: peak resident) in MiB; None where there is none (not
    Linux)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def current_rss_mib() -> Optional[float]:
    return proc_status_mib('VmRSS')


def median(values: List[float]) -> float:
    return statistics.median(values)


def report(result: dict, out: Optional[str] = None,
           show: Optional[Callable[[dict], None]] = None) -> None:
    """Write ``result`` as indented JSON to ``out`` and print it (as JSON,
    or with ``show`` for a human-readable form)."""
    text = json.dumps(result, indent=1)
    if show is None:
        print(text)
    else:
        show(result)
    if out:
        with atomic_write(out, 'w') as f:  # never half-written
            f.write(text + '\n')


#: smallest value of the shared benchmark options (``tool_parser``)
MINIMUM_ARGS = dict(batch=1, shape=1, num_tokens=1, real_tokens=1, threads=1)


def check_tool_args(args: argparse.Namespace) -> None:
    """Refuse, before any work, shared benchmark options that cannot run:
    a count or size below :data:`MINIMUM_ARGS` (``--batch 0``,
    ``--shape 0 -4`` fail deep inside the model otherwise), more real
    tokens than token slots, and an ``--out`` that cannot be written.

    Raises:
        InvalidInputError: naming the option, its value and the minimum.
        OutputPathError: ``--out`` is a folder, not ``.json``, or its
            folder cannot be written.
    """
    for dest, low in MINIMUM_ARGS.items():
        value = getattr(args, dest, None)
        items = value if isinstance(value, (list, tuple)) else [value]
        if any(v is not None and v < low for v in items):
            raise InvalidInputError(
                f'--{dest.replace("_", "-")} {value}: expected values >= '
                f'{low}')
    num, real = getattr(args, 'num_tokens', None), getattr(
        args, 'real_tokens', None)
    if num is not None and real is not None and real > num:
        raise InvalidInputError(
            f'--real-tokens {real} is more than --num-tokens {num}')
    if getattr(args, 'out', None):
        check_output_file(args.out, ('.json', ), inputs=[args.config],
                          what='--out')


def tool_parser(doc: str, shape=(480, 480), batch=1,
                shape_help: Optional[str] = None,
                batch_help: Optional[str] = None) -> argparse.ArgumentParser:
    """Argument parser with the options every benchmark tool shares:
    ``config``, ``--shape H W``, ``--batch``, ``--threads``,
    ``--num-tokens``, ``--real-tokens`` and ``--out``."""
    parser = argparse.ArgumentParser(
        description=doc.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(doc.splitlines()[1:]))
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, default=shape,
                        metavar=('H', 'W'), help=shape_help)
    parser.add_argument('--batch', type=int, default=batch, help=batch_help)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--num-tokens', type=int, default=20,
                        help='token slots of the dummy expression')
    parser.add_argument('--real-tokens', type=int, default=10,
                        help='real (non-padding) tokens among them')
    parser.add_argument('--out', help='also write the JSON here')
    return parser


def add_cfg_options(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options KEY=VALUE ...`` (mmengine's ``DictAction``, checked
    by the project's action)."""
    from projects.magnet.utils import CfgOptionsAction
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config entries, KEY=VALUE')


def run_tool(run: Callable[[argparse.Namespace], dict],
             args: argparse.Namespace,
             show: Optional[Callable[[dict], None]] = None) -> dict:
    """Run a benchmark tool offline with ``args.threads`` torch threads and
    report its JSON result (printed, or shown with ``show``, and written to
    ``args.out``)."""
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    check_tool_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args)
    report(result, args.out, show)
    return result
