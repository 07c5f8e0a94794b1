"""Parameters that no loss can move, declared by the modules that own them.

A module lists its own inert parameters in an ``inert_parameters()`` method
returning ``{relative name: reason}``; :func:`collect_inert_parameters`
gathers them over a model with full names. Two kinds exist in MagNet:

* parameters kept only so that official checkpoints load strictly, whose
  output reaches nothing (``backbone.norm0..3`` when the alignment module
  feeds the head, the last vision stage's gate, the language fusions'
  LayerNorm);
* parameters inert by design: a key bias before a softmax over the keys
  adds the same ``q . b`` to every logit of a query, and a bias followed by
  an InstanceNorm over the axis it is constant along is subtracted again.

Their gradient is zero (or float noise, ~1e-10); the segmentor freezes
them (``MagNet(freeze_inert=True)``) so that every parameter left trainable
is one that training moves, which also lets DDP run with
``find_unused_parameters=False``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterable

import torch.nn as nn

#: reason strings, shared by the modules that declare them
KEY_BIAS = 'key bias before a softmax over the keys (adds a constant ' \
    'per query)'
UNUSED = 'not in the forward pass (kept so that official checkpoints load ' \
    'strictly)'


def param_names(module: nn.Module, prefix: str = '') -> Iterable[str]:
    """The parameter names of ``module``, prefixed by ``prefix``."""
    dot = prefix + '.' if prefix else ''
    return [dot + n for n, _ in module.named_parameters()]


def attention_key_biases(layers: Iterable[nn.Module],
                         prefix: str) -> Dict[str, str]:
    """``{prefix.i.attention.self.key.bias: reason}`` of transformers
    ``BertLayer``s (their key bias is inert: a softmax follows)."""
    out = {}
    for i, layer in enumerate(layers):
        key = getattr(getattr(getattr(layer, 'attention', None), 'self',
                              None), 'key', None)
        if isinstance(key, nn.Linear) and key.bias is not None:
            out[f'{prefix}.{i}.attention.self.key.bias'] = KEY_BIAS
    return out


def collect_inert_parameters(model: nn.Module) -> 'OrderedDict[str, str]':
    """Full name -> reason for every inert parameter that a module of
    ``model`` (``model`` included) declares."""
    params = dict(model.named_parameters())
    out: 'OrderedDict[str, str]' = OrderedDict()
    for prefix, module in model.named_modules():
        declare = getattr(module, 'inert_parameters', None)
        if not callable(declare):
            continue
        dot = prefix + '.' if prefix else ''
        for name, reason in declare().items():
            full = dot + name
            if full not in params:
                raise KeyError(f'{type(module).__name__} declares an inert '
                               f'parameter {name!r} that it does not have')
            out.setdefault(full, reason)
    return out
