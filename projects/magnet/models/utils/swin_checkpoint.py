"""Load pretrained Swin weights of any common format into mmseg's Swin.

Supported sources (detected from the key names):

* official Swin (Microsoft) checkpoints, e.g.
  ``swin_base_patch4_window12_384_22k.pth`` — converted with mmseg's own
  ``swin2mmseg`` rules (:func:`mmseg_convert_swin`);
* mmseg Swin backbones or segmentors (``backbone.`` prefix stripped);
* mmpretrain Swin classifiers (``backbone.`` prefix stripped, legacy
  ``norm.`` -> last ``norm{i}``);
* MagNet checkpoints: official (``image_model.`` keys: plain Swin keys with
  mmseg's rules, fusion keys with :data:`VISION_RULES`) or this project's
  (``backbone.`` prefix).

This module is the one place that maps vision keys: the backbone's
``init_weights`` and the official-checkpoint converter
(``projects/magnet/converters/official.py``) both use it.

Relative-position bias tables of another window size are resized bicubically
(as mmseg's ``SwinTransformer.init_weights`` does).
"""
from __future__ import annotations

import importlib.util
import os.path as osp
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Mapping, Optional

import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from ...compat.checkpoint import load_weights
from ..errors import PretrainedWeightsError
from .key_rules import KeyRule, apply_key_rules

StateDict = Dict[str, torch.Tensor]

#: vision PWAM sub-keys: (official name, project name, squeeze 1x1 conv)
_PWAM_VISION = [
    (r'vis_project\.0', 'vis_proj', True),
    (r'image_lang_att\.f_query\.0', 'attn.query_proj', False),
    (r'image_lang_att\.f_query\.1', 'attn.query_norm', False),
    (r'image_lang_att\.f_key\.0', 'attn.key_proj', True),
    (r'image_lang_att\.f_value\.0', 'attn.value_proj', True),
    (r'image_lang_att\.W\.0', 'attn.out_proj', False),
    (r'image_lang_att\.W\.1', 'attn.out_norm', False),
    (r'project_mm\.0', 'mm_proj', True),
]

_PYRAMID = {'1': 'expand', '2': 'norm', '3': 'squeeze', '5': 'reduce'}

#: (official regex under ``image_model.``, project key under ``backbone.``
#: (template or callable on the match), squeeze 1x1 conv weight)
VISION_RULES: List[KeyRule] = (
    [(rf'layers\.(\d+)\.fusion\.{old}\.(weight|bias)',
      rf'pwams.\1.{new}.\2', sq) for old, new, sq in _PWAM_VISION] +
    [(rf'layers\.(\d+)\.fusions\.(\d+)\.{old}\.(weight|bias)',
      rf'alignments.\1.pwams.\2.{new}.\3', sq)
     for old, new, sq in _PWAM_VISION] +
    [(r'layers\.(\d+)\.res_gate\.0\.weight', r'gates.\1.fc1.weight', False),
     (r'layers\.(\d+)\.res_gate\.2\.weight', r'gates.\1.fc2.weight', False),
     (r'layers\.(\d+)\.pyramids\.(\d+)\.([1235])\.(weight|bias)',
      lambda m: f'alignments.{m[1]}.pyramids.{m[2]}.{_PYRAMID[m[3]]}.{m[4]}',
      True),
     (r'layers\.(\d+)\.mixer\.([012])\.(weight|bias)',
      r'alignments.\1.mixer.\2.\3', False)])

SWIN_PLAIN = re.compile(
    r'(patch_embed\..+|layers\.\d+\.blocks\..+|layers\.\d+\.downsample\..+'
    r'|norm\d+\.(weight|bias))$')


def convert_official_vision(vision: Mapping[str, torch.Tensor],
                            unmatched: Optional[List[str]] = None
                            ) -> StateDict:
    """Official MagNet ``image_model.*`` keys (prefix removed) -> this
    project's :class:`MultimodalSwin` keys: the plain Swin part with mmseg's
    ``swin2mmseg`` rules, the fusion part with :data:`VISION_RULES`. Keys no
    rule matches are appended to ``unmatched`` (as ``image_model.<key>``)."""
    unmatched = [] if unmatched is None else unmatched
    plain = OrderedDict((k, v) for k, v in vision.items()
                        if SWIN_PLAIN.match(k))
    fusion = OrderedDict((k, v) for k, v in vision.items() if k not in plain)
    out: StateDict = OrderedDict(mmseg_convert_swin(plain)) if plain \
        else OrderedDict()
    apply_key_rules(fusion, VISION_RULES, 'image_model.', '', out, unmatched)
    return out

_MMSEG_SWIN_CONVERTER = 'tools/model_converters/swin2mmseg.py'


