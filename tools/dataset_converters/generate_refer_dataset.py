"""Generate a synthetic referring segmentation dataset in the REFER format
(or, with ``--gres``, in the gRefCOCO format).

Example::

    python tools/dataset_converters/generate_refer_dataset.py \
        --out data/refsynth --num-train-images 2000 --img-size 128 --seed 0

Then use ``RefCOCODataset(data_root='data/refsynth', dataset='refsynth',
split_by='unc', split='train')`` (``val``, ``testA``, ``testB``, ``test``).

Generalised referring segmentation (refs naming one object, several or
none)::

    python tools/dataset_converters/generate_refer_dataset.py --gres \
        --out data/grefsynth --target-mix single=0.4 multi=0.4 no-target=0.2

writes ``grefsynth/grefs(unc).json`` / ``.p`` and ``instances.json`` for
``GRefCOCODataset(data_root='data/grefsynth', dataset='grefsynth', ...)``.

``--out`` is checked before anything is drawn (a folder, or a path that
does not exist yet, that can be written, and holding no generated dataset
unless ``--overwrite``); the annotation files are written atomically. A
bad input ends with one ``error: ...`` line and exit 1.
"""
import argparse
import glob
import json
import math
import os.path as osp
import sys
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from projects.magnet.datasets.refsynth import (  # noqa: E402
    generate_gres_dataset, generate_refer_dataset)
from projects.magnet.utils import (  # noqa: E402
    OutputPathError, check_output_dir, run_cli)

#: where the generator writes the images, under --out (REFER's layout)
IMG_SUBDIR = ('images', 'mscoco', 'images', 'train2014')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='output data root')
    parser.add_argument(
        '--gres', action='store_true',
        help='write the gRefCOCO (GRES) format: refs naming one object, '
        'several or none')
    parser.add_argument(
        '--name', default=None,
        help='annotation folder name (the dataset argument); refsynth, or '
        'grefsynth with --gres')
    parser.add_argument('--split-by', default='unc')
    parser.add_argument('--num-train-images', type=int, default=2000)
    parser.add_argument('--num-val-images', type=int, default=200)
    parser.add_argument('--num-test-images', type=int, default=200,
                        help='split in halves into testA and testB')
    parser.add_argument('--img-size', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--image-format', choices=['jpg', 'png'],
                        default='jpg')
    parser.add_argument('--textured-prob', type=float, default=0.5)
    parser.add_argument('--occlusion-prob', type=float, default=0.25)
    parser.add_argument('--min-objects', type=int, default=3)
    parser.add_argument('--max-objects', type=int, default=6)
    parser.add_argument('--num-shapes', type=int, nargs=2, default=(2, 3),
                        metavar=('MIN', 'MAX'),
                        help='distinct shapes per scene (inclusive range)')
    parser.add_argument('--num-colours', type=int, nargs=2, default=(2, 3),
                        metavar=('MIN', 'MAX'),
                        help='distinct colours per scene (inclusive range)')
    parser.add_argument(
        '--train-kind-weights', nargs='+', default=None,
        metavar='KIND=WEIGHT',
        help='weights of the expression kinds of the train sentences, e.g. '
        'attribute=3 (others 1); val / test stay uniform')
    parser.add_argument(
        '--target-mix', nargs='+', default=None, metavar='KIND=WEIGHT',
        help='with --gres: weights of the target kinds of the refs (single, '
        'multi, no-target; missing kinds weigh 0). Defaults to single=0.4 '
        'multi=0.4 no-target=0.2')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument(
        '--overwrite', action='store_true',
        help='write into an --out that already holds generated images or '
        'annotations (they are replaced)')
    args = parser.parse_args(argv)
    for name in ('num_train_images', 'num_val_images', 'num_test_images'):
        if getattr(args, name) < 0:
            parser.error(f'--{name.replace("_", "-")} must be >= 0')
    if not (args.num_train_images + args.num_val_images +
            args.num_test_images):
        parser.error('nothing to generate: --num-train-images, '
                     '--num-val-images and --num-test-images are all 0')
    if args.img_size < 32:
        parser.error('--img-size must be >= 32')
    if args.gres and args.train_kind_weights is not None:
        parser.error('--train-kind-weights applies to the REFER format only '
                     '(with --gres the kinds are set by --target-mix)')
    if not args.gres and args.target_mix is not None:
        parser.error('--target-mix needs --gres (the REFER format has one '
                     'target per ref)')
    if args.name is None:
        args.name = 'grefsynth' if args.gres else 'refsynth'
    args.train_kind_weights = _weights(parser, '--train-kind-weights',
                                       args.train_kind_weights)
    args.target_mix = _weights(parser, '--target-mix', args.target_mix)
    return args


def _weights(parser: argparse.ArgumentParser, option: str,
             items: Optional[List[str]]) -> Optional[Dict[str, float]]:
    """``['a=1', 'b=2']`` -> ``{'a': 1.0, 'b': 2.0}`` (None stays None);
    the generator checks the kind names."""
    if items is None:
        return None
    weights: Dict[str, float] = {}
    for item in items:
        kind, sep, value = item.partition('=')
        try:
            weight = float(value)
        except ValueError:
            sep = ''
        if not sep or not kind or not math.isfinite(weight) or weight < 0:
            parser.error(f'{option}: expected KIND=WEIGHT with a finite '
                         f'WEIGHT >= 0, got {item!r}')
        if kind in weights:
            parser.error(f'{option}: {kind!r} is given twice')
        weights[kind] = weight
    return weights


def existing_outputs(args) -> List[str]:
    """What a run would overwrite under ``args.out``: the annotation
    files of ``--name`` / ``--split-by`` and generated images (their names,
    ``SYN_train2014_<id>``, are the same for every seed and name, so a
    second dataset in the same root would replace the first one's images
    under its annotations)."""
    ann_dir = osp.join(args.out, args.name)
    refs = 'grefs' if args.gres else 'refs'
    found = [osp.join(ann_dir, f) for f in (
        f'{refs}({args.split_by}).p', f'{refs}({args.split_by}).json',
        'instances.json') if osp.exists(osp.join(ann_dir, f))]
    images = glob.glob(osp.join(args.out, *IMG_SUBDIR, 'SYN_train2014_*'))
    if images:
        found.append(f'{len(images)} generated images in '
                     f'{osp.join(args.out, *IMG_SUBDIR)}')
    return found


def main(argv=None):
    args = parse_args(argv)
    check_output_dir(args.out, what='--out')
    found = existing_outputs(args)
    if found and not args.overwrite:
        raise OutputPathError(
            f'--out {args.out} already holds a generated dataset '
            f'({"; ".join(found)}); generating there would replace them '
            '(images that another dataset of the same root still '
            'describes included). Choose another --out, or pass '
            '--overwrite')
    # the options of the same name as the generator's arguments
    options = {name: getattr(args, name) for name in (
        'num_train_images', 'num_val_images', 'num_test_images', 'img_size',
        'seed', 'split_by', 'image_format', 'textured_prob',
        'occlusion_prob', 'min_objects', 'max_objects')}
    options.update(dataset_name=args.name, num_shapes=tuple(args.num_shapes),
                   num_colours=tuple(args.num_colours),
                   progress=not args.no_progress)
    if args.gres:
        summary = generate_gres_dataset(
            args.out, target_mix=args.target_mix, **options)
    else:
        summary = generate_refer_dataset(
            args.out, train_kind_weights=args.train_kind_weights, **options)
    print(json.dumps(summary, indent=2))


if __name__ == '__main__':
    sys.exit(run_cli(main))
