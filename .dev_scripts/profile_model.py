"""Where the time of a MagNet config goes, at inference or in one training
step: per part, per module and per op (developer tool).

Usage:
    python .dev_scripts/profile_model.py CONFIG [--mode inference|train] \
        [--shape H W] [--batch B] [--threads T] [--num-tokens N] \
        [--real-tokens R] [--depth D] [--repeat N] [--top K] [--out FILE] \
        [--real-data] [--cfg-options KEY=VALUE ...]

Random weights (pretrained ``init_cfg`` entries dropped), the dummy input of
``tools/analysis_tools/benchmark.py``; the pieces are in
``projects/magnet/engine/profiling.py``. Output: one JSON object (printed,
and written to ``--out``); ``--mode train`` also prints a table on stderr.

``--mode inference`` (default): two views of ``model.predict`` under
``torch.inference_mode``, after one warm-up call:

* ``modules``: inclusive wall time of every module with fewer than
  ``--depth`` dots in its name, summed over its calls and averaged over
  ``--repeat`` calls (forward pre/post hooks; indices are folded,
  ``stages.*.blocks.*``). Modules whose methods are called directly rather
  than through ``__call__`` are inside their parent's time only. FLOPs per
  module: ``tools/analysis_tools/get_flops.py``;
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

``--mode train``: one step = ``model.loss`` (forward + losses) +
``parse_losses`` + backward + the config's optimizer update
(``optim_wrapper``: ``scale_loss`` and ``backward``, then ``step`` and
``zero_grad``, as ``update_params`` does, and as ``benchmark.py --mode
train`` times it), after one warm-up step. Every number is the median over
``--repeat`` steps:

* ``forward_parts_s``: inclusive wall time of the calls of each part
  within ``model.loss``; the methods are wrapped on the model's instances
  (and unwrapped after):

  - ``vision_stages``: ``backbone.embed`` (patch embed) and
    ``backbone.forward_blocks`` (Swin blocks);
  - ``language_stages``: ``text_encoder.embed`` and ``forward_stage``;
  - ``vision_fusion``: ``backbone.fuse`` (PWAM, alignment module, gate,
    patch merging);
  - ``language_fusion``: ``text_encoder.fuse``;
  - ``decode_head``: ``decode_head.loss`` / ``forward`` / ``loss_by_feat``;
  - ``alignment_loss``: ``sentence_embedding`` and ``alignment_loss``;
  - ``mask_grounding_pass``: the whole ``mask_grounding_loss`` call;
  - ``other``: the rest of ``model.loss`` (token stacking, glue).

  The four encoder parts are those of the main (first) encode only; the
  Mask Grounding pass is split in ``mask_grounding`` into its second
  ``encode`` (and that encode's four parts), its ``head``
  (``mask_grounding.loss``) and the rest (token masking). Parts of
  objectives the model does not have (``model.mask_grounding=None``, ...)
  are null;
* ``parse_losses_s``, ``backward_s``, ``optimizer_s`` (``step`` with the
  gradient clipping of the config + ``zero_grad``), ``step_s`` (all of it)
  and ``images_per_s``;
* ``data_loading`` (``--real-data``): the config's train dataloader with
  ``num_workers=0``, so that its cost shows: seconds per batch to fetch +
  collate (the dataset pipeline) and to run ``model.data_preprocessor``,
  over ``--repeat`` batches after a first one, and the share of a step
  (``per_batch_s / (per_batch_s + step_s)``, what a single-process loader
  would add). The steps then train on that first real batch (its shape,
  not ``--shape``). Without ``--real-data`` it is null and the steps use
  the dummy batch of ``benchmark.py``;
* ``modules``: inclusive forward wall time of every module with fewer
  than ``--depth`` dots in its name, summed over its calls in a step (both
  encodes; the forward hooks of ``--mode inference``; ``--depth 0``:
  none);
* ``ops`` (``--top K`` > 0): the K ATen ops by self CPU time of one more
  step under ``torch.profiler`` (backward and optimizer ops included) and
  that step's matrix-product share (``matrix_s`` / ``other_s``).
"""
import copy
import os.path as osp
import statistics
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from projects.magnet.engine import benchmarking as B  # noqa: E402
from projects.magnet.engine.profiling import (  # noqa: E402
    attach_timers, matrix_split, median_record, profile_ops, step_record,
    time_modules)

WIDTH = 52  # label column of the table


