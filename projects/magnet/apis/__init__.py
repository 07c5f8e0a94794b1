"""Inference API: build a model, run it on your own image and expressions.

* :mod:`.model`: :func:`init_model`, :func:`check_checkpoint_matches`;
* :mod:`.pipeline`: :func:`build_inference_pipeline` (the config's test
  pipeline with :class:`LoadInferenceImage`), :func:`check_expressions`,
  :func:`load_image`;
* :mod:`.inferencer`: :class:`MagNetInferencer` (an mmengine
  ``BaseInferencer``), :func:`inference_model`;
* :mod:`.result`: :class:`RefSegResult`.
"""
from .inferencer import OUTPUT_SIZES, MagNetInferencer, inference_model
from .model import check_checkpoint_matches, init_model
from .pipeline import (ImageInput, build_inference_pipeline,
                       check_expressions, config_test_pipeline, load_image)
from .result import RefSegResult

__all__ = [
    'ImageInput', 'MagNetInferencer', 'OUTPUT_SIZES', 'RefSegResult',
    'build_inference_pipeline', 'check_checkpoint_matches',
    'check_expressions', 'config_test_pipeline',
    'inference_model', 'init_model', 'load_image'
]
