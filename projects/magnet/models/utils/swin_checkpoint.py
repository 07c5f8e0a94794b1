"""Load pretrained Swin weights of any common format into mmseg's Swin.

Supported sources (detected from the key names):

* official Swin (Microsoft) checkpoints, e.g.
  ``swin_base_patch4_window12_384_22k.pth`` — converted with mmseg's own
  ``swin2mmseg`` rules (:func:`mmseg_convert_swin`);
* mmseg Swin backbones or segmentors (``backbone.`` prefix stripped);
* mmpretrain Swin classifiers (``backbone.`` prefix stripped, legacy
  ``norm.`` -> last ``norm{i}``);
* MagNet checkpoints: official (``image_model.`` keys, converted with the
  project's converter) or this project's (``backbone.`` prefix).

Relative-position bias tables of another window size are resized bicubically
(as mmseg's ``SwinTransformer.init_weights`` does).
"""
from __future__ import annotations

import importlib.util
import os.path as osp
from collections import OrderedDict
from typing import Callable, Dict, Mapping, Optional

import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from ...compat.checkpoint import load_weights

StateDict = Dict[str, torch.Tensor]

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
        from ...converters.official import convert_official_checkpoint
        converted = convert_official_checkpoint(state, strict=False)
        state = _strip(converted, 'backbone.')
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
                raise ValueError(f'{key}: {h_src} heads in the checkpoint, '
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
        raise ValueError(
            f'{filename}: no Swin weights found (expected official Swin '
            '"layers.*", mmseg/mmpretrain "stages.*" or MagNet '
            '"image_model.*"/"backbone.*" keys)')
    return resize_bias_tables(state, target)
