"""Check a RefCOCO-family (REFER) data layout before a long run.

Usage::

    python tools/misc/check_refer_data.py DATA_ROOT [--dataset refcoco]
        [--split-by unc] [--check-images all|N] [--img-dir DIR]
        [--workers 8] [--seed 0] [--strict]

Expects the REFER layout read by ``RefCOCODataset``::

    DATA_ROOT/images/mscoco/images/train2014/*.jpg      (--img-dir)
    DATA_ROOT/<dataset>/refs(<split_by>).p  (or its JSON form .json)
    DATA_ROOT/<dataset>/instances.json

and checks that: the annotation folder, refs file and instances.json are
where the dataset looks for them; the refs file is a list of well-formed
refs (a Python-2 pickle is fine, a note says how it must be read); its
splits are those of the partition (RefCOCOg google has no ``test`` split,
umd has one; RefCOCO unc has ``testA`` / ``testB``, google ``test``) and its
counts per split are the published ones (a copy of another partition is
named); every ref's ``ann_id`` / ``image_id`` is in instances.json, with the
same image; every referenced image file exists (when they are elsewhere,
where they are and what to link or which ``img_dir`` to set) and decodes
with PIL at the size instances.json gives (``--check-images N`` decodes a
random sample of N for speed; default all); finally that
``RefCOCODataset`` indexes every split.

The rules are those ``RefCOCODataset`` applies
(``projects/magnet/datasets/refer/schema.py``), here to everything in the
files and collecting every problem (also sentences with no word, which the
dataset skips with a warning); the library is
``projects/magnet/datasets/refer/check*.py``.

Prints one screen (repeated problems are summarised with a few examples).
Exit status 0 when no problem was found, 1 otherwise (count differences
from the published numbers are warnings unless ``--strict``).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.magnet.datasets.refer.check import check  # noqa: E402
from projects.magnet.datasets.refer.check_report import (  # noqa: E402,F401
    DEFAULT_IMG_DIR, DEFAULT_SPLIT_BY, PUBLISHED, Report, check_partition,
    print_report)
from projects.magnet.utils import run_cli  # noqa: E402
from projects.magnet.utils.errors import InputFileError  # noqa: E402


def _images_arg(text: str):
    if text == 'all':
        return text
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f'expected "all" or a number >= 0, got {text!r}')
    return value


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('data_root', metavar='DATA_ROOT',
                        help='REFER data root (holds images/ and <dataset>/)')
    parser.add_argument('--dataset', default='refcoco',
                        help='refcoco, refcoco+, refcocog (or any REFER-'
                        'format folder)')
    parser.add_argument('--split-by', default=None,
                        help='unc, google or umd (default: unc, umd for '
                        'refcocog)')
    parser.add_argument('--check-images', type=_images_arg, default='all',
                        metavar='all|N', help='decode all referenced images '
                        '(default) or a random sample of N (every image is '
                        'looked for anyway)')
    parser.add_argument('--img-dir', default=DEFAULT_IMG_DIR,
                        help='image folder, relative to DATA_ROOT (the '
                        "dataset's img_dir)")
    parser.add_argument('--workers', type=int, default=min(8, os.cpu_count()
                                                            or 1),
                        help='threads decoding images')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of --check-images N')
    parser.add_argument('--strict', action='store_true',
                        help='fail on warnings too (e.g. counts that differ '
                        'from the published ones)')
    args = parser.parse_args(argv)
    if args.split_by is None:
        args.split_by = DEFAULT_SPLIT_BY.get(args.dataset, 'unc')
    if args.workers < 1:
        parser.error('--workers must be >= 1')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if not osp.isdir(args.data_root):
        raise InputFileError(f'DATA_ROOT {args.data_root} is not a folder')
    return print_report(check(args), args.strict)


if __name__ == '__main__':
    sys.exit(run_cli(main))
