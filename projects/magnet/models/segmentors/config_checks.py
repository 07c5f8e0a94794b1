"""The checks of a :class:`MagNet` config that need its built parts.

Each component checks its own arguments; what only the assembled model can
check lives here: the test settings, that the two encoders read each
other's widths (``backbone.text_channels`` = the text encoder's width,
``text_encoder.vision_channels`` = the backbone's stage widths), and that
the training objectives fit the model (Mask Grounding's level and widths,
the alignment loss's head and projection). Every refusal is a
:class:`~projects.magnet.models.errors.ModelConfigError` (a ``ValueError``)
naming the config key, its value and the value that would fit.
"""
from __future__ import annotations

from typing import Optional

import torch.nn as nn

from ..errors import ModelConfigError

__all__ = [
    'OUTPUT_SIZES', 'SENTENCE_POOLING', 'check_test_cfg', 'check_no_target',
    'check_sentence_pooling', 'check_stages', 'check_fusion_widths',
    'check_mask_grounding', 'check_alignment_loss'
]

#: ``test_cfg.output_size``, the one vocabulary of mask sizes (the
#: inference API's ``output_size`` uses it too): ``'input'`` = the network
#: input size (the official protocol), ``'original'`` = the image's size.
OUTPUT_SIZES = ('input', 'original')
SENTENCE_POOLING = ('mean', 'cls')


def check_test_cfg(test_cfg: dict) -> None:
    """``test_cfg.output_size`` in :data:`OUTPUT_SIZES`, ``threshold`` (and
    ``no_target_threshold`` when given) a number in [0, 1]."""
    if test_cfg['output_size'] not in OUTPUT_SIZES:
        raise ModelConfigError(
            f'test_cfg.output_size must be one of {OUTPUT_SIZES}, got '
            f'{test_cfg["output_size"]!r}')
    for key in ('threshold', 'no_target_threshold'):
        if key not in test_cfg:
            continue
        threshold = test_cfg[key]
        try:
            value = float(threshold)
        except (TypeError, ValueError):
            value = float('nan')
        if isinstance(threshold, bool) or not 0.0 <= value <= 1.0:
            raise ModelConfigError(f'test_cfg.{key} must be a number in '
                                   f'[0, 1], got {threshold!r}')


def check_no_target(test_cfg: dict, decode_head: nn.Module) -> None:
    """``test_cfg.no_target_threshold`` only with a head that predicts
    no-target (``MagNetHead(no_target=...)``), where it would otherwise do
    nothing."""
    if 'no_target_threshold' in test_cfg and not getattr(
            decode_head, 'predicts_no_target', False):
        raise ModelConfigError(
            f'test_cfg.no_target_threshold is set but the decode head '
            f'({type(decode_head).__name__}) predicts no no-target '
            'decision: set decode_head.no_target (MagNetHead) or remove '
            'the threshold')


def check_sentence_pooling(sentence_pooling: str) -> None:
    if sentence_pooling not in SENTENCE_POOLING:
        raise ModelConfigError(f'sentence_pooling must be one of '
                               f'{SENTENCE_POOLING}, got '
                               f'{sentence_pooling!r}')


def check_stages(backbone: nn.Module, text_encoder: nn.Module) -> None:
    """One BERT layer group per Swin stage."""
    if text_encoder.num_stages != len(backbone.stages):
        raise ModelConfigError(
            f'text_encoder has {text_encoder.num_stages} stages '
            f'(stage_ends), the backbone has {len(backbone.stages)} '
            '(depths): give text_encoder.stage_ends one entry per stage')


def check_fusion_widths(backbone: nn.Module,
                        text_encoder: nn.Module) -> None:
    """The backbone's fusions read the words at the text encoder's width;
    the text encoder's fusions read each vision stage's width."""
    words = text_encoder.channels
    text_channels = getattr(backbone, 'text_channels', words)
    if text_channels != words:
        raise ModelConfigError(
            f'backbone.text_channels={text_channels} does not match the '
            f'text encoder\'s width {words} (its hidden_size): set '
            f'backbone.text_channels={words}')
    stages = list(getattr(backbone, 'num_features', []))
    fusions = [f.attn.key_proj.in_features
               for f in getattr(text_encoder, 'fusions', [])
               if hasattr(getattr(f, 'attn', None), 'key_proj')]
    if stages and fusions and fusions != stages:
        raise ModelConfigError(
            f'text_encoder.vision_channels={tuple(fusions)} does not '
            f'match the backbone\'s stage widths {tuple(stages)}: set '
            f'text_encoder.vision_channels={tuple(stages)}')


def check_mask_grounding(head: nn.Module, backbone: nn.Module,
                         text_encoder: nn.Module) -> None:
    """Mask Grounding reads a backbone stage and the text encoder's words
    at their widths."""
    widths = list(getattr(backbone, 'num_features', []))
    try:
        visual = widths[head.visual_level]
    except (IndexError, TypeError):
        raise ModelConfigError(
            f'mask_grounding.visual_level={head.visual_level!r} is not a '
            f'stage of the backbone ({len(widths)} stages)') from None
    expected = dict(text_channels=text_encoder.channels,
                    visual_channels=visual)
    for key, value in expected.items():
        if getattr(head, key) != value:
            raise ModelConfigError(
                f'mask_grounding.{key}={getattr(head, key)} does not '
                f'match the model: set mask_grounding.{key}={value}')


def check_alignment_loss(head: nn.Module, lang_proj: Optional[nn.Module],
                         lang_proj_dim: Optional[int]) -> None:
    """The alignment loss needs the head's pixel embeddings and a sentence
    projection (``lang_proj``) of their width."""
    name = type(head).__name__
    if not getattr(head, 'provides_pixel_embeddings', False):
        raise ModelConfigError(
            f'alignment_loss needs the decode head\'s pixel embeddings '
            f'(forward() -> dict with "mask_features"); {name} gives '
            f'none. Set model.alignment_loss=None to train with this '
            f'head, or use MagNetHead.')
    if lang_proj is None:
        raise ModelConfigError(
            f'alignment_loss needs the sentence projection: '
            f'lang_proj_dim={lang_proj_dim!r}, set it to the head\'s '
            'mask_channels')
    width = getattr(head, 'mask_channels', None)
    if width is not None and width != lang_proj_dim:
        raise ModelConfigError(
            f'alignment_loss: lang_proj_dim={lang_proj_dim} must equal '
            f'the head\'s pixel-embedding width (mask_channels={width})')
