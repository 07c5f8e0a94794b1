"""The report of ``tools/misc/check_refer_data.py`` and what it compares
with: the published counts and partitions of RefCOCO, RefCOCO+, RefCOCOg."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .index import REFER_SPLITS

__all__ = ['Report', 'print_report', 'examples', 'PUBLISHED',
           'DEFAULT_SPLIT_BY', 'DEFAULT_IMG_DIR', 'ordered', 'count_splits',
           'count_table', 'identify', 'check_partition', 'partitions_of',
           'report_counts']

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
#: the splits each REFER partition has (warned about when missing from a
#: dataset whose counts are not published, e.g. a generated one)
USUAL_SPLITS = {'unc': ('train', 'val', 'testA', 'testB'),
                'umd': ('train', 'val', 'test'),
                'google': ('train', 'val')}
#: Examples shown for a repeated problem.
EXAMPLES = 3


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


def partitions_of(dataset: str) -> str:
    """``'unc (train, val, testA, testB), google (train, val, test)'``."""
    return ', '.join(f'{sb} ({", ".join(ordered(table))})'
                     for (ds, sb), table in PUBLISHED.items() if ds == dataset)


def ordered(splits: Iterable[str]) -> List[str]:
    """Split names in REFER's usual order, others after."""
    splits = set(splits)
    known = [s for s in SPLIT_ORDER if s in splits]
    return known + sorted(splits - set(known))


# ----------------------------------------------------- counts, partitions
def count_splits(refs: List[dict]) -> Dict[str, Tuple[int, int, int]]:
    """(refs, sentences, distinct images) per split of checked refs
    (``sentence_count``: every sentence of the file, with a word or not)."""
    acc: Dict[str, list] = {}
    for ref in refs:
        entry = acc.setdefault(ref['split'], [0, 0, set()])
        entry[0] += 1
        entry[1] += ref['sentence_count']
        entry[2].add(ref['image_id'])
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
    if table is None:
        # an unpublished dataset: only say which usual splits it lacks
        missing = [s for s in USUAL_SPLITS.get(split_by, ())
                   if s not in counts]
        if missing:
            report.warn(
                f'{refs_name} has no ref of the split(s) '
                f'{", ".join(missing)} that a {split_by} partition usually '
                f'has (found: {", ".join(ordered(counts)) or "none"}); a '
                'config that trains or evaluates on them will stop there')
        return
    if set(counts) == set(table):
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
                  refs: List[dict], report: Report) -> Dict[str, tuple]:
    """The table of counts; partition and count checks."""
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
