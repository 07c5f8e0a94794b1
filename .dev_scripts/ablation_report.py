"""The ablation report: mean +- std over seeds, same-seed paired
differences and the markdown tables of ``run_ablations.py`` (pure functions
of the runs' numbers)."""
import re
import statistics
from collections import OrderedDict

METRICS = ['oIoU', 'mIoU', 'Pr@0.5', 'Pr@0.6', 'Pr@0.7', 'Pr@0.8', 'Pr@0.9']
#: the overall columns of the markdown table (all of METRICS in the JSON)
TABLE_METRICS = ['oIoU', 'mIoU', 'Pr@0.5']
#: masked-token accuracy conditions of the markdown table (all in the JSON)
TABLE_CONDITIONS = ['real', 'blank image', 'blank mask']
#: (a, b): the table of paired differences a - b, when both were run
PAIRS = [('magnet', 'magnet-wo-mg'), ('lavt-style-mg', 'lavt-style')]
MG_PREFIX = 'MG acc/'
#: a length bucket of RefSegMetric (``length_bucket_names``), possibly
#: qualified as 'text=<bucket>' when a group key has the same value
LENGTH_GROUP = re.compile(r'^(text=)?len\d+(-\d+|\+)?$')


def run_values(run):
    """Every number of a successful run, flat: the evaluator's keys
    (``oIoU``, ``relation/oIoU``, ``len4-6/oIoU``...) and ``MG acc/<cond>``.
    """
    values = dict(run.get('metrics') or {})
    for cond, acc in (run.get('mg_acc') or {}).items():
        values[MG_PREFIX + cond] = acc
    return values


def kind_groups(keys):
    """``(kinds, length buckets)``: the groups of the ``<group>/<name>``
    metric keys, in first-seen order."""
    kinds, lengths = [], []
    for key in keys:
        if key.startswith(MG_PREFIX) or '/' not in key:
            continue
        group = key.rsplit('/', 1)[0]
        target = lengths if LENGTH_GROUP.match(group) else kinds
        if group not in target:
            target.append(group)
    return kinds, lengths


def mean_std(values):
    """``dict(mean, std, n)``: the sample std (ddof=1), None for n < 2;
    everything None for n = 0."""
    values = [float(v) for v in values]
    n = len(values)
    return dict(mean=statistics.fmean(values) if n else None,
                std=statistics.stdev(values) if n > 1 else None, n=n)


def aggregate(runs, names=None):
    """Mean and std over seeds, per config.

    Args:
        runs (list[dict]): one per (config, seed), with ``name``, ``seed``,
            ``status`` ('ok' or 'failed') and, when ok, ``metrics`` (the
            evaluator's flat keys) and ``mg_acc`` (condition -> %, or None).
        names (list[str], optional): the configs in table order (default:
            first-seen order of ``runs``).

    Returns:
        OrderedDict: name -> ``dict(seeds, failed_seeds, n, stats)`` where
        ``stats[key] = dict(mean, std, n, values)`` over the successful
        seeds (``values``: the per-seed numbers in seed order).
    """
    if names is None:
        names = list(OrderedDict.fromkeys(r['name'] for r in runs))
    out = OrderedDict()
    for name in names:
        mine = sorted((r for r in runs if r['name'] == name),
                      key=lambda r: r['seed'])
        ok = [r for r in mine if r.get('status') == 'ok']
        keys = list(OrderedDict.fromkeys(
            k for r in ok for k in run_values(r)))
        stats = OrderedDict()
        for key in keys:
            values = [run_values(r)[key] for r in ok
                      if key in run_values(r)]
            stats[key] = dict(mean_std(values), values=values)
        out[name] = dict(
            seeds=[r['seed'] for r in ok],
            failed_seeds=[r['seed'] for r in mine
                          if r.get('status') != 'ok'],
            n=len(ok), stats=stats)
    return out


def paired_differences(runs, pairs=PAIRS, keys=None):
    """``a - b`` per seed (same seed paired, both runs ok), then mean and
    std over the seeds, for each pair whose two configs were run.

    Args:
        keys (list[str], optional): the numbers compared (default: oIoU and
            every per-kind oIoU of the two configs).

    Returns:
        list[dict]: ``dict(a, b, seeds, stats)``, ``stats[key] =
        dict(mean, std, n, values)`` (``values``: per-seed differences).
    """
    by = {(r['name'], r['seed']): r for r in runs if r.get('status') == 'ok'}
    names = {r['name'] for r in runs}
    out = []
    for a, b in pairs:
        if a not in names or b not in names:
            continue
        seeds = sorted(s for (n, s) in by if n == a and (b, s) in by)
        if keys is None:
            found = [k for s in seeds for r in (by[a, s], by[b, s])
                     for k in run_values(r)]
            pair_keys = ['oIoU'] + [f'{k}/oIoU'
                                    for k in kind_groups(found)[0]]
        else:
            pair_keys = list(keys)
        stats = OrderedDict()
        for key in pair_keys:
            diffs = []
            for s in seeds:
                va, vb = run_values(by[a, s]), run_values(by[b, s])
                if key in va and key in vb:
                    diffs.append(va[key] - vb[key])
            stats[key] = dict(mean_std(diffs), values=diffs)
        out.append(dict(a=a, b=b, seeds=seeds, stats=stats))
    return out


