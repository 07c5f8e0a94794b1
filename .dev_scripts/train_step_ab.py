"""Training step of two code versions side by side: images/s, losses and
gradients on the same batch, in one run (developer tool).

Usage:
    git worktree add /tmp/old COMMIT   # the code to compare against
    python .dev_scripts/train_step_ab.py CONFIG --old-root /tmp/old \
        [--new-root .] [--rounds 5] [--steps 2] [--threads 1] \
        [--batch B] [--shape H W] [--old-env K=V ...] [--new-env K=V ...] \
        [--out result.json]

Each side is one child process that imports ``projects.magnet`` from its
root (``--old-root`` / ``--new-root``), reads a relative CONFIG from that
root too (from this checkout where the root lacks it) and builds its training
model with the same seed (random weights, pretrained ``init_cfg`` dropped,
the optimizer of the config; ``benchmarking.build_for_training`` of that
root) and the same dummy batch (``benchmarking.dummy_batch``, ground-truth
masks included). Both children stay alive for the whole run:

1. the first step of each side (seed 0, from the identical initial state)
   gives the losses (``parse_losses``' log) and every parameter's gradient
   (after ``backward``, before the optimizer update); the parent compares
   them (``max_loss_rel_diff``, ``max_grad_rel_diff`` = max over parameters
   of ``|g_new - g_old| / max(|g_old|)``, and the parameters that have a
   gradient on one side only);
2. then ``--rounds`` rounds, each timing ``--steps`` steps of old then new
   (the order alternates every round), so that the machine's load hits both
   alike; the reported ``median_s`` is over all timed steps of a side;
3. the fp32 matmul peak (``matmul_peak_gflops``, the same threads) is
   measured by the parent before and after the rounds.

``--old-env`` / ``--new-env`` add environment variables to one side only
(e.g. to compare a setting on the same code). ``ratio`` = new images/s /
old images/s.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TAG = '@@JSON@@'


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    p.add_argument('config')
    p.add_argument('--old-root', required=False)
    p.add_argument('--new-root', default=ROOT)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--steps', type=int, default=2,
                   help='timed steps per side and round')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--batch', type=int, default=None)
    p.add_argument('--shape', type=int, nargs=2, default=None)
    p.add_argument('--old-env', nargs='*', default=[])
    p.add_argument('--new-env', nargs='*', default=[])
    p.add_argument('--out')
    p.add_argument('--child', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not args.child and not args.old_root:
        p.error('--old-root is required')
    return args


# ---------------------------------------------------------------- child ---
def config_path(config: str, root: str) -> str:
    """``config`` as a side sees it: a relative path is read from that
    side's ``root`` (its configs, e.g. optimizer settings, are part of the
    code version), or from this script's checkout if ``root`` lacks it."""
    if osp.isabs(config):
        return config
    own = osp.join(root, config)
    return own if osp.exists(own) else osp.join(ROOT, config)


def child(args: argparse.Namespace) -> None:
    """Serve ``grads FILE`` / ``time N`` / ``quit`` lines from stdin."""
    root = osp.abspath(args.child)
    sys.path.insert(0, root)
    os.chdir(root)
    import torch
    torch.set_num_threads(args.threads)
    from projects.magnet.engine import benchmarking as B
    cfg = B.load_config(config_path(args.config, root))
    batch, shape = B.train_batch_shape(cfg, args.batch, args.shape)
    model, wrapper = B.build_for_training(cfg)
    inputs, samples = B.dummy_batch(batch, shape, with_gt=True)
    seed = [0]

    def forward():
        torch.manual_seed(seed[0])
        seed[0] += 1
        with wrapper.optim_context(model):
            losses = model.loss(inputs, samples)
        return model.parse_losses(losses)

    def send(obj) -> None:
        print(TAG + json.dumps(obj), flush=True)

    send(dict(ready=True, batch=batch, shape=list(shape)))
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == 'grads':
            loss, log = forward()
            wrapper.backward(loss)
            # the gradients go through a file (cmd[1]), not the pipe
            torch.save({n: p.grad for n, p in model.named_parameters()
                        if p.grad is not None}, cmd[1])
            wrapper.step()
            wrapper.zero_grad()
            send(dict(losses={k: float(v) for k, v in log.items()},
                      grads=cmd[1]))
        elif cmd[0] == 'time':
            times = []
            for _ in range(int(cmd[1])):
                start = time.perf_counter()
                loss, _ = forward()
                wrapper.update_params(loss)
                times.append(time.perf_counter() - start)
            send(dict(times=times))
        else:
            return