def mmseg_convert_swin(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Official Swin key names -> mmseg names, with mmseg's own converter.

    mmseg ships its Swin converter as a script
    (``tools/model_converters/swin2mmseg.py``, installed under
    ``mmseg/.mim/``), not as an importable module; load its ``convert_swin``
    from the installed package instead of re-writing the rules.
    """
    return _load_mmseg_swin_converter()(state_dict)


def _load_mmseg_swin_converter() -> Callable:
    import mmseg
    root = osp.dirname(mmseg.__file__)
    candidates = [
        osp.join(root, '.mim', _MMSEG_SWIN_CONVERTER),
        osp.join(osp.dirname(root), _MMSEG_SWIN_CONVERTER),  # source tree
    ]
    for path in candidates:
        if osp.isfile(path):
            spec = importlib.util.spec_from_file_location(
                '_mmseg_swin2mmseg', path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.convert_swin
    raise FileNotFoundError(
        'mmseg\'s Swin converter (swin2mmseg.py) was not found in the '
        f'installed mmseg package; looked in {candidates}')


def _unwrap(checkpoint: Mapping) -> Mapping[str, torch.Tensor]:
    for key in ('state_dict', 'model', 'module'):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            return checkpoint[key]
    return checkpoint


def _strip(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    return OrderedDict(
        (k[len(prefix):], v) for k, v in state.items() if k.startswith(prefix))


def swin_state_dict_to_mmseg(checkpoint: Mapping,
                             prefix: Optional[str] = None) -> StateDict:
    """Return a MultimodalSwin/mmseg-Swin state dict from any source.

    Args:
        checkpoint (Mapping): Loaded checkpoint (any nesting).
        prefix (str, optional): Take only keys under this prefix (stripped).
            Detected automatically when None.
    """
    state = _unwrap(checkpoint)
    if prefix is not None:
        state = _strip(state, prefix)
    elif any(k.startswith('image_model.') for k in state):
        return convert_official_vision(_strip(state, 'image_model.'))
    else:
        if any(k.startswith('module.') for k in state):
            state = _strip(state, 'module.')
        if any(k.startswith('backbone.') for k in state):
            state = _strip(state, 'backbone.')
    if 'patch_embed.proj.weight' in state or any(
            k.startswith('layers.') for k in state):
        plain = OrderedDict((k, v) for k, v in state.items()
                            if k.startswith(('layers.', 'patch_embed.',
                                             'absolute_pos_embed', 'norm')))
        state = mmseg_convert_swin(plain)
    if 'norm.weight' in state:  # classifier-style final norm (mmpretrain)
        state = OrderedDict(state)
        last = max((int(k.split('.')[1]) for k in state
                    if k.startswith('stages.')), default=3)
        state[f'norm{last}.weight'] = state.pop('norm.weight')
        state[f'norm{last}.bias'] = state.pop('norm.bias')
    return state


def resize_bias_tables(state: StateDict,
                       target: Mapping[str, torch.Tensor]) -> StateDict:
    """Bicubically resize relative-position bias tables to the target size.

    Index buffers of another window size are dropped (they are recomputed).
    """
    out = OrderedDict(state)
    for key, value in state.items():
        if key not in target:
            continue
        if 'relative_position_bias_table' in key:
            l_src, h_src = value.shape
            l_dst, h_dst = target[key].shape
            if h_src != h_dst:
                raise PretrainedWeightsError(
                    f'{key}: {h_src} heads in the checkpoint, '
                    f'{h_dst} in the model')
            if l_src != l_dst:
                s_src, s_dst = int(l_src**0.5), int(l_dst**0.5)
                table = value.permute(1, 0).reshape(1, h_src, s_src, s_src)
                table = F.interpolate(table.float(), size=(s_dst, s_dst),
                                      mode='bicubic')
                out[key] = table.reshape(h_dst, l_dst).permute(
                    1, 0).contiguous().to(value.dtype)
                print_log(f'resized {key} from {tuple(value.shape)} to '
                          f'{tuple(out[key].shape)}', logger='current')
        elif 'relative_position_index' in key and \
                value.shape != target[key].shape:
            out.pop(key)
    return out


def load_swin_pretrained(filename: str,
                         target: Mapping[str, torch.Tensor],
                         prefix: Optional[str] = None) -> StateDict:
    """Load ``filename`` (weights-only) as a state dict for ``target``."""
    state = swin_state_dict_to_mmseg(load_weights(filename), prefix)
    if not any(k.startswith('stages.') for k in state):
        raise PretrainedWeightsError(
            f'{filename}: no Swin weights found (expected official Swin '
            '"layers.*", mmseg/mmpretrain "stages.*" or MagNet '
            '"image_model.*"/"backbone.*" keys)')
    return resize_bias_tables(state, target)
