"""Export a MagNet segmentor to ONNX: :func:`export_onnx`.

The graph is :class:`~.export_graph.MagNetExportGraph` (inputs and outputs
documented there), exported with PyTorch's ``torch.export``-based ONNX
exporter (``torch.onnx.export(dynamo=True)``) at opset :data:`OPSET`, the
deformable attention on its ``grid_sample`` core (ONNX ``GridSample``, no
custom operator), and checked with ``onnx.checker`` (by path, so that a
model with external data is checked too).

Shapes are static except, with ``dynamic_batch=True``, the batch axis: the
Swin window layout, the deformable attention's levels and the text length
are fixed by the config's test size and tokenizer ``max_length``, which the
config's test pipeline always produces (``Resize(keep_ratio=False)``).

The file's ``metadata_props`` record what a runtime needs to feed it
(:data:`META_KEYS`): the image size, the token count, the output names,
whether the batch axis is dynamic, and the head's ``align_corners``.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import os.path as osp
import warnings
from typing import Dict, Optional, Sequence, Tuple

import torch

from ..utils.errors import InvalidInputError
from .backends import require
from .export_graph import INPUT_NAMES, MagNetExportGraph, export_core

__all__ = ['OPSET', 'META_KEYS', 'export_onnx', 'read_metadata',
           'example_inputs']

#: the ONNX opset of the export (>= 16 has ``GridSample``; 18 is the first
#: the exporter implements natively)
OPSET = 18
#: ``metadata_props`` written by :func:`export_onnx`
META_KEYS = ('magnet.image_shape', 'magnet.num_tokens', 'magnet.outputs',
             'magnet.dynamic_batch', 'magnet.align_corners')
#: weights above this size go to an external ``<file>.data`` (protobuf's
#: 2 GiB limit); below it the ``.onnx`` file is self-contained
EXTERNAL_DATA_BYTES = 1800 * 2**20


def example_inputs(shape: Tuple[int, int], num_tokens: int, batch: int = 1,
                   vocab_size: int = 30522, real_tokens: Optional[int] = None,
                   seed: int = 0) -> Tuple[torch.Tensor, ...]:
    """Random ``(image, input_ids, attention_mask)`` of the graph's shapes:
    a normalised image ``(B, 3, H, W)`` and ``real_tokens`` (default: half
    of ``num_tokens``) real tokens per row, the rest padding."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 3, *shape, generator=g)
    # word ids above BERT's special / unused range when the vocabulary has
    # one (ids < 1000 of bert-base-uncased), any id of a tiny vocabulary
    low = 1000 if vocab_size > 2000 else 1
    ids = torch.randint(low, vocab_size, (batch, num_tokens), generator=g)
    real = max(1, num_tokens // 2) if real_tokens is None else real_tokens
    mask = torch.zeros(batch, num_tokens, dtype=torch.long)
    mask[:, :real] = 1
    ids = ids * mask
    return image, ids, mask


def _vocab_size(segmentor: torch.nn.Module) -> int:
    """The text encoder's vocabulary size (its word embedding rows)."""
    text = getattr(segmentor, 'text_encoder', segmentor)
    for name, module in text.named_modules():
        if name.endswith('word_embeddings') and isinstance(
                module, torch.nn.Embedding):
            return int(module.num_embeddings)
    raise InvalidInputError('the model has no word embeddings '
                            '(text_encoder.*.word_embeddings)')


def export_onnx(segmentor: torch.nn.Module,
                out_file: str,
                shape: Tuple[int, int],
                num_tokens: int,
                dynamic_batch: bool = False,
                batch: int = 1,
                opset: int = OPSET,
                verbose: bool = False) -> Dict[str, object]:
    """Export ``segmentor``'s inference graph to ``out_file``.

    Args:
        segmentor (nn.Module): a built MagNet (an inference build in eval
            mode; moved to the CPU for the export).
        out_file (str): the ``.onnx`` file to write.
        shape (tuple[int, int]): the image input's ``(H, W)``.
        num_tokens (int): the text inputs' length (tokenizer
            ``max_length``).
        dynamic_batch (bool): a symbolic batch axis on every input and
            output (otherwise fixed to ``batch``).
        batch (int): the batch of the graph without ``dynamic_batch``
            (with it, of the example inputs, at least 2).
        opset (int): ONNX opset, >= 16.
        verbose (bool): keep the exporter's progress output.

    Returns:
        dict: ``inputs`` / ``outputs`` (name -> shape, with ``'batch'`` for
        a dynamic axis), ``opset``, ``external_data`` (bool) and
        ``file_bytes``.

    Raises:
        InvalidInputError: a shape, token count or opset out of range.
        BackendNotInstalledError: onnx / onnxscript are not installed.
    """
    if opset < 16:
        raise InvalidInputError(
            f'opset must be >= 16 (ONNX GridSample), got {opset}')
    if len(shape) != 2 or min(shape) < 32:
        raise InvalidInputError(
            f'shape must be (H, W) with both >= 32, got {tuple(shape)}')
    if num_tokens < 1 or batch < 1:
        raise InvalidInputError(
            f'num_tokens and batch must be >= 1, got {num_tokens}, {batch}')
    onnx = require('onnx')
    require('onnxscript')
    segmentor = segmentor.cpu().eval()
    graph = MagNetExportGraph(segmentor).eval()
    # a dynamic axis needs an example of size >= 2 (torch.export
    # specialises sizes 0 and 1)
    example_batch = max(batch, 2) if dynamic_batch else batch
    args = example_inputs(tuple(shape), num_tokens, example_batch,
                          _vocab_size(segmentor))
    dynamic_shapes = None
    if dynamic_batch:
        axis = torch.export.Dim('batch', min=1, max=1024)
        dynamic_shapes = tuple({0: axis} for _ in INPUT_NAMES)
    weight_bytes = sum(p.numel() * p.element_size()
                       for p in segmentor.parameters())
    external = weight_bytes > EXTERNAL_DATA_BYTES
    out_file = os.fspath(out_file)
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    quiet = contextlib.nullcontext() if verbose else _quiet()
    with quiet, export_core(segmentor), torch.no_grad():
        # one eager call first: shape-dependent tables the model caches per
        # input size (Swin window layouts) are computed from real tensors,
        # and the exporter sees them as constants
        graph(*args)
        torch.onnx.export(
            graph, args, out_file,
            input_names=list(INPUT_NAMES),
            output_names=list(graph.output_names),
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            external_data=external,
            optimize=True)
    onnx.checker.check_model(out_file)
    model = onnx.load(out_file, load_external_data=False)
    meta = {
        'magnet.image_shape': f'{shape[0]},{shape[1]}',
        'magnet.num_tokens': str(num_tokens),
        'magnet.outputs': ','.join(graph.output_names),
        'magnet.dynamic_batch': str(bool(dynamic_batch)).lower(),
        'magnet.align_corners': str(bool(getattr(
            segmentor.decode_head, 'align_corners', False))).lower(),
    }
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = (
        'MagNet referring segmentation: image (B,3,H,W) float32 normalised '
        'RGB, input_ids (B,N) int64, attention_mask (B,N) int64 -> prob '
        '(B,1,H,W), mask_logits (B,1,H,W)' +
        (', no_target_score (B,)' if graph.with_no_target else ''))
    # the proto is rewritten with its metadata; external weights (loaded
    # with load_external_data=False) stay in their file, untouched
    with open(out_file, 'wb') as f:
        f.write(model.SerializeToString())
    onnx.checker.check_model(out_file)
    return describe(out_file)


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's progress lines, warnings and the graph
    optimiser's log."""
    logger = logging.getLogger('onnxscript')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(
                io.StringIO()):
            warnings.simplefilter('ignore')
            yield
    finally:
        logger.setLevel(level)


def read_metadata(onnx_file: str) -> Dict[str, str]:
    """The ``metadata_props`` of an ONNX file (weights not read)."""
    onnx = require('onnx')
    model = onnx.load(onnx_file, load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _shape_of(value_info) -> Sequence:
    return [d.dim_param or d.dim_value for d in
            value_info.type.tensor_type.shape.dim]


def describe(onnx_file: str) -> Dict[str, object]:
    """Inputs and outputs (name -> shape) of an exported file, its opset,
    whether its weights are external, and its size in bytes."""
    onnx = require('onnx')
    model = onnx.load(onnx_file, load_external_data=False)
    external = any(
        t.data_location == onnx.TensorProto.EXTERNAL
        for t in model.graph.initializer)
    size = osp.getsize(onnx_file)
    data = onnx_file + '.data'
    if external and osp.isfile(data):
        size += osp.getsize(data)
    return dict(
        inputs={i.name: _shape_of(i) for i in model.graph.input},
        outputs={o.name: _shape_of(o) for o in model.graph.output},
        opset=max(o.version for o in model.opset_import
                  if o.domain in ('', 'ai.onnx')),
        external_data=external, file_bytes=size,
        metadata={p.key: p.value for p in model.metadata_props})
