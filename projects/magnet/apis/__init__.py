"""Inference API: build a model, run it on your own image and expressions."""
from .inference import (ImageInput, MagNetInferencer, RefSegResult,
                        build_inference_pipeline, check_expressions,
                        inference_model, init_model, load_image)

__all__ = [
    'ImageInput', 'MagNetInferencer', 'RefSegResult',
    'build_inference_pipeline', 'check_expressions', 'inference_model',
    'init_model', 'load_image'
]
