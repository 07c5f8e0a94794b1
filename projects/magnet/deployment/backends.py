"""The optional packages of deployment: ``onnx`` (+ ``onnxscript``, the
exporter's) and ``onnxruntime``, each imported on first use with a clear
error when it is missing (``pip install -r requirements/deploy.txt``)."""
from __future__ import annotations

import importlib
from types import ModuleType

from ..utils.errors import UserError

__all__ = ['BackendNotInstalledError', 'require', 'BACKENDS']

#: inference backends: ``'pytorch'`` (the default) and ``'onnxruntime'``
BACKENDS = ('pytorch', 'onnxruntime')

_INSTALL = ('pip install -r requirements/deploy.txt (onnx, onnxscript, '
            'onnxruntime)')
_PURPOSE = {
    'onnx': 'checking and reading ONNX files',
    'onnxscript': 'exporting to ONNX (torch.onnx.export(dynamo=True))',
    'onnxruntime': 'the ONNX Runtime backend',
    'onnxruntime.quantization': 'int8 quantization with ONNX Runtime',
}


class BackendNotInstalledError(UserError, ImportError):
    """An optional deployment package is not installed."""


def require(name: str) -> ModuleType:
    """``import name`` or raise :class:`BackendNotInstalledError` naming
    what it is needed for and how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise BackendNotInstalledError(
            f'{name} is not installed; it is needed for '
            f'{_PURPOSE.get(name, "deployment")}. Install the optional '
            f'deployment extra: {_INSTALL}') from err
