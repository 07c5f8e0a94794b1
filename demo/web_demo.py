"""Segment what referring expressions mean, in a web page (Gradio).

Upload an image, type one or more expressions (one per line) and press
"Segment": the page shows the image with every expression's mask in its own
colour and the legend on a strip below it (the drawing of
``demo/image_demo.py``: with a model that decides "refers to nothing", e.g.
the gRefCOCO configs, such an expression is listed as
``<expression> (no target)``), and each expression's mask (white on black)
in a gallery.

The model is loaded once, at start. Without ``--checkpoint`` the checkpoint
of the main job is used: the file named by ``work_dirs/main_job/
last_checkpoint``, which ``make demo`` writes (with another ``--config``,
pass ``--checkpoint``). A bad input in the page (no image, no expression, an
expression without a known word) is shown there as an error message; a bad
option ends with one ``error: ...`` line and exit status 1 before the model
is built.

The page works offline: nothing is fetched from another host (the fonts are
served by the app) and Gradio's analytics are off. ``--share`` (off by
default) asks Gradio for a public link, which needs the internet.

Gradio is an optional dependency: ``pip install -r requirements/demo.txt``.

Usage:
    python demo/web_demo.py [--config CONFIG] [--checkpoint CHECKPOINT] \\
        [--device cpu|cuda:0] [--threshold 0.5] [--alpha 0.5] \\
        [--host 127.0.0.1] [--port 7860] [--share]

Example (the CPU model trained by ``make demo``)::

    make demo
    python demo/web_demo.py        # then open http://127.0.0.1:7860
"""
from __future__ import annotations

import argparse
import contextlib
import os
import os.path as osp
import re
import sys
from typing import TYPE_CHECKING, Any, Iterator, List, Optional, Tuple

import numpy as np

DEMO_DIR = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(DEMO_DIR)
for _path in (ROOT, DEMO_DIR):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from image_demo import (DEFAULT_CONFIG, check_drawing_args,  # noqa: E402
                        draw)

from projects.magnet.utils import UserError  # noqa: E402

if TYPE_CHECKING:
    from projects.magnet.apis import MagNetInferencer

#: where ``make demo`` (tools/main_job.py) trains: its ``last_checkpoint``
#: names the default checkpoint
DEFAULT_WORK_DIR = osp.join(ROOT, 'work_dirs', 'main_job')

#: what a missing gradio says
INSTALL_HINT = 'pip install -r requirements/demo.txt'

#: (mask image, caption) items of the gallery
Gallery = List[Tuple[np.ndarray, str]]


class MissingDependencyError(UserError, ImportError):
    """gradio (an optional dependency) is not installed."""


