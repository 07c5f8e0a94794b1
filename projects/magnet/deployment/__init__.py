"""Deployment: ONNX export and the ONNX Runtime backend.

* :class:`MagNetExportGraph`: the inference graph as
  ``(image, input_ids, attention_mask) -> (prob, mask_logits
  [, no_target_score])``;
* :func:`export_onnx`: write it to an ONNX file (``tools/deployment/
  pytorch2onnx.py``);
* :class:`OnnxRuntimeSegmentor`: run that file with ONNX Runtime behind the
  segmentor's inference API (``MagNetInferencer(..., backend=
  'onnxruntime')``).

``onnx`` / ``onnxscript`` / ``onnxruntime`` are optional
(``requirements/deploy.txt``): importing this package does not import them;
using them without them installed raises :class:`BackendNotInstalledError`.
"""
from .backends import BACKENDS, BackendNotInstalledError, require
from .export_graph import (INPUT_NAMES, NO_TARGET_OUTPUT, OUTPUT_NAMES,
                           MagNetExportGraph, export_core)
from .onnx_export import OPSET, describe, export_onnx, read_metadata
from .ort_segmentor import GRAPH_LEVELS, OnnxRuntimeSegmentor, make_session

__all__ = [
    'BACKENDS', 'BackendNotInstalledError', 'require', 'INPUT_NAMES',
    'OUTPUT_NAMES', 'NO_TARGET_OUTPUT', 'MagNetExportGraph', 'export_core',
    'OPSET', 'export_onnx', 'describe', 'read_metadata', 'GRAPH_LEVELS',
    'OnnxRuntimeSegmentor', 'make_session'
]
