"""Inference on your own image and expressions.

Build a model from a config (+ checkpoint) with :func:`init_model`, then run
it on one image and one or many referring expressions with
:func:`inference_model`, or do both through :class:`MagNetInferencer`::

    from projects.magnet.apis import MagNetInferencer

    inferencer = MagNetInferencer(CONFIG, CHECKPOINT, device='cpu')
    result = inferencer('photo.jpg', ['the man in red', 'the dog'],
                        out_file='overlay.png')
    result.masks   # (2, H, W) bool, at the image's size
    result.probs   # (2, H, W) float32 probabilities

The inference pipeline is the config's test pipeline with the file loader
replaced by :class:`LoadImageFromArray` and the annotation transforms
dropped, so resizing and tokenisation are exactly those of testing.
"""
from __future__ import annotations

import copy
import os
import os.path as osp
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from ..datasets.refcoco import RefCOCODataset
from ..datasets.transforms.loading import to_three_channels

__all__ = [
    'ImageInput', 'RefSegResult', 'init_model', 'load_image',
    'check_expressions', 'build_inference_pipeline', 'inference_model',
    'MagNetInferencer'
]

ImageInput = Union[str, Path, np.ndarray]

#: Transforms of a test pipeline that read annotations (dropped).
ANNOTATION_TRANSFORMS = frozenset({
    'LoadReferringMask', 'LoadAnnotations', 'LoadBiomedicalAnnotation',
    'LoadDepthAnnotation', 'SampleSentence'
})
#: Transforms that load the image from a file (replaced).
IMAGE_LOADERS = frozenset({
    'LoadImageFromFile', 'LoadImageFromNDArray', 'LoadImageFromArray',
    'LoadBiomedicalImageFromFile'
})
#: Meta keys the model needs (``PackSegInputs.meta_keys``).
REQUIRED_META_KEYS = ('input_ids', 'attention_mask')


@dataclass
class RefSegResult:
    """Masks of N expressions on one image.

    Attributes:
        expressions (list[str]): the N expressions, in the input order.
        masks (np.ndarray): (N, H, W) bool, ``probs > threshold``.
        probs (np.ndarray): (N, H, W) float32 probabilities in [0, 1].
        threshold (float): the probability threshold of ``masks``.
        image (np.ndarray): the input image, (H0, W0, 3) uint8 **RGB**
            (grayscale repeated, alpha dropped).
        data_samples (list[SegDataSample]): what ``model.test_step``
            returned, one per expression: ``seg_logits`` (probabilities) and
            ``pred_sem_seg`` (thresholded with ``threshold``), (1, h, w), at
            the size set by the model's ``test_cfg.output_size``; the
            metainfo has ``text``, ``input_ids``, ``attention_mask``,
            ``img_shape``, ``ori_shape``...
        img_path (str, optional): the image file, if a path was given.

    ``(H, W)`` is the original image size ``(H0, W0)`` with
    ``output_size='original'`` (default), else the model's output size.
    """

    expressions: List[str]
    masks: np.ndarray
    probs: np.ndarray
    threshold: float
    image: np.ndarray
    data_samples: List[SegDataSample] = field(repr=False)
    img_path: Optional[str] = None

    def __len__(self) -> int:
        return len(self.expressions)


# ---------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------
def _as_config(config: Union[str, Path, Config, dict]) -> Config:
    if isinstance(config, (str, Path)):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file not found: {config}')
        return Config.fromfile(str(config))
    if isinstance(config, Config):
        return copy.deepcopy(config)
    if isinstance(config, dict):
        return Config(copy.deepcopy(dict(config)))
    raise TypeError('config must be a file path, a mmengine Config or a '
                    f'dict, got {type(config).__name__}')


def _check_device(device: Union[str, torch.device]) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f'invalid device {device!r}: {e}') from e
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise RuntimeError(f'device {device!r} requested but CUDA is '
                               'not available; use device="cpu"')
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise RuntimeError(
                f'device {device!r} requested but only '
                f'{torch.cuda.device_count()} CUDA device(s) are visible')
    return dev


