"""Opt-in int8 dynamic quantization of an exported MagNet graph.

ONNX Runtime's ``quantize_dynamic`` (a maintained implementation; nothing to
write by hand): the weights of ``MatMul`` / ``Gemm`` become int8, their
activations are quantized at run time. The outputs change (measure with
``tools/deployment/pytorch2onnx.py --int8`` or ``benchmark.py --backend ort
--int8``): it is never the default.
"""
from __future__ import annotations

import os
import os.path as osp

from ..utils.errors import InputFileNotFoundError
from .backends import require

__all__ = ['quantize_int8']


def quantize_int8(src: str, dst: str, per_channel: bool = False) -> str:
    """Write an int8 dynamically quantized copy of ``src`` to ``dst``.

    Args:
        src (str): an exported float32 ``.onnx`` file.
        dst (str): the quantized file (weights inline below 2 GiB).
        per_channel (bool): one scale per output channel (ONNX Runtime
            refuses it for MatMuls whose weight is not a 2-D matrix, which
            this graph has: off by default).

    Returns:
        str: ``dst``.
    """
    q = require('onnxruntime.quantization')
    src, dst = os.fspath(src), os.fspath(dst)
    if not osp.isfile(src):
        raise InputFileNotFoundError(f'ONNX file not found: {src}')
    q.quantize_dynamic(src, dst, weight_type=q.QuantType.QInt8,
                       per_channel=per_channel,
                       op_types_to_quantize=['MatMul', 'Gemm'])
    return dst
