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

Prints one screen (repeated problems are summarised with a few examples).
Exit status 0 when no problem was found, 1 otherwise (count differences
from the published numbers are warnings unless ``--strict``).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import pickle
import random
import shlex
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.magnet.utils import run_cli  # noqa: E402

DEFAULT_IMG_DIR = 'images/mscoco/images/train2014'
#: REFER's usual partition of each dataset.
DEFAULT_SPLIT_BY = {'refcoco': 'unc', 'refcoco+': 'unc', 'refcocog': 'umd'}

# Published counts, (refs, sentences, images) per split.
# Refs and images: the statistics table of TensorFlow Datasets' RefCOCO
# builder (tensorflow_datasets/vision_language/refcoco/refcoco.py, "Stats
# for each dataset and split", computed from the REFER files). Sentences:
# RefCOCO unc from FlagEval's RefCOCO page (flageval.baai.ac.cn, "train
# (120624), validation(10834), testA(5657), testB(5095)"); RefCOCO+ and
# RefCOCOg per split as reported in the referring-segmentation literature's
# dataset tables; they add up to the published totals: 141,564 expressions
# for RefCOCO+ (Yu et al., ECCV 2016) and 95,010 for the 49,822 RefCOCOg
# refs of both the umd and the google file (Nagaraja et al., ECCV 2016;
# github.com/luogen1996/MCN/issues/7). RefCOCO google (no sentence counts
# found) is there for recognising a refs(google).p used as refs(unc).p.
PUBLISHED: Dict[Tuple[str, str], Dict[str, Tuple[int, Optional[int], int]]] = {
    ('refcoco', 'unc'): {
        'train': (42404, 120624, 16994),
        'val': (3811, 10834, 1500),
        'testA': (1975, 5657, 750),
        'testB': (1810, 5095, 750),
    },
    ('refcoco', 'google'): {
        'train': (40000, None, 19213),
        'val': (5000, None, 4559),
        'test': (5000, None, 4527),
    },
    ('refcoco+', 'unc'): {
        'train': (42278, 120191, 16992),
        'val': (3805, 10758, 1500),
        'testA': (1975, 5726, 750),
        'testB': (1798, 4889, 750),
    },
    ('refcocog', 'umd'): {
        'train': (42226, 80512, 21899),
        'val': (2573, 4896, 1300),
        'test': (5023, 9602, 2600),
    },
    ('refcocog', 'google'): {
        'train': (44822, 85474, 24698),
        'val': (5000, 9536, 4650),
    },
}
COUNT_NAMES = ('refs', 'sentences', 'images')
SPLIT_ORDER = ('train', 'val', 'test', 'testA', 'testB', 'testC')
#: Examples shown for a repeated problem.
EXAMPLES = 3
#: Limits of the search for misplaced images.
SEARCH_DEPTH, SEARCH_PARENT_DEPTH, SEARCH_MAX_DIRS = 5, 3, 20000


# ------------------------------------------------------------------ report
@dataclass
class Report:
    """What the check found; printed by :func:`print_report`."""

    lines: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    def info(self, text: str) -> None:
        self.lines.append(text)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def problem(self, text: str, *details: str) -> None:
        self.problems.append('\n  '.join((text, ) + details))


def examples(items: Sequence[str]) -> str:
    """``'a, b, c'`` or ``'a, b, c, ...'``."""
    shown = ', '.join(str(i) for i in items[:EXAMPLES])
    return shown + (', ...' if len(items) > EXAMPLES else '')


def print_report(report: Report, strict: bool) -> int:
    """Print the report; the exit status."""
    for line in report.lines:
        print(line)
    for prefix, items in (('note', report.notes),
                          ('warning', report.warnings),
                          ('problem', report.problems)):
        for item in items:
            print(f'{prefix}: {item}')
    failed = len(report.problems) + (len(report.warnings) if strict else 0)
    if failed:
        what = 'problem' if not strict else 'problem or warning'
        print(f'FAILED: {failed} {what}{"s" if failed > 1 else ""} found')
        return 1
    print('OK: no problem found')
    return 0


# ------------------------------------------------------------- the files
def partitions_of(dataset: str) -> str:
    """``'unc (train, val, testA, testB), google (train, val, test)'``."""
    return ', '.join(f'{sb} ({", ".join(ordered(table))})'
                     for (ds, sb), table in PUBLISHED.items() if ds == dataset)