def _quiet_init_weights(model: torch.nn.Module) -> None:
    """``model.init_weights()`` without mmengine's per-parameter INFO log."""
    import logging

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def init_model(config: Union[str, Path, Config, dict],
               checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None,
               strict: bool = True) -> torch.nn.Module:
    """Build a MagNet (or any mmseg) segmentor for inference.

    Args:
        config: config file, :class:`mmengine.Config` or dict (with a
            ``model`` key and a test pipeline: ``test_dataloader`` /
            ``val_dataloader`` / ``test_pipeline``).
        checkpoint (str, optional): weights, read with mmengine's
            ``load_checkpoint`` through the project's weights-only loader
            (see ``projects/magnet/compat/checkpoint.py``). ``None``: no
            checkpoint — the weights are those of ``init_weights()``
            (random, or pretrained parts named by ``init_cfg``) and a
            warning says so.
        device: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
        cfg_options (dict, optional): overrides merged into the config.
        strict (bool): refuse a checkpoint whose keys do not match the
            model. Defaults to True (a missing weight makes the masks
            meaningless).

    Returns:
        nn.Module: the model in eval mode on ``device``, with ``cfg`` (the
        config) and ``dataset_meta`` (classes/palette) attributes.

    Raises:
        FileNotFoundError: the config or the checkpoint does not exist.
        RuntimeError: a CUDA device is requested but not available.
    """
    cfg = _as_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise KeyError('the config has no "model"')
    dev = _check_device(device)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import MODELS

    from ..models.segmentors import inference_model_cfg

    # no training-only modules (Mask Grounding, alignment loss)
    model_cfg = inference_model_cfg(cfg.model)
    model_cfg.pop('pretrained', None)
    model = MODELS.build(model_cfg)
    meta: dict = {}
    if checkpoint is None:
        warnings.warn(
            'init_model: no checkpoint given; the model has the weights '
            'of init_weights() (random, or the pretrained parts of its '
            'init_cfg): its masks are not meaningful')
        _quiet_init_weights(model)
    else:
        checkpoint = str(checkpoint)
        if '://' not in checkpoint and not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'checkpoint file not found: {checkpoint}')
        ckpt = load_checkpoint(
            model, checkpoint, map_location='cpu', strict=strict,
            logger='silent')
        meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    model.dataset_meta = meta.get('dataset_meta') or dict(
        classes=RefCOCODataset.METAINFO['classes'],
        palette=RefCOCODataset.METAINFO['palette'])
    model.cfg = cfg
    model.to(dev)
    model.eval()
    return model


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------
def load_image(image: ImageInput,
               channel_order: str = 'bgr',
               exif_orientation: bool = False) -> np.ndarray:
    """An image file or array as (H, W, 3) uint8 in ``channel_order``.

    * a path is decoded with PIL. Grayscale (``L``, ``I;16``...) is
      repeated to three channels; the alpha channel of ``RGBA`` / ``LA`` /
      ``PA`` images is **dropped** (colours as stored, no compositing); a
      palette image is expanded. The EXIF orientation is ignored unless
      ``exif_orientation`` (the official loader ignores it, and so do the
      RefCOCO annotations);
    * an array is taken to be in ``channel_order`` already (the OpenMMLab
      convention is BGR, as ``cv2.imread``/``mmcv.imread`` return) and
      made three-channel by :func:`to_three_channels`.

    Args:
        image: path (str / Path) or uint8 array (H, W), (H, W, 1),
            (H, W, 3) or (H, W, 4).
        channel_order (str): ``'bgr'`` or ``'rgb'``: order of the returned
            array (and of an input array).
        exif_orientation (bool): rotate a file by its EXIF orientation.

    Returns:
        np.ndarray: (H, W, 3) uint8.

    Raises:
        FileNotFoundError: the path does not exist (or is not a file).
        ValueError: the file is not a readable image; the array has
            another dtype or layout.
    """
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError(f'channel_order must be "bgr" or "rgb", got '
                         f'{channel_order!r}')
    if isinstance(image, np.ndarray):
        return to_three_channels(image, 'image array')
    if not isinstance(image, (str, Path)):
        raise TypeError('image must be a path or a numpy array, got '
                        f'{type(image).__name__}')
    path = os.fspath(image)
    if not osp.isfile(path):
        raise FileNotFoundError(f'image file not found: {path}')
    from PIL import Image, ImageOps
    try:
        with Image.open(path) as pil:
            pil.load()
            if exif_orientation:
                pil = ImageOps.exif_transpose(pil)
            if pil.mode in ('LA', 'La'):
                pil = pil.convert('L')  # drop alpha, keep the gray values
            elif pil.mode == 'P' and 'transparency' in pil.info:
                pil = pil.convert('RGBA')
            if pil.mode.startswith('I;16') or pil.mode in ('I', 'F'):
                arr = np.asarray(pil, dtype=np.float64)
                if arr.max() > 255:  # 16-bit grayscale: scale to 8 bits
                    arr = arr / 257.0
                pil = Image.fromarray(
                    np.clip(arr.round(), 0, 255).astype(np.uint8))
            rgb = np.asarray(pil.convert('RGB'), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as e:
        raise ValueError(
            f'cannot read image file {path}: {type(e).__name__}: '
            f'{e}') from e
    if rgb.size == 0:
        raise ValueError(f'image file {path} is empty ({rgb.shape})')
    if channel_order == 'bgr':
        rgb = rgb[..., ::-1]
    return np.ascontiguousarray(rgb)


def check_expressions(expressions: Union[str, Sequence[str]]) -> List[str]:
    """Validate referring expressions.

    Args:
        expressions: one string or a sequence of strings.

    Returns:
        list[str]: the expressions (unchanged; tokenisation strips and
        lower-cases them as in testing).

    Raises:
        TypeError: an expression is not a string (its index is named).
        ValueError: no expression, or an empty / whitespace-only one (its
            index is named).
    """
    if isinstance(expressions, str):
        expressions = [expressions]
    if not isinstance(expressions, Sequence):
        raise TypeError('expressions must be a string or a list of '
                        f'strings, got {type(expressions).__name__}')
    exprs = list(expressions)
    if not exprs:
        raise ValueError('no expression given')
    for i, text in enumerate(exprs):
        if not isinstance(text, str):
            raise TypeError(f'expression {i} must be a str, got '
                            f'{type(text).__name__} ({text!r:.60})')
        if not text.strip():
            raise ValueError(f'expression {i} is empty or whitespace only '
                             f'({text!r})')
    return exprs


# ---------------------------------------------------------------------------
# pipeline
# ---------------------------------------------------------------------------
def _type_name(transform: dict) -> str:
    t = transform.get('type', '')
    return t.rsplit('.', 1)[-1] if isinstance(t, str) else \
        getattr(t, '__name__', '')


def _config_test_pipeline(cfg: Config) -> List[dict]:
    """The test pipeline of a config (test, then val dataloader)."""
    for key in ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(key) or {}).get('dataset')
        while isinstance(dataset, dict):
            if 'pipeline' in dataset:
                return list(dataset['pipeline'])
            inner = dataset.get('datasets') or [dataset.get('dataset')]
            dataset = inner[0] if inner else None
    if cfg.get('test_pipeline'):
        return list(cfg.test_pipeline)
    raise KeyError('the config has no test pipeline (test_dataloader / '
                   'val_dataloader dataset pipeline, or test_pipeline)')


