"""What the inference API returns: :class:`RefSegResult`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
from mmseg.structures import SegDataSample

__all__ = ['RefSegResult', 'referent_maps']


def referent_maps(sample: SegDataSample):
    """The referent's probability and mask of one predicted sample.

    The model's ``postprocess_result`` decided both (size and threshold
    from its ``test_cfg``); nothing is resized or thresholded here.

    * 1-channel output: ``seg_logits`` (1, H, W) probabilities,
      ``pred_sem_seg`` = ``prob > test_cfg.threshold``;
    * C-class output (a stock softmax head): ``seg_logits[1]`` (C, H, W)
      and ``pred_sem_seg == 1`` (argmax; class 1 = referent).

    Returns:
        tuple: prob (H, W) float32 array in [0, 1], mask (H, W) bool array.
    """
    prob = sample.seg_logits.data.detach().float().cpu()
    pred = sample.pred_sem_seg.data.detach().cpu()
    if prob.shape[0] == 1:
        return prob[0].numpy(), pred[0].numpy().astype(bool)
    return prob[1].numpy(), pred[0].numpy() == 1


@dataclass
class RefSegResult:
    """Masks of N expressions on one image.

    Attributes:
        expressions (list[str]): the N expressions, in the input order.
        masks (np.ndarray): (N, H, W) bool, the model's ``pred_sem_seg``
            (``probs > threshold`` for a 1-channel head).
        probs (np.ndarray): (N, H, W) float32 probabilities in [0, 1], the
            model's ``seg_logits`` (class 1 of a 2-class head).
        threshold (float): the model's ``test_cfg.threshold`` of the call.
        image (np.ndarray): the decoded input image, (H0, W0, 3) uint8
            **RGB** (grayscale repeated, alpha dropped).
        data_samples (list[SegDataSample]): what ``model.test_step``
            returned, one per expression (``seg_logits``, ``pred_sem_seg``;
            metainfo with ``text``, ``input_ids``, ``attention_mask``,
            ``img_shape``, ``ori_shape``...).
        img_path (str, optional): the image file, if a path was given.
        visualization (np.ndarray, optional): the drawing, (H, W, 3) uint8
            RGB, when one was asked for (``out_file`` / ``show``).
        no_target (np.ndarray, optional): (N,) bool, True for an expression
            the model says refers to nothing (its mask is then empty; the
            drawing's legend says "no target"). None for a model without
            that decision (``MagNetHead(no_target=None)``, the default).
        no_target_scores (np.ndarray, optional): (N,) float32, the model's
            no-target probabilities (``pred_no_target`` = score >
            ``test_cfg.no_target_threshold``); None as ``no_target``.

    ``(H, W)`` is the size the model's ``test_cfg.output_size`` gives: the
    original ``(H0, W0)`` with the inferencer's default
    ``output_size='original'``.
    """

    expressions: List[str]
    masks: np.ndarray
    probs: np.ndarray
    threshold: float
    image: np.ndarray
    data_samples: List[SegDataSample] = field(repr=False)
    img_path: Optional[str] = None
    visualization: Optional[np.ndarray] = field(default=None, repr=False)
    no_target: Optional[np.ndarray] = None
    no_target_scores: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.expressions)

    def image_at_mask_size(self) -> np.ndarray:
        """:attr:`image` (RGB) resized bilinearly to the size of
        :attr:`masks` when they differ (``output_size='model'``)."""
        if self.masks.shape[1:] == self.image.shape[:2]:
            return self.image
        import mmcv
        h, w = self.masks.shape[1:]
        return mmcv.imresize(self.image, (w, h), interpolation='bilinear')

    @classmethod
    def from_samples(cls, expressions: Sequence[str],
                     samples: Sequence[SegDataSample], image: np.ndarray,
                     threshold: float,
                     img_path: Optional[str] = None) -> 'RefSegResult':
        """Stack the referent maps (:func:`referent_maps`) of N samples of
        one image.

        Raises:
            RuntimeError: the samples have different sizes, or only some
                have the no-target decision.
        """
        maps = [referent_maps(s) for s in samples]
        if len({m[0].shape for m in maps}) != 1:
            raise RuntimeError('the model returned masks of different '
                               f'sizes: {sorted({m[0].shape for m in maps})}')
        decided = ['pred_no_target' in s for s in samples]
        no_target = scores = None
        if any(decided):
            if not all(decided):
                raise RuntimeError('the model gave pred_no_target for only '
                                   'some of the samples')
            no_target = np.array([bool(s.pred_no_target) for s in samples])
            scores = np.array([float(s.get('no_target_score', np.nan))
                               for s in samples], dtype=np.float32)
        return cls(
            expressions=list(expressions),
            masks=np.stack([m[1] for m in maps]),
            probs=np.stack([m[0] for m in maps]).astype(np.float32),
            threshold=float(threshold),
            image=image,
            data_samples=list(samples),
            img_path=img_path,
            no_target=no_target,
            no_target_scores=scores)
