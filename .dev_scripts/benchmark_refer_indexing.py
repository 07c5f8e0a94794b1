"""Benchmark ``RefCOCODataset`` indexing against the naive REFER way.

Builds a RefCOCO-scale annotation set (no images) into a temporary folder:
~20k images, ~7 COCO annotations per image (only the referred ones are
used), 50k referred objects, ~142k sentences, polygons of realistic size
(log-normal number of vertices, median 24, some objects in several parts),
RefCOCO's unc split proportions. Then, each in a fresh subprocess, it
measures wall and CPU time (best of ``--repeat`` runs), peak RSS
(``ru_maxrss`` minus the RSS after imports) and, in a separate traced run,
the Python heap peak and the heap kept afterwards (``tracemalloc``) of

* ``naive``: ``pickle.load`` of the refs + ``json.load`` of instances.json +
  REFER's index dicts + the per-sentence list of the split;
* ``ours``: ``RefCOCODataset(...).full_init()`` (restricted unpickler,
  streamed instances.json, serialised data infos), per sentence;
* ``ours-per-ref``: the same, one item per referred object (training).

With ``--readers``, it measures instead only the reading of
``instances.json`` (every element of ``"images"``, ``"annotations"`` and
``"categories"``, nothing kept), each in a fresh subprocess:

* ``read-old``: the hand-written scanner of ``json_stream.py`` as of
  ``--old-rev`` (extracted with ``git show`` into a temporary folder);
* ``read-ijson``: :func:`~projects.magnet.datasets.json_stream.
  iter_json_arrays` (ijson, one pass per key);
* ``read-json``: stdlib ``json.load`` of the whole file.

Usage::

    python .dev_scripts/benchmark_refer_indexing.py [--scale 1.0]
        [--splits train val] [--repeat 3] [--root DIR] [--json out.json]
    python .dev_scripts/benchmark_refer_indexing.py --readers [--root DIR]
"""
import argparse
import json
import os
import os.path as osp
import pickle
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))

# RefCOCO (unc): refs per split, and totals.
UNC_REF_FRACTIONS = dict(train=42404, val=3811, testA=1975, testB=1810)
NUM_IMAGES, NUM_REFS, NUM_SENTS = 19994, 50000, 142210
#: RefCOCO's instances.json: 196,771 annotations on its 19,994 images.
ANNS_PER_IMAGE = 196771 / 19994

WORDS = ('man woman left right guy shirt red blue white black person girl '
         'boy middle front back far near small big tall short player chair '
         'table cat dog car umbrella green yellow behind top bottom').split()