def _image_loader(pipeline: List[dict]) -> Optional[dict]:
    for t in pipeline:
        if _type_name(t) in IMAGE_LOADERS:
            return t
    return None


def build_inference_pipeline(cfg: Union[Config, List[dict]],
                             warn_truncation: bool = True) -> Compose:
    """The config's test pipeline, for in-memory images and free text.

    * the image loader (``LoadImageFromFile``...) is replaced by
      :class:`LoadImageFromArray` (inserted first if there is none);
    * annotation transforms (``LoadReferringMask``, ``LoadAnnotations``,
      ``SampleSentence``...) are dropped;
    * ``TokenizeText`` is kept as configured (same tokenizer, token budget
      and ids as testing) with ``warn_truncation`` set;
    * everything else (``Resize``, ``PackSegInputs``...) is kept.

    Args:
        cfg: a config (its test pipeline is used) or a pipeline list.
        warn_truncation (bool): warn when an expression exceeds the token
            budget.

    Returns:
        Compose: takes ``dict(img=BGR uint8 array, text=str,
        img_path=None or str)``, gives ``dict(inputs, data_samples)``.

    Raises:
        ValueError: the pipeline has no ``TokenizeText`` or its
            ``PackSegInputs`` does not pack the tokens.
    """
    pipeline = copy.deepcopy(
        list(cfg) if isinstance(cfg, (list, tuple)) else
        _config_test_pipeline(cfg))
    out: List[dict] = []
    has_loader = has_tokenizer = False
    for t in pipeline:
        t = dict(t)
        name = _type_name(t)
        if name in ANNOTATION_TRANSFORMS:
            continue
        if name in IMAGE_LOADERS:
            if has_loader:
                continue
            t = dict(type='LoadImageFromArray')
            has_loader = True
        elif name == 'TokenizeText':
            t['warn_truncation'] = warn_truncation
            has_tokenizer = True
        elif name == 'PackSegInputs' and 'meta_keys' in t:
            missing = [k for k in REQUIRED_META_KEYS
                       if k not in t['meta_keys']]
            if missing:
                raise ValueError(
                    f'PackSegInputs.meta_keys of the test pipeline lacks '
                    f'{missing}: the model needs the tokens')
            if 'text' not in t['meta_keys']:
                t['meta_keys'] = tuple(t['meta_keys']) + ('text', )
        out.append(t)
    if not has_tokenizer:
        raise ValueError('the test pipeline has no TokenizeText transform: '
                         'cannot turn an expression into tokens')
    if not has_loader:
        out.insert(0, dict(type='LoadImageFromArray'))
    return Compose(out)


