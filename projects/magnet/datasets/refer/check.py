"""Check a whole REFER layout with the rules of :mod:`.schema` in collect
mode (every problem, summarised): the library of
``tools/misc/check_refer_data.py``."""
from __future__ import annotations

import argparse
import os
import os.path as osp
import pickle
from collections import defaultdict
from typing import Dict, Iterable, List, Optional

from projects.magnet.utils.errors import UserError

from ..json_stream import JsonStreamError
from .check_images import check_images
from .check_report import (EXAMPLES, Report, examples, ordered,
                           partitions_of, report_counts)
from .files import (Instances, default_refs_file, load_refs_file,
                    read_instances)
from .index import REFER_SPLITS
from .schema import Problem, Problems, check_ref, join_problem

__all__ = ['check', 'locate_annotations', 'locate_refs', 'read_refs',
           'scan_refs', 'read_all_instances', 'check_joins',
           'check_dataset_loads', 'SENTENCE_KEYS']

#: The sentence fields checked as ``RefCOCODataset`` does by default.
SENTENCE_KEYS = ('kind', )


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
    from ..refer_pickle import PY2_NOTE, inspect_refer_pickle
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


def _short(problem: Problem) -> str:
    """``refs[3]`` for a ref-level problem, the full place for a sentence."""
    return problem.where if ': ' in problem.where else \
        problem.where.split(' (ref_id=')[0]


def _report_duplicates(file: str, what: str, dups: List[Problem],
                       report: Report) -> None:
    places: Dict[object, List[str]] = {}
    for p in dups:
        places.setdefault(p.ident, [p.first]).append(p.where.split(' (')[0])
    repeated = [f'{what}={i} ({len(w)} times: {examples(w)})'
                for i, w in places.items()]
    report.problem(f'{file}: {len(repeated)} {what.replace("_", " ")}s '
                   f'appear more than once, e.g. '
                   f'{"; ".join(repeated[:EXAMPLES])}')


def scan_refs(refs: list, src: str, report: Report) -> List[dict]:
    """The refs that follow the rules (:func:`.schema.check_ref`, every
    ref, collect mode); problems for the others, duplicate ids and
    sentences with no word."""
    problems = Problems(collect=True)
    seen: Dict[int, int] = {}
    wordless: list = []
    kept: List[dict] = []
    for i, ref in enumerate(refs):
        found = check_ref(ref, i, src, problems, seen, None, SENTENCE_KEYS,
                          wordless)
        if found is not None:
            found['sentence_count'] = len(ref['sentences'])
            kept.append(found)
    bad: Dict[str, List[str]] = defaultdict(list)
    for p in problems.items:
        if p.kind != 'duplicate':
            bad[p.group].append(_short(p))
    for reason, where in bad.items():
        report.problem(f'{src}: {len(where)} of {len(refs)} refs {reason}, '
                       f'e.g. {examples(where)}')
    if not refs:
        report.problem(f'{src}: the file holds no ref at all')
    dups = [p for p in problems.items if p.kind == 'duplicate']
    if dups:
        _report_duplicates(src, 'ref_id', dups, report)
    if wordless:
        shown = '; '.join(str(w) for w in wordless[:EXAMPLES])
        more = '; ...' if len(wordless) > EXAMPLES else ''
        report.problem(
            f'{src}: {len(wordless)} sentences have no word (no token a text'
            ' encoder knows; RefCOCODataset skips them with a warning), e.g. '
            f'{shown}{more}')
    return kept