def build_annotations(root: str, scale: float, seed: int = 0) -> dict:
    """Write ``root/refcoco/{refs(unc).p, instances.json}``."""
    rng = np.random.default_rng(seed)
    n_img = max(1, int(NUM_IMAGES * scale))
    n_ref = max(1, int(NUM_REFS * scale))
    n_sent = max(n_ref, int(NUM_SENTS * scale))
    os.makedirs(osp.join(root, 'refcoco'), exist_ok=True)
    images = [
        dict(id=i + 1, file_name=f'COCO_train2014_{i + 1:012d}.jpg',
             height=int(rng.integers(300, 640)), width=640, license=1,
             coco_url='', flickr_url='', date_captured='')
        for i in range(n_img)
    ]
    anns_per_img = rng.poisson(ANNS_PER_IMAGE - 1, n_img) + 1
    annotations = []
    ann_id = 0
    for img, n_ann in zip(images, anns_per_img):
        for _ in range(n_ann):
            ann_id += 1
            parts = 1 + int(rng.random() < 0.12) * int(rng.integers(1, 4))
            seg = []
            for _ in range(parts):
                k = int(np.clip(rng.lognormal(np.log(24), 0.6), 3, 400))
                seg.append(np.round(rng.uniform(0, 600, 2 * k), 2).tolist())
            annotations.append(
                dict(
                    id=ann_id,
                    image_id=img['id'],
                    category_id=int(rng.integers(1, 91)),
                    segmentation=seg,
                    area=float(rng.uniform(100, 50000)),
                    bbox=np.round(rng.uniform(0, 300, 4), 2).tolist(),
                    iscrowd=0))
    with open(osp.join(root, 'refcoco', 'instances.json'), 'w') as f:
        json.dump(
            dict(
                info={},
                licenses=[],
                images=images,
                annotations=annotations,
                categories=[
                    dict(id=i, name=f'c{i}', supercategory='s')
                    for i in range(1, 91)
                ]), f)
    # refs: distinct annotations, split by image like RefCOCO.
    ref_anns = rng.choice(len(annotations), n_ref, replace=False)
    ref_anns.sort()
    total = sum(UNC_REF_FRACTIONS.values())
    bounds = np.cumsum([v / total for v in UNC_REF_FRACTIONS.values()])
    img_split = np.searchsorted(bounds, rng.random(n_img + 1))
    names = list(UNC_REF_FRACTIONS)
    sents_per_ref = 1 + rng.multinomial(n_sent - n_ref,
                                        np.full(n_ref, 1 / n_ref))
    refs, sent_id = [], 0
    for ref_id, (a, n_s) in enumerate(zip(ref_anns, sents_per_ref)):
        ann = annotations[a]
        sentences = []
        for _ in range(n_s):
            sent_id += 1
            n_words = int(rng.integers(2, 9))
            tokens = [str(w) for w in rng.choice(WORDS, n_words)]
            sent = ' '.join(tokens)
            sentences.append(
                dict(raw=sent, sent=sent, tokens=tokens, sent_id=sent_id))
        refs.append(
            dict(
                ref_id=ref_id,
                ann_id=ann['id'],
                image_id=ann['image_id'],
                category_id=ann['category_id'],
                split=names[img_split[ann['image_id']]],
                sent_ids=[s['sent_id'] for s in sentences],
                sentences=sentences,
                file_name=f'COCO_train2014_{ann["image_id"]:012d}_'
                f'{ann["id"]}.jpg'))
    with open(osp.join(root, 'refcoco', 'refs(unc).p'), 'wb') as f:
        pickle.dump(refs, f, protocol=2)
    sizes = {
        name: osp.getsize(osp.join(root, 'refcoco', name)) / 2**20
        for name in ('instances.json', 'refs(unc).p')
    }
    return dict(
        images=n_img,
        annotations=len(annotations),
        refs=n_ref,
        sentences=sent_id,
        file_mb=sizes)


# ------------------------------------------------------------------ workers
def _naive(root: str, split: str) -> int:
    """REFER-style: everything into dicts, then the per-sentence list."""
    refs = pickle.load(open(osp.join(root, 'refcoco', 'refs(unc).p'), 'rb'))
    instances = json.load(open(osp.join(root, 'refcoco', 'instances.json')))
    anns = {a['id']: a for a in instances['annotations']}
    imgs = {i['id']: i for i in instances['images']}
    img_to_anns, img_to_refs, sents = {}, {}, {}
    for a in instances['annotations']:
        img_to_anns.setdefault(a['image_id'], []).append(a)
    ref_index = {}
    for r in refs:
        ref_index[r['ref_id']] = r
        img_to_refs.setdefault(r['image_id'], []).append(r)
        for s in r['sentences']:
            sents[s['sent_id']] = s
    items = []
    for r in refs:
        if r['split'] != split:
            continue
        img = imgs[r['image_id']]
        for s in r['sentences']:
            items.append(
                dict(
                    img_path=img['file_name'],
                    ref_id=r['ref_id'],
                    height=img['height'],
                    width=img['width'],
                    segmentation=anns[r['ann_id']]['segmentation'],
                    text=s['raw'],
                    sent_id=s['sent_id']))
    globals()['_keep'] = (refs, instances, anns, imgs, img_to_anns,
                          img_to_refs, sents, ref_index, items)
    return len(items)