def ordered(splits: Iterable[str]) -> List[str]:
    """Split names in REFER's usual order, others after."""
    splits = set(splits)
    known = [s for s in SPLIT_ORDER if s in splits]
    return known + sorted(splits - set(known))


def locate_annotations(root: str, dataset: str,
                       report: Report) -> Optional[str]:
    """``root/<dataset>``, or None with a problem saying what is there."""
    folder = osp.join(root, dataset)
    if osp.isdir(folder):
        return folder
    if osp.isfile(osp.join(root, 'instances.json')):
        report.problem(
            f'{root} has no {dataset}/ folder but holds instances.json '
            'itself: DATA_ROOT is the folder *above* the annotation folders '
            f'(here {osp.dirname(osp.abspath(root))}, with --dataset '
            f'{osp.basename(osp.abspath(root))})')
        return None
    found = sorted(
        d for d in os.listdir(root)
        if osp.isfile(osp.join(root, d, 'instances.json')))
    report.problem(
        f'no annotation folder {folder} (the REFER {dataset}/ folder with '
        'refs(<split_by>).p and instances.json)',
        f'annotation folders in {root}: {", ".join(found)} (--dataset)'
        if found else f'{root} has no annotation folder at all')
    return None


def locate_refs(root: str, dataset: str, split_by: str,
                report: Report) -> Optional[str]:
    """The refs file the dataset reads (JSON form first), or None."""
    from projects.magnet.datasets.refcoco import default_refs_file
    path = osp.join(root, default_refs_file(root, dataset, split_by))
    if osp.isfile(path):
        return path
    folder = osp.dirname(path)
    others = sorted({
        f[len('refs('):f.index(')')] for f in os.listdir(folder)
        if f.startswith('refs(') and ')' in f
    })
    details = []
    if others:
        details.append(f'{folder} has refs for --split-by '
                       f'{", ".join(others)}')
    if partitions_of(dataset):
        details.append(f'{dataset} is published with the partitions '
                       f'{partitions_of(dataset)}')
    report.problem(f'no refs({split_by}).p (nor refs({split_by}).json) in '
                   f'{folder}', *details)
    return None


def read_refs(path: str, report: Report) -> Optional[list]:
    """The refs list (None with a problem when unreadable)."""
    from projects.magnet.datasets.refcoco import load_refs_file
    from projects.magnet.datasets.refer_pickle import (PY2_NOTE,
                                                       inspect_refer_pickle)
    if not path.endswith('.json'):
        info = inspect_refer_pickle(path)
        if info.python2:
            report.note(f'{osp.basename(path)} is a Python-2 pickle '
                        f'(protocol {info.protocol}): {PY2_NOTE}')
    elif osp.isfile(path[:-len('.json')] + '.p'):
        report.note(f'reading {osp.basename(path)}, the JSON form of the '
                    'pickle beside it (as RefCOCODataset does)')
    try:
        refs = load_refs_file(path)
    except (OSError, ValueError, pickle.UnpicklingError) as e:
        report.problem(str(e))
        return None
    if not isinstance(refs, list):
        report.problem(f'{path}: expected a list of ref dicts, got '
                       f'{type(refs).__name__}')
        return None
    return refs


@dataclass
class Ref:
    """The fields of a ref the check uses."""

    index: int
    ref_id: int
    ann_id: int
    image_id: int
    split: str
    sentences: int


_REF_FIELDS = (('ref_id', int), ('ann_id', int), ('image_id', int),
               ('split', str), ('sentences', list))


def _bad_ref_reason(ref: object) -> Optional[str]:
    if not isinstance(ref, dict):
        return f'are not dicts ({type(ref).__name__})'
    if any(isinstance(k, bytes) for k in ref):
        return ("have bytes keys (a file re-saved from a pickle loaded with "
                "encoding='bytes'; use the original REFER pickle)")
    for name, typ in _REF_FIELDS:
        value = ref.get(name)
        if not isinstance(value, typ) or isinstance(value, bool):
            return f'lack a valid "{name}" ({typ.__name__})'
    return None