# ---------------------------------------------------------------------------
# inference
# ---------------------------------------------------------------------------
def _model_threshold(model: torch.nn.Module) -> float:
    head = getattr(model, 'decode_head', None)
    return float(getattr(head, 'threshold', 0.5))


def inference_model(model: torch.nn.Module,
                    image: ImageInput,
                    expressions: Union[str, Sequence[str]],
                    threshold: Optional[float] = None,
                    output_size: str = 'original',
                    batch_size: int = 8,
                    pipeline: Optional[Compose] = None,
                    channel_order: str = 'bgr') -> RefSegResult:
    """Segment what each expression refers to in one image.

    The image is repeated once per expression and the (image, expression)
    pairs run through the test pipeline and ``model.test_step`` in batches
    of ``batch_size``.

    Args:
        model: from :func:`init_model` (needs ``cfg`` unless ``pipeline``
            is given).
        image: path or uint8 array (see :func:`load_image`; arrays in
            ``channel_order``, BGR by default).
        expressions: one expression or a list of them.
        threshold (float, optional): probability threshold of the masks;
            defaults to the head's (0.5).
        output_size (str): ``'original'`` (default): probabilities at the
            image's size, resized bilinearly from the model's output (with
            the head's ``align_corners``) if needed, then thresholded;
            ``'model'``: as the model returns them (``test_cfg.output_size``:
            network input size or original size).
        batch_size (int): expressions per forward pass.
        pipeline (Compose, optional): from
            :func:`build_inference_pipeline`; built from ``model.cfg`` if
            None.
        channel_order (str): channel order of an array ``image``.

    Returns:
        RefSegResult: masks (N, H, W) bool, probs (N, H, W) float32, the
        data samples, the image (RGB).

    Raises:
        FileNotFoundError / ValueError: bad image (see :func:`load_image`).
        ValueError / TypeError: bad expressions (see
            :func:`check_expressions`), bad ``output_size``/``batch_size``.
    """
    if output_size not in ('original', 'model'):
        raise ValueError(f'output_size must be "original" or "model", got '
                         f'{output_size!r}')
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    exprs = check_expressions(expressions)
    cfg = getattr(model, 'cfg', None)
    if pipeline is None:
        if cfg is None:
            raise ValueError('the model has no "cfg": build it with '
                             'init_model or pass a pipeline')
        pipeline = build_inference_pipeline(cfg)
    img_path = os.fspath(image) if isinstance(image, (str, Path)) else None
    exif = False
    if img_path is not None and cfg is not None:
        try:
            loader = _image_loader(_config_test_pipeline(cfg)) or {}
        except KeyError:
            loader = {}
        exif = loader.get('color_type', 'color') in ('color', 'grayscale')
    img = load_image(image, channel_order, exif_orientation=exif)
    if channel_order == 'rgb':
        img = np.ascontiguousarray(img[..., ::-1])  # the pipeline's BGR
    threshold = _model_threshold(model) if threshold is None \
        else float(threshold)

    samples: List[SegDataSample] = []
    for start in range(0, len(exprs), batch_size):
        data = [
            pipeline(dict(img=img, img_path=img_path, text=text))
            for text in exprs[start:start + batch_size]
        ]
        with torch.no_grad():
            samples.extend(model.test_step(pseudo_collate(data)))

    H0, W0 = img.shape[:2]
    probs = []
    for sample in samples:
        prob = sample.seg_logits.data.float()  # (1, h, w)
        sample.pred_sem_seg = PixelData(data=(prob > threshold).long())
        if output_size == 'original' and tuple(prob.shape[-2:]) != (H0, W0):
            prob = F.interpolate(
                prob[None], size=(H0, W0), mode='bilinear',
                align_corners=bool(getattr(model, 'align_corners', False)))[0]
        probs.append(prob[0].cpu())
    if len({tuple(p.shape) for p in probs}) != 1:  # pragma: no cover
        raise RuntimeError('the model returned masks of different sizes')
    prob_arr = torch.stack(probs).clamp_(0, 1).numpy().astype(np.float32)
    return RefSegResult(
        expressions=exprs,
        masks=prob_arr > threshold,
        probs=prob_arr,
        threshold=threshold,
        image=np.ascontiguousarray(img[..., ::-1]),
        data_samples=samples,
        img_path=img_path)


