"""The inference pipeline: the config's test pipeline for your own inputs.

:func:`build_inference_pipeline` turns a config's test pipeline into one
that takes ``dict(img=<path or BGR array>, text=<expression>)``; its first
transform, :class:`LoadInferenceImage`, decodes a path with the config's own
file loader (the decoder of testing) and takes an array as it is.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np
from mmengine.config import Config
from mmengine.dataset import Compose

from ..datasets.transforms.image_loading import LoadInferenceImage
from ..utils.errors import InvalidInputError
from ..utils.expressions import wordless_reason

__all__ = [
    'ExpressionError', 'PipelineConfigError', 'ImageInput',
    'ANNOTATION_TRANSFORMS', 'IMAGE_LOADERS', 'FILE_LOADERS',
    'check_expressions', 'config_test_pipeline', 'build_inference_pipeline',
    'load_image'
]

class ExpressionError(InvalidInputError, TypeError):
    """Expressions that are not usable (none, not strings, empty, without a
    word); the message names the expression by its index. A ``ValueError``
    and a ``TypeError``."""


class PipelineConfigError(InvalidInputError, KeyError):
    """A config whose test pipeline cannot serve inference."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


#: An image: a path, or a uint8 array (H, W[, 1|3|4]), BGR by default.
ImageInput = Union[str, Path, np.ndarray]

#: Transforms of a test pipeline that read annotations (dropped).
ANNOTATION_TRANSFORMS = frozenset({
    'LoadReferringMask', 'LoadAnnotations', 'LoadBiomedicalAnnotation',
    'LoadDepthAnnotation', 'SampleSentence'
})
#: Transforms that load the image (replaced by ``LoadInferenceImage``).
IMAGE_LOADERS = frozenset({
    'LoadImageFromFile', 'LoadReferImageFromFile', 'LoadImageFromNDArray',
    'LoadImageFromArray', 'LoadBiomedicalImageFromFile',
    'LoadInferenceImage', 'InferencerLoader'
})
#: Image loaders whose config ``LoadInferenceImage`` decodes paths with.
FILE_LOADERS = frozenset({'LoadImageFromFile', 'LoadReferImageFromFile'})
#: Meta keys the model needs (``PackSegInputs.meta_keys``).
REQUIRED_META_KEYS = ('input_ids', 'attention_mask')


def check_expressions(expressions: Union[str, Sequence[str]]) -> List[str]:
    """Validate referring expressions.

    Args:
        expressions: one string or a sequence of strings.

    Returns:
        list[str]: the expressions (unchanged; tokenisation strips and
        lower-cases them as in testing).

    Raises:
        ExpressionError (a TypeError and a ValueError): ``expressions`` is
            not a string or a sequence (``None``, a generator...), is
            ``bytes``, or an expression is not a string; no expression; an
            empty / whitespace-only one, or one without a word (only emoji,
            symbols or punctuation, see
            :func:`~projects.magnet.utils.wordless_reason`); the index and
            the expression are named. Text with only characters the
            tokenizer drops (zero-width space...) or only ``[UNK]`` tokens
            is refused by ``TokenizeText`` (``require_known_word``); an
            expression longer than the token budget is truncated with a
            ``TextTruncationWarning`` by the inference pipeline.
    """
    if isinstance(expressions, str):
        expressions = [expressions]
    if isinstance(expressions, (bytes, bytearray)):
        raise ExpressionError(
            'expressions must be a string or a list of strings, '
            f'got {type(expressions).__name__} (decode it '
                        'first)')
    if not isinstance(expressions, Sequence):
        raise ExpressionError('expressions must be a string or a list of '
                              f'strings, got {type(expressions).__name__}')
    exprs = list(expressions)
    if not exprs:
        raise ExpressionError('no expression given')
    for i, text in enumerate(exprs):
        if not isinstance(text, str):
            raise ExpressionError(f'expression {i} must be a str, got '
                                  f'{type(text).__name__} ({text!r:.60})')
        if not text.strip():
            raise ExpressionError(f'expression {i} is empty or whitespace '
                                  f'only ({text!r})')
        reason = wordless_reason(text)
        if reason is not None:
            raise ExpressionError(f'expression {i}: {reason}')
    return exprs


def _type_name(transform: dict) -> str:
    t = transform.get('type', '')
    name = t if isinstance(t, str) else getattr(t, '__name__', '')
    return name.rsplit('.', 1)[-1]


def config_test_pipeline(cfg: Config) -> List[dict]:
    """The test pipeline of a config: the ``test_dataloader`` dataset's
    (the first of a ``ConcatDataset``), else ``val_dataloader``'s, else
    ``test_pipeline``.

    Raises:
        KeyError: the config has none.
    """
    for key in ('test_dataloader', 'val_dataloader'):
        dataset = (cfg.get(key) or {}).get('dataset')
        while isinstance(dataset, dict):
            if 'pipeline' in dataset:
                return list(dataset['pipeline'])
            inner = dataset.get('datasets') or [dataset.get('dataset')]
            dataset = inner[0] if inner else None
    if cfg.get('test_pipeline'):
        return list(cfg.test_pipeline)
    raise PipelineConfigError(
        'the config has no test pipeline (test_dataloader / val_dataloader '
        'dataset pipeline, or test_pipeline)')