def scan_refs(refs: list, src: str, report: Report) -> List[Ref]:
    """The well-formed refs; problems for the others and duplicate ids."""
    bad: Dict[str, List[str]] = defaultdict(list)
    kept: List[Ref] = []
    for i, ref in enumerate(refs):
        reason = _bad_ref_reason(ref)
        if reason:
            bad[reason].append(f'refs[{i}]')
            continue
        kept.append(Ref(i, ref['ref_id'], ref['ann_id'], ref['image_id'],
                        ref['split'], len(ref['sentences'])))
    for reason, where in bad.items():
        report.problem(f'{src}: {len(where)} of {len(refs)} refs {reason}, '
                       f'e.g. {examples(where)}')
    if not refs:
        report.problem(f'{src}: the file holds no ref at all')
    where_ids: Dict[int, List[str]] = defaultdict(list)
    for ref in kept:
        where_ids[ref.ref_id].append(f'refs[{ref.index}]')
    repeated = [f'ref_id={i} ({len(w)} times: {examples(w)})'
                for i, w in where_ids.items() if len(w) > 1]
    if repeated:
        report.problem(f'{src}: {len(repeated)} ref ids appear more than '
                       f'once, e.g. {"; ".join(repeated[:EXAMPLES])}')
    return kept


# ----------------------------------------------------- counts, partitions
def count_splits(refs: List[Ref]) -> Dict[str, Tuple[int, int, int]]:
    """(refs, sentences, distinct images) per split."""
    acc: Dict[str, list] = {}
    for ref in refs:
        entry = acc.setdefault(ref.split, [0, 0, set()])
        entry[0] += 1
        entry[1] += ref.sentences
        entry[2].add(ref.image_id)
    return {s: (e[0], e[1], len(e[2])) for s, e in acc.items()}


def _cell(found: int, published: Optional[int], known: bool) -> str:
    if not known:
        return f'{found:>11}'
    if published is None:
        return f'{found:>11}{"n/a":>11}'
    mark = '' if found == published else '*'
    return f'{found:>11}{f"({published}){mark}":>11}'


def count_table(counts: Dict[str, Tuple[int, int, int]],
                published: Optional[dict]) -> Tuple[List[str], bool]:
    """Lines of the table (published counts beside, a ``*`` marks a
    difference) and whether a count differs."""
    known = published is not None
    published = published or {}
    head = ''.join(f'{name:>11}' + (f'{"published":>11}' if known else '')
                   for name in COUNT_NAMES)
    lines = [f'  {"split":<7}{head}']
    differs = False
    for split in ordered(set(counts) | set(published)):
        found = counts.get(split, (0, 0, 0))
        pub = published.get(split, (0, 0, 0)) if known else (None, ) * 3
        differs |= known and any(
            p is not None and f != p for f, p in zip(found, pub))
        cells = ''.join(_cell(f, p, known) for f, p in zip(found, pub))
        lines.append(f'  {split:<7}{cells}')
    return lines, differs


def identify(counts: Dict[str, Tuple[int, int, int]]) -> List[tuple]:
    """The published (dataset, split_by) whose refs per split are exactly
    ``counts``'."""
    refs = {s: c[0] for s, c in counts.items()}
    return [key for key, table in PUBLISHED.items()
            if {s: c[0] for s, c in table.items()} == refs]


def check_partition(dataset: str, split_by: str, refs_name: str,
                    counts: Dict[str, Tuple[int, int, int]],
                    report: Report) -> None:
    """Problems for a refs file of another partition or dataset."""
    same = identify(counts)
    if same and (dataset, split_by) not in same:
        ds, sb = same[0]
        report.problem(
            f'{refs_name} in {dataset}/ holds the refs of {ds} split by {sb} '
            '(its refs per split are exactly the published ones), not those '
            f'of {dataset} split by {split_by}',
            f'put the right file there, or use --dataset {ds} --split-by {sb}')
        return
    table = PUBLISHED.get((dataset, split_by))
    if table is None or set(counts) == set(table):
        return
    same_splits = [key for key, t in PUBLISHED.items()
                   if key != (dataset, split_by) and set(t) == set(counts)]
    partitions = [sb for ds, sb in same_splits if ds == dataset]
    details = [f'{dataset} is published with the partitions '
               f'{partitions_of(dataset)}']
    if partitions:
        details.insert(0, f'these are the splits of the {partitions[0]} '
                       f'partition: is this file refs({partitions[0]}).p '
                       f'renamed? (check it, or use --split-by '
                       f'{partitions[0]})')
    elif same_splits:
        details.insert(0, 'these are the splits of ' + ', '.join(
            f'{ds} ({sb})' for ds, sb in same_splits) +
                       ': the refs of another dataset?')
    report.problem(
        f'{refs_name} has the splits {", ".join(ordered(counts))}, but '
        f'{dataset} split by {split_by} has '
        f'{", ".join(ordered(table))}', *details)


