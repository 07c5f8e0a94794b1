"""Gradient health of a model in training: which trainable parameters get a
gradient, per-module gradient norms, how open the fusion gates are.

Used by :class:`GradientHealthHook` (every training) and by
``tools/analysis_tools/check_gradients.py`` (a few steps on demand). Written
here because neither mmengine nor PyTorch reports parameters that never
receive a gradient (DDP's ``find_unused_parameters`` only tolerates them)
or per-module norms.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from ..models.layers.gate import ResidualGate


def parameter_group(name: str, depth: int = 2) -> str:
    """The module group of a parameter name for per-module reports.

    The first ``depth`` non-numeric components of the module path, each with
    the list index that follows it, e.g. (depth 2)
    ``backbone.stages.0.blocks.1.attn.w_msa.qkv.weight`` ->
    ``backbone.stages.0``; ``lang_proj.weight`` -> ``lang_proj``.
    """
    parts = name.split('.')[:-1] or name.split('.')
    out, named = [], 0
    for part in parts:
        if part.isdigit():
            if named == 0:
                break
            out.append(part)
            continue
        if named == depth:
            break
        out.append(part)
        named += 1
    return '.'.join(out)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP / FSDP / mmengine wrapper."""
    return getattr(model, 'module', model)


def trainable_parameters(model: nn.Module) -> 'OrderedDict[str, nn.Parameter]':
    """name -> parameter for every parameter with ``requires_grad``."""
    return OrderedDict((n, p) for n, p in unwrap(model).named_parameters()
                       if p.requires_grad)


