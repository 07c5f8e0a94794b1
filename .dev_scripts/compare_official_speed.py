"""Side-by-side CPU speed / memory / output comparison with the official
MagNet implementation (full-size model: Swin-B + BERT-base + 1-query head).

The official code (AGPL-3.0) is never part of this repository. It is run by
a command you give (``--official-cmd``), in its own environment. That
command is called in a fresh process for every measurement, with
``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` set to ``--threads``, and this
script appends the arguments below. The whole contract (a runner written
from this paragraph works):

* **time mode**: ``--mode time --threads T --size S --runs R --warmup W``
  and, in the first round only, ``--flops``. Build the official model with
  random weights; on a random normalised image ``(1, 3, S, S)`` with a
  20-slot expression (10 real tokens) call its forward + the upsampling of
  ``pred_masks`` to ``S x S`` + ``semantic_inference`` under
  ``torch.no_grad``, ``W`` untimed then ``R`` timed times, with
  ``torch.set_num_threads(T)``. Print to stdout one line
  ``@@JSON@@`` + a JSON object with (all required unless noted):

  - ``times_s``: list of ``R`` wall times (s) of the timed calls;
  - ``cpu_times_s``: list of ``R`` process CPU times (s) of the same calls
    (``time.process_time``);
  - ``median_s``, ``cpu_median_s``: their medians;
  - ``peak_rss_mib``: the process's peak RSS (``ru_maxrss``, MiB) after the
    calls: imports + build + forwards;
  - ``gflops``: FLOPs of one call / 1e9 when ``--flops`` is given
    (``torch.utils.flop_counter``), else null or absent.

* **dump mode**: ``--mode dump --threads T --size S --out DIR``. Build the
  model the same way and write ``DIR/official.pth`` (the official checkpoint
  format: ``{'model': state_dict}`` of the ``WrapperModel``, readable with
  ``torch.load(weights_only=True)``), ``DIR/inputs.pt`` (a dict of
  ``image`` float32 ``(1, 3, S, S)`` normalised, ``input_ids`` int64
  ``(1, 20)``, ``attention_mask`` int64 ``(1, 20)``) and ``DIR/prob.pt``
  (the official probability map ``(1, 1, S, S)`` float32 on those inputs,
  computed as in time mode). Then print one ``@@JSON@@`` line with any
  JSON object (e.g. ``{"out": DIR}``): the line marks success.

A run that exits non-zero or prints no ``@@JSON@@`` line stops the
comparison with the runner's output tail. Lines without the tag are
ignored; when several tagged lines are printed, the last one counts.

Every measurement runs in a fresh child process (peak RSS =
``ru_maxrss`` of that process: imports + build + forwards), alternating
official / project each round, with the same thread count and input size.
The project side is ``--backend pytorch`` (``model.predict`` of an inference
build under ``torch.inference_mode``) or ``--backend ort`` (the same model
exported once to ONNX and run by
:class:`~projects.magnet.deployment.OnnxRuntimeSegmentor`; its peak RSS has
no PyTorch model in it). The fp32 matmul peak is measured in every round.
Outputs: the dumped official weights are converted with the project's
converter (``projects/magnet/converters``) and the project's probability map
on the same inputs is compared with the official one (tolerance 2e-5; with
``--backend ort`` through the exported converted model).

Usage (see docs/performance.md)::

    python .dev_scripts/compare_official_speed.py \
        --official-cmd "/path/venv/bin/python /path/official_runner.py" \
        [--backend pytorch|ort] [--rounds 3] [--runs 3] [--threads 2] \
        [--size 480] [--out r.json]
"""
import argparse
import json
import os
import os.path as osp
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

CONFIG = osp.join(ROOT, 'configs', 'magnet',
                  'magnet_swin-b_bert-base_8xb4-40e_refcoco-480x480.py')
TOLERANCE = 2e-5
TAG = '@@JSON@@'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--official-cmd', required=True,
                   help='command running the official model (protocol in '
                   'this file\'s docstring)')
    p.add_argument('--config', default=CONFIG)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--runs', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--size', type=int, default=480)
    p.add_argument('--skip-check', action='store_true',
                   help='skip the output comparison')
    p.add_argument('--out', help='also write the JSON summary here')
    p.add_argument('--backend', choices=('pytorch', 'ort'),
                   default='pytorch', help='the project side: PyTorch or '
                   'ONNX Runtime on the exported model')
    p.add_argument('--onnx', help='--backend ort: an exported full-size '
                   'model (tools/deployment/pytorch2onnx.py, --size x '
                   '--size); default: exported here first')
    p.add_argument('--ort-level', default='all',
                   choices=('disable', 'basic', 'extended', 'all'),
                   help='--backend ort: graph optimisation level')
    # internal: child modes
    p.add_argument('--child', choices=('time', 'check', 'export'))
    p.add_argument('--dump-dir')
    return p.parse_args(argv)