def build_inference_pipeline(cfg: Union[Config, List[dict]],
                             warn_truncation: bool = True) -> Compose:
    """The config's test pipeline, for your own images and free text.

    * the image loader becomes :class:`LoadInferenceImage` (first): a path
      is decoded by the config's file loader (``LoadImageFromFile`` with
      its ``imdecode_backend`` / ``color_type``, as
      :class:`LoadReferImageFromFile`), an array taken as it is; with no
      file loader in the config, paths get the project's default (pillow,
      no EXIF rotation);
    * annotation transforms (``LoadReferringMask``, ``LoadAnnotations``,
      ``SampleSentence``...) are dropped;
    * ``TokenizeText`` is kept as configured (same tokenizer, token budget
      and ids as testing) with ``warn_truncation`` set and
      ``require_known_word=True`` (an expression of only ``[UNK]`` /
      special tokens is refused);
    * everything else (``Resize``, ``PackSegInputs``...) is kept; ``text``
      is added to ``PackSegInputs.meta_keys``.

    Args:
        cfg: a config (its test pipeline is used) or a pipeline list.
        warn_truncation (bool): warn when an expression exceeds the token
            budget.

    Returns:
        Compose: takes ``dict(img=path or (H, W[, C]) uint8 BGR array,
        text=str)``, gives ``dict(inputs=(3, h, w) uint8 tensor,
        data_samples=SegDataSample)``.

    Raises:
        PipelineConfigError (a KeyError and a ValueError): the config has
            no test pipeline, the pipeline has no ``TokenizeText``, or its
            ``PackSegInputs`` does not pack the tokens.
    """
    pipeline = copy.deepcopy(
        list(cfg) if isinstance(cfg, (list, tuple)) else
        config_test_pipeline(cfg))
    out: List[dict] = []
    loader: Optional[dict] = None
    has_tokenizer = False
    for t in pipeline:
        t = dict(t)
        name = _type_name(t)
        if name in ANNOTATION_TRANSFORMS:
            continue
        if name in IMAGE_LOADERS:
            if loader is None:
                loader = dict(type='LoadInferenceImage')
                if name in FILE_LOADERS:
                    loader['file_loader'] = t
                elif name == 'LoadInferenceImage':
                    loader = t
            continue
        if name == 'TokenizeText':
            t['warn_truncation'] = warn_truncation
            # free text with no word the vocabulary knows is refused
            t['require_known_word'] = True
            has_tokenizer = True
        elif name == 'PackSegInputs' and 'meta_keys' in t:
            missing = [k for k in REQUIRED_META_KEYS
                       if k not in t['meta_keys']]
            if missing:
                raise PipelineConfigError(
                    f'PackSegInputs.meta_keys of the test pipeline lacks '
                    f'{missing}: the model needs the tokens')
            if 'text' not in t['meta_keys']:
                t['meta_keys'] = tuple(t['meta_keys']) + ('text', )
        out.append(t)
    if not has_tokenizer:
        raise PipelineConfigError(
            'the test pipeline has no TokenizeText transform: cannot turn an '
            'expression into tokens')
    return Compose([loader or dict(type='LoadInferenceImage')] + out)


def load_image(image: ImageInput,
               channel_order: str = 'bgr',
               loader: Optional[LoadInferenceImage] = None) -> np.ndarray:
    """Run the inference pipeline's loader on one image.

    Args:
        image: a path (decoded by the loader's file loader: grayscale
            repeated to three channels, 16-bit scaled to 8 bits, alpha
            dropped, palette expanded, no EXIF rotation by default) or a
            uint8 array (H, W), (H, W, 1), (H, W, 3), (H, W, 4), made
            three-channel in its own channel order.
        channel_order (str): ``'bgr'`` or ``'rgb'``: the order a decoded
            file is returned in (an array keeps its order).
        loader (LoadInferenceImage, optional): e.g.
            ``inferencer.pipeline.transforms[0]``; defaults to one with the
            project configs' file loader.

    Returns:
        np.ndarray: (H, W, 3) uint8.

    Raises:
        FileNotFoundError / ValueError / TypeError: see
        :class:`LoadInferenceImage`.
    """
    if channel_order not in ('bgr', 'rgb'):
        raise InvalidInputError(f'channel_order must be "bgr" or "rgb", got '
                         f'{channel_order!r}')
    img = (loader or LoadInferenceImage())(dict(img=image))['img']
    if channel_order == 'rgb' and not isinstance(image, np.ndarray):
        img = img[..., ::-1]
    return np.ascontiguousarray(img)
