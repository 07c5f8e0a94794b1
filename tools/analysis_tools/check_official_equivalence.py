"""Print per-tensor max-abs-diff between the project's model and the official
implementation's outputs stored in a fixture directory.

Usage:
    python tools/analysis_tools/check_official_equivalence.py \
        [FIXTURE_DIR (default tests/data/official_small)] [--json F]

Exit status 0 when every tensor is within its tolerance, 1 otherwise; a
missing fixture file or an unwritable ``--json`` ends with one ``error:``
line (exit 1) before the model is built.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import projects.magnet  # noqa: E402,F401
from projects.magnet.converters.parity import compare_with_fixture  # noqa
from projects.magnet.utils import (  # noqa: E402
    JSON_EXTENSIONS, InputFileNotFoundError, check_output_file, run_cli,
    save_json)
from projects.magnet.utils.cli import check_minimum  # noqa: E402

#: what a fixture directory holds
FIXTURE_FILES = ('config.json', 'official_tiny.pth', 'inputs.pt',
                 'outputs.pt')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('fixture', nargs='?', default=osp.join(
        ROOT, 'tests', 'data', 'official_small'),
        help='fixture directory (config.json, official_tiny.pth, inputs.pt, '
        'outputs.pt); default: the one shipped with the tests')
    parser.add_argument('--json', help='also write the rows as JSON')
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    check_minimum(parser, args, dict(threads=1))
    if not osp.isdir(args.fixture):
        raise InputFileNotFoundError(
            f'{args.fixture}: not a fixture directory (' + (
                'a file' if osp.exists(args.fixture) else 'not found') +
            f'); expected a folder with {", ".join(FIXTURE_FILES)}')
    missing = [f for f in FIXTURE_FILES
               if not osp.isfile(osp.join(args.fixture, f))
               or not osp.getsize(osp.join(args.fixture, f))]
    if missing:
        raise InputFileNotFoundError(
            f'{args.fixture}: not a fixture directory, missing (or '
            f'empty) {", ".join(missing)}')
    if args.json:
        check_output_file(args.json, JSON_EXTENSIONS, what='--json')
    torch.set_num_threads(args.threads)
    rows = compare_with_fixture(args.fixture)
    ok = True
    print(f'{"tensor":<18} {"shape":<22} {"max|diff|":>10} {"tol":>8}')
    for name, shape, diff, tol in rows:
        flag = '' if diff <= tol else '  FAIL'
        ok &= diff <= tol
        print(f'{name:<18} {str(shape):<22} {diff:10.2e} {tol:8.0e}{flag}')
    if args.json:
        save_json([dict(tensor=n, shape=s, max_abs_diff=d, tolerance=t)
                   for n, s, d, t in rows], args.json, indent=1)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(run_cli(main))
