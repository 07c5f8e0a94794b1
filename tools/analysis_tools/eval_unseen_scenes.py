"""Score a model on scenes it never saw, drawn by code other than the
generator's, in the same visual vocabulary.

Usage:
    python tools/analysis_tools/eval_unseen_scenes.py CONFIG CHECKPOINT
        [--num-scenes 200] [--size 128] [--seed 0] [--device cpu]
        [--out-dir DIR] [--num-panels 16]

The generated dataset's own images (``projects/magnet/datasets/refsynth``)
can teach a model quirks of their renderer (polygon rasterisation, colour
noise, textures). Here every scene is drawn with PIL's ``ImageDraw``
primitives (ellipses, regular polygons, a star) on a plain or two-tone
background, with this file's own RGB values for the colour words, 3-5
non-overlapping objects of the generator's shapes, colours and sizes. The
expressions come from this file's templates, each kind only where it picks
out exactly one object:

* ``colour``: "the red shape"; ``shape``: "the circle";
* ``colour+shape``: "the red circle" (neither word alone is enough);
* ``position``: "the leftmost shape" / rightmost / topmost / bottommost;
* ``size``: "the largest shape" / "the smallest shape".

Prints oIoU (sum of intersections / sum of unions) and mIoU per kind and
overall, writes ``unseen_scenes.json`` and a grid of prediction panels
(``unseen_scenes_grid.png``) to ``--out-dir``.
"""
from __future__ import annotations

import argparse
import math
import os
import os.path as osp
import sys
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from projects.magnet.utils import (  # noqa: E402
    check_output_dir, load_config, run_cli, save_image, save_json)
from projects.magnet.utils.cli import check_minimum  # noqa: E402
from projects.magnet.utils.output_files import (  # noqa: E402
    check_input_file)

#: this file's colours for the generator's colour words (not its values)
PALETTE = {
    'red': (225, 30, 35),
    'green': (35, 160, 70),
    'blue': (35, 75, 215),
    'yellow': (240, 210, 45),
    'purple': (140, 50, 180),
    'orange': (250, 130, 30),
}
SHAPES = ('circle', 'square', 'triangle', 'diamond', 'star', 'hexagon')
KINDS = ('colour', 'shape', 'colour+shape', 'position', 'size')


def _vertices(shape: str, cx: float, cy: float, r: float,
              turn: float) -> List[Tuple[float, float]]:
    if shape == 'square':
        k, radii, start = 4, (r, ), math.pi / 4
    elif shape == 'diamond':
        k, radii, start = 4, (r, ), 0.0
    elif shape == 'triangle':
        k, radii, start = 3, (r, ), -math.pi / 2
    elif shape == 'hexagon':
        k, radii, start = 6, (r, ), turn
    else:  # star
        k, radii, start = 10, (r, 0.45 * r), -math.pi / 2
    return [(cx + radii[i % len(radii)] * math.cos(start + 2 * math.pi * i /
                                                    k),
             cy + radii[i % len(radii)] * math.sin(start + 2 * math.pi * i /
                                                    k)) for i in range(k)]


def draw_scene(rng: np.random.Generator, size: int
               ) -> Tuple[np.ndarray, List[dict]]:
    """An RGB scene (size, size, 3) uint8 and its objects (shape, colour,
    radius, centre, full mask); objects do not overlap."""
    from PIL import Image, ImageDraw

    def muted():  # a grey with a slight tint: no colour word matches it
        base = int(rng.integers(80, 180))
        return tuple(int(base + v) for v in rng.integers(-15, 16, 3))

    img = Image.new('RGB', (size, size), muted())
    if rng.random() < 0.5:  # a two-tone background
        other = muted()
        ImageDraw.Draw(img).rectangle(
            [0, int(size * rng.uniform(0.3, 0.7)), size, size], fill=other)
    objects: List[dict] = []
    target = int(rng.integers(3, 6))
    for _ in range(200):
        if len(objects) == target:
            break
        large = rng.random() < 0.4
        r = size * (rng.uniform(0.12, 0.16) if large else
                    rng.uniform(0.06, 0.09))
        cx, cy = rng.uniform(r + 2, size - r - 2, 2)
        if any(math.hypot(cx - o['cx'], cy - o['cy']) < r + o['r'] + 3
               for o in objects):
            continue
        objects.append(dict(shape=str(rng.choice(SHAPES)),
                            colour=str(rng.choice(list(PALETTE))), r=r,
                            cx=cx, cy=cy, turn=rng.uniform(0, math.pi)))
    draw = ImageDraw.Draw(img)
    for obj in objects:
        mask_img = Image.new('L', (size, size), 0)
        mdraw = ImageDraw.Draw(mask_img)
        box = [obj['cx'] - obj['r'], obj['cy'] - obj['r'],
               obj['cx'] + obj['r'], obj['cy'] + obj['r']]
        fill = PALETTE[obj['colour']]
        if obj['shape'] == 'circle':
            draw.ellipse(box, fill=fill)
            mdraw.ellipse(box, fill=1)
        else:
            pts = _vertices(obj['shape'], obj['cx'], obj['cy'], obj['r'],
                            obj['turn'])
            draw.polygon(pts, fill=fill)
            mdraw.polygon(pts, fill=1)
        obj['mask'] = np.asarray(mask_img, dtype=bool)
    return np.asarray(img), objects