def read_all_instances(path: str, report: Report) -> Optional[Instances]:
    """Stream and check every element of instances.json (None with a
    problem when unusable); annotations are kept without segmentation."""
    if not osp.isfile(path):
        report.problem(f'{path} not found (the COCO-style instances.json of '
                       'the REFER release)')
        return None
    problems = Problems(collect=True)
    try:
        inst = read_instances(path, problems, keep_segmentation=set())
    except (JsonStreamError, OSError) as e:
        report.problem(str(e))
        return None
    bad: Dict[str, List[str]] = defaultdict(list)
    for p in problems.items:
        if p.kind not in ('key', 'duplicate'):
            bad[p.group].append(p.where)
    for reason, where in bad.items():
        report.problem(f'{path}: {len(where)} {reason}, e.g. '
                       f'{examples(where)}')
    for key in ('images', 'annotations'):
        dups = [p for p in problems.items
                if p.kind == 'duplicate' and p.where.startswith(f'"{key}"')]
        if dups:
            _report_duplicates(path, f'{key[:-1].replace("annotation", "ann")}'
                               '_id', dups, report)
    for p in problems.items:
        if p.kind == 'key':
            found = ', '.join(inst.keys) or 'none'
            report.problem(f'{path}: the top-level key "{p.ident}" is '
                           f'missing (found: {found})')
    if inst.categories is None:
        report.warn(f'{path}: no top-level "categories" key (the REFER '
                    'instances.json has one; indexing does not need it)')
    if 'images' in inst.keys:
        orphans = [f'id={a} (image_id {img})'
                   for a, (img, _) in inst.anns.items()
                   if img not in inst.images]
        if orphans:
            report.problem(
                f'{path}: {len(orphans)} of {len(inst.anns)} annotations '
                f'have an image_id that is not in "images", e.g. '
                f'{examples(orphans)}')
    return inst


def check_joins(refs: List[dict], inst: Instances, refs_path: str,
                inst_path: str, report: Report) -> None:
    """Problems for refs whose ids are not in instances.json (a missing
    "images" / "annotations" key is reported by itself)."""
    ann_images = {a: v[0] for a, v in inst.anns.items()} \
        if 'annotations' in inst.keys else None
    images = inst.images if 'images' in inst.keys else None
    found: Dict[str, List[str]] = defaultdict(list)
    for r in refs:
        problem = join_problem(r, images, ann_images)
        if problem is None:
            continue
        kind = problem[0]
        found[kind].append(
            f'ref_id={r["ref_id"]} (ann_id {r["ann_id"]})' if kind == 'ann'
            else f'ref_id={r["ref_id"]} (image_id {r["image_id"]})'
            if kind == 'image' else
            f'ref_id={r["ref_id"]} (image_id {r["image_id"]}, its '
            f'annotation {r["ann_id"]} is on image {ann_images[r["ann_id"]]})')
    name = osp.basename(inst_path)
    hint = [f'no ref matches: is {inst_path} the instances.json of this '
            'dataset?']
    for kind, what in (('ann', f'an ann_id that is not in {name} '
                        '"annotations"'),
                       ('image', f'an image_id that is not in {name} '
                        '"images"'),
                       ('mismatch', 'an image_id that differs from their '
                        "annotation's")):
        items = found.get(kind)
        if items:
            details = hint if len(items) == len(refs) else []
            hint = []  # said once
            report.problem(
                f'{len(items)} of {len(refs)} refs of {refs_path} have '
                f'{what}, e.g. {examples(items)}', *details)


def check_dataset_loads(args: argparse.Namespace, splits: Iterable[str],
                        report: Report) -> None:
    """Problems for the splits ``RefCOCODataset`` cannot index."""
    from ..refcoco import RefCOCODataset
    for split in ordered(s for s in splits if s in REFER_SPLITS):
        try:
            RefCOCODataset(
                data_root=args.data_root, dataset=args.dataset,
                split_by=args.split_by, split=split, img_dir=args.img_dir,
                per_sentence=False, pipeline=[], serialize_data=False)
        except (UserError, ValueError, OSError,
                pickle.UnpicklingError) as e:
            report.problem(f'RefCOCODataset(split={split!r}) fails: {e}')


def check(args: argparse.Namespace) -> Report:
    """Run every check on ``args.data_root`` (``args``: the options of
    ``tools/misc/check_refer_data.py``)."""
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
    inst = read_all_instances(inst_path, report)
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
