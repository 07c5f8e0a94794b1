"""Visualizer for referring segmentation results."""
from __future__ import annotations

import math
import textwrap
from typing import List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
from mmengine.dist import master_only
from mmseg.registry import VISUALIZERS
from mmseg.structures import SegDataSample
from mmseg.visualization import SegLocalVisualizer

from ..utils.errors import InvalidInputError
from .mask_drawing import (EXPRESSION_COLORS, NO_TARGET_LABEL, Color,
                           blend_mask, expression_labels, expression_of,
                           mask_outline, sample_iou, to_numpy_mask,
                           upscale_nearest)

__all__ = [
    'RefSegLocalVisualizer', 'blend_mask', 'mask_outline', 'sample_iou',
    'expression_of', 'EXPRESSION_COLORS'
]


@VISUALIZERS.register_module()
class RefSegLocalVisualizer(SegLocalVisualizer):
    """mmseg's ``SegLocalVisualizer`` for (image, expression) samples.

    :meth:`add_datasample` (called by mmseg's ``SegVisualizationHook``, so by
    ``tools/test.py --show-dir``) draws ground truth | prediction side by
    side under a caption with the expression and the sample's IoU; the
    drawing goes to every vis backend (``LocalVisBackend``,
    ``TensorboardVisBackend``...), to ``out_file`` or to a window.
    :meth:`draw_expression_masks` draws several expressions' masks on one
    image with a legend (the demo), :meth:`draw_refer_item` one dataset
    item with all its sentences (``browse_dataset.py``).

    MagNet scores masks at the network input size (the official protocol),
    so ``pred_sem_seg``/``gt_sem_seg`` may not have the size of the image
    file the visualization hook reads: the image is resized to the masks'
    size (bilinear) before drawing. Panels smaller than ``min_panel_size``
    are enlarged by an integer factor (nearest) so the caption stays
    readable.

    Args:
        name (str): instance name.
        pred_color (tuple): RGB of the predicted mask.
        gt_color (tuple): RGB of the ground-truth mask.
        mask_alpha (float): opacity of the masks.
        min_panel_size (int): smallest long side of a drawn panel.
        font_px (int, optional): caption text height in pixels; defaults to
            a size that grows with the panel.
        name_by_sentence (bool): append ``_ref<ref_id>_sent<sent_id>`` (from
            the metainfo) to the name given to :meth:`add_datasample`.
            mmseg's visualization hook names a picture after its image file,
            and evaluation has one item per *sentence*: without this, the
            sentences of one image would overwrite each other. Defaults to
            True.
        **kwargs: :class:`SegLocalVisualizer` arguments (``vis_backends``,
            ``save_dir``, ``classes``...).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 pred_color: Color = (230, 40, 40),
                 gt_color: Color = (40, 200, 60),
                 mask_alpha: float = 0.5,
                 min_panel_size: int = 256,
                 font_px: Optional[int] = None,
                 name_by_sentence: bool = True,
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.pred_color = tuple(pred_color)
        self.gt_color = tuple(gt_color)
        self.mask_alpha = mask_alpha
        self.min_panel_size = min_panel_size
        self.font_px = font_px
        self.name_by_sentence = name_by_sentence

    # ------------------------------------------------------------ helpers
    def _points(self, px: float) -> float:
        """Font size in points for a text ``px`` pixels high."""
        return px * 72.0 / float(self.dpi)

    def _render_texts(self, canvas: np.ndarray, texts: List[str],
                      positions: List[Tuple[float, float]], font_px: float,
                      colors: Union[str, List[str]] = 'white',
                      vertical: str = 'top') -> np.ndarray:
        """Draw ``texts`` (top-left anchored) on ``canvas`` (RGB)."""
        self.set_image(canvas)
        if texts:
            self.draw_texts(
                texts, np.asarray(positions, dtype=np.float64),
                font_sizes=self._points(font_px), colors=colors,
                vertical_alignments=vertical,
                horizontal_alignments='left',
                font_families='sans-serif')
        drawn = self.get_image()
        return np.ascontiguousarray(drawn[:canvas.shape[0], :canvas.shape[1]])

    @staticmethod
    def _wrap(text: str, width_px: float, font_px: float,
              max_lines: int = 4) -> List[str]:
        """Wrap ``text`` to lines that fit ``width_px`` (estimated)."""
        chars = max(6, int(width_px / (0.6 * font_px)))
        lines = textwrap.wrap(text, chars) or ['']
        if len(lines) > max_lines:
            lines = lines[:max_lines]
            lines[-1] = lines[-1][:max(1, chars - 3)] + '...'
        return lines

    def _emit(self, name: str, drawn: np.ndarray, show: bool,
              wait_time: float, out_file: Optional[str], step: int) -> None:
        """Show / write / send to the vis backends (as mmseg does)."""
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(drawn), out_file)
        else:
            self.add_image(name, drawn, step)

    # ---------------------------------------------------- data samples
    def draw_datasample(self,
                        image: np.ndarray,
                        data_sample: SegDataSample,
                        draw_gt: bool = True,
                        draw_pred: bool = True) -> np.ndarray:
        """Ground truth | prediction under the expression and the IoU.

        Args:
            image (np.ndarray): (H0, W0, 3) uint8 RGB.
            data_sample (SegDataSample): with ``pred_sem_seg`` and/or
                ``gt_sem_seg`` ((1, H, W), foreground 1) and the expression
                in its metainfo (see :func:`expression_of`).
            draw_gt (bool): draw the ground-truth panel (if present).
            draw_pred (bool): draw the prediction panel (if present).

        Returns:
            np.ndarray: (header + s*H, n_panels * s*W, 3) uint8 RGB, where
            ``s`` is the enlargement factor of small panels. The prediction
            panel also outlines the ground truth.

        Generalised RIS: a sample whose metainfo says ``no_target`` has its
        panel named ``ground truth: no target``; one whose prediction says
        ``pred_no_target`` has ``prediction: no target``; no IoU is printed
        for either (an empty union has none).
        """
        gt = pred = None
        if 'gt_sem_seg' in data_sample:
            gt = to_numpy_mask(data_sample.gt_sem_seg.data)
        if 'pred_sem_seg' in data_sample:
            pred = to_numpy_mask(data_sample.pred_sem_seg.data)
        ref = pred if pred is not None else gt
        if ref is None:
            h, w = image.shape[:2]
        else:
            h, w = ref.shape
        if image.shape[:2] != (h, w):
            image = mmcv.imresize(image, (w, h), interpolation='bilinear')
        if gt is not None and gt.shape != (h, w):
            gt = mmcv.imresize(gt.astype(np.uint8), (w, h),
                               interpolation='nearest').astype(np.int64)
        gt_none = bool(data_sample.metainfo.get('no_target', False))
        pred_none = bool(data_sample.get('pred_no_target', False))
        iou = sample_iou(pred, gt) if pred is not None and gt is not None \
            and not (gt_none or pred_none) else None

        scale = max(1, math.ceil(self.min_panel_size / max(h, w)))
        image = upscale_nearest(image, scale)
        panels, labels = [], []
        if draw_gt and gt is not None:
            g = upscale_nearest(gt == 1, scale)
            panel = blend_mask(image, g, self.gt_color, self.mask_alpha)
            panels.append(panel)
            labels.append('ground truth' + (f': {NO_TARGET_LABEL}'
                                            if gt_none else ''))
        if draw_pred and pred is not None:
            p = upscale_nearest(pred == 1, scale)
            panel = blend_mask(image, p, self.pred_color, self.mask_alpha)
            if gt is not None:
                edge = mask_outline(upscale_nearest(gt == 1, scale),
                                    width=max(1, scale // 2))
                panel[edge] = self.gt_color
            panels.append(panel)
            label = 'prediction'
            if pred_none:
                label += f': {NO_TARGET_LABEL}'
            if iou is not None:
                label += f'  IoU {iou * 100:.1f}%'
            labels.append(label)
        if not panels:
            panels, labels = [image], ['image']
        ph, pw = panels[0].shape[:2]
        width = pw * len(panels)
        font_px = self.font_px or int(np.clip(round(pw / 22), 11, 22))
        line_h = int(round(font_px * 1.35))
        pad = max(2, font_px // 3)
        text = expression_of(data_sample.metainfo)
        lines = self._wrap(f'"{text}"' if text else '(no expression)',
                           width - 2 * pad, font_px)
        header_h = line_h * (len(lines) + 1) + 2 * pad
        canvas = np.full((header_h + ph, width, 3), 32, dtype=np.uint8)
        canvas[header_h:] = np.concatenate(panels, axis=1)
        texts, positions, colors = [], [], []
        for i, line in enumerate(lines):
            texts.append(line)
            positions.append((pad, pad + i * line_h))
            colors.append('white')
        label_y = pad + len(lines) * line_h
        for i, label in enumerate(labels):
            texts.append(label)
            positions.append((i * pw + pad, label_y))
            colors.append('#9be89b' if label.startswith('ground truth') else
                          '#ff9c9c' if label.startswith('prediction') else
                          'white')
        return self._render_texts(canvas, texts, positions, font_px, colors)

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample: Optional[SegDataSample] = None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       step: int = 0,
                       with_labels: Optional[bool] = False) -> None:
        """Draw a sample (:meth:`draw_datasample`) and save / show it.

        Same contract as mmseg's ``SegLocalVisualizer.add_datasample``:
        ``show`` displays it, ``out_file`` writes it, otherwise it goes to
        every vis backend with ``add_image(name, drawing, step)``.
        ``with_labels`` is accepted for compatibility (the caption replaces
        class labels). With ``name_by_sentence`` the name gets the sample's
        ``_ref<id>_sent<id>``.
        """
        if data_sample is None:
            drawn = np.ascontiguousarray(image)
        else:
            drawn = self.draw_datasample(image, data_sample, draw_gt,
                                         draw_pred)
            if self.name_by_sentence:
                meta = data_sample.metainfo
                ids = [f'{key[:-3]}{meta[key]}' for key in ('ref_id',
                                                            'sent_id')
                       if meta.get(key) is not None]
                if ids:
                    name = '_'.join([name] + ids)
        self._emit(name, drawn, show, wait_time, out_file, step)

    # ------------------------------------------------------- inference
    def draw_expression_masks(self,
                              image: np.ndarray,
                              masks: np.ndarray,
                              expressions: Sequence[str],
                              colors: Optional[Sequence[Color]] = None,
                              alpha: float = 0.5,
                              legend: bool = True,
                              out_file: Optional[str] = None,
                              show: bool = False,
                              no_target: Optional[Sequence[bool]] = None
                              ) -> np.ndarray:
        """Each expression's mask in its own colour, with a legend.

        Masks are painted in order with :func:`blend_mask` (a later mask
        over an earlier one where they overlap). The legend — a dark box in
        the top-left corner with one colour swatch and expression per row —
        is drawn inside the image, so the drawing has the image's size.

        Args:
            image (np.ndarray): (H, W, 3) uint8 RGB.
            masks (np.ndarray): (N, H, W) bool.
            expressions: N strings.
            colors: N RGB colours; defaults to :data:`EXPRESSION_COLORS`.
            alpha (float): mask opacity.
            legend (bool): draw the legend.
            out_file (str, optional): also write the drawing there.
            show (bool): also display it.
            no_target: N bools, the model's ``pred_no_target``: the legend
                says ``<expression> (no target)`` for those (their masks
                are empty). None: a model without the decision.

        Returns:
            np.ndarray: (H, W, 3) uint8 RGB.
        """
        masks = np.asarray(masks).astype(bool)
        if masks.ndim == 2:
            masks = masks[None]
        if len(masks) != len(expressions):
            raise InvalidInputError(
                f'{len(masks)} masks but {len(expressions)} '
                'expressions')
        if masks.shape[1:] != image.shape[:2]:
            raise InvalidInputError(f'masks {masks.shape[1:]} and image '
                                    f'{image.shape[:2]} differ in size')
        if colors is None:
            colors = [EXPRESSION_COLORS[i % len(EXPRESSION_COLORS)]
                      for i in range(len(masks))]
        canvas = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
        for mask, color in zip(masks, colors):
            canvas = blend_mask(canvas, mask, color, alpha)
        texts = expression_labels(expressions, no_target)
        if legend and len(expressions):
            canvas = self._draw_legend(canvas, texts, colors)
        else:
            canvas = self._render_texts(canvas, [], [], 10)
        if out_file is not None:
            mmcv.imwrite(mmcv.rgb2bgr(canvas), out_file)
        if show:
            self.show(canvas, win_name='expressions')
        return canvas

    def legend_box(self, image_shape: Tuple[int, int],
                   num_rows: int) -> Tuple[int, int, int, int, int]:
        """Layout of the legend: ``(x0, y0, x1, y1, font_px)``.

        The box is in the top-left corner; the font is about 1/20 of the
        image's short side (8 to 20 px). Rows that do not fit are cut (the
        last visible row says how many were left out).
        """
        h, w = image_shape
        font_px = self.font_px or int(np.clip(round(min(h, w) / 20), 8, 20))
        row_h = int(round(font_px * 1.5))
        margin = pad = max(2, font_px // 3)
        rows = max(1, min(num_rows, (h - 2 * margin - 2 * pad) // row_h))
        x1 = w - margin
        y1 = min(h, margin + 2 * pad + rows * row_h)
        return margin, margin, x1, y1, font_px

    def _draw_legend(self, canvas: np.ndarray, expressions: Sequence[str],
                     colors: Sequence[Color]) -> np.ndarray:
        h, w = canvas.shape[:2]
        x0, y0, x1, y1, font_px = self.legend_box((h, w), len(expressions))
        row_h = int(round(font_px * 1.5))
        pad = max(2, font_px // 3)
        rows = (y1 - y0 - 2 * pad) // row_h
        sw = font_px  # swatch side
        chars = max(4, int((x1 - x0 - 3 * pad - sw) / (0.6 * font_px)))
        items = list(zip(expressions, colors))
        if len(items) > rows:
            left = len(items) - rows + 1
            items = items[:rows - 1] + [(f'... (+{left} more)', None)]
        longest = max(len(t) for t, _ in items)
        box_w = min(x1 - x0, int(3 * pad + sw + min(longest, chars) *
                                 0.6 * font_px) + pad)
        x1 = x0 + box_w
        box = canvas[y0:y1, x0:x1].astype(np.float32)
        canvas[y0:y1, x0:x1] = np.round(box * 0.35).astype(np.uint8)
        texts, positions = [], []
        for i, (text, color) in enumerate(items):
            cy = y0 + pad + i * row_h + row_h // 2
            if color is not None:
                top = max(0, cy - sw // 2)
                canvas[top:top + sw, x0 + pad:x0 + pad + sw] = color
            if len(text) > chars:
                text = text[:chars - 3] + '...'
            texts.append(text)
            positions.append((x0 + 2 * pad + sw, cy))
        return self._render_texts(canvas, texts, positions, font_px,
                                  'white', vertical='center')

    # -------------------------------------------------------- datasets
    def draw_refer_item(self,
                        image: np.ndarray,
                        mask: Optional[np.ndarray],
                        sentences: Sequence[str],
                        title: str = '') -> np.ndarray:
        """One dataset item: the mask over the image, every sentence below.

        Args:
            image (np.ndarray): (H, W, 3) uint8 RGB.
            mask (np.ndarray, optional): (H, W) foreground mask.
            sentences: the referred object's sentences (numbered).
            title (str): first caption line (e.g. ids).

        Returns:
            np.ndarray: (s*H + caption, s*W, 3) uint8 RGB (``s`` enlarges
            small images to ``min_panel_size``).
        """
        h, w = image.shape[:2]
        scale = max(1, math.ceil(self.min_panel_size / max(h, w)))
        panel = upscale_nearest(np.ascontiguousarray(image[..., :3]), scale)
        if mask is not None:
            m = upscale_nearest(np.asarray(mask) == 1, scale)
            panel = blend_mask(panel, m, self.gt_color, self.mask_alpha)
            panel[mask_outline(m, max(1, scale // 2))] = self.gt_color
        ph, pw = panel.shape[:2]
        font_px = self.font_px or int(np.clip(round(pw / 22), 11, 22))
        line_h = int(round(font_px * 1.35))
        pad = max(2, font_px // 3)
        lines = self._wrap(title, pw - 2 * pad, font_px) if title else []
        for i, sent in enumerate(sentences):
            lines += self._wrap(f'{i + 1}. {sent}', pw - 2 * pad, font_px)
        caption_h = line_h * len(lines) + 2 * pad
        canvas = np.full((ph + caption_h, pw, 3), 32, dtype=np.uint8)
        canvas[:ph] = panel
        positions = [(pad, ph + pad + i * line_h) for i in range(len(lines))]
        return self._render_texts(canvas, lines, positions, font_px)