# --------------------------------------------------------------- parent ---
class Side:
    """One child process serving one code version."""

    def __init__(self, name: str, root: str, args, env_items) -> None:
        env = {**os.environ, 'HF_HUB_OFFLINE': '1',
               'TRANSFORMERS_OFFLINE': '1',
               'OMP_NUM_THREADS': str(args.threads)}
        env.update(kv.split('=', 1) for kv in env_items)
        cmd = [sys.executable, osp.abspath(__file__), args.config,
               '--child', root, '--threads', str(args.threads)]
        if args.batch:
            cmd += ['--batch', str(args.batch)]
        if args.shape:
            cmd += ['--shape', *map(str, args.shape)]
        self.name = name
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True,
                                     env=env)
        self.first = self.receive()

    def receive(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line[len(TAG):])
        raise RuntimeError(f'{self.name} side exited (rc '
                           f'{self.proc.wait()})')

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + '\n')
        self.proc.stdin.flush()
        return self.receive()

    def close(self) -> None:
        try:
            self.proc.stdin.write('quit\n')
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait()


def compare(old: dict, new: dict) -> dict:
    import torch
    old, new = dict(old), dict(new)
    for side in (old, new):
        side['grads'] = torch.load(side['grads'])
    loss_rel = max(
        abs(new['losses'][k] - v) / max(abs(v), 1e-12)
        for k, v in old['losses'].items())
    grad_rel, worst = 0.0, None
    for name, g_old in old['grads'].items():
        if name not in new['grads']:
            continue
        a, b = g_old.double(), new['grads'][name].double()
        scale = float(a.abs().max())
        rel = float((a - b).abs().max()) / scale if scale > 0 else float(
            (a - b).abs().max())
        if rel > grad_rel:
            grad_rel, worst = rel, name
    return dict(
        losses_old=old['losses'], losses_new=new['losses'],
        max_loss_rel_diff=loss_rel, max_grad_rel_diff=grad_rel,
        worst_grad=worst,
        grad_only_old=sorted(set(old['grads']) - set(new['grads'])),
        grad_only_new=sorted(set(new['grads']) - set(old['grads'])))


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.child:
        return child(args)
    sys.path.insert(0, ROOT)
    import torch
    torch.set_num_threads(args.threads)
    from projects.magnet.engine.benchmarking import matmul_peak_gflops
    peaks = [matmul_peak_gflops()]
    sides = dict(old=Side('old', osp.abspath(args.old_root), args,
                          args.old_env),
                 new=Side('new', osp.abspath(args.new_root), args,
                          args.new_env))
    tmp = tempfile.TemporaryDirectory()
    try:
        first = {k: s.ask(f'grads {osp.join(tmp.name, k)}.pth')
                 for k, s in sides.items()}
        times = dict(old=[], new=[])
        for r in range(args.rounds):
            order = ('old', 'new') if r % 2 == 0 else ('new', 'old')
            for k in order:
                times[k] += sides[k].ask(f'time {args.steps}')['times']
    finally:
        for s in sides.values():
            s.close()
    comparison = compare(first['old'], first['new'])
    tmp.cleanup()
    peaks.append(matmul_peak_gflops())
    batch = sides['new'].first['batch']
    result = dict(config=args.config, old_root=args.old_root,
                  new_root=args.new_root, threads=args.threads, batch=batch,
                  shape=sides['new'].first['shape'],
                  old_env=args.old_env, new_env=args.new_env,
                  matmul_peak_gflop_s=[round(p, 1) for p in peaks])
    for k in ('old', 'new'):
        med = statistics.median(times[k])
        result[k] = dict(times_s=[round(t, 4) for t in times[k]],
                         median_s=round(med, 4),
                         images_per_s=round(batch / med, 3))
    result['ratio'] = round(result['new']['images_per_s'] /
                            result['old']['images_per_s'], 3)
    result.update(comparison)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return result


if __name__ == '__main__':
    main()