class GradientRecorder:
    """Record the gradient every trainable parameter receives.

    While active (a context manager, or :meth:`start` / :meth:`stop`), a
    post-accumulate-grad hook on each trainable parameter stores the norm of
    its ``.grad`` after every backward pass, so it works whatever the
    optimizer wrapper does between backward and ``step`` (mmengine's
    ``OptimWrapper.update_params`` zeroes the gradients before any hook
    could read them).

    Attributes:
        norms (dict): name -> L2 norm of the parameter's gradient after the
            last backward pass that reached it (0.0 if all zeros).
        steps (dict): name -> number of backward passes that reached it.
    """

    def __init__(self, model: nn.Module) -> None:
        self.params = trainable_parameters(model)
        self.norms: Dict[str, float] = {}
        self.steps: Dict[str, int] = {}
        self._handles: List = []

    def _hook(self, name: str):

        def record(param: torch.Tensor) -> None:
            if param.grad is None:
                return
            self.norms[name] = float(param.grad.detach().float().norm())
            self.steps[name] = self.steps.get(name, 0) + 1

        return record

    def start(self) -> 'GradientRecorder':
        for name, param in self.params.items():
            self._handles.append(
                param.register_post_accumulate_grad_hook(self._hook(name)))
        return self

    def stop(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> 'GradientRecorder':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        self.norms, self.steps = {}, {}

    def without_gradient(self) -> List[str]:
        """Trainable parameters that got no gradient or only zeros in every
        recorded pass."""
        return [n for n in self.params
                if self.norms.get(n, 0.0) == 0.0]

    def nonfinite(self) -> List[str]:
        return [n for n, v in self.norms.items() if not math.isfinite(v)]

    def group_norms(self, depth: int = 2) -> 'OrderedDict[str, float]':
        """Per-module-group L2 norm of the recorded gradients."""
        groups: 'OrderedDict[str, float]' = OrderedDict()
        for name in self.params:
            key = parameter_group(name, depth)
            groups[key] = groups.get(key, 0.0) + self.norms.get(name,
                                                                0.0)**2
        return OrderedDict((k, math.sqrt(v)) for k, v in groups.items())


class GateProbe:
    """Record how open every :class:`ResidualGate` is in forward passes.

    While active, a forward hook on each gate stores the mean of
    ``|tanh(fc2(act(fc1(r))))|`` over its input (0: closed; 1: fully open),
    computed again from the gate's input without gradient.

    Attributes:
        values (dict): gate module name -> mean |gate| of the last forward.
    """

    def __init__(self, model: nn.Module) -> None:
        self.gates = OrderedDict(
            (n, m) for n, m in unwrap(model).named_modules()
            if isinstance(m, ResidualGate))
        self.values: Dict[str, float] = {}
        self._handles: List = []

    def _hook(self, name: str):

        def record(module: ResidualGate, args: Tuple, output) -> None:
            with torch.no_grad():
                self.values[name] = float(
                    module.gate_values(args[1]).abs().float().mean())

        return record

    def __enter__(self) -> 'GateProbe':
        for name, gate in self.gates.items():
            self._handles.append(gate.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def gate_weight_norms(model: nn.Module) -> 'OrderedDict[str, float]':
    """gate module name -> ``||fc1|| * ||fc2||`` (Frobenius), a weight-only
    openness measure: 0 means the gate is closed for every input."""
    out: 'OrderedDict[str, float]' = OrderedDict()
    for name, m in unwrap(model).named_modules():
        if isinstance(m, ResidualGate):
            out[name] = float(m.fc1.weight.detach().norm() *
                              m.fc2.weight.detach().norm())
    return out


def format_table(rows: Iterable[Tuple], header: Tuple[str, ...]) -> str:
    """A plain-text table (for logs and the command-line tool)."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    lines = ['  '.join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append('  '.join('-' * w for w in widths))
    lines += ['  '.join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return '\n'.join(lines)


def frozen_parameters(model: nn.Module) -> List[str]:
    """Names of the parameters with ``requires_grad=False``."""
    return [n for n, p in unwrap(model).named_parameters()
            if not p.requires_grad]


def random_training_batch(batch: int = 2,
                          shape: Sequence[int] = (128, 128),
                          num_tokens: int = 20,
                          vocab_size: int = 30522,
                          seed: int = 0,
                          no_target_every: int = 0) -> Dict[str, Any]:
    """A training batch never seen by any dataset, as a dataloader gives it
    to ``model.train_step``: uint8 images (3, H, W) and data samples with a
    tokenised expression (``[CLS]`` words ``[SEP]`` then padding, 3 to
    ``num_tokens`` real slots, word ids drawn from the vocabulary above the
    special tokens) and a random ellipse as the ground-truth mask (always
    some foreground and some background).

    Every sample carries metainfo ``no_target`` (what a GRES dataset
    gives). With ``no_target_every=k > 0``, samples ``k-1, 2k-1, ...`` are
    no-target expressions (empty mask, ``no_target=True``); sample 0 always
    has a target, so a model with a no-target decision trains both its
    decision and its masks on one batch."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = np.random.default_rng(seed)
    h, w = int(shape[0]), int(shape[1])
    inputs, samples = [], []
    for i in range(batch):
        inputs.append(torch.from_numpy(
            gen.integers(0, 256, (3, h, w), dtype=np.uint8)))
        n = int(gen.integers(3, num_tokens + 1))
        ids = np.zeros(num_tokens, dtype=np.int64)
        ids[1:n - 1] = gen.integers(1000, vocab_size, n - 2)
        ids[0], ids[n - 1] = 101, 102  # [CLS], [SEP] of BERT vocabularies
        mask = (np.arange(num_tokens) < n).astype(np.int64)
        yy, xx = np.mgrid[:h, :w]
        cy, cx = gen.uniform(0.25, 0.75, 2) * (h, w)
        ry, rx = gen.uniform(0.1, 0.3, 2) * (h, w)
        gt = (((yy - cy) / ry)**2 + ((xx - cx) / rx)**2 <= 1)
        no_target = no_target_every > 0 and \
            i % no_target_every == no_target_every - 1 and i > 0
        if no_target:
            gt[:] = False
        sample = SegDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
            input_ids=ids, attention_mask=mask, no_target=bool(no_target),
            text=f'random expression {i}'))
        sample.gt_sem_seg = PixelData(
            data=torch.from_numpy(gt[None].astype(np.int64)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def check_gradients(model: nn.Module, optim_wrapper,
                    batches: Iterable[Dict[str, Any]],
                    depth: int = 2) -> Dict[str, Any]:
    """Train ``model`` on ``batches`` (``model.train_step``: the training
    path, optimizer update included) and report its gradient health.

    Returns:
        dict: ``steps``; ``trainable`` / ``frozen`` (parameter counts);
        ``without_gradient`` (trainable parameters that got no gradient or
        only zeros in every step); ``nonfinite``; ``group_norms`` (module
        group -> gradient norm of the last step); ``gates`` (gate ->
        mean |gate| of the last forward); ``gate_weights`` (gate ->
        ``|fc1| |fc2|`` after the steps); ``frozen_inert`` (name -> reason,
        from the segmentor, if it declares them); ``losses`` (last step).
    """
    model.train()
    recorder = GradientRecorder(model)
    got = set()
    steps, log_vars = 0, {}
    with recorder, GateProbe(model) as probe:
        for data in batches:
            recorder.reset()
            log_vars = model.train_step(data, optim_wrapper)
            got.update(n for n, v in recorder.norms.items() if v != 0.0)
            steps += 1
    return dict(
        steps=steps,
        trainable=len(recorder.params),
        frozen=len(frozen_parameters(model)),
        without_gradient=[n for n in recorder.params if n not in got],
        nonfinite=recorder.nonfinite(),
        group_norms=dict(recorder.group_norms(depth)),
        gates=dict(probe.values),
        gate_weights=dict(gate_weight_norms(model)),
        frozen_inert=dict(getattr(unwrap(model), 'frozen_inert', {})),
        losses={k: float(v.detach()) if torch.is_tensor(v) else float(v)
                for k, v in log_vars.items()})
