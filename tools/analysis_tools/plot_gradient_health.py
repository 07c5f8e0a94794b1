"""Plot what GradientHealthHook logged during a training: how open each
fusion gate is, and the gradient norm of each module group, per iteration.

Usage:
    python tools/analysis_tools/plot_gradient_health.py WORK_DIR_OR_SCALARS
        [--out gradient_health.png] [--modules backbone.gates text_encoder]

Reads the ``gate/*`` and ``grad_norm/*`` scalars from ``vis_data/
scalars.json`` (the newest run under a work dir, or the file given) and
writes one PNG with two panels (log scale): mean |gate| per gate, and the
gradient norm per module group (``--modules`` keeps the groups starting
with any of the given prefixes).
"""
from __future__ import annotations

import argparse
import glob
import json
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.magnet.utils import (  # noqa: E402
    InputFileNotFoundError, InvalidInputError, atomic_write,
    check_output_file, run_cli)

#: what matplotlib writes, by extension
PLOT_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.pdf', '.svg')

Series = Dict[str, List[Tuple[int, float]]]


def find_scalars(path: str) -> str:
    if not osp.exists(path):
        raise InputFileNotFoundError(
            f'{path} not found; expected a work dir or a scalars.json')
    if osp.isfile(path):
        return path
    found = sorted(glob.glob(osp.join(path, '*', 'vis_data',
                                      'scalars.json')))
    if not found:
        raise InputFileNotFoundError(
            f'{path}: no */vis_data/scalars.json (a work dir of a training '
            'with GradientHealthHook and a LocalVisBackend)')
    return found[-1]


def read_series(path: str) -> Tuple[Series, Series]:
    """(gates, grad_norms): name -> [(step, value)] from scalars.json."""
    gates: Series = defaultdict(list)
    norms: Series = defaultdict(list)
    with open(path) as f:
        for number, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except ValueError as err:  # one JSON object per line
                raise InvalidInputError(
                    f'{path}: line {number} is not JSON ({err}); expected '
                    'the scalars.json of a LocalVisBackend') from err
            if not isinstance(row, dict):
                raise InvalidInputError(
                    f'{path}: line {number} is a {type(row).__name__}, not '
                    'a JSON object; expected the scalars.json of a '
                    'LocalVisBackend (one object per line)')
            step = row.get('step')
            for key, value in row.items():
                if key.startswith('gate/'):
                    gates[key[5:]].append((step, value))
                elif key.startswith('grad_norm/'):
                    norms[key[10:]].append((step, value))
    if not gates and not norms:
        raise InvalidInputError(
            f'{path}: no gate/ or grad_norm/ scalars (was '
            'GradientHealthHook on, with interval > 0?)')
    return gates, norms


def plot(gates: Series, norms: Series, out: str,
         modules: Optional[List[str]] = None) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    if modules:
        norms = {k: v for k, v in norms.items()
                 if any(k.startswith(m) for m in modules)}
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    for ax, series, title in ((axes[0], gates, 'mean |gate| (fusion gates)'),
                              (axes[1], norms, 'gradient norm per module')):
        for name, points in sorted(series.items()):
            steps, values = zip(*points)
            ax.plot(steps, [max(v, 1e-12) for v in values], label=name,
                    linewidth=1.2)
        ax.set_yscale('log')
        ax.set_xlabel('iteration')
        ax.set_title(title)
        ax.grid(True, which='both', alpha=0.3)
        ax.legend(fontsize=6, ncol=2 if len(series) > 12 else 1)
    fig.tight_layout()
    with atomic_write(out) as f:
        fig.savefig(f, dpi=110, format=osp.splitext(out)[1][1:].lower())
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('path', help='work dir, or a scalars.json')
    parser.add_argument('--out', help='PNG to write (default: '
                        'gradient_health.png beside scalars.json)')
    parser.add_argument('--modules', nargs='+',
                        help='module-group prefixes to plot')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    scalars = find_scalars(args.path)
    gates, norms = read_series(scalars)
    out = args.out or osp.join(osp.dirname(scalars), 'gradient_health.png')
    check_output_file(out, PLOT_EXTENSIONS, inputs=[scalars], what='--out')
    plot(gates, norms, out, args.modules)
    print(f'{len(gates)} gates, {len(norms)} module groups from {scalars}: '
          f'{out}')
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
