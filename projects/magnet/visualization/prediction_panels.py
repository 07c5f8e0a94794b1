"""Readable pictures of referring-segmentation predictions.

The synthetic scenes (``projects/magnet/datasets/refsynth``) are made of
red, green, blue, yellow, purple and orange shapes, so a red prediction or a
green ground-truth outline painted over them cannot be told apart from the
objects. The helpers here never paint a mask over the scene's colours:

* :func:`prediction_panel` — image | ground truth | prediction side by
  side; the mask panels show the scene dimmed to greyscale with the mask in
  :data:`MASK_COLOR` (cyan, a colour the generator never uses: filled and
  outlined), and a caption strip *below* the panels names them and gives the
  expression and the IoU;
* :func:`prediction_grid` — N such panels tiled in a grid (one PNG);
* :func:`legend_below` — a colour key (swatch + expression per row) on a
  canvas extension below an image, never over it (the demo).

All functions take and return (H, W, 3) uint8 **RGB** numpy arrays. Text is
drawn with :class:`RefSegLocalVisualizer` (mmengine's ``Visualizer``).
"""
from __future__ import annotations

import functools
import math
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..utils.errors import InvalidInputError
from .mask_drawing import (EXPRESSION_COLORS, Color, blend_mask,
                           expression_labels, mask_outline, sample_iou,
                           upscale_nearest)
from .refseg_visualizer import RefSegLocalVisualizer

__all__ = [
    'MASK_COLOR', 'CAPTION_BG', 'GRID_GAP_COLOR', 'panel_scale', 'mask_view',
    'prediction_panel', 'prediction_grid', 'legend_below'
]

#: Colour (RGB) of the masks in the ground-truth / prediction panels: cyan,
#: far from every colour of ``refsynth.COLOURS`` (and drawn over a
#: greyscale scene, so it cannot be mistaken for an object).
MASK_COLOR: Color = (0, 255, 255)
#: Opacity of the mask fill over the dimmed scene.
MASK_ALPHA = 0.6
#: Background (RGB) of caption and legend strips.
CAPTION_BG: Color = (32, 32, 32)
#: Colour (RGB) of the gaps between grid tiles.
GRID_GAP_COLOR: Color = (255, 255, 255)
#: Default smallest long side (pixels) of one enlarged panel.
MIN_PANEL_SIZE = 256

_VIS_NAME = 'magnet_prediction_panels'


@functools.lru_cache(maxsize=None)
def _text_drawer() -> RefSegLocalVisualizer:
    """The visualizer that renders the captions' text (built once).

    Built directly, not with ``get_instance``: it does not become the
    "current" visualizer that hooks look up.
    """
    return RefSegLocalVisualizer(name=_VIS_NAME)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 3:
        raise InvalidInputError(
            f'expected an (H, W, 3) image, got {image.shape}')
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def _mask_array(mask: np.ndarray, shape: Tuple[int, int],
                name: str) -> np.ndarray:
    """``mask`` as an (H, W) array ((1, H, W) is squeezed), size-checked."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.shape != tuple(shape):
        raise InvalidInputError(
            f'{name} {mask.shape} and image {tuple(shape)} '
            'differ in size')
    return mask


def _foreground(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool foreground of a bool or {0, 1[, 255 ignored]} mask."""
    return mask if mask.dtype == bool else mask == 1


def panel_scale(shape: Tuple[int, int],
                min_size: int = MIN_PANEL_SIZE) -> int:
    """Integer enlargement that brings the long side to ``min_size``.

    >>> panel_scale((128, 128))
    2
    """
    return max(1, math.ceil(min_size / max(shape[:2])))


def mask_view(image: np.ndarray, mask: np.ndarray,
              color: Sequence[int] = MASK_COLOR,
              alpha: float = MASK_ALPHA,
              outline: int = 2) -> np.ndarray:
    """``mask`` in ``color`` over the image dimmed to greyscale.

    The scene becomes ``30 + 0.5 * luminance`` (grey, 30..157) so that no
    scene colour is left next to the mask; the mask is filled with
    ``color`` at opacity ``alpha`` (:func:`blend_mask`) and its border
    (``outline`` pixels, :func:`mask_outline`) painted solid.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB.
        mask (np.ndarray): (H, W) bool.
        color: RGB of the mask.
        alpha (float): fill opacity in [0, 1].
        outline (int): border width in pixels; 0 for none.

    Returns:
        np.ndarray: a new (H, W, 3) uint8 RGB image.
    """
    image = _check_image(image)
    mask = _foreground(_mask_array(mask, image.shape[:2], 'mask'))
    lum = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114],
                                              np.float32)
    grey = np.round(30.0 + 0.5 * lum).astype(np.uint8)
    view = np.repeat(grey[..., None], 3, axis=2)
    view = blend_mask(view, mask, color, alpha)
    if outline > 0:
        view[mask_outline(mask, outline)] = color
    return view