def report_counts(args: argparse.Namespace, refs_name: str,
                  refs: List[Ref], report: Report) -> Dict[str, tuple]:
    """The table of counts; partition and count checks."""
    from projects.magnet.datasets.refcoco import REFER_SPLITS
    counts = count_splits(refs)
    published = PUBLISHED.get((args.dataset, args.split_by))
    lines, differs = count_table(counts, published)
    report.lines.extend(lines)
    check_partition(args.dataset, args.split_by, refs_name, counts, report)
    if differs:
        report.warn(
            f'counts differ from the published ones of {args.dataset} '
            f'({args.split_by}), marked *: a partial, older or modified '
            'copy? (--strict makes this fail)')
    odd = [s for s in counts if s not in REFER_SPLITS]
    if odd:
        report.warn(f'split names {", ".join(sorted(odd))} are not REFER '
                    'split names: RefCOCODataset cannot select them')
    return counts


# -------------------------------------------------------------- instances
@dataclass
class Instances:
    """What the check keeps of instances.json."""

    images: Dict[int, Tuple[str, Optional[int], Optional[int]]]
    anns: Dict[int, int]
    categories: Optional[int]
    #: the top-level keys of the file
    keys: List[str]

    def describe(self) -> str:
        cats = 'no' if self.categories is None else self.categories
        return (f'{len(self.images)} images, {len(self.anns)} annotations, '
                f'{cats} categories')


def read_instances(path: str, report: Report) -> Optional[Instances]:
    """Stream instances.json (None with a problem when unusable)."""
    from projects.magnet.datasets.json_stream import (JsonStreamError,
                                                      iter_json_object)
    if not osp.isfile(path):
        report.problem(f'{path} not found (the COCO-style instances.json of '
                       'the REFER release)')
        return None
    images: Dict[int, Tuple[str, Optional[int], Optional[int]]] = {}
    anns: Dict[int, int] = {}
    keys: List[str] = []
    bad: Dict[str, List[str]] = defaultdict(list)
    categories = None
    counters = dict(images=0, annotations=0)
    try:
        for key, item in iter_json_object(path, ('images', 'annotations'),
                                          on_key=keys.append):
            if key == 'categories':
                categories = len(item) if isinstance(item, list) else None
            if key not in counters:
                continue
            where = f'"{key}"[{counters[key]}]'
            counters[key] += 1
            if key == 'images':
                _keep_image(item, where, images, bad)
            else:
                _keep_ann(item, where, anns, bad)
    except (JsonStreamError, OSError) as e:
        report.problem(str(e))
        return None
    for reason, where in bad.items():
        report.problem(f'{path}: {len(where)} {reason}, e.g. '
                       f'{examples(where)}')
    for key in ('images', 'annotations'):
        if key not in keys:
            report.problem(f'{path}: the top-level key "{key}" is missing '
                           f'(found: {", ".join(keys) or "none"})')
    if 'categories' not in keys:
        report.warn(f'{path}: no top-level "categories" key (the REFER '
                    'instances.json has one; indexing does not need it)')
    return Instances(images, anns, categories, keys)


def _int_or_none(value: object) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(
        value, bool) else None


def _keep_image(item: object, where: str, images: dict,
                bad: Dict[str, List[str]]) -> None:
    if not isinstance(item, dict) or _int_or_none(item.get('id')) is None \
            or not isinstance(item.get('file_name'), str):
        bad['images lack an int "id" or a str "file_name"'].append(where)
    elif item['id'] in images:
        bad['images repeat an id'].append(f'{where} (id={item["id"]})')
    else:
        images[item['id']] = (item['file_name'],
                              _int_or_none(item.get('height')),
                              _int_or_none(item.get('width')))


def _keep_ann(item: object, where: str, anns: dict,
              bad: Dict[str, List[str]]) -> None:
    if not isinstance(item, dict) or _int_or_none(item.get('id')) is None \
            or _int_or_none(item.get('image_id')) is None:
        bad['annotations lack an int "id" or "image_id"'].append(where)
    elif item['id'] in anns:
        bad['annotations repeat an id'].append(f'{where} (id={item["id"]})')
    else:
        anns[item['id']] = item['image_id']


