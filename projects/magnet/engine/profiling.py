"""Where the time of a MagNet forward or training step goes: the pieces of
``.dev_scripts/profile_model.py`` (developer tool).

* :func:`time_modules`: inclusive wall time per module (forward hooks,
  repeated modules folded: ``backbone.stages.*.blocks.*``);
* :func:`profile_ops`: the top ATen ops by self CPU time
  (``torch.profiler``) and the split into matrix-product kernels and the
  rest, :func:`matrix_split` its arithmetic;
* :class:`PartTimer` / :func:`attach_timers`: inclusive wall time of named
  MagNet methods within ``model.loss`` (vision / language stages, fusion,
  head, objectives), :func:`step_record` / :func:`median_record` the
  per-step records built from them.
"""
from __future__ import annotations

import collections
import re
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch


def module_key(name: str) -> str:
    """``backbone.stages.2.blocks.11.attn`` -> ``backbone.stages.*.blocks.*.
    attn`` (repeated modules are summed)."""
    return re.sub(r'\.\d+(?=\.|$)', '.*', name)


def time_modules(model: torch.nn.Module, call: Callable[[], object],
                 depth: int, repeat: int
                 ) -> Tuple[Dict[str, float], Dict[str, int], float]:
    """Summed inclusive wall time per folded module name, per call."""
    totals = collections.defaultdict(float)
    calls = collections.Counter()
    starts = {}

    def pre(module, args):
        starts[id(module)] = time.perf_counter()

    def post_for(key):
        def post(module, args, output):
            totals[key] += time.perf_counter() - starts.pop(id(module))
            calls[key] += 1
        return post

    handles = []
    for name, module in model.named_modules():
        if name and name.count('.') < depth:
            handles.append(module.register_forward_pre_hook(pre))
            handles.append(
                module.register_forward_hook(post_for(module_key(name))))
    walls = []
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            call()
            walls.append(time.perf_counter() - start)
    finally:
        for handle in handles:
            handle.remove()
    return ({k: v / repeat for k, v in totals.items()},
            {k: v // repeat for k, v in calls.items()},
            statistics.median(walls))


# ATen ops that run the matrix products FlopCounterMode counts
MATRIX_OPS = frozenset({
    'aten::addmm', 'aten::mm', 'aten::bmm', 'aten::baddbmm',
    'aten::_scaled_dot_product_flash_attention_for_cpu',
    'aten::mkldnn_convolution', 'aten::convolution_overrideable',
    'aten::_convolution', 'aten::thnn_conv2d'
})


def profile_ops(call: Callable[[], object],
                top: int) -> Tuple[List[dict], float, float]:
    """The ``top`` ops by self CPU time of one call, and the call's split
    into matrix-product kernels and the rest (seconds)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        call()
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows) or 1.0
    matrix = sum(e.self_cpu_time_total for e in rows if e.key in MATRIX_OPS)
    ops = [
        dict(op=e.key, self_s=round(e.self_cpu_time_total / 1e6, 4),
             share=round(e.self_cpu_time_total / total, 4), calls=e.count)
        for e in rows[:top]
    ]
    return ops, matrix / 1e6, (total - matrix) / 1e6


def matrix_split(matrix_s: float, other_s: float, gflop: float,
                 peak_gflop_s: float) -> dict:
    """Matrix products vs the rest of one profiled call."""
    return dict(
        matrix_gflop=round(gflop, 2),
        matrix_s=round(matrix_s, 4),
        other_s=round(other_s, 4),
        matrix_share=round(matrix_s / max(matrix_s + other_s, 1e-9), 4),
        matrix_gflop_s=round(gflop / max(matrix_s, 1e-9), 1),
        matrix_at_peak_s=round(gflop / peak_gflop_s, 4))


#: ``forward_parts_s`` keys, in the order of a step.
FORWARD_PARTS = ('vision_stages', 'language_stages', 'vision_fusion',
                 'language_fusion', 'decode_head', 'alignment_loss',
                 'mask_grounding_pass', 'other')
ENCODE_PARTS = FORWARD_PARTS[:4]
#: (attribute path of the object, method, part); the object may be absent.
TIMED_METHODS = (
    ('backbone', 'embed', 'vision_stages'),
    ('backbone', 'forward_blocks', 'vision_stages'),
    ('text_encoder', 'embed', 'language_stages'),
    ('text_encoder', 'forward_stage', 'language_stages'),
    ('backbone', 'fuse', 'vision_fusion'),
    ('text_encoder', 'fuse', 'language_fusion'),
    ('decode_head', 'loss', 'decode_head'),
    ('decode_head', 'forward', 'decode_head'),
    ('decode_head', 'loss_by_feat', 'decode_head'),
    ('', 'sentence_embedding', 'alignment_loss'),
    ('alignment_loss', 'forward', 'alignment_loss'),
    ('', 'encode', 'encode'),
    ('mask_grounding', 'loss', 'head'),
)
#: the call that switches the context of the parts inside it
MG_CALL = ('', 'mask_grounding_loss', 'mask_grounding_pass')


class PartTimer:
    """Inclusive wall time of named method calls, by (context, part).

    Methods are wrapped on the instance (an attribute that shadows the
    class's method) and restored by :meth:`remove`. A part's nested calls
    (``decode_head.loss`` calling ``forward``) count once. A call wrapped
    with a ``context`` runs its inner calls in that context; its own time
    goes to the context it was called from.
    """

    def __init__(self):
        self.context = 'main'
        self.totals = collections.defaultdict(float)
        self._depth = collections.Counter()
        self._saved = []

    @property
    def attached(self) -> bool:
        return bool(self._saved)

    def wrap(self, obj: object, method: str, part: str,
             context: Optional[str] = None) -> None:
        original = getattr(obj, method)

        def timed(*args, **kwargs):
            outer, caller = self._depth[part] == 0, self.context
            self._depth[part] += 1
            if context:
                self.context = context
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.context = caller
                self._depth[part] -= 1
                if outer:
                    self.totals[f'{caller}.{part}'] += elapsed

        self._saved.append((obj, method, vars(obj).get(method),
                            method in vars(obj)))
        setattr(obj, method, timed)

    def remove(self):
        for obj, method, value, had in reversed(self._saved):
            if had:
                setattr(obj, method, value)
            else:
                delattr(obj, method)
        self._saved.clear()

    def pop(self) -> dict:
        """The totals so far (then cleared)."""
        totals = dict(self.totals)
        self.totals.clear()
        return totals


def _attr(model, path: str):
    obj = model
    for name in filter(None, path.split('.')):
        obj = getattr(obj, name, None)
    return obj


def attach_timers(model: torch.nn.Module) -> PartTimer:
    """A :class:`PartTimer` on the MagNet methods of ``TIMED_METHODS``."""
    missing = [m for m in ('encode', 'mask_grounding_loss')
               if not hasattr(model, m)]
    if missing:
        raise TypeError(f'{type(model).__name__} is not a MagNet segmentor '
                        f'(no {missing})')
    timer = PartTimer()
    for path, method, part in TIMED_METHODS:
        obj = _attr(model, path)
        if obj is not None:
            timer.wrap(obj, method, part)
    timer.wrap(model, MG_CALL[1], MG_CALL[2], context='mask_grounding')
    return timer


def step_record(times: dict, parts: dict, with_mg: bool,
                with_align: bool) -> dict:
    """One step's timings from its phase times and its part totals."""
    def part(key):
        return parts.get(key, 0.0)

    forward = {name: part(f'main.{name}') for name in FORWARD_PARTS[:-1]}
    if not with_align:
        forward['alignment_loss'] = None
    if not with_mg:
        forward['mask_grounding_pass'] = None
    forward['other'] = times['forward_s'] - sum(
        v for v in forward.values() if v is not None)
    rec = dict(times, forward_parts_s=forward,
               main_encode_s=part('main.encode'), mask_grounding=None)
    if with_mg:
        mg = dict(encode_s=part('mask_grounding.encode'),
                  head_s=part('mask_grounding.head'),
                  encode_parts_s={
                      name: part(f'mask_grounding.{name}')
                      for name in ENCODE_PARTS
                  })
        mg['other_s'] = (forward['mask_grounding_pass'] - mg['encode_s'] -
                         mg['head_s'])
        rec['mask_grounding'] = mg
    return rec


def median_record(records: list) -> object:
    """Key-wise median of step records (nested dicts, None kept)."""
    first = records[0]
    if isinstance(first, dict):
        return {k: median_record([r[k] for r in records]) for k in first}
    if first is None:
        return None
    return round(statistics.median(records), 5)
