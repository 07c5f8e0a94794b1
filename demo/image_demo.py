"""Segment what referring expressions mean in your own image.

Bad inputs (a missing image, an expression without a word, an ``--out-file``
that cannot be written, a checkpoint of another model...) end with one
``error: ...`` line and exit status 1 before the model is built
(``--traceback`` or MAGNET_TRACEBACK=1 shows the traceback).

Every expression's mask is painted in its own colour; the legend (one colour
swatch and expression per row) is on a strip below the image, never over it:
the picture's top-left ``H x W`` region is the image with its masks, the
canvas is taller (and at least 360 pixels wide, so the legend of a small
image stays readable). With a model that decides "refers to nothing"
(``decode_head.no_target``, e.g. the gRefCOCO configs), such an expression
is listed as ``<expression> (no target)`` in the legend and marked
``no target`` in the printed lines.

Usage:
    python demo/image_demo.py IMAGE "the man in red" ["the dog" ...] \\
        --config CONFIG --checkpoint CHECKPOINT --out-file out.png \\
        [--threshold 0.5] [--device cpu|cuda:0] [--alpha 0.5] [--show] \\
        [--backend pytorch|onnxruntime]

Example (the CPU model trained by ``make demo``)::

    python demo/image_demo.py data/refsynth/images/mscoco/images/train2014/\\
SYN_train2014_000000002001.jpg "the red circle" "the blue square" \\
        --checkpoint work_dirs/main_job/iter_500.pth --out-file demo.png
"""
from __future__ import annotations

import argparse
import logging
import os.path as osp
import sys
from typing import List, Optional

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

DEFAULT_CONFIG = osp.join(
    ROOT, 'configs', 'magnet',
    'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from projects.magnet.utils import CfgOptionsAction
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('image', help='image file, decoded by the config\'s '
                        'loader (any format PIL reads; grayscale is '
                        'repeated to RGB, alpha is dropped)')
    parser.add_argument('expressions', nargs='+',
                        help='one or more referring expressions')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='model config (default: the CPU config)')
    parser.add_argument('--checkpoint', default=None,
                        help='model weights (without: untrained weights, '
                        'a warning is printed)')
    parser.add_argument('--out-file', default='magnet_demo.png',
                        help='where to write the picture (.png, .jpg...; '
                        'missing folders are created)')
    parser.add_argument('--threshold', type=float, default=None,
                        help='probability threshold of the masks, for this '
                        'run (default: the model\'s test_cfg.threshold)')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda:N (default: cuda:0 if available)')
    parser.add_argument('--alpha', type=float, default=0.5,
                        help='mask opacity')
    parser.add_argument('--batch-size', type=int, default=8,
                        help='expressions per forward pass')
    parser.add_argument('--show', action='store_true',
                        help='also display the picture')
    parser.add_argument('--backend', choices=('pytorch', 'onnxruntime'),
                        default='pytorch',
                        help='onnxruntime: --checkpoint is an ONNX file '
                        'written by tools/deployment/pytorch2onnx.py')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='config overrides, key=value')
    args = parser.parse_args(argv)
    check_drawing_args(parser, args)
    return args


def check_drawing_args(parser: argparse.ArgumentParser,
                       args: argparse.Namespace) -> None:
    """A usage error for ``--threshold`` / ``--alpha`` outside [0, 1]
    (shared with ``demo/web_demo.py``)."""
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        parser.error(f'--threshold must be in [0, 1], got {args.threshold}')
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f'--alpha must be in [0, 1], got {args.alpha}')


def draw(inferencer, result, alpha: float = 0.5) -> np.ndarray:
    """The masks of ``result`` (as the inferencer returned them: the
    model's ``test_cfg`` decided their size and threshold) on its image,
    the legend below the image.

    Returns:
        np.ndarray: (H + legend, max(W, 360), 3) uint8 RGB; its top-left
        (H, W) region is the image with every mask blended in its
        ``EXPRESSION_COLORS`` colour.
    """
    from projects.magnet.visualization import (EXPRESSION_COLORS,
                                               legend_below)
    colors = [EXPRESSION_COLORS[i % len(EXPRESSION_COLORS)]
              for i in range(len(result.expressions))]
    overlay = inferencer.visualizer.draw_expression_masks(
        result.image_at_mask_size(), result.masks,
        result.expressions, colors=colors, alpha=alpha, legend=False)
    return legend_below(overlay, result.expressions, colors,
                        no_target=result.no_target)