# ----------------------------------------------------------------------
# markdown


def fmt(stat, digits=2):
    """``'mean ± std'`` (``'mean ± -'`` for one seed, ``'-'`` without)."""
    if not stat or stat.get('mean') is None:
        return '-'
    mean, std = stat['mean'], stat.get('std')
    if std is None:
        return f'{mean:.{digits}f} ± -'
    return f'{mean:.{digits}f} ± {std:.{digits}f}'


def seeds_cell(row):
    if not row['failed_seeds']:
        return str(row['n'])
    failed = ', '.join(str(s) for s in row['failed_seeds'])
    word = 'seed' if len(row['failed_seeds']) == 1 else 'seeds'
    return f'{row["n"]} ({word} {failed} failed)'


def budget_line(budget, seeds, runs):
    """One sentence: the length, batch and samples seen per run."""
    batch = budget.get('batch_size')
    lengths = [r['trained'] for r in runs
               if r.get('status') == 'ok' and r.get('trained')]
    if 'max_iters' in budget:
        n = budget['max_iters']
        text = f'{n} iterations per run (fixed length)'
        if batch:
            text += f', batch {batch}: {n * batch:,} training samples ' \
                '(image-expression pairs) per run'
    elif 'max_time' in budget:
        text = (f'{budget["max_time"]:g} s of training per run '
                '(TimeBudgetTrainLoop), batch {}'.format(batch))
        if lengths:
            lo, hi = min(lengths), max(lengths)
            text += f'; iterations trained {lo}-{hi} (mean ' \
                f'{statistics.fmean(lengths):.0f})'
            if batch:
                text += f', {lo * batch:,}-{hi * batch:,} training samples'
    elif 'max_epochs' in budget:
        text = f'{budget["max_epochs"]} epochs per run, batch {batch}'
    else:
        text = 'the configs\' own length'
    return f'Budget: {text}; seeds {", ".join(str(s) for s in seeds)}.'


def markdown(summary, differences, switch, budget, seeds, runs):
    """The configs table, the paired-differences table, the budget and the
    failed runs."""
    kinds = kind_groups(k for row in summary.values() for k in row['stats'])[0]
    head = (['config', 'MG', 'CAL', 'CAM', 'seeds'] + TABLE_METRICS +
            [f'{k} oIoU' for k in kinds] +
            [f'MG acc ({c})' for c in TABLE_CONDITIONS])
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for name, row in summary.items():
        cells = [name, *switch[name], seeds_cell(row)]
        keys = TABLE_METRICS + [f'{k}/oIoU' for k in kinds]
        if row['n'] == 0:
            cells += ['failed'] * (len(keys) + len(TABLE_CONDITIONS))
        else:
            cells += [fmt(row['stats'].get(k)) for k in keys]
            cells += [fmt(row['stats'].get(MG_PREFIX + c), 1)
                      for c in TABLE_CONDITIONS]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines.append(budget_line(budget, seeds, runs) + ' Each cell: mean ± '
                 'sample std (ddof=1) over the seeds, on the val split.')
    tokens = max([r.get('mg_tokens') or 0 for r in runs] + [0])
    sentences = max([r.get('val_sentences') or 0 for r in runs] + [0])
    if sentences:
        lines.append(f'Val: {sentences:,} sentences. Masked-token accuracy '
                     f'(%) over {tokens:,} masked val tokens per condition, '
                     'where a Mask Grounding head exists.')
    if differences:
        dkinds = list(OrderedDict.fromkeys(
            k for d in differences for k in d['stats']))
        head = ['difference (same seed paired)', 'pairs'] + [
            'Δ ' + k for k in dkinds]
        lines += ['', '| ' + ' | '.join(head) + ' |',
                  '|' + '---|' * len(head)]
        for d in differences:
            cells = [f'{d["a"]} − {d["b"]}', str(len(d['seeds']))]
            cells += [fmt(d['stats'].get(k)) if d['seeds'] else 'failed'
                      for k in dkinds]
            lines.append('| ' + ' | '.join(cells) + ' |')
        lines.append('')
        lines.append('Δ: mean ± sample std over the seeds of the per-seed '
                     'difference (points).')
    failed = [r for r in runs if r.get('status') != 'ok']
    if failed:
        lines += ['', 'Failed runs:', '']
        lines += [f'* {r["name"]} seed {r["seed"]}: {r.get("error")} '
                  f'(log: {r.get("log")})' for r in failed]
    return '\n'.join(lines) + '\n'


# ----------------------------------------------------------------------