def _unique(objects: Sequence[dict], key) -> Dict[object, int]:
    """value -> index of the only object with that value."""
    groups: Dict[object, List[int]] = defaultdict(list)
    for i, o in enumerate(objects):
        groups[key(o)].append(i)
    return {v: ids[0] for v, ids in groups.items() if len(ids) == 1}


def expressions(objects: Sequence[dict],
                rng: np.random.Generator) -> List[Tuple[str, str, int]]:
    """(kind, expression, referent index): at most one per kind."""
    out = []
    colours = _unique(objects, lambda o: o['colour'])
    shapes = _unique(objects, lambda o: o['shape'])
    pairs = _unique(objects, lambda o: (o['colour'], o['shape']))
    if colours:
        c = sorted(colours)[int(rng.integers(len(colours)))]
        out.append(('colour', f'the {c} shape', colours[c]))
    if shapes:
        s = sorted(shapes)[int(rng.integers(len(shapes)))]
        out.append(('shape', f'the {s}', shapes[s]))
    hard = [(c, s) for (c, s) in pairs if c not in colours and s not in shapes]
    if hard:
        c, s = hard[int(rng.integers(len(hard)))]
        out.append(('colour+shape', f'the {c} {s}', pairs[(c, s)]))
    axis, word, sign = [('cx', 'leftmost', 1), ('cx', 'rightmost', -1),
                        ('cy', 'topmost', 1),
                        ('cy', 'bottommost', -1)][int(rng.integers(4))]
    order = sorted(range(len(objects)), key=lambda i: sign * objects[i][axis])
    if len(order) > 1 and abs(objects[order[0]][axis] -
                              objects[order[1]][axis]) > 8:
        out.append(('position', f'the {word} shape', order[0]))
    areas = [int(o['mask'].sum()) for o in objects]
    word, pick = (('largest', max), ('smallest', min))[int(rng.integers(2))]
    ranked = sorted(areas, reverse=pick is max)
    if len(ranked) > 1 and (ranked[0] > 1.3 * ranked[1] if pick is max else
                            ranked[1] > 1.3 * ranked[0]):
        out.append(('size', f'the {word} shape', areas.index(pick(areas))))
    return out


def evaluate(inferencer, num_scenes: int, size: int, seed: int,
             keep: int = 0) -> Tuple[dict, list]:
    """Scores per kind; the first ``keep`` (image, expression, gt, pred)."""
    rng = np.random.default_rng(seed)
    inter: Dict[str, float] = defaultdict(float)
    union: Dict[str, float] = defaultdict(float)
    ious: Dict[str, List[float]] = defaultdict(list)
    kept = []
    for _ in range(num_scenes):
        img, objects = draw_scene(rng, size)
        exprs = expressions(objects, rng)
        if not exprs:
            continue
        result = inferencer(img[..., ::-1].copy(), [e for _, e, _ in exprs])
        for (kind, text, idx), pred in zip(exprs, result.masks):
            gt = objects[idx]['mask']
            i = float(np.logical_and(pred, gt).sum())
            u = float(np.logical_or(pred, gt).sum())
            for key in (kind, 'overall'):
                inter[key] += i
                union[key] += u
                ious[key].append(i / u if u else 1.0)
            if len(kept) < keep:
                kept.append((img, text, gt, pred, i / u if u else 1.0))
    scores = {
        k: dict(oIoU=100 * inter[k] / max(union[k], 1.0),
                mIoU=100 * float(np.mean(ious[k])), count=len(ious[k]))
        for k in list(KINDS) + ['overall'] if ious[k]
    }
    return scores, kept


def write_grid(kept: list, path: str) -> None:
    from projects.magnet.visualization.prediction_panels import (
        prediction_grid, prediction_panel)
    panels = [prediction_panel(img, gt, pred, text, iou)
              for img, text, gt, pred, iou in kept]
    save_image(prediction_grid(panels), path)  # atomic


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--num-scenes', type=int, default=200)
    parser.add_argument('--size', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out-dir')
    parser.add_argument('--num-panels', type=int, default=16)
    args = parser.parse_args(argv)
    # no scene scores nothing; below 32 pixels the objects (radius 6 %
    # of the size) are a pixel or two wide
    check_minimum(parser, args, dict(num_scenes=1, size=32, num_panels=0))
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.out_dir:  # before the model is built and run
        check_output_dir(args.out_dir, what='--out-dir',
                         inputs=[args.config, args.checkpoint])
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from projects.magnet.apis import MagNetInferencer
    from projects.magnet.compat import check_torch_file
    load_config(args.config)  # missing / not a config: named, now
    check_input_file(args.checkpoint, 'checkpoint file', allow_empty=True)
    check_torch_file(args.checkpoint)  # empty, text, not a pickle
    inferencer = MagNetInferencer(args.config, args.checkpoint,
                                  device=args.device)
    keep = args.num_panels if args.out_dir else 0
    scores, kept = evaluate(inferencer, args.num_scenes, args.size,
                            args.seed, keep)
    print(f'{"kind":14s} {"oIoU":>7s} {"mIoU":>7s} {"count":>6s}')
    for kind, s in scores.items():
        print(f'{kind:14s} {s["oIoU"]:7.2f} {s["mIoU"]:7.2f} '
              f'{s["count"]:6d}')
    if args.out_dir:
        save_json(dict(scores=scores, num_scenes=args.num_scenes,
                       size=args.size, seed=args.seed),
                  osp.join(args.out_dir, 'unseen_scenes.json'), indent=1)
        if kept:
            write_grid(kept, osp.join(args.out_dir,
                                      'unseen_scenes_grid.png'))
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