class ServeError(UserError, OSError):
    """The page cannot be served at the asked address."""


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from projects.magnet.utils import CfgOptionsAction
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='model config (default: the CPU config of '
                        'the main job)')
    parser.add_argument('--checkpoint', default=None,
                        help='model weights (default: the main job\'s, '
                        'named by work_dirs/main_job/last_checkpoint)')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda:N (default: cuda:0 if available)')
    parser.add_argument('--threshold', type=float, default=None,
                        help='probability threshold of the masks (default: '
                        'the model\'s test_cfg.threshold)')
    parser.add_argument('--alpha', type=float, default=0.5,
                        help='mask opacity')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to serve on (0.0.0.0: every '
                        'interface)')
    parser.add_argument('--port', type=int, default=7860,
                        help='port to serve on')
    parser.add_argument('--share', action='store_true',
                        help='also ask Gradio for a public link (needs '
                        'the internet; off by default)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='config overrides, key=value')
    args = parser.parse_args(argv)
    check_drawing_args(parser, args)
    if not 0 <= args.port <= 65535:
        parser.error(f'--port must be in [0, 65535], got {args.port}')
    return args


def import_gradio() -> Any:
    """The ``gradio`` module, with its analytics off.

    Raises:
        MissingDependencyError: gradio is not installed (the message says
            how).
    """
    # before the import: gradio reads it when it starts
    os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'
    try:
        import gradio
    except ImportError as err:
        raise MissingDependencyError(
            f'the web demo needs gradio ({err}): {INSTALL_HINT}') from err
    return gradio


def default_checkpoint(work_dir: Optional[str] = None) -> str:
    """The checkpoint named by ``work_dir/last_checkpoint`` (default:
    :data:`DEFAULT_WORK_DIR`, the main job's).

    A relative name is looked up from the current folder, then from the
    repository root (``make demo`` writes ``work_dirs/main_job/...``), then
    in ``work_dir``.

    Raises:
        InputFileError: no ``last_checkpoint`` (run ``make demo`` or pass
            ``--checkpoint``), or the file it names is gone.
    """
    from projects.magnet.utils import InputFileError
    work_dir = DEFAULT_WORK_DIR if work_dir is None else work_dir
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        raise InputFileError(
            f'no trained model: {pointer} not found; run `make demo` to '
            'train the CPU model, or pass --checkpoint FILE')
    with open(pointer, encoding='utf-8') as f:
        name = f.read().strip()
    candidates = [name] if osp.isabs(name) else [
        name, osp.join(ROOT, name), osp.join(work_dir, osp.basename(name))]
    for path in candidates:
        if name and osp.isfile(path):
            return path
    raise InputFileError(
        f'{pointer} names {name!r}, which is not a file; run `make demo` '
        'again, or pass --checkpoint FILE')


def split_expressions(text: Optional[str]) -> Tuple[List[str], List[int]]:
    """The expressions of the text box: one per non-blank line, stripped.

    Returns:
        tuple: the expressions and their line numbers (from 1).

    Raises:
        ExpressionError: no expression (also: only blank lines); an
            expression without a word (named by its line).
    """
    from projects.magnet.apis import check_expressions
    from projects.magnet.apis.pipeline import ExpressionError
    numbered = [(n, line.strip())
                for n, line in enumerate((text or '').splitlines(), 1)
                if line.strip()]
    if not numbered:
        raise ExpressionError(
            'no expression: type one or more, one per line')
    lines, expressions = [n for n, _ in numbered], [e for _, e in numbered]
    with expressions_by_line(lines):
        check_expressions(expressions)
    return expressions, lines


@contextlib.contextmanager
def expressions_by_line(lines: List[int]) -> Iterator[None]:
    """Re-raise an ``ExpressionError`` that names ``expression <i>`` (an
    index into the expressions) naming ``line <n>`` of the text box."""
    from projects.magnet.apis.pipeline import ExpressionError
    try:
        yield
    except ExpressionError as err:
        match = re.match(r'expression (\d+)\b:?\s*(.*)', str(err), re.S)
        if match is None or int(match.group(1)) >= len(lines):
            raise
        raise ExpressionError(f'line {lines[int(match.group(1))]}: '
                              f'{match.group(2)}') from err


def segment(inferencer: 'MagNetInferencer',
            image: Optional[np.ndarray],
            text: Optional[str],
            threshold: Optional[float] = None,
            alpha: float = 0.5) -> Tuple[np.ndarray, Gallery]:
    """One image and the expressions of a text box through the model.

    Args:
        inferencer (MagNetInferencer): the model.
        image (np.ndarray, optional): (H, W, 3) uint8 **RGB** (what
            ``gr.Image(type='numpy')`` gives); None: nothing uploaded.
        text (str, optional): the expressions, one per line.
        threshold (float, optional): the masks' probability threshold
            (default: the model's ``test_cfg.threshold``).
        alpha (float): mask opacity of the overlay.

    Returns:
        tuple: the overlay (``demo/image_demo.py``'s drawing: the masks on
        the image, the legend below it; uint8 RGB) and the gallery: per
        expression, its mask as an (H, W) uint8 image (255 = the referent)
        and a caption (the legend's label and the masked share).

    Raises:
        UserError: no image, no expression, an expression the model cannot
            read (named); nothing is run then.
    """
    from projects.magnet.utils import InvalidInputError
    from projects.magnet.visualization.mask_drawing import expression_labels
    if image is None:
        raise InvalidInputError('no image: upload one first')
    expressions, lines = split_expressions(text)
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] < 3:
        raise InvalidInputError(
            f'expected an RGB image, got an array of shape {image.shape}')
    with expressions_by_line(lines):  # only [UNK] / special tokens
        result = inferencer(np.ascontiguousarray(image[..., :3]),
                            expressions, threshold=threshold,
                            channel_order='rgb')
    overlay = draw(inferencer, result, alpha)
    labels = expression_labels(result.expressions, result.no_target)
    gallery = [(mask.astype(np.uint8) * 255,
                f'{i + 1}. {label}: {mask.mean() * 100:.1f}% of the image')
               for i, (label, mask) in enumerate(zip(labels, result.masks))]
    return overlay, gallery


