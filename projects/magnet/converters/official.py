"""Official MagNet checkpoint -> this project's state dict.

An official checkpoint (``{'model': state_dict}`` as released, or the bare
state dict) has four parts:

=====================  ==================================================
official prefix        project module
=====================  ==================================================
``image_model.``       ``backbone.`` (:class:`MultimodalSwin`): plain Swin
                       keys via mmseg's ``swin2mmseg`` rules, MagNet keys
                       via ``VISION_RULES`` (both in
                       ``models/utils/swin_checkpoint.py``)
``language_model.``    ``text_encoder.`` (:class:`BertLanguageEncoder`):
                       BERT keys under ``bert.``, fusions via
                       :data:`LANGUAGE_RULES`
``classifier.``        ``decode_head.`` (:class:`MagNetHead`)
``lang_proj.``         ``lang_proj.``
=====================  ==================================================

1x1 ``Conv1d``/``Conv2d`` weights of the fusion modules become ``nn.Linear``
weights (the trailing singleton dims are dropped). Every key must match a
rule: anything else (a LAVT or other checkpoint, a truncated file) raises
:class:`ConversionError` listing what did not match.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Mapping

import torch

from ..models.utils.key_rules import KeyRule, apply_key_rules
from ..models.utils.swin_checkpoint import convert_official_vision
from ..utils.errors import UserError

StateDict = Dict[str, torch.Tensor]

OFFICIAL_PREFIXES = ('image_model.', 'language_model.', 'classifier.',
                     'lang_proj.')


class ConversionError(UserError, ValueError):
    """The input is not an official MagNet checkpoint."""


#: (official regex under ``language_model.``, project key under
#: ``text_encoder.``, squeeze)
LANGUAGE_RULES: List[KeyRule] = [
    (r'(embeddings\..+|encoder\.layer\..+)', r'bert.\1', False),
    (r'pwams\.(\d+)\.vis_project\.0\.(weight|bias)',
     r'fusions.\1.word_proj.\2', False),
    (r'pwams\.(\d+)\.image_lang_att\.f_query\.0\.(weight|bias)',
     r'fusions.\1.attn.query_proj.\2', True),
    (r'pwams\.(\d+)\.image_lang_att\.f_key\.0\.(weight|bias)',
     r'fusions.\1.attn.key_proj.\2', True),
    (r'pwams\.(\d+)\.image_lang_att\.f_value\.0\.(weight|bias)',
     r'fusions.\1.attn.value_proj.\2', True),
    (r'pwams\.(\d+)\.image_lang_att\.W\.0\.(weight|bias)',
     r'fusions.\1.attn.out_proj.\2', True),
    (r'pwams\.(\d+)\.project_mm\.0\.(weight|bias)',
     r'fusions.\1.mm_proj.\2', True),
    (r'res_gates\.(\d+)\.0\.weight', r'fusions.\1.gate.fc1.weight', False),
    (r'res_gates\.(\d+)\.2\.weight', r'fusions.\1.gate.fc2.weight', False),
    (r'norms\.(\d+)\.(weight|bias)', r'fusions.\1.norm.\2', False),
]

def _split(state: Mapping[str, torch.Tensor]) -> Dict[str, StateDict]:
    parts: Dict[str, StateDict] = {p: OrderedDict() for p in OFFICIAL_PREFIXES}
    parts['other'] = OrderedDict()
    for key, value in state.items():
        for prefix in OFFICIAL_PREFIXES:
            if key.startswith(prefix):
                parts[prefix][key[len(prefix):]] = value
                break
        else:
            parts['other'][key] = value
    return parts


def unwrap_official(checkpoint: Mapping) -> Mapping[str, torch.Tensor]:
    """The state dict of an official file (``{'model': sd}`` or bare)."""
    if not isinstance(checkpoint, Mapping):
        raise ConversionError(
            f'expected a dict, got {type(checkpoint).__name__}')
    state = checkpoint.get('model', checkpoint)
    if not isinstance(state, Mapping):
        raise ConversionError("checkpoint['model'] is not a state dict")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ConversionError(f'non-tensor entries in the state dict: '
                              f'{bad[:10]}')
    return state


def convert_official_checkpoint(checkpoint: Mapping,
                                strict: bool = True) -> StateDict:
    """Map an official MagNet state dict to this project's key names.

    Args:
        checkpoint (Mapping): ``{'model': state_dict}`` or a state dict.
        strict (bool): Raise :class:`ConversionError` if any key is not
            recognised or a part (vision/language/head) is missing.

    Returns:
        OrderedDict: ``backbone.*``, ``text_encoder.*``, ``decode_head.*``,
        ``lang_proj.*`` tensors.
    """
    from .official_head import convert_head_state_dict
    parts = _split(unwrap_official(checkpoint))
    out: StateDict = OrderedDict()
    unmatched: List[str] = list(parts['other'])

    for key, value in convert_official_vision(parts['image_model.'],
                                              unmatched).items():
        out['backbone.' + key] = value
    apply_key_rules(parts['language_model.'], LANGUAGE_RULES,
                    'language_model.', 'text_encoder.', out, unmatched)
    if parts['classifier.']:
        head_in = OrderedDict(('classifier.' + k, v)
                              for k, v in parts['classifier.'].items())
        try:
            head = convert_head_state_dict(head_in)
        except (KeyError, ValueError) as err:
            raise ConversionError(f'decode head keys: {err}') from err
        out.update(('decode_head.' + k, v) for k, v in head.items())
    for key, value in parts['lang_proj.'].items():
        out['lang_proj.' + key] = value

    if strict:
        missing = [p for p in ('image_model.', 'language_model.',
                               'classifier.') if not parts[p]]
        if unmatched or missing:
            lines = []
            if missing:
                lines.append(f'no keys under {missing}')
            if unmatched:
                lines.append(f'{len(unmatched)} keys match no MagNet rule, '
                             f'e.g. {unmatched[:12]}')
            raise ConversionError('not an official MagNet checkpoint: ' +
                                  '; '.join(lines))
    return out
