"""Speed and memory benchmark of a MagNet config: inference, training step
or the peak memory of a training step.

Usage:
    python tools/analysis_tools/benchmark.py CONFIG [CHECKPOINT] \
        [--mode inference|train|memory] [--repeat N] [--warmup N] \
        [--shape H W] [--batch B] [--device cpu|cuda] [--threads T] \
        [--channels-last] [--compile] [--cfg-options K=V ...] \
        [--variants plain swin_cp ...] [--out result.json]

Random weights unless CHECKPOINT is given (inference only; pretrained
``init_cfg`` entries are dropped, so nothing is downloaded). Prints one JSON
object (and writes it to ``--out``).

``--mode inference`` (default): the timed call is ``model.predict``
(encoder, head, upsampling, sigmoid/threshold) under
``torch.inference_mode`` (``--grad-mode no_grad``: ``torch.no_grad``) on a
random normalised image batch (default 1 x 480x480) with a 20-slot
expression (10 real tokens), after ``--warmup`` calls; median/min/max of
``--repeat`` (default 5) calls, throughput, peak memory (process peak RSS on
CPU, build + timed runs, read before FLOP counting; the allocator peak on
CUDA), FLOPs (``torch.utils.flop_counter``: matmul/conv/attention) and the
achieved GFLOP/s next to the machine's fp32 matmul peak.

``--mode train``: one step = ``model.loss`` (forward + losses) on a random
batch with ground-truth masks, ``parse_losses``, backward and the config's
optimizer update (``optim_wrapper``, built by mmengine); batch and shape
default to the config's train batch size and ``img_scale``; ``--repeat``
defaults to 3. Images/s and peak memory.

``--mode memory``: the peak memory of one training step with gradient
checkpointing / AMP. Each variant runs in its own process (a fresh
allocator): build, one warm-up step (creates the optimizer state), then one
measured step. Reported per variant, and as a ratio to ``plain`` measured in
the same run:

* ``step_peak_mib``: peak memory of the step above what was resident before
  it: on CUDA the allocator's peak (``max_memory_allocated``), on the CPU the
  process's peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``
  right before the step; Linux);
* ``saved_activations_mib``: bytes autograd keeps for the backward pass
  (unique storages packed by ``saved_tensors_hooks``, parameters and buffers
  excluded): what checkpointing removes, independent of the allocator.

Variants: ``swin_cp`` = ``backbone.with_cp``, ``bert_cp`` =
``text_encoder.with_cp``, ``both``; ``amp`` = the mixed-precision wrapper
``tools/train.py --amp`` picks (bf16 autocast on the CPU), ``amp_both`` =
AMP + both checkpointing switches.

``--backend ort`` (inference): the timed call is the same ``predict``
(data samples in, probabilities and masks out) run by ONNX Runtime
(:class:`~projects.magnet.deployment.OnnxRuntimeSegmentor`) on ``--onnx
FILE`` (written by ``tools/deployment/pytorch2onnx.py`` for this ``--shape``
and ``--batch``), or on the model exported first in this process (random
weights or CHECKPOINT; then its FLOPs are counted on the PyTorch model and
``max_abs_diff_vs_pytorch`` compares both probability maps on the timed
input). ``--ort-level`` sets the graph optimisation level, ``--threads`` the
intra-op threads, ``--int8`` times an int8 dynamically quantized copy
(opt-in, never the default; its deviation is reported: from PyTorch, or with
``--onnx`` from the float file, ``int8_vs_float_onnx``). With
``--onnx`` the process holds no PyTorch model: the peak RSS is ONNX
Runtime's alone (the float reference of ``--int8`` excepted).

``--channels-last`` converts the images and conv weights; ``--compile``
compiles the Swin blocks, the pixel decoder and the transformer decoder
(``torch.compile``, static shapes). Both are opt-in: measure them on your
machine (docs/performance.md has the numbers measured here).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
import tempfile
from typing import Dict

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from projects.magnet.engine import benchmarking as B  # noqa: E402
from projects.magnet.engine.benchmarking import apply_switches  # noqa: E402
from projects.magnet.utils.errors import (  # noqa: E402
    InputFileError, InvalidInputError)
from projects.magnet.utils.output_files import check_input_file  # noqa: E402

MODES = ('inference', 'train', 'memory')
#: ``--repeat`` when not given
REPEAT = dict(inference=5, train=3)
#: memory variants: Swin / BERT gradient checkpointing, mixed precision
#: (shared with train_throughput.py)
VARIANTS: Dict[str, dict] = B.TRAIN_VARIANTS


def parse_args(argv=None) -> argparse.Namespace:
    p = B.tool_parser(
        __doc__, shape=None, batch=None,
        shape_help='inference: 480 480; train / memory: the config\'s '
        'img_scale',
        batch_help='inference: 1; train / memory: the config\'s train '
        'batch size')
    p.add_argument('checkpoint', nargs='?',
                   help='weights to time (inference; default: random)')
    p.add_argument('--mode', choices=MODES, default='inference')
    p.add_argument('--device', default='cpu')
    p.add_argument('--repeat', type=int, default=None,
                   help='timed calls / steps (inference: 5, train: 3)')
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--channels-last', action='store_true',
                   help='channels-last images and conv weights')
    p.add_argument('--compile', action='store_true',
                   help='torch.compile the Swin blocks and the head')
    B.add_cfg_options(p)
    inference = p.add_argument_group('--mode inference')
    inference.add_argument('--grad-mode', choices=('inference', 'no_grad'),
                           default='inference',
                           help='torch.inference_mode (default) or no_grad')
    inference.add_argument('--no-flops', action='store_true')
    inference.add_argument('--backend', choices=('pytorch', 'ort'),
                           default='pytorch',
                           help='PyTorch (default) or ONNX Runtime')
    inference.add_argument('--onnx', metavar='FILE',
                           help='--backend ort: an exported model (default: '
                           'export the model first)')
    inference.add_argument('--ort-level', default='all',
                           choices=('disable', 'basic', 'extended', 'all'),
                           help='--backend ort: graph optimisation level')
    inference.add_argument('--int8', action='store_true',
                           help='--backend ort: time an int8 dynamically '
                           'quantized copy')
    inference.add_argument('--no-matmul-peak', action='store_true')
    memory = p.add_argument_group('--mode memory')
    memory.add_argument('--variants', nargs='+', default=list(VARIANTS),
                        choices=list(VARIANTS))
    memory.add_argument('--child', choices=list(VARIANTS),
                        help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.checkpoint and args.mode != 'inference':
        raise InvalidInputError(
            f'CHECKPOINT {args.checkpoint}: --mode {args.mode} builds the '
            'model with random weights; a checkpoint is timed by --mode '
            'inference only')
    if args.checkpoint:  # missing, a folder, empty: before any work
        check_input_file(args.checkpoint, 'checkpoint file')
    if (args.onnx or args.int8 or args.ort_level != 'all') and \
            args.backend != 'ort':
        raise InvalidInputError('--onnx / --int8 / --ort-level go with '
                                '--backend ort')
    if args.backend == 'ort' and (args.mode != 'inference'
                                  or args.channels_last or args.compile):
        raise InvalidInputError('--backend ort times inference only, '
                                'without --channels-last / --compile')
    if args.onnx:
        check_input_file(args.onnx, '--onnx file')
        if args.checkpoint:
            raise InvalidInputError(
                'give CHECKPOINT (exported here) or --onnx FILE, not both')
    if args.repeat is None:
        args.repeat = REPEAT.get(args.mode, 1)
    if args.repeat < 1:
        raise InvalidInputError(
            f'--repeat must be >= 1 (timed calls), got {args.repeat}')
    if args.warmup < 0:
        raise InvalidInputError(
            f'--warmup must be >= 0 (untimed calls), got {args.warmup}')
    return args


def _common(args, mode: str, batch: int, shape) -> dict:
    return dict(mode=mode, config=args.config, device=args.device,
                threads=torch.get_num_threads(), torch=torch.__version__,
                batch=batch, shape=list(shape))


def _ort_model(args, cfg, tmp: str, batch: int, shape,
               torch_model=None):
    """The ONNX Runtime segmentor of ``--backend ort``: on ``--onnx``, or
    on ``torch_model`` exported to ``tmp`` (+ its int8 copy)."""
    from projects.magnet.deployment import OnnxRuntimeSegmentor, export_onnx
    onnx_file = args.onnx
    if onnx_file is None:
        onnx_file = osp.join(tmp, 'model.onnx')
        export_onnx(torch_model, onnx_file, shape, args.num_tokens,
                    batch=batch)
    if args.int8:
        from projects.magnet.deployment.quantize import quantize_int8
        onnx_file = quantize_int8(onnx_file, osp.join(tmp, 'int8.onnx'))
    return OnnxRuntimeSegmentor(onnx_file, cfg.model.data_preprocessor,
                                cfg.model.get('test_cfg'),
                                threads=args.threads,
                                graph_optimization_level=args.ort_level)


def _max_prob_diff(predict_a, predict_b) -> float:
    """Largest probability difference of two predictions of a batch (each
    read before the next call: ``predict`` fills the same data samples)."""
    a = [s.seg_logits.data.clone() for s in predict_a()]
    b = [s.seg_logits.data.clone() for s in predict_b()]
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def run_inference(args) -> dict:
    device = args.device
    batch, shape = args.batch or 1, tuple(args.shape or (480, 480))
    cfg = B.load_config(args.config, args.cfg_options)
    torch_model = None
    if not args.onnx:
        torch_model = B.build_model(cfg, args.checkpoint, device)
        torch_model = apply_switches(torch_model, args.channels_last,
                                     args.compile)
    inputs, samples = B.dummy_inputs(args, batch, shape)
    grad_ctx = (torch.inference_mode
                if args.grad_mode == 'inference' else torch.no_grad)
    model, tmp, extra = torch_model, None, {}
    if args.backend == 'ort':
        tmp = tempfile.TemporaryDirectory()
        model = _ort_model(args, cfg, tmp.name, batch, shape, torch_model)
        extra = dict(backend='ort', onnx=args.onnx, int8=args.int8,
                     ort_graph_optimization_level=args.ort_level)

    def call():
        with grad_ctx():
            return model.predict(inputs, samples)

    def torch_call():
        with grad_ctx():
            return torch_model.predict(inputs, samples)

    if str(device).startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    timing = B.time_calls(call, args.warmup, args.repeat, device)
    peak, peak_kind = B.peak_memory_mib(device)
    result = dict(
        _common(args, 'inference', batch, shape), checkpoint=args.checkpoint,
        num_tokens=args.num_tokens, real_tokens=args.real_tokens,
        grad_mode=args.grad_mode, channels_last=args.channels_last,
        compile=args.compile, warmup=args.warmup, repeat=args.repeat,
        **timing, throughput_img_s=round(batch / timing['median_s'], 4),
        peak_memory_mib=round(peak, 1), peak_memory_kind=peak_kind,
        num_parameters=None if torch_model is None else sum(
            p.numel() for p in torch_model.parameters()), **extra)
    if args.backend == 'ort' and torch_model is not None:
        result['max_abs_diff_vs_pytorch'] = _max_prob_diff(call,
                                                           torch_call)
    elif args.int8:  # no PyTorch model: the float file is the reference
        args.int8 = False
        float_model = _ort_model(args, cfg, tmp.name, batch, shape)
        args.int8 = True
        ids, mask = float_model.text_inputs([s.metainfo for s in samples],
                                            torch.device('cpu'))
        a = model.run(inputs, ids, mask)
        b = float_model.run(inputs, ids, mask)
        result['int8_vs_float_onnx'] = dict(
            prob_max_abs_diff=float((a['prob'] - b['prob']).abs().max()),
            mask_logits_max_abs_diff=float(
                (a['mask_logits'] - b['mask_logits']).abs().max()),
            mask_pixels_changed=float(
                ((a['prob'] > 0.5) != (b['prob'] > 0.5)).float().mean()))
        del float_model
    if tmp is not None:
        tmp.cleanup()
    gflops = None
    if not args.no_flops and torch_model is not None:
        flops, by_op = B.count_flops(torch_call)
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


def run_train(args) -> dict:
    cfg = B.load_config(args.config, args.cfg_options)
    batch, shape = B.train_batch_shape(cfg, args.batch, args.shape)
    model, optim_wrapper = B.build_for_training(
        cfg, args.device, args.channels_last, args.compile)
    inputs, samples = B.dummy_inputs(args, batch, shape, with_gt=True)

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
        _common(args, 'train', batch, shape), compile=args.compile,
        channels_last=args.channels_last, warmup=args.warmup,
        repeat=args.repeat, **timing,
        images_per_s=round(batch / timing['median_s'], 4),
        peak_memory_mib=round(peak, 1), peak_memory_kind=kind,
        num_parameters=sum(p.numel() for p in model.parameters()))


def _hwm_mib() -> float:
    peak = B.proc_status_mib('VmHWM')
    if peak is None:  # the CPU reading needs Linux's /proc
        raise InputFileError(
            'no VmHWM in /proc/self/status: --mode memory on the CPU reads '
            'the peak RSS there (Linux only; use --device cuda elsewhere)')
    return peak


def _reset_hwm() -> None:
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def measure_memory(args) -> dict:
    """One memory variant (``args.child``), in this process."""
    cfg = B.load_config(args.config, args.cfg_options)
    B.configure_train_variant(cfg, args.child)
    batch, shape = B.train_batch_shape(cfg, args.batch, args.shape)
    model, wrapper = B.build_for_training(cfg, args.device)
    inputs, samples = B.dummy_inputs(args, batch, shape, with_gt=True)
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


def _child_command(args, config: str, name: str) -> list:
    """This script's command line for one memory variant of ``config``."""
    cmd = [sys.executable, osp.abspath(__file__), config, '--mode',
           'memory', '--child', name, '--device', args.device,
           '--num-tokens', str(args.num_tokens),
           '--real-tokens', str(args.real_tokens)]
    if args.batch:
        cmd += ['--batch', str(args.batch)]
    if args.shape:
        cmd += ['--shape', *map(str, args.shape)]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    return cmd


def run_memory(args) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        # the children read the config as this process resolved it
        # (--cfg-options included)
        config = osp.join(tmp, 'config.py')
        B.load_config(args.config, args.cfg_options).dump(config)
        for name in args.variants:
            results[name] = B.run_child(_child_command(args, config, name),
                                        what=f'variant {name}')
    base = results.get('plain')
    for r in results.values():
        if base:
            for key in ('step_peak_mib', 'saved_activations_mib'):
                r[key.replace('_mib', '_ratio')] = round(
                    r[key] / base[key], 3) if base[key] else None
    return dict(mode='memory', config=args.config, device=args.device,
                threads=torch.get_num_threads(), torch=torch.__version__,
                variants=results)


def main(argv=None):
    args = parse_args(argv)
    if args.child:  # one memory variant, for run_memory's parent process
        if args.threads:
            torch.set_num_threads(args.threads)
        os.environ.setdefault('HF_HUB_OFFLINE', '1')
        print(json.dumps(measure_memory(args)))
        return
    run = dict(inference=run_inference, train=run_train, memory=run_memory)
    B.run_tool(run[args.mode], args)


if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