def build_app(inferencer: 'MagNetInferencer',
              threshold: Optional[float] = None,
              alpha: float = 0.5, title: str = 'MagNet') -> Any:
    """The page: an image box, an expressions box, a "Segment" button; the
    overlay and the masks' gallery.

    Its prediction is :func:`segment`; a :class:`UserError` is shown in
    the page (``gr.Error``), not as a traceback.

    Returns:
        gr.Blocks: not launched.
    """
    gr = import_gradio()

    def predict(image: Optional[np.ndarray],
                text: Optional[str]) -> Tuple[np.ndarray, Gallery]:
        try:
            return segment(inferencer, image, text, threshold, alpha)
        except UserError as err:
            raise gr.Error(str(err), print_exception=False) from err

    with gr.Blocks(title=f'{title}: referring image segmentation',
                   analytics_enabled=False) as app:
        gr.Markdown(
            f'# {title}: referring image segmentation\n'
            'Upload an image, type what to find in it (one expression per '
            'line) and press **Segment**. Each expression gets its own '
            'colour; the legend is below the image.')
        with gr.Row():
            with gr.Column():
                image = gr.Image(label='Image', type='numpy',
                                 image_mode='RGB',
                                 sources=['upload', 'clipboard'],
                                 elem_id='image')
                text = gr.Textbox(label='Expressions (one per line)',
                                  lines=3, elem_id='expressions',
                                  placeholder='the red circle\n'
                                  'the square on the left')
                button = gr.Button('Segment', variant='primary',
                                   elem_id='segment')
            with gr.Column():
                overlay = gr.Image(label='Masks and legend', type='numpy',
                                   format='png', interactive=False,
                                   elem_id='overlay')
                masks = gr.Gallery(label='Mask of each expression',
                                   format='png', columns=2,
                                   object_fit='contain', elem_id='masks')
        button.click(predict, inputs=[image, text], outputs=[overlay, masks],
                     concurrency_limit=1)
    return app


def load_inferencer(args: argparse.Namespace) -> 'MagNetInferencer':
    """The model of the options (the checkpoint checked before the build).

    Raises:
        UserError: a missing config or checkpoint, a file that is not a
            checkpoint, a checkpoint of another model.
    """
    from mmengine.registry import init_default_scope

    import projects.magnet  # noqa: F401  (registers everything)
    from projects.magnet.apis import MagNetInferencer
    from projects.magnet.utils import load_config
    from projects.magnet.utils.output_files import check_input_file
    init_default_scope('mmseg')
    load_config(args.config)  # missing / not a config: named, now
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = default_checkpoint()
    if '://' not in checkpoint:
        from projects.magnet.compat import check_torch_file
        check_input_file(checkpoint, 'checkpoint file', allow_empty=True)
        check_torch_file(checkpoint)  # empty, text, not a pickle
    return MagNetInferencer(args.config, checkpoint, device=args.device,
                            cfg_options=args.cfg_options)


def run(args: argparse.Namespace, block: bool = True) -> Any:
    """Load the model, build the page and serve it (until Ctrl+C when
    ``block``; else return at once: ``app.close()`` stops it).

    Returns:
        gr.Blocks: the launched app.

    Raises:
        UserError: no gradio, a bad config or checkpoint (before the model
            is built), a port that is taken.
    """
    import_gradio()  # missing gradio: said before the model is loaded
    inferencer = load_inferencer(args)
    app = build_app(inferencer, args.threshold, args.alpha)
    try:
        app.launch(server_name=args.host, server_port=args.port,
                   share=args.share, prevent_thread_lock=True,
                   ssr_mode=False, inbrowser=False, show_error=False,
                   quiet=not args.share)
    except OSError as err:  # gradio: "Cannot find empty port ... "
        reason = str(err).split('. ')[0].rstrip('.')
        raise ServeError(f'cannot serve on {args.host}:{args.port} '
                         f'({reason}); pass another --port') from err
    if block:
        print(f'serving on {app.local_url} (Ctrl+C stops it)', flush=True)
        app.block_thread()
    return app


def main(argv: Optional[List[str]] = None) -> int:
    """Exit status: 0 (the server was stopped), or 1 with one ``error:``
    line for a bad option."""
    from projects.magnet.utils import run_cli
    args = parse_args(argv)

    def serve() -> None:
        run(args)
    return run_cli(serve)


if __name__ == '__main__':
    sys.exit(main())