def _child_env(threads):
    return dict(os.environ, OMP_NUM_THREADS=str(threads),
                MKL_NUM_THREADS=str(threads), HF_HUB_OFFLINE='1',
                TRANSFORMERS_OFFLINE='1')


def _run(cmd, threads):
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=_child_env(threads))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f'{cmd[:3]} failed (rc {proc.returncode}):\n'
                           f'{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return json.loads(lines[-1][len(TAG):])


def _ort_model(args, onnx_file):
    """The ONNX Runtime segmentor on ``onnx_file`` with the config's data
    preprocessor and test_cfg."""
    from projects.magnet.deployment import OnnxRuntimeSegmentor
    from projects.magnet.engine import benchmarking as B
    cfg = B.load_config(args.config)
    return OnnxRuntimeSegmentor(onnx_file, cfg.model.data_preprocessor,
                                cfg.model.get('test_cfg'),
                                threads=args.threads,
                                graph_optimization_level=args.ort_level)


def child_time(args):
    import resource

    import torch
    torch.set_num_threads(args.threads)
    from projects.magnet.engine import benchmarking as B  # noqa: E402
    if args.backend == 'ort':
        model = _ort_model(args, args.onnx)
    else:
        model = B.build_model(args.config)
    inputs, samples = B.dummy_batch(1, (args.size, args.size))

    def call():
        with torch.inference_mode():
            return model.predict(inputs, samples)

    for _ in range(args.warmup):
        call()
    times, cpu = [], []
    for _ in range(args.runs):
        t, c = time.perf_counter(), time.process_time()
        call()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    res = dict(
        times_s=[round(x, 4) for x in times],
        median_s=round(statistics.median(times), 4),
        min_s=round(min(times), 4), cpu_times_s=[round(x, 4) for x in cpu],
        cpu_median_s=round(statistics.median(cpu), 4),
        peak_rss_mib=round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        threads=torch.get_num_threads(), backend=args.backend)
    if args.backend == 'pytorch':
        res['num_parameters'] = sum(p.numel() for p in model.parameters())
        res['gflops'] = round(B.count_flops(call)[0] / 1e9, 3)
    print(TAG + json.dumps(res))


def child_export(args):
    """Export the config's model (random weights) at ``--size`` to
    ``--onnx``."""
    import torch
    torch.set_num_threads(args.threads)
    from projects.magnet.deployment import export_onnx
    from projects.magnet.engine import benchmarking as B
    info = export_onnx(B.build_model(args.config), args.onnx,
                       (args.size, args.size), 20)
    print(TAG + json.dumps(dict(onnx=args.onnx,
                                file_bytes=info['file_bytes'])))


def child_check(args):
    import torch
    torch.set_num_threads(args.threads)
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import projects.magnet  # noqa: F401
    from projects.magnet.compat.checkpoint import load_weights
    from projects.magnet.converters.official import (
        convert_official_checkpoint, unwrap_official)
    from projects.magnet.converters.official_config import infer_model_cfg
    init_default_scope('mmseg')
    official = load_weights(osp.join(args.dump_dir, 'official.pth'))
    cfg = infer_model_cfg(unwrap_official(official))
    model = MODELS.build(cfg)
    model.load_state_dict(convert_official_checkpoint(official), strict=True)
    del official
    model.eval()
    inputs = torch.load(osp.join(args.dump_dir, 'inputs.pt'))
    ref = torch.load(osp.join(args.dump_dir, 'prob.pt'))
    img = inputs['image']
    h, w = img.shape[-2:]
    metas = [dict(img_shape=(h, w), pad_shape=(h, w), ori_shape=(h, w),
                  input_ids=inputs['input_ids'][i].numpy(),
                  attention_mask=inputs['attention_mask'][i].numpy())
             for i in range(img.shape[0])]
    if args.backend == 'ort':  # the converted model, exported
        from projects.magnet.deployment import export_onnx
        onnx_file = osp.join(args.dump_dir, 'converted.onnx')
        export_onnx(model, onnx_file, (h, w), inputs['input_ids'].shape[1])
        prob = _ort_model(args, onnx_file).run(
            img, inputs['input_ids'], inputs['attention_mask'])['prob']
    else:
        with torch.inference_mode():
            prob = model.encode_decode(img, metas).sigmoid()
    diff = (prob - ref.reshape(prob.shape)).abs().max().item()
    print(TAG + json.dumps(dict(prob_max_abs_diff=diff,
                                tolerance=TOLERANCE,
                                equal=diff <= TOLERANCE)))