def check_joins(refs: List[Ref], inst: Instances, refs_path: str,
                inst_path: str, report: Report) -> None:
    """Problems for refs whose ids are not in instances.json (a missing
    "images" / "annotations" key is reported by itself)."""
    no_ann = [f'ref_id={r.ref_id} (ann_id {r.ann_id})' for r in refs
              if r.ann_id not in inst.anns and 'annotations' in inst.keys]
    no_image = [f'ref_id={r.ref_id} (image_id {r.image_id})' for r in refs
                if r.image_id not in inst.images and 'images' in inst.keys]
    mismatch = [
        f'ref_id={r.ref_id} (image_id {r.image_id}, its annotation '
        f'{r.ann_id} is on image {inst.anns[r.ann_id]})' for r in refs
        if r.ann_id in inst.anns and inst.anns[r.ann_id] != r.image_id
    ]
    name = osp.basename(inst_path)
    hint = [f'no ref matches: is {inst_path} the instances.json of this '
            'dataset?']
    for items, what in ((no_ann, f'an ann_id that is not in {name} '
                         '"annotations"'),
                        (no_image, f'an image_id that is not in {name} '
                         '"images"'),
                        (mismatch, 'an image_id that differs from their '
                         "annotation's")):
        if items:
            details = hint if len(items) == len(refs) else []
            hint = []  # said once
            report.problem(
                f'{len(items)} of {len(refs)} refs of {refs_path} have '
                f'{what}, e.g. {examples(items)}', *details)


# ----------------------------------------------------------------- images
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


def check_images(args: argparse.Namespace, refs: List[Ref],
                 inst: Instances, report: Report) -> None:
    """Every referenced image present; all or a sample decodes."""
    root = args.data_root
    img_root = args.img_dir if osp.isabs(args.img_dir) else osp.join(
        root, args.img_dir)
    wanted = sorted({r.image_id for r in refs if r.image_id in inst.images})
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


# --------------------------------------------------------- the dataset
def check_dataset_loads(args: argparse.Namespace, splits: Iterable[str],
                        report: Report) -> None:
    """Problems for the splits ``RefCOCODataset`` cannot index."""
    from projects.magnet.datasets.refcoco import REFER_SPLITS, RefCOCODataset
    for split in ordered(s for s in splits if s in REFER_SPLITS):
        try:
            RefCOCODataset(
                data_root=args.data_root, dataset=args.dataset,
                split_by=args.split_by, split=split, img_dir=args.img_dir,
                per_sentence=False, pipeline=[], serialize_data=False)
        except (ValueError, OSError, pickle.UnpicklingError) as e:
            report.problem(f'RefCOCODataset(split={split!r}) fails: {e}')


# ------------------------------------------------------------------- main
def check(args: argparse.Namespace) -> Report:
    """Run every check on ``args.data_root``."""
    report = Report()
    report.info(f'check_refer_data: {args.data_root} (dataset '
                f'{args.dataset}, split_by {args.split_by})')
    folder = locate_annotations(args.data_root, args.dataset, report)
    if folder is None:
        return report
    refs_path = locate_refs(args.data_root, args.dataset, args.split_by,
                            report)
    raw = read_refs(refs_path, report) if refs_path else None
    inst_path = osp.join(folder, 'instances.json')
    inst = read_instances(inst_path, report)
    if raw is None:
        return report
    report.info(f'  refs:      {refs_path}: {len(raw)} refs')
    if inst is not None:
        report.info(f'  instances: {inst_path}: {inst.describe()}')
    refs = scan_refs(raw, refs_path, report)
    counts = report_counts(args, osp.basename(refs_path), refs, report)
    if inst is None or not refs:
        return report
    check_joins(refs, inst, refs_path, inst_path, report)
    if 'images' in inst.keys:
        check_images(args, refs, inst, report)
    if not report.problems:
        check_dataset_loads(args, counts, report)
    return report


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
        raise FileNotFoundError(f'DATA_ROOT {args.data_root} is not a folder')
    return print_report(check(args), args.strict)


if __name__ == '__main__':
    sys.exit(run_cli(main))
