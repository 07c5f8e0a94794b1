"""Browse a REFER-format dataset: image, referred mask, every sentence.

Writes one picture per referred object (the ground-truth mask over the
image, the ids and all the object's sentences below it) and prints the
sentences.

Usage:
    python tools/analysis_tools/browse_dataset.py --data-root data/refer \\
        --dataset refcoco --split-by unc --split val \\
        --output-dir work_dirs/browse [--max-items 20] [--show]

    # the generated dataset of ``make demo``
    python tools/analysis_tools/browse_dataset.py --data-root data/refsynth \\
        --dataset refsynth --split val --output-dir work_dirs/browse
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


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('--data-root', required=True,
                        help='REFER data root (holds <dataset>/ and images)')
    parser.add_argument('--dataset', default='refcoco',
                        help='annotation folder: refcoco, refcoco+, '
                        'refcocog, refsynth...')
    parser.add_argument('--split-by', default='unc',
                        help='unc, umd or google: reads refs(<split-by>).p')
    parser.add_argument('--split', default='val',
                        help='train, val, test, testA, testB')
    parser.add_argument('--img-dir', default='images/mscoco/images/train2014',
                        help='image folder, relative to --data-root')
    parser.add_argument('--output-dir', default=None,
                        help='where to write the pictures (one per ref)')
    parser.add_argument('--max-items', type=int, default=None,
                        help='browse at most this many refs')
    parser.add_argument('--show', action='store_true',
                        help='display each picture (press a key / close '
                        'the window to go on)')
    parser.add_argument('--show-interval', type=float, default=0,
                        help='seconds per picture with --show (0: wait)')
    args = parser.parse_args(argv)
    if args.output_dir is None and not args.show:
        parser.error('give --output-dir and/or --show')
    if args.max_items is not None and args.max_items < 1:
        parser.error('--max-items must be >= 1')
    return args


def build_dataset(args: argparse.Namespace):
    """The split as a ``RefCOCODataset`` with one item per referred object:
    the image (PIL, no EXIF rotation) and the decoded mask."""
    from projects.magnet.datasets import RefCOCODataset
    pipeline = [
        dict(type='LoadReferImageFromFile', imdecode_backend='pillow',
             color_type='color_ignore_orientation'),
        dict(type='LoadReferringMask'),
    ]
    return RefCOCODataset(
        data_root=args.data_root, dataset=args.dataset,
        split_by=args.split_by, split=args.split, img_dir=args.img_dir,
        per_sentence=False, test_mode=True, pipeline=pipeline,
        serialize_data=False)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    import mmcv
    from mmengine.registry import init_default_scope

    import projects.magnet  # noqa: F401  (registers everything)
    from projects.magnet.utils import check_output_dir, save_image
    from projects.magnet.visualization import RefSegLocalVisualizer
    init_default_scope('mmseg')
    if args.output_dir:  # a file, under a file, not writable, the data
        check_output_dir(args.output_dir, what='--output-dir',
                         inputs=[args.data_root])

    img_dir = osp.join(args.data_root, args.img_dir)
    if not osp.isdir(img_dir):  # else the first picture fails, not the root
        from projects.magnet.utils import InputFileNotFoundError
        raise InputFileNotFoundError(
            f'image folder {img_dir} not found (--data-root '
            f'{args.data_root}, --img-dir {args.img_dir}); '
            'tools/misc/check_refer_data.py finds where the images are')
    dataset = build_dataset(args)
    total = len(dataset)
    count = total if args.max_items is None else min(total, args.max_items)
    print(f'{args.dataset} ({args.split_by}) {args.split}: {total} refs, '
          f'browsing {count}')
    vis = RefSegLocalVisualizer(name=f'browse_dataset_{os.getpid()}')
    for index in range(count):
        item = dataset[index]
        sentences = [s['raw'] for s in item['sentences']]
        title = (f'ref {item["ref_id"]}  ann {item["ann_id"]}  '
                 f'{osp.basename(item["img_path"])}')
        image = mmcv.bgr2rgb(item['img'])
        drawn = vis.draw_refer_item(image, item['gt_seg_map'], sentences,
                                    title)
        print(title)
        for i, sent in enumerate(sentences):
            print(f'  {i + 1}. {sent}')
        if args.output_dir:
            out = osp.join(args.output_dir,
                           f'{args.split}_ref{item["ref_id"]:07d}.png')
            save_image(drawn, out)  # atomic
        if args.show:
            vis.show(drawn, win_name=title, wait_time=args.show_interval)
    if args.output_dir:
        print(f'wrote {count} pictures to {args.output_dir}')
    return 0


if __name__ == '__main__':
    from projects.magnet.utils import run_cli
    sys.exit(run_cli(main))  # a bad input: one error: line, exit 1