def _ours(root: str, split: str, per_sentence: bool) -> int:
    from projects.magnet.datasets import RefCOCODataset
    ds = RefCOCODataset(
        data_root=root,
        dataset='refcoco',
        split_by='unc',
        split=split,
        per_sentence=per_sentence,
        lazy_init=True)
    ds.full_init()
    globals()['_keep'] = ds
    return len(ds)


_KEYS = ('images', 'annotations', 'categories')
#: The last commit with the hand-written JSON scanner.
OLD_REV = '50fdac1'


def _read(root: str, method: str, old_dir: str) -> int:
    """Stream every element of instances.json's arrays; keep nothing."""
    path = osp.join(root, 'refcoco', 'instances.json')
    if method == 'read-json':
        with open(path) as f:
            top = json.load(f)
        return sum(len(top[k]) for k in _KEYS)
    if method == 'read-old':
        sys.path.insert(0, old_dir)
        from old_json_stream import iter_json_object
        return sum(1 for key, _ in iter_json_object(path, _KEYS))
    from projects.magnet.datasets.json_stream import iter_json_arrays
    return sum(1 for _ in iter_json_arrays(path, _KEYS))


def _rss_mb() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def worker(method: str, root: str, split: str, trace: bool,
           old_dir: str = '') -> dict:
    """Run one measurement in this (fresh) process."""
    import gc
    import resource
    import tracemalloc

    import projects.magnet.datasets  # noqa: F401  (imports before baseline)
    if method == 'read-old':
        sys.path.insert(0, old_dir)
        import old_json_stream  # noqa: F401
    gc.collect()
    base_rss = _rss_mb()
    fn = {
        'naive': lambda: _naive(root, split),
        'ours': lambda: _ours(root, split, True),
        'ours-per-ref': lambda: _ours(root, split, False),
        'read-old': lambda: _read(root, method, old_dir),
        'read-ijson': lambda: _read(root, method, old_dir),
        'read-json': lambda: _read(root, method, old_dir),
    }[method]
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    c0 = time.process_time()
    n = fn()
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    out = dict(method=method, split=split, items=n)
    if trace:
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
        out.update(heap_kept_mb=current / 2**20, heap_peak_mb=peak / 2**20)
    else:
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out.update(seconds=seconds, cpu_seconds=cpu_seconds,
                   peak_rss_mb=peak_rss - base_rss)
    return out


def run_worker(method: str, root: str, split: str, trace: bool,
               old_dir: str = '') -> dict:
    cmd = [
        sys.executable, __file__, '--worker', method, '--root', root,
        '--split', split, '--old-dir', old_dir
    ] + (['--trace'] if trace else [])
    res = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, check=False,
        env=dict(os.environ, PYTHONPATH=ROOT))
    if res.returncode:
        raise RuntimeError(f'{method}/{split} failed:\n{res.stderr}')
    return json.loads(res.stdout.strip().splitlines()[-1])


