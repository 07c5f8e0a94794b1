"""Convert REFER refs pickles (``refs(unc).p``...) to JSON, executing nothing.

The REFER pickles (RefCOCO ``refs(unc).p`` / ``refs(google).p``, RefCOCO+
``refs(unc).p``, RefCOCOg ``refs(umd).p`` / ``refs(google).p``; Python-2
pickles) are read with the project's restricted unpickler, which builds
plain data only and refuses anything else before calling it. The JSON form
holds the very same list of ref dicts (one ref per line) and is read by
``RefCOCODataset`` without any unpickling: ``refs(<split_by>).json`` is
preferred to the pickle beside it (``refs_format='pickle'`` / ``'json'``
choose one).

Usage::

    python tools/dataset_converters/refs_to_json.py \\
        data/refer/refcoco/refs(unc).p data/refer/refcocog/refs(umd).p
    python tools/dataset_converters/refs_to_json.py REFS.p --out OUT.json

Writes ``refs(<split_by>).json`` beside each pickle (``--out`` for one
input), refusing to overwrite an existing file unless ``--force``, and
prints the refs, sentences and images of every split.
"""
from __future__ import annotations

import argparse
import json
import math
import os.path as osp
import sys
from typing import Any, Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.magnet.utils import (  # noqa: E402
    JSON_EXTENSIONS, check_output_file, run_cli)
from projects.magnet.utils.output_files import (  # noqa: E402
    atomic_write, check_input_file)
from projects.magnet.utils.errors import (  # noqa: E402
    InvalidInputError, OutputPathError, UserError)

#: How deep the refs data may nest (a REFER ref nests 4 levels).
_MAX_DEPTH = 32


class ConversionError(UserError, ValueError):
    """The pickle holds something JSON cannot represent exactly."""


def check_json_representable(obj: Any, where: str = 'refs',
                             depth: int = 0) -> None:
    """Raise :class:`ConversionError` (naming the path, e.g.
    ``refs[3]["sentences"][0]``) for what ``json`` would not write back
    identically: non-str dict keys (``json`` would silently turn them into
    strings), bytes, sets, NaN / infinite floats, other objects. Tuples are
    allowed and become arrays (JSON has no tuple; REFER refs hold none)."""
    if depth > _MAX_DEPTH:
        raise ConversionError(f'{where}: nested deeper than {_MAX_DEPTH}')
    if obj is None or isinstance(obj, (str, bool, int)):
        return
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ConversionError(f'{where}: {obj} has no JSON form')
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise ConversionError(
                    f'{where}: key {key!r} is not a string '
                    f'({type(key).__name__}); JSON keys are strings (json '
                    'would silently write it as one)')
            check_json_representable(value, f'{where}[{key!r}]', depth + 1)
        return
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            check_json_representable(value, f'{where}[{i}]', depth + 1)
        return
    raise ConversionError(
        f'{where}: a {type(obj).__name__} ({repr(obj)[:40]}) has no JSON '
        'form')


def default_output(src: str) -> str:
    """``refs(unc).p`` -> ``refs(unc).json`` (same folder)."""
    stem = src[:-2] if src.endswith('.p') else osp.splitext(src)[0]
    return stem + '.json'


def write_refs_json(refs: List[Any], dst: str) -> None:
    """Write ``refs`` as a JSON array, one ref per line, atomically (a
    temporary file in the same folder, then renamed)."""
    with atomic_write(dst, 'w') as f:
        f.write('[')
        for i, ref in enumerate(refs):
            f.write(',\n' if i else '\n')
            f.write(json.dumps(ref, allow_nan=False, ensure_ascii=True,
                               separators=(',', ':')))
        f.write('\n]\n')


def check_paths(src: str, dst: Optional[str] = None,
                force: bool = False) -> str:
    """Refuse, before any conversion, an input that is JSON already,
    missing, a folder or empty, and an output that is a folder, under a
    file, not ``.json``, unwritable, the input, or existing without
    ``force``; return the output path."""
    if src.endswith('.json'):
        raise InvalidInputError(
            f'{src} is already JSON (give the refs pickle)')
    check_input_file(src, 'refs pickle')  # missing, a folder, empty
    dst = dst or default_output(src)
    # a folder, under a file, not .json, unwritable (/proc...), the input
    check_output_file(dst, JSON_EXTENSIONS, inputs=[src], what='--out')
    if osp.exists(dst) and not force:
        raise OutputPathError(
            f'{dst} exists (pass --force to overwrite it)')
    return dst


def convert(src: str, dst: Optional[str] = None,
            force: bool = False) -> Dict[str, Any]:
    """Convert one refs pickle; returns ``dict(src, dst, protocol, python2,
    splits={split: dict(refs, sentences, images)})``."""
    from projects.magnet.datasets.refcoco import ReferFormatError, split_counts
    from projects.magnet.datasets.refer_pickle import (inspect_refer_pickle,
                                                       load_refer_pickle)
    dst = check_paths(src, dst, force)
    info = inspect_refer_pickle(src)
    refs = load_refer_pickle(src)
    if not isinstance(refs, list):
        raise ReferFormatError(f'{src}: expected a list of ref dicts, got '
                               f'{type(refs).__name__}')
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict):
            raise ReferFormatError(
                f'{src}: refs[{i}] is a {type(ref).__name__}, not a dict')
    try:
        check_json_representable(refs)
    except ConversionError as e:
        raise ConversionError(f'{src}: {e}') from None
    write_refs_json(refs, dst)
    return dict(src=src, dst=dst, protocol=info.protocol,
                python2=info.python2, splits=split_counts(refs))


def summary_lines(result: Dict[str, Any]) -> List[str]:
    """What :func:`main` prints for one converted file."""
    splits = result['splits']
    total = {k: sum(s[k] for s in splits.values())
             for k in ('refs', 'sentences')}
    origin = (f'Python-2 pickle, protocol {result["protocol"]}'
              if result['python2'] else f'protocol {result["protocol"]}')
    lines = [f'{result["src"]} ({origin}) -> {result["dst"]}: '
             f'{total["refs"]} refs, {total["sentences"]} sentences']
    for split in sorted(splits):
        s = splits[split]
        lines.append(f'  {split:<8} {s["refs"]:>7} refs {s["sentences"]:>8} '
                     f'sentences {s["images"]:>7} images')
    return lines


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('refs', nargs='+', help='refs(<split_by>).p files')
    parser.add_argument('--out', help='output file (one input only); '
                        'default: refs(<split_by>).json beside the pickle')
    parser.add_argument('--force', action='store_true',
                        help='overwrite existing JSON files')
    args = parser.parse_args(argv)
    if args.out and len(args.refs) > 1:
        parser.error('--out takes one input pickle')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    for src in args.refs:  # every input and output, before converting any
        check_paths(src, args.out, args.force)
    for src in args.refs:
        for line in summary_lines(convert(src, args.out, args.force)):
            print(line)
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