def cpu_isa() -> str:
    """The widest x86 vector instruction set of this CPU that PyTorch
    uses (``torch.backends.cpu.get_cpu_capability()``: ``AVX512``,
    ``AVX2``, ...), with the CPU model name."""
    import torch
    name = ''
    try:
        with open('/proc/cpuinfo') as f:
            name = next((ln.split(':', 1)[1].strip() for ln in f
                         if ln.startswith('model name')), '')
    except OSError:
        pass
    return f'{torch.backends.cpu.get_cpu_capability()} ({name})'.strip()


def matmul_peak(threads):
    import torch
    torch.set_num_threads(threads)
    from projects.magnet.engine.benchmarking import matmul_peak_gflops
    return round(matmul_peak_gflops('cpu'), 2)


def main(argv=None):
    args = parse_args(argv)
    if args.child == 'time':
        return child_time(args)
    if args.child == 'check':
        return child_check(args)
    if args.child == 'export':
        return child_export(args)
    official = shlex.split(args.official_cmd)
    me = [sys.executable, osp.abspath(__file__), '--official-cmd',
          args.official_cmd, '--config', args.config, '--threads',
          str(args.threads), '--size', str(args.size), '--backend',
          args.backend, '--ort-level', args.ort_level]
    export_dir = tempfile.TemporaryDirectory()
    if args.backend == 'ort':
        if not args.onnx:
            args.onnx = osp.join(export_dir.name, 'project.onnx')
            print(f'exporting the project model to {args.onnx}',
                  file=sys.stderr, flush=True)
            _run(me + ['--child', 'export', '--onnx', args.onnx],
                 args.threads)
        me += ['--onnx', args.onnx]
    common = ['--threads', str(args.threads), '--size', str(args.size)]
    rows = {'official': [], 'project': []}
    peaks = []
    load = [os.getloadavg()]
    for r in range(args.rounds):
        order = ('official', 'project') if r % 2 == 0 else ('project',
                                                            'official')
        for name in order:
            if name == 'official':
                cmd = official + ['--mode', 'time', '--runs', str(
                    args.runs), '--warmup', str(args.warmup)] + common + (
                        ['--flops'] if r == 0 else [])
            else:
                cmd = me + ['--child', 'time', '--runs', str(args.runs),
                            '--warmup', str(args.warmup)]
            res = _run(cmd, args.threads)
            rows[name].append(res)
            print(f'round {r} {name}: median {res["median_s"]} s, cpu '
                  f'{res["cpu_median_s"]} s, peak RSS '
                  f'{res["peak_rss_mib"]} MiB', file=sys.stderr, flush=True)
        peaks.append(matmul_peak(args.threads))
    load.append(os.getloadavg())

    summary = dict(threads=args.threads, size=args.size, rounds=args.rounds,
                   runs_per_round=args.runs, load_avg_start_end=load,
                   matmul_peak_gflop_s=peaks, backend=args.backend,
                   cpu_isa=cpu_isa())
    if args.backend == 'ort':
        summary['ort_graph_optimization_level'] = args.ort_level
    for name, res in rows.items():
        times = [t for x in res for t in x['times_s']]
        cpu = [t for x in res for t in x['cpu_times_s']]
        gflops = next((x['gflops'] for x in res if x.get('gflops')), None)
        med = statistics.median(times)
        summary[name] = dict(
            median_s=round(med, 4), min_s=round(min(times), 4),
            max_s=round(max(times), 4), cpu_median_s=round(
                statistics.median(cpu), 4),
            peak_rss_mib=max(x['peak_rss_mib'] for x in res),
            gflops=gflops,
            achieved_gflop_s=round(gflops / med, 2) if gflops else None,
            per_round=res)
    o, p = summary['official'], summary['project']
    summary['ratio_time_project_over_official'] = round(
        p['median_s'] / o['median_s'], 3)
    summary['ratio_cpu_time_project_over_official'] = round(
        p['cpu_median_s'] / o['cpu_median_s'], 3)
    summary['ratio_peak_rss_project_over_official'] = round(
        p['peak_rss_mib'] / o['peak_rss_mib'], 3)
    summary['speedup'] = round(o['median_s'] / p['median_s'], 2)
    if not args.skip_check:
        with tempfile.TemporaryDirectory() as tmp:
            _run(official + ['--mode', 'dump', '--out', tmp] + common,
                 args.threads)
            summary['outputs'] = _run(
                me + ['--child', 'check', '--dump-dir', tmp], args.threads)
    export_dir.cleanup()
    from projects.magnet.engine.benchmarking import report
    report(summary, args.out)


if __name__ == '__main__':
    main()
