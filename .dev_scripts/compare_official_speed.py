"""Side-by-side CPU speed / memory / output comparison with the official
MagNet implementation (full-size model: Swin-B + BERT-base + 1-query head).

The official code (AGPL-3.0) is never part of this repository. It is run by
a command you give (``--official-cmd``), in its own environment, that
follows this protocol (arguments appended by this script):

* ``--mode time --threads T --size S --runs R --warmup W [--flops]``: build
  the official model with random weights, time the forward (+ upsampling and
  ``semantic_inference``) ``R`` times, print one line
  ``@@JSON@@{"median_s":..., "cpu_median_s":..., "peak_rss_mib":...,
  "times_s": [...], "gflops": ...}``;
* ``--mode dump --size S --out DIR``: write ``DIR/official.pth`` (official
  checkpoint format), ``DIR/inputs.pt`` (``image``, ``input_ids``,
  ``attention_mask``) and ``DIR/prob.pt`` (the official probability map).

Every measurement runs in a fresh child process (peak RSS =
``ru_maxrss`` of that process: imports + build + forwards), alternating
official / project each round, with the same thread count and input size.
The fp32 matmul peak is measured in every round. Outputs: the dumped
official weights are converted with the project's converter
(``projects/magnet/converters``) and the project's probability map on the
same inputs is compared with the official one (tolerance 2e-5).

Usage (see docs/performance.md)::

    python .dev_scripts/compare_official_speed.py \
        --official-cmd "/path/venv/bin/python /path/official_runner.py" \
        [--rounds 3] [--runs 3] [--threads 2] [--size 480] [--out r.json]
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
    # internal: child modes
    p.add_argument('--child', choices=('time', 'check'))
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


def child_time(args):
    import resource

    import torch
    torch.set_num_threads(args.threads)
    from projects.magnet.engine import benchmarking as B  # noqa: E402
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
        threads=torch.get_num_threads(),
        num_parameters=sum(p.numel() for p in model.parameters()))
    res['gflops'] = round(B.count_flops(call)[0] / 1e9, 3)
    print(TAG + json.dumps(res))


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
    with torch.inference_mode():
        prob = model.encode_decode(img, metas).sigmoid()
    diff = (prob - ref.reshape(prob.shape)).abs().max().item()
    print(TAG + json.dumps(dict(prob_max_abs_diff=diff,
                                tolerance=TOLERANCE,
                                equal=diff <= TOLERANCE)))


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
    official = shlex.split(args.official_cmd)
    me = [sys.executable, osp.abspath(__file__), '--official-cmd',
          args.official_cmd, '--config', args.config, '--threads',
          str(args.threads), '--size', str(args.size)]
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
                   matmul_peak_gflop_s=peaks)
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
    from projects.magnet.engine.benchmarking import report
    report(summary, args.out)


if __name__ == '__main__':
    main()