def parse_args(argv=None):
    p = B.tool_parser(
        __doc__, shape=None, batch=None,
        shape_help='dummy batch size (inference: 480 480; train: the '
        'config\'s img_scale); --real-data uses the pipeline\'s',
        batch_help='inference: 1; train: the config\'s train batch size')
    p.add_argument('--mode', choices=('inference', 'train'),
                   default='inference')
    p.add_argument('--repeat', type=int, default=3,
                   help='timed calls / steps, after one warm-up')
    p.add_argument('--depth', type=int, default=5,
                   help='deepest module name (dots) in "modules" (0: none)')
    p.add_argument('--top', type=int, default=None,
                   help='ATen ops of one profiled call or step (inference: '
                   '20, train: 0 = no op profile)')
    p.add_argument('--real-data', action='store_true',
                   help='train: time the config\'s train dataloader and '
                   'train on its first batch')
    B.add_cfg_options(p)
    args = p.parse_args(argv)
    if args.top is None:
        args.top = 20 if args.mode == 'inference' else 0
    return args


def profile_inference(args) -> dict:
    batch, shape = args.batch or 1, tuple(args.shape or (480, 480))
    model = B.build_model(B.load_config(args.config, args.cfg_options))
    inputs, samples = B.dummy_inputs(args, batch, shape)

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
        mode='inference', config=args.config, shape=list(shape),
        batch=batch, threads=torch.get_num_threads(),
        total_s=round(total, 4),
        matmul_peak_gflop_s=round(peak, 1),
        matrix_split=matrix_split(matrix_s, other_s, flops / 1e9, peak),
        modules=modules, ops=ops)


def data_loader(cfg, batch: int):
    """The config's train dataloader, ``batch`` per batch, no workers."""
    from mmengine.runner import Runner
    loader = copy.deepcopy(cfg.train_dataloader)
    loader.update(batch_size=batch, num_workers=0, persistent_workers=False)
    loader.pop('prefetch_factor', None)
    return Runner.build_dataloader(
        loader, seed=cfg.get('randomness', {}).get('seed'))


def time_data_loading(model, loader, repeat: int):
    """First preprocessed batch (untimed, it pays the lazy set-ups) and the
    seconds to fetch + collate and to preprocess ``repeat`` more."""
    batches = iter(loader)
    first = model.data_preprocessor(next(batches), True)
    fetch, prep = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        data = next(batches)
        mid = time.perf_counter()
        model.data_preprocessor(data, True)
        fetch.append(mid - start)
        prep.append(time.perf_counter() - mid)
    return first, dict(
        batches=repeat, num_workers=0,
        fetch_collate_s=statistics.median(fetch),
        preprocess_s=statistics.median(prep),
        per_batch_s=statistics.median(f + p for f, p in zip(fetch, prep)))