def prediction_panel(image: np.ndarray,
                     gt_mask: np.ndarray,
                     pred_mask: np.ndarray,
                     text: str,
                     iou: Optional[float] = None,
                     scale: Optional[int] = None,
                     font_px: Optional[int] = None) -> np.ndarray:
    """Image | ground truth | prediction, with a caption strip below.

    Each of the three panels is the input enlarged ``scale`` times (nearest
    neighbour). The first is the image itself; the other two are
    :func:`mask_view` of the ground truth and of the prediction (cyan on the
    greyscale scene). Under the panels (never over them) a dark strip holds
    the panel names, the expression (wrapped) and the IoU.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB.
        gt_mask (np.ndarray): (H, W) ground truth, bool or foreground 1
            (255 = ignored, not drawn).
        pred_mask (np.ndarray): (H, W) prediction, bool or foreground 1.
        text (str): the referring expression.
        iou (float, optional): IoU in [0, 1] to print; by default computed
            from the masks with :func:`sample_iou`.
        scale (int, optional): enlargement factor; by default the smallest
            one that gives a long side of at least 256 pixels
            (:func:`panel_scale`: 2 for 128x128).
        font_px (int, optional): text height in pixels (default: grows with
            the panel, 12 to 24).

    Returns:
        np.ndarray: (s*H + caption, 3*s*W, 3) uint8 RGB; rows ``[0, s*H)``
        are the three panels, the caption is below them.
    """
    image = _check_image(image)
    h, w = image.shape[:2]
    gt = _mask_array(gt_mask, (h, w), 'ground truth')
    pred = _mask_array(pred_mask, (h, w), 'prediction')
    gt_fg, pred_fg = _foreground(gt), _foreground(pred)
    if iou is None:  # bool -> {0, 1}; an int GT keeps its ignored 255
        iou = sample_iou(pred_fg.astype(np.int64), gt.astype(np.int64))
    scale = panel_scale((h, w)) if scale is None else int(scale)
    if scale < 1:
        raise InvalidInputError(f'scale must be >= 1, got {scale}')
    big = upscale_nearest(image, scale)
    outline = max(2, scale)
    panels = [big,
              mask_view(big, upscale_nearest(gt_fg, scale), outline=outline),
              mask_view(big, upscale_nearest(pred_fg, scale), outline=outline)]
    ph, pw = big.shape[:2]
    width = 3 * pw

    drawer = _text_drawer()
    font_px = font_px or int(np.clip(round(pw / 14), 12, 24))
    line_h = int(round(font_px * 1.35))
    pad = max(3, font_px // 2)
    lines = drawer._wrap(f'"{text}"' if text else '(no expression)',
                         width - 2 * pad, font_px)
    caption_h = 2 * pad + line_h * (len(lines) + 2)
    canvas = np.empty((ph + caption_h, width, 3), dtype=np.uint8)
    canvas[:] = CAPTION_BG
    canvas[:ph] = np.concatenate(panels, axis=1)

    texts, positions, colors = [], [], []
    for i, label in enumerate(('image', 'ground truth', 'prediction')):
        texts.append(label)
        positions.append((i * pw + pad, ph + pad))
        colors.append('#b0b0b0')
    for i, line in enumerate(lines):
        texts.append(line)
        positions.append((pad, ph + pad + (i + 1) * line_h))
        colors.append('white')
    texts.append(f'IoU {iou * 100:.1f}%')
    positions.append((pad, ph + pad + (len(lines) + 1) * line_h))
    colors.append('#7fffff')  # the masks' cyan, lighter
    return drawer._render_texts(canvas, texts, positions, font_px, colors)


PanelItem = Union[np.ndarray, Mapping[str, Any], Sequence[Any]]


def prediction_grid(panels_or_items: Sequence[PanelItem],
                    cols: int = 4,
                    gap: int = 8,
                    **panel_kwargs) -> np.ndarray:
    """Tile panels in a grid, row by row, with ``gap`` pixels between.

    Every cell has the size of the largest panel; panel ``k`` has its
    top-left corner at row ``k // cols``, column ``k % cols``, i.e. at
    ``(r * (cell_h + gap), c * (cell_w + gap))``. The part of a cell a
    smaller panel leaves free is :data:`CAPTION_BG`, the gaps are
    :data:`GRID_GAP_COLOR`.

    Args:
        panels_or_items: (H, W, 3) uint8 arrays (e.g. from
            :func:`prediction_panel`), or items to draw with
            :func:`prediction_panel`: dicts of its arguments or tuples
            ``(image, gt_mask, pred_mask, text[, iou])``.
        cols (int): tiles per row (fewer if there are fewer panels).
        gap (int): pixels between tiles.
        **panel_kwargs: extra :func:`prediction_panel` arguments for items
            (``scale``, ``font_px``).

    Returns:
        np.ndarray: (rows * cell_h + (rows - 1) * gap,
        cols * cell_w + (cols - 1) * gap, 3) uint8 RGB.
    """
    if cols < 1:
        raise InvalidInputError(f'cols must be >= 1, got {cols}')
    if gap < 0:
        raise InvalidInputError(f'gap must be >= 0, got {gap}')
    panels: List[np.ndarray] = []
    for item in panels_or_items:
        if isinstance(item, np.ndarray):
            panels.append(_check_image(item))
        elif isinstance(item, Mapping):
            panels.append(prediction_panel(**{**panel_kwargs, **item}))
        else:
            panels.append(prediction_panel(*item, **panel_kwargs))
    if not panels:
        raise InvalidInputError('no panels to tile')
    cols = min(cols, len(panels))
    rows = math.ceil(len(panels) / cols)
    cell_h = max(p.shape[0] for p in panels)
    cell_w = max(p.shape[1] for p in panels)
    grid = np.empty((rows * cell_h + (rows - 1) * gap,
                     cols * cell_w + (cols - 1) * gap, 3), dtype=np.uint8)
    grid[:] = GRID_GAP_COLOR
    for k, panel in enumerate(panels):
        y = (k // cols) * (cell_h + gap)
        x = (k % cols) * (cell_w + gap)
        grid[y:y + cell_h, x:x + cell_w] = CAPTION_BG
        grid[y:y + panel.shape[0], x:x + panel.shape[1]] = panel
    return grid


def legend_below(image: np.ndarray,
                 expressions: Sequence[str],
                 colors: Optional[Sequence[Color]] = None,
                 font_px: Optional[int] = None,
                 min_width: int = 360,
                 no_target: Optional[Sequence[bool]] = None) -> np.ndarray:
    """The image with a colour key on a strip below it.

    The image is copied unchanged to the top-left corner of a larger canvas;
    below it, one row per expression: a swatch of its colour and the text
    (wrapped over at most two lines). The canvas is at least ``min_width``
    wide so the text of a small image stays readable (the space right of
    the image is :data:`CAPTION_BG`).

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB (e.g. the masks already
            painted on it).
        expressions: N strings.
        colors: N RGB colours; defaults to :data:`EXPRESSION_COLORS`
            (cycled), the demo's mask colours.
        font_px (int, optional): text height in pixels (default: 12 to 20,
            growing with the width).
        min_width (int): smallest canvas width.
        no_target: N bools (the model's ``pred_no_target``): those rows say
            ``<expression> (no target)``. None: no such decision.

    Returns:
        np.ndarray: (H + legend, max(W, min_width), 3) uint8 RGB with
        ``out[:H, :W] == image``.
    """
    image = _check_image(image)
    h, w = image.shape[:2]
    if colors is None:
        colors = [EXPRESSION_COLORS[i % len(EXPRESSION_COLORS)]
                  for i in range(len(expressions))]
    if len(colors) != len(expressions):
        raise InvalidInputError(
            f'{len(colors)} colours but {len(expressions)} '
            'expressions')
    width = max(w, min_width)
    drawer = _text_drawer()
    font_px = font_px or int(np.clip(round(width / 28), 12, 20))
    line_h = int(round(font_px * 1.35))
    pad = max(3, font_px // 2)
    sw = font_px  # swatch side
    text_x = 2 * pad + sw
    rows = [drawer._wrap(t, width - text_x - pad, font_px, max_lines=2)
            for t in expression_labels(expressions, no_target)]
    legend_h = 2 * pad + sum(len(r) for r in rows) * line_h + \
        max(0, len(rows) - 1) * (line_h // 3)
    canvas = np.empty((h + legend_h, width, 3), dtype=np.uint8)
    canvas[:] = CAPTION_BG
    canvas[:h, :w] = image
    texts, positions = [], []
    y = h + pad
    for lines, color in zip(rows, colors):
        top = y + (line_h - sw) // 2
        canvas[top:top + sw, pad:pad + sw] = color
        for line in lines:
            texts.append(line)
            positions.append((text_x, y))
            y += line_h
        y += line_h // 3
    return drawer._render_texts(canvas, texts, positions, font_px, 'white')
