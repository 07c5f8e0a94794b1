"""Official MagNet head keys (``classifier.*``) -> :class:`MagNetHead` keys.

The official head is a Mask2Former port (``pixel_decoder`` + ``predictor``);
the project head uses OpenMMLab bricks, so only names change (every tensor is
copied unchanged). Official name (after ``classifier.``) -> MagNetHead name:

Pixel decoder (``pixel_decoder.`` on both sides):

* ``input_proj.{k}.0`` / ``.1`` -> ``input_convs.{k}.conv`` / ``.gn``
* ``transformer.level_embed`` -> ``level_embed.weight``
* ``transformer.encoder.layers.{n}.`` -> ``encoder.layers.{n}.`` with
  ``self_attn.*`` unchanged, ``linear1`` / ``linear2`` ->
  ``ffn.layers.0.0`` / ``ffn.layers.1``, ``norm1`` / ``norm2`` ->
  ``norms.0`` / ``norms.1``
* no ``adapter_{i}`` / ``layer_{i}`` (FPN levels below the encoder):
  MagNet encodes all four levels, so such keys are refused
* ``mask_features`` -> ``mask_feature``

Transformer decoder (``predictor.`` -> ``transformer_decoder.``):

* ``transformer_cross_attention_layers.{i}.multihead_attn`` / ``.norm`` ->
  ``layers.{i}.cross_attn.attn`` / ``layers.{i}.norms.0``
* ``transformer_self_attention_layers.{i}.self_attn`` / ``.norm`` ->
  ``layers.{i}.self_attn.attn`` / ``layers.{i}.norms.1``
* ``transformer_ffn_layers.{i}.linear1`` / ``.linear2`` / ``.norm`` ->
  ``layers.{i}.ffn.layers.0.0`` / ``layers.{i}.ffn.layers.1`` /
  ``layers.{i}.norms.2``
* ``decoder_norm`` -> ``post_norm``; ``class_embed`` -> ``cls_embed``
* ``query_feat``, ``query_embed``, ``level_embed`` -> same names
* ``mask_embed.layers.{0,1,2}`` -> ``mask_embed.{0,2,4}``
* ``input_proj.{k}`` (only when widths differ) -> ``input_proj.{k}``
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Callable, Dict, List, Mapping, Tuple, Union

from torch import Tensor

__all__ = ['HEAD_KEY_PREFIX', 'HEAD_RULES', 'convert_head_state_dict']

#: Prefix of the head keys in an official checkpoint.
HEAD_KEY_PREFIX = 'classifier.'

_PARAM = r'(?P<param>weight|bias|in_proj_weight|in_proj_bias)'
_Replacement = Union[str, Callable[[re.Match], str]]


def _mask_embed(m: re.Match) -> str:
    return (f'transformer_decoder.mask_embed.{2 * int(m["i"])}.'
            f'{m["param"]}')


#: (pattern on the key without ``classifier.``, replacement) pairs.
HEAD_RULES: List[Tuple[str, _Replacement]] = [
    # ---- pixel decoder
    (rf'pixel_decoder\.input_proj\.(?P<k>\d+)\.0\.{_PARAM}',
     r'pixel_decoder.input_convs.\g<k>.conv.\g<param>'),
    (rf'pixel_decoder\.input_proj\.(?P<k>\d+)\.1\.{_PARAM}',
     r'pixel_decoder.input_convs.\g<k>.gn.\g<param>'),
    (r'pixel_decoder\.transformer\.level_embed',
     'pixel_decoder.level_embed.weight'),
    (r'pixel_decoder\.transformer\.encoder\.layers\.(?P<n>\d+)\.self_attn\.'
     rf'(?P<m>sampling_offsets|attention_weights|value_proj|output_proj)\.'
     rf'{_PARAM}',
     r'pixel_decoder.encoder.layers.\g<n>.self_attn.\g<m>.\g<param>'),
    (rf'pixel_decoder\.transformer\.encoder\.layers\.(?P<n>\d+)\.linear1\.'
     rf'{_PARAM}',
     r'pixel_decoder.encoder.layers.\g<n>.ffn.layers.0.0.\g<param>'),
    (rf'pixel_decoder\.transformer\.encoder\.layers\.(?P<n>\d+)\.linear2\.'
     rf'{_PARAM}',
     r'pixel_decoder.encoder.layers.\g<n>.ffn.layers.1.\g<param>'),
    (rf'pixel_decoder\.transformer\.encoder\.layers\.(?P<n>\d+)\.norm1\.'
     rf'{_PARAM}',
     r'pixel_decoder.encoder.layers.\g<n>.norms.0.\g<param>'),
    (rf'pixel_decoder\.transformer\.encoder\.layers\.(?P<n>\d+)\.norm2\.'
     rf'{_PARAM}',
     r'pixel_decoder.encoder.layers.\g<n>.norms.1.\g<param>'),
    (rf'pixel_decoder\.mask_features\.{_PARAM}',
     r'pixel_decoder.mask_feature.\g<param>'),
    # ---- transformer decoder (predictor)
    (r'predictor\.transformer_cross_attention_layers\.(?P<i>\d+)\.'
     rf'multihead_attn\.(?P<sub>out_proj\.)?{_PARAM}',
     r'transformer_decoder.layers.\g<i>.cross_attn.attn.\g<sub>\g<param>'),
    (r'predictor\.transformer_cross_attention_layers\.(?P<i>\d+)\.norm\.'
     rf'{_PARAM}', r'transformer_decoder.layers.\g<i>.norms.0.\g<param>'),
    (r'predictor\.transformer_self_attention_layers\.(?P<i>\d+)\.'
     rf'self_attn\.(?P<sub>out_proj\.)?{_PARAM}',
     r'transformer_decoder.layers.\g<i>.self_attn.attn.\g<sub>\g<param>'),
    (r'predictor\.transformer_self_attention_layers\.(?P<i>\d+)\.norm\.'
     rf'{_PARAM}', r'transformer_decoder.layers.\g<i>.norms.1.\g<param>'),
    (rf'predictor\.transformer_ffn_layers\.(?P<i>\d+)\.linear1\.{_PARAM}',
     r'transformer_decoder.layers.\g<i>.ffn.layers.0.0.\g<param>'),
    (rf'predictor\.transformer_ffn_layers\.(?P<i>\d+)\.linear2\.{_PARAM}',
     r'transformer_decoder.layers.\g<i>.ffn.layers.1.\g<param>'),
    (rf'predictor\.transformer_ffn_layers\.(?P<i>\d+)\.norm\.{_PARAM}',
     r'transformer_decoder.layers.\g<i>.norms.2.\g<param>'),
    (rf'predictor\.decoder_norm\.{_PARAM}',
     r'transformer_decoder.post_norm.\g<param>'),
    (r'predictor\.(?P<name>query_feat|query_embed|level_embed)\.weight',
     r'transformer_decoder.\g<name>.weight'),
    (rf'predictor\.class_embed\.{_PARAM}',
     r'transformer_decoder.cls_embed.\g<param>'),
    (rf'predictor\.mask_embed\.layers\.(?P<i>\d+)\.{_PARAM}', _mask_embed),
    (rf'predictor\.input_proj\.(?P<k>\d+)\.{_PARAM}',
     r'transformer_decoder.input_proj.\g<k>.\g<param>'),
]

_COMPILED = [(re.compile(p), r) for p, r in HEAD_RULES]


def convert_head_state_dict(official: Mapping[str, Tensor]
                            ) -> Dict[str, Tensor]:
    """Rename official ``classifier.*`` tensors to :class:`MagNetHead` keys.

    Args:
        official (Mapping[str, Tensor]): keys starting with
            :data:`HEAD_KEY_PREFIX` (prefix included).

    Returns:
        OrderedDict[str, Tensor]: head keys without prefix (the caller adds
        ``decode_head.``), tensors unchanged.

    Raises:
        ValueError: listing the keys without the prefix or matching no rule.
        KeyError: if two official keys map to the same head key.
    """
    out: Dict[str, Tensor] = OrderedDict()
    unmatched: List[str] = []
    for key, value in official.items():
        if not key.startswith(HEAD_KEY_PREFIX):
            unmatched.append(key)
            continue
        name = key[len(HEAD_KEY_PREFIX):]
        for pattern, repl in _COMPILED:
            m = pattern.fullmatch(name)
            if m is not None:
                new = repl(m) if callable(repl) else m.expand(repl)
                break
        else:
            unmatched.append(key)
            continue
        if new in out:
            raise KeyError(f'{key} maps to {new}, which is already set')
        out[new] = value
    if unmatched:
        raise ValueError(
            f'{len(unmatched)} keys are not official MagNet head keys '
            f'(expected "{HEAD_KEY_PREFIX}pixel_decoder.*" / '
            f'"{HEAD_KEY_PREFIX}predictor.*" Mask2Former names): {unmatched}')
    return out