#: EXIF orientation values that turn the picture (1 = as stored)
_EXIF_TURNS = {2: 'mirrored', 3: 'rotated 180', 4: 'flipped',
               5: 'transposed', 6: 'rotated 90', 7: 'transversed',
               8: 'rotated 270'}


def check_image(path: str) -> List[str]:
    """Refuse an image the model cannot use, before the model is built:
    missing, a folder, empty, or not an image (PIL reads the header only).

    Returns:
        list[str]: notes on what the demo does with it (an animated image:
        its first frame is used; an EXIF orientation: ignored, the picture
        is segmented as stored), to be logged.
    """
    from PIL import Image, UnidentifiedImageError

    from projects.magnet.utils import InputFileError
    from projects.magnet.utils.output_files import check_input_file
    check_input_file(path, 'image file')
    try:
        with Image.open(path) as img:
            frames = getattr(img, 'n_frames', 1)
            orientation = img.getexif().get(0x0112, 1)
            fmt = img.format
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise InputFileError(
            f'image file {path}: not an image PIL can read ({err})') from err
    notes = []
    if frames > 1:
        notes.append(f'{path}: {fmt} with {frames} frames; the first frame '
                     'is segmented')
    if orientation in _EXIF_TURNS:
        notes.append(f'{path}: EXIF orientation {orientation} '
                     f'({_EXIF_TURNS[orientation]}) is ignored: the image '
                     'is segmented and drawn as stored, as the dataset '
                     'loaders read it')
    return notes


def run(args: argparse.Namespace) -> int:
    """The demo on parsed arguments; a bad input raises a ``UserError``."""
    from mmengine.registry import init_default_scope

    import projects.magnet  # noqa: F401  (registers everything)
    from projects.magnet.apis import MagNetInferencer, check_expressions
    from mmengine.logging import print_log

    from projects.magnet.utils import (IMAGE_EXTENSIONS, check_output_file,
                                       load_config, save_image)
    from projects.magnet.utils.output_files import check_input_file
    init_default_scope('mmseg')
    # fail on bad inputs before the (slow) model build
    expressions = check_expressions(args.expressions)
    notes = check_image(args.image)
    check_output_file(args.out_file, IMAGE_EXTENSIONS, what='--out-file',
                      inputs=[args.image, args.config, args.checkpoint])
    load_config(args.config)  # missing / not a config: named, now
    if args.backend == 'onnxruntime':
        check_input_file(args.checkpoint or '', 'ONNX file (--checkpoint)')
    elif args.checkpoint is not None and '://' not in args.checkpoint:
        from projects.magnet.compat import check_torch_file
        check_input_file(args.checkpoint, 'checkpoint file',
                         allow_empty=True)
        check_torch_file(args.checkpoint)  # empty, text, not a pickle
    for note in notes:
        print_log(note, logger='current', level=logging.WARNING)
    inferencer = MagNetInferencer(
        args.config, args.checkpoint, device=args.device,
        cfg_options=args.cfg_options, batch_size=args.batch_size,
        backend=args.backend)
    result = inferencer(args.image, expressions, threshold=args.threshold)
    drawing = draw(inferencer, result, args.alpha)
    save_image(drawing, args.out_file)  # atomic: no half-written picture
    if args.show:
        inferencer.visualizer.show(drawing, win_name='expressions')
    h, w = result.image.shape[:2]
    print(f'{args.image} ({w}x{h}), threshold {result.threshold:g}')
    for i, (text, mask, prob) in enumerate(
            zip(result.expressions, result.masks, result.probs)):
        # a model with the no-target decision (decode_head.no_target)
        # says which expressions name nothing in the image
        nothing = (', no target' if result.no_target is not None
                   and result.no_target[i] else '')
        print(f'  {mask.mean() * 100:5.1f}% of the image, max prob '
              f'{prob.max():.2f}{nothing}: {text}')
    print(f'wrote {args.out_file}')
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Exit status: 0, or 1 with one ``error:`` line for a bad input."""
    from projects.magnet.utils import run_cli
    args = parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == '__main__':
    sys.exit(main())