class MagNetInferencer:
    """Config + checkpoint -> masks (and pictures) for your own inputs.

    In the spirit of mmseg's ``MMSegInferencer``: build once, call on
    (image, expressions); optionally draw the result with the project's
    visualizer (each expression's mask in its own colour, the expressions
    as a legend).

    Args:
        model: config file / Config / dict, or a model from
            :func:`init_model`.
        checkpoint (str, optional): weights (None: init weights, warned).
        device (str): ``'cpu'`` or ``'cuda:N'``; defaults to ``'cuda:0'``
            when CUDA is available, else ``'cpu'``.
        cfg_options (dict, optional): config overrides.
        batch_size (int): expressions per forward pass.

    Example::

        inferencer = MagNetInferencer('configs/magnet/xxx.py', 'x.pth')
        result = inferencer('img.jpg', ['the left cat', 'the right cat'],
                            out_file='out.png')
    """

    def __init__(self,
                 model: Union[str, Path, Config, dict, torch.nn.Module],
                 checkpoint: Optional[str] = None,
                 device: Optional[str] = None,
                 cfg_options: Optional[dict] = None,
                 batch_size: int = 8) -> None:
        if device is None:
            device = 'cuda:0' if torch.cuda.is_available() else 'cpu'
        if isinstance(model, torch.nn.Module):
            if not hasattr(model, 'cfg'):
                raise ValueError('a model instance needs a "cfg" attribute '
                                 '(build it with init_model)')
            self.model = model.to(_check_device(device)).eval()
        else:
            self.model = init_model(model, checkpoint, device, cfg_options)
        self.cfg = self.model.cfg
        self.pipeline = build_inference_pipeline(self.cfg)
        self.batch_size = batch_size
        self._visualizer: Any = None

    @property
    def visualizer(self):
        """A :class:`RefSegLocalVisualizer` (built on first use)."""
        if self._visualizer is None:
            from ..visualization import RefSegLocalVisualizer
            self._visualizer = RefSegLocalVisualizer(
                name=f'magnet_inferencer_{id(self)}')
        return self._visualizer

    def __call__(self,
                 image: ImageInput,
                 expressions: Union[str, Sequence[str]],
                 threshold: Optional[float] = None,
                 output_size: str = 'original',
                 channel_order: str = 'bgr',
                 out_file: Optional[str] = None,
                 show: bool = False,
                 alpha: float = 0.5) -> RefSegResult:
        """Run on one image and N expressions.

        Args:
            image, expressions, threshold, output_size, channel_order: see
                :func:`inference_model`.
            out_file (str, optional): write the overlay (image size, one
                colour per expression, legend) as an image file.
            show (bool): display the overlay in a window.
            alpha (float): mask opacity of the overlay.

        Returns:
            RefSegResult: masks, probabilities, data samples.
        """
        result = inference_model(
            self.model, image, expressions, threshold=threshold,
            output_size=output_size, batch_size=self.batch_size,
            pipeline=self.pipeline, channel_order=channel_order)
        if out_file is not None or show:
            self.visualize(result, out_file=out_file, show=show, alpha=alpha)
        return result

    def visualize(self,
                  result: RefSegResult,
                  out_file: Optional[str] = None,
                  show: bool = False,
                  alpha: float = 0.5) -> np.ndarray:
        """Draw every mask of ``result`` on its image with a legend.

        Returns:
            np.ndarray: the drawing, (H, W, 3) uint8 RGB, the image's size
            when ``result`` is at the original size.
        """
        image = result.image
        if result.masks.shape[1:] != image.shape[:2]:
            import mmcv
            h, w = result.masks.shape[1:]
            image = mmcv.imresize(image, (w, h), interpolation='bilinear')
        return self.visualizer.draw_expression_masks(
            image, result.masks, result.expressions, alpha=alpha,
            out_file=out_file, show=show)

