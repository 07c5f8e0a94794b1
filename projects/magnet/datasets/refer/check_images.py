"""The images of a REFER layout: present where the dataset looks (or where
they are instead, and how to fix it), decodable at the size
``instances.json`` gives. Used by ``tools/misc/check_refer_data.py``."""
from __future__ import annotations

import argparse
import os
import os.path as osp
import random
import shlex
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, List, Optional, Sequence, Tuple

from .check_report import Report, examples
from .files import Instances

__all__ = ['find_images', 'relocation_hint', 'decode_problem',
           'decode_images', 'check_images', 'report_missing']

#: Limits of the search for misplaced images.
SEARCH_DEPTH, SEARCH_PARENT_DEPTH, SEARCH_MAX_DIRS = 5, 3, 20000


def _walk_dirs(top: str, depth: int) -> Iterable[str]:
    """Folders under ``top`` (breadth first, links followed once)."""
    seen = set()
    level = [top]
    count = 0
    for _ in range(depth + 1):
        following = []
        for folder in level:
            real = osp.realpath(folder)
            if real in seen or count >= SEARCH_MAX_DIRS:
                continue
            seen.add(real)
            count += 1
            yield folder
            try:
                with os.scandir(folder) as entries:
                    following.extend(
                        e.path for e in entries
                        if not e.name.startswith('.') and e.is_dir())
            except OSError:
                continue
        level = sorted(following)


def find_images(root: str, names: Sequence[str],
                exclude: str) -> Optional[str]:
    """A folder under ``root`` (or its parent) holding most of ``names``."""
    exclude = osp.realpath(exclude)
    parent = osp.dirname(osp.abspath(root))
    for top, depth in ((root, SEARCH_DEPTH), (parent, SEARCH_PARENT_DEPTH)):
        best, best_hits = None, 0
        for folder in _walk_dirs(top, depth):
            if osp.realpath(folder) == exclude:
                continue
            hits = sum(osp.isfile(osp.join(folder, n)) for n in names)
            if hits > best_hits:
                best, best_hits = folder, hits
        if best is not None and best_hits * 2 >= len(names):
            return best
    return None


def relocation_hint(found: str, expected: str, root: str) -> List[str]:
    """What to move or link, or which ``img_dir`` to set."""
    q = shlex.quote
    lines = [f'they are in {found}: link or move them to {expected}:']
    if not osp.exists(expected):
        lines.append(f'  mkdir -p {q(osp.dirname(expected))} && ln -s '
                     f'{q(osp.abspath(found))} {q(expected)}')
    elif not os.listdir(expected):
        lines.append(f'  rmdir {q(expected)} && ln -s '
                     f'{q(osp.abspath(found))} {q(expected)}')
    else:
        lines.append(f"  find {q(found)} -maxdepth 1 -name '*.jpg' -exec "
                     f'mv -t {q(expected)} {{}} +')
    rel = osp.relpath(found, root)
    img_dir = found if rel.startswith('..') else rel
    lines.append(f"or set img_dir='{img_dir}' in the RefCOCODataset configs "
                 f'(relative to data_root; check it with --img-dir {img_dir})')
    return lines


def decode_problem(path: str, height: Optional[int],
                   width: Optional[int]) -> Optional[str]:
    """Why the image at ``path`` is unusable (None when it decodes at the
    size instances.json gives)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.load()
            size = im.size
    except Exception as e:  # noqa: BLE001  PIL raises many types
        return f'{osp.basename(path)} ({type(e).__name__}: {e})'
    if height is not None and width is not None and size != (width, height):
        return (f'{osp.basename(path)} ({size[0]}x{size[1]}, but '
                f'{width}x{height} in instances.json)')
    return None


def decode_images(paths: List[Tuple[str, Optional[int], Optional[int]]],
                  workers: int) -> List[str]:
    """The problems of the images that do not decode (in input order)."""
    from PIL import ImageFile
    truncated_ok = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            found = list(pool.map(lambda a: decode_problem(*a), paths))
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated_ok
    return [p for p in found if p is not None]


def check_images(args: argparse.Namespace, refs: List[dict],
                 inst: Instances, report: Report) -> None:
    """Every referenced image present; all or a sample decodes."""
    root = args.data_root
    img_root = args.img_dir if osp.isabs(args.img_dir) else osp.join(
        root, args.img_dir)
    wanted = sorted({r['image_id'] for r in refs
                     if r['image_id'] in inst.images})
    present, missing = [], []
    for image_id in wanted:
        name, height, width = inst.images[image_id]
        path = osp.join(img_root, name)
        (present if osp.isfile(path) else missing).append(
            (path, height, width))
    if missing:
        report_missing(root, img_root, [p for p, _, _ in missing],
                       len(wanted), report)
    if args.check_images == 'all':
        sample, how = present, 'all'
    else:
        count = min(args.check_images, len(present))
        sample = sorted(random.Random(args.seed).sample(present, count))
        how = f'a random sample of {count}'
    bad = decode_images(sample, args.workers)
    report.info(f'  images: {len(wanted)} referenced, {len(present)} found '
                f'in {img_root}, {len(sample)} decoded ({how}), '
                f'{len(bad)} unusable')
    if bad:
        report.problem(f'{len(bad)} of {len(sample)} decoded images are '
                       f'unreadable or of the wrong size, e.g. '
                       f'{examples(bad)}')


def report_missing(root: str, img_root: str, missing: List[str],
                   total: int, report: Report) -> None:
    """A problem for missing images, with where they are if elsewhere."""
    names = [osp.basename(p) for p in missing]
    state = '' if osp.isdir(img_root) else ' (that folder does not exist)'
    step = max(1, len(names) // 5)
    found = find_images(root, names[::step][:5], img_root)
    details = relocation_hint(found, img_root, root) if found else [
        'not found elsewhere under DATA_ROOT either: an incomplete download '
        'or unzip of COCO train2014?'
    ]
    if found:
        # the folder they are in may miss some too: say so now, not after
        # the move
        absent = [n for n in names if not osp.isfile(osp.join(found, n))]
        if absent:
            details.append(f'{len(absent)} of them are not in {found} '
                           f'either, e.g. {examples(absent)}')
    report.problem(
        f'{len(missing)} of {total} referenced images are missing from '
        f'{img_root}{state}, e.g. {examples(names)}', *details)