def profile_train_step(args) -> dict:
    cfg = B.load_config(args.config, args.cfg_options)
    batch, shape = B.train_batch_shape(cfg, args.batch, args.shape)
    model, optim_wrapper = B.build_for_training(cfg)
    loading = None
    if args.real_data:
        data, loading = time_data_loading(model, data_loader(cfg, batch),
                                          args.repeat)
        inputs, samples = data['inputs'], data['data_samples']
    else:
        inputs, samples = B.dummy_inputs(args, batch, shape, with_gt=True)
    with_mg = getattr(model, 'with_mask_grounding', False)
    with_align = getattr(model, 'with_alignment_loss', False)
    timer = None
    steps = []  # records of the timed steps (while timer is attached)

    def step():
        t0 = time.perf_counter()
        losses = model.loss(inputs, samples)
        t1 = time.perf_counter()
        loss, _ = model.parse_losses(losses)
        t2 = time.perf_counter()
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))
        t3 = time.perf_counter()
        if optim_wrapper.should_update():
            optim_wrapper.step()
            t4 = time.perf_counter()
            optim_wrapper.zero_grad()
        else:
            t4 = time.perf_counter()
        t5 = time.perf_counter()
        if timer is not None and timer.attached:
            steps.append(step_record(
                dict(step_s=t5 - t0, forward_s=t1 - t0,
                     parse_losses_s=t2 - t1, backward_s=t3 - t2,
                     optimizer_s=t5 - t3,
                     optimizer_parts_s=dict(step=t4 - t3, zero_grad=t5 - t4)),
                timer.pop(), with_mg, with_align))

    step()  # warm-up
    timer = attach_timers(model)
    try:
        seconds, counts, _ = time_modules(model, step, args.depth,
                                          args.repeat)
    finally:
        timer.remove()
    ops = matrix = None
    if args.top > 0:
        ops, matrix_s, other_s = profile_ops(step, args.top)
        matrix = dict(matrix_s=round(matrix_s, 4), other_s=round(other_s, 4),
                      matrix_share=round(
                          matrix_s / max(matrix_s + other_s, 1e-9), 4))
    res = median_record(steps)
    if loading is not None:
        loading = {k: round(v, 5) if isinstance(v, float) else v
                   for k, v in loading.items()}
        loading['share_of_step'] = round(
            loading['per_batch_s'] /
            max(loading['per_batch_s'] + res['step_s'], 1e-9), 4)
    modules = [
        dict(module=key, seconds=round(sec, 4), calls=counts[key])
        for key, sec in sorted(seconds.items(), key=lambda kv: -kv[1])
    ]
    return dict(
        mode='train', config=args.config, batch=int(inputs.shape[0]),
        shape=list(inputs.shape[-2:]), real_data=args.real_data,
        threads=torch.get_num_threads(), torch=torch.__version__,
        repeat=args.repeat,
        times_s=[round(s['step_s'], 4) for s in steps],
        step_s=res['step_s'],
        images_per_s=round(inputs.shape[0] / res['step_s'], 3),
        forward_s=res['forward_s'],
        forward_parts_s=res['forward_parts_s'],
        main_encode_s=res['main_encode_s'],
        mask_grounding=res['mask_grounding'],
        parse_losses_s=res['parse_losses_s'],
        backward_s=res['backward_s'], optimizer_s=res['optimizer_s'],
        optimizer_parts_s=res['optimizer_parts_s'],
        data_loading=loading,
        matmul_peak_gflop_s=round(B.matmul_peak_gflops(), 1),
        num_parameters=sum(p.numel() for p in model.parameters()),
        modules=modules, ops=ops, matrix_split=matrix)


def print_table(res: dict, file=sys.stderr, top_modules: int = 8) -> None:
    """The step's split (seconds, % of the step) and the top modules."""
    step = res['step_s'] or 1e-9

    def row(name, sec, indent=1):
        label = f'{"  " * indent}{name:<{WIDTH - 2 * indent}}'
        if sec is None:
            print(f'{label} {"-":>8}', file=file)
        else:
            print(f'{label} {sec:8.4f} s {100 * sec / step:5.1f}%',
                  file=file)

    h, w = res['shape']
    print(f'{res["config"]}: {res["batch"]} x 3 x {h} x {w} '
          f'({"real data" if res["real_data"] else "dummy batch"}), '
          f'{res["threads"]} threads, torch {res["torch"]}, median of '
          f'{res["repeat"]}', file=file)
    row('step', res['step_s'], 0)
    row('forward (model.loss)', res['forward_s'])
    for name, sec in res['forward_parts_s'].items():
        row(name, sec, 2)
        if name == 'mask_grounding_pass' and res['mask_grounding']:
            mg = res['mask_grounding']
            row('encode', mg['encode_s'], 3)
            row('head', mg['head_s'], 3)
            row('other', mg['other_s'], 3)
    row('parse_losses', res['parse_losses_s'])
    row('backward', res['backward_s'])
    row('optimizer (step+zero_grad)', res['optimizer_s'])
    print(f'{res["images_per_s"]:.3f} images/s; matmul peak '
          f'{res["matmul_peak_gflop_s"]:.1f} GFLOP/s', file=file)
    loading = res['data_loading']
    if loading:
        print(f'data loading (num_workers=0): {loading["per_batch_s"]:.4f} '
              f's/batch (fetch+collate {loading["fetch_collate_s"]:.4f}, '
              f'preprocess {loading["preprocess_s"]:.4f}), '
              f'{100 * loading["share_of_step"]:.1f}% of step+data',
              file=file)
    if res['modules']:
        print('top modules (forward, inclusive, per step):', file=file)
        for m in res['modules'][:top_modules]:
            row(f'{m["module"]} x{m["calls"]}', m['seconds'])


def main(argv=None):
    args = parse_args(argv)
    if args.mode == 'inference':
        B.run_tool(profile_inference, args)
    else:
        print_table(B.run_tool(profile_train_step, args))


if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
