"""Rename the keys of a state dict by ordered regular-expression rules."""
from __future__ import annotations

import re
from typing import Callable, Dict, List, Mapping, Sequence, Tuple, Union

import torch

StateDict = Dict[str, torch.Tensor]
#: (regex matched against the whole key, replacement template or callable on
#: the match, drop trailing singleton dims of a 1x1 conv weight)
KeyRule = Tuple[str, Union[str, Callable[[re.Match], str]], bool]

__all__ = ['KeyRule', 'apply_key_rules', 'squeeze_conv1x1']


def squeeze_conv1x1(v: torch.Tensor) -> torch.Tensor:
    """A 1x1 ``Conv1d``/``Conv2d`` weight (O, I, 1[, 1]) as a Linear (O, I)."""
    while v.dim() > 2 and v.shape[-1] == 1:
        v = v[..., 0]
    return v


def apply_key_rules(state: Mapping[str, torch.Tensor],
                    rules: Sequence[KeyRule], src_prefix: str,
                    dst_prefix: str, out: StateDict,
                    unmatched: List[str]) -> None:
    """Write ``dst_prefix + renamed key`` into ``out`` for every key that a
    rule matches (first match wins); others go to ``unmatched`` (with
    ``src_prefix``)."""
    compiled = [(re.compile(p + '$'), r, s) for p, r, s in rules]
    for key, value in state.items():
        for pattern, repl, squeeze in compiled:
            m = pattern.match(key)
            if m:
                new = repl(m) if callable(repl) else m.expand(repl)
                out[dst_prefix + new] = (squeeze_conv1x1(value)
                                         if squeeze else value)
                break
        else:
            unmatched.append(src_prefix + key)