def compare_readers(root: str, args: argparse.Namespace) -> None:
    """Old scanner vs ijson vs json.load on the same instances.json."""
    with tempfile.TemporaryDirectory() as old_dir:
        source = subprocess.run(
            ['git', 'show',
             f'{args.old_rev}:projects/magnet/datasets/json_stream.py'],
            cwd=ROOT, capture_output=True, text=True, check=True).stdout
        with open(osp.join(old_dir, 'old_json_stream.py'), 'w') as f:
            f.write(source)
        rows = []
        for method in ('read-old', 'read-ijson', 'read-json'):
            runs = [run_worker(method, root, '', False, old_dir)
                    for _ in range(args.repeat)]
            rows.append(dict(
                method=method, items=runs[0]['items'],
                seconds=min(r['seconds'] for r in runs),
                cpu_seconds=min(r['cpu_seconds'] for r in runs),
                peak_rss_mb=max(r['peak_rss_mb'] for r in runs)))
    size = osp.getsize(osp.join(root, 'refcoco', 'instances.json')) / 2**20
    print(f'instances.json: {size:.1f} MB')
    print(f'{"reader":12} {"elements":>9} {"wall s":>7} {"CPU s":>6} '
          f'{"peak RSS MB":>11}')
    for row in rows:
        print(f'{row["method"]:12} {row["items"]:9d} {row["seconds"]:7.2f} '
              f'{row["cpu_seconds"]:6.2f} {row["peak_rss_mb"]:11.1f}')
    print(json.dumps(dict(instances_mb=size, readers=rows)))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(instances_mb=size, readers=rows), f, indent=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--scale', type=float, default=1.0,
                        help='fraction of RefCOCO size to build')
    parser.add_argument('--splits', nargs='+', default=['train', 'val'])
    parser.add_argument('--repeat', type=int, default=3,
                        help='timed runs per method (the fastest is kept; '
                        'the machine may be shared)')
    parser.add_argument('--root', help='reuse/keep annotations here')
    parser.add_argument('--json', help='also write the results here')
    parser.add_argument('--readers', action='store_true',
                        help='measure only the reading of instances.json: '
                        'the old hand-written scanner, ijson, json.load')
    parser.add_argument('--old-rev', default=OLD_REV,
                        help='git revision of the old json_stream.py')
    parser.add_argument('--old-dir', default='', help=argparse.SUPPRESS)
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    parser.add_argument('--split', help=argparse.SUPPRESS)
    parser.add_argument('--trace', action='store_true',
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.root, args.split,
                                args.trace, args.old_dir)))
        return

    tmp = None
    root = args.root
    if root is None:
        tmp = tempfile.TemporaryDirectory()
        root = tmp.name
    if not osp.exists(osp.join(root, 'refcoco', 'refs(unc).p')):
        t0 = time.perf_counter()
        info = build_annotations(root, args.scale)
        info['build_seconds'] = time.perf_counter() - t0
    else:
        info = dict(reused=root)
    print('annotation set:', json.dumps(info))
    if args.readers:
        compare_readers(root, args)
        if tmp is not None:
            tmp.cleanup()
        return
    methods = ['naive', 'ours', 'ours-per-ref']
    rows = []
    for split in args.splits:
        for method in methods:
            runs = [
                run_worker(method, root, split, trace=False)
                for _ in range(args.repeat)
            ]
            row = min(runs, key=lambda r: r['cpu_seconds'])
            row['seconds'] = min(r['seconds'] for r in runs)
            row.update(run_worker(method, root, split, trace=True))
            rows.append(row)
    header = (f'{"split":6} {"method":20} {"items":>7} {"wall s":>7} '
              f'{"CPU s":>6} {"peak RSS MB":>11} {"heap peak MB":>12} '
              f'{"heap kept MB":>12} {"x CPU":>7} {"x peak":>7} '
              f'{"x kept":>7}')
    print(header)
    for row in rows:
        ref = next(r for r in rows
                   if r['split'] == row['split'] and r['method'] == 'naive')
        row['naive_over_this'] = dict(
            time=ref['cpu_seconds'] / row['cpu_seconds'],
            peak_rss=ref['peak_rss_mb'] / max(row['peak_rss_mb'], 1e-6),
            heap_kept=ref['heap_kept_mb'] / max(row['heap_kept_mb'], 1e-6))
        r = row['naive_over_this']
        print(f'{row["split"]:6} {row["method"]:20} {row["items"]:7d} '
              f'{row["seconds"]:7.2f} {row["cpu_seconds"]:6.2f} '
              f'{row["peak_rss_mb"]:11.1f} '
              f'{row["heap_peak_mb"]:12.1f} {row["heap_kept_mb"]:12.1f} '
              f'{r["time"]:7.2f} {r["peak_rss"]:7.2f} {r["heap_kept"]:7.2f}')
    result = dict(annotation_set=info, results=rows)
    print(json.dumps(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    if tmp is not None:
        tmp.cleanup()


if __name__ == '__main__':
    main()
