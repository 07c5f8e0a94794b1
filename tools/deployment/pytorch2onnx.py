"""Export a MagNet model to ONNX (and check it against PyTorch).

Usage:
    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT OUT.onnx \\
        [--shape H W] [--num-tokens N] [--dynamic-batch] [--batch B] \\
        [--opset 18] [--no-verify] [--int8 OUT_INT8.onnx] [--json F]

CHECKPOINT is a checkpoint of the config's model (``none``: random
weights, pretrained ``init_cfg`` entries dropped; for benchmarks only).
The exported graph (opset >= 16, checked with ``onnx.checker``):

    inputs   image           (B, 3, H, W) float32  RGB, normalised by the
                                                   config's mean / std
             input_ids       (B, N) int64          token ids, padded to N
             attention_mask  (B, N) int64          1 = real token
    outputs  prob            (B, 1, H, W) float32  referent probability
             mask_logits     (B, 1, H, W) float32  its logits
             no_target_score (B,) float32          gRefCOCO heads only

``H x W`` is what the config's test pipeline and data preprocessor give
(``--shape`` overrides it), N the tokenizer's ``max_length``
(``--num-tokens``; with both the pipeline is not run); B is fixed
(``--batch``, default 1) unless ``--dynamic-batch``. The file's metadata
records these (``magnet.*`` keys). Run it with ``MagNetInferencer(CONFIG,
OUT.onnx, backend='onnxruntime')`` or ``demo/image_demo.py --backend
onnxruntime``.

With verification (the default) the exported file is run by ONNX Runtime on
new random inputs (another seed and text length than the export's) and
compared with the PyTorch model; the largest difference of ``prob`` is
printed and must be <= ``--tolerance`` (2e-5), else the tool fails.
``--int8`` also writes an int8 dynamically quantized copy (ONNX Runtime's
``quantize_dynamic``: int8 weights of MatMul / Gemm, activations quantized
at run time) and prints its deviation from PyTorch; it is never the
default and is reported, not checked against the tolerance.
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import sys
from typing import Optional, Tuple

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

from projects.magnet.utils import check_output_file, run_cli  # noqa: E402
from projects.magnet.utils.errors import (InvalidInputError,  # noqa: E402
                                          UserError)

TOLERANCE = 2e-5


class VerificationError(UserError, RuntimeError):
    """The exported graph does not reproduce the PyTorch model."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n', 2)[2])
    p.add_argument('config', help='model config file')
    p.add_argument('checkpoint', help='checkpoint (.pth), or "none"')
    p.add_argument('out', help='the ONNX file to write (.onnx)')
    p.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                   help='image input size (default: what the config\'s '
                   'test pipeline gives)')
    p.add_argument('--num-tokens', type=int,
                   help='text inputs\' length (default: the tokenizer\'s '
                   'max_length in the test pipeline); with --shape the '
                   'pipeline is not run (no tokenizer needed)')
    p.add_argument('--dynamic-batch', action='store_true',
                   help='a symbolic batch axis')
    p.add_argument('--batch', type=int, default=1,
                   help='batch of the example inputs / the static graph')
    p.add_argument('--opset', type=int, default=None,
                   help='ONNX opset (>= 16; default 18)')
    p.add_argument('--no-verify', dest='verify', action='store_false',
                   help='skip the ONNX Runtime vs PyTorch check')
    p.add_argument('--tolerance', type=float, default=TOLERANCE)
    p.add_argument('--int8', metavar='OUT_INT8.onnx',
                   help='also write an int8 dynamically quantized copy')
    p.add_argument('--json', metavar='FILE',
                   help='write the summary (I/O, differences) as JSON')
    return p.parse_args(argv)


def pipeline_input_shape(model, cfg) -> Tuple[Tuple[int, int], int]:
    """``(H, W)`` and the token count the model gets from the config's
    test pipeline and data preprocessor (run on a small dummy image)."""
    from mmengine.dataset import Compose, pseudo_collate

    from projects.magnet.apis.pipeline import build_inference_pipeline
    pipeline = build_inference_pipeline(cfg)
    loaded = pipeline.transforms[0](
        dict(img=np.zeros((97, 131, 3), np.uint8)))
    item = Compose(pipeline.transforms[1:])(dict(loaded, text='a thing'))
    data = model.data_preprocessor(pseudo_collate([item]), False)
    meta = data['data_samples'][0].metainfo
    return tuple(data['inputs'].shape[-2:]), len(meta['input_ids'])


def pytorch_outputs(model, image, ids, mask) -> dict:
    """The PyTorch model's graph outputs (its own inference cores)."""
    from projects.magnet.deployment import MagNetExportGraph
    graph = MagNetExportGraph(model).eval()
    with torch.inference_mode():
        out = graph(image, ids, mask)
    return dict(zip(graph.output_names, out))


def compare(onnx_file: str, model, shape, num_tokens: int, batch: int,
            seed: int = 1) -> dict:
    """Max abs difference of every output, ONNX Runtime vs PyTorch, on
    random inputs never used by the export."""
    from projects.magnet.deployment import make_session
    from projects.magnet.deployment.onnx_export import (_vocab_size,
                                                        example_inputs)
    real = max(1, num_tokens - 3)  # another text length than the export's
    image, ids, mask = example_inputs(shape, num_tokens, batch,
                                      _vocab_size(model), real, seed=seed)
    ref = pytorch_outputs(model, image, ids, mask)
    session = make_session(onnx_file)
    names = [o.name for o in session.get_outputs()]
    got = session.run(names, dict(image=image.numpy(), input_ids=ids.numpy(),
                                  attention_mask=mask.numpy()))
    return {n: float(np.abs(g - ref[n].numpy()).max())
            for n, g in zip(names, got) if n in ref}


def run(argv: Optional[list] = None) -> dict:
    """The tool on ``argv``; returns the summary (also ``--json``)."""
    args = parse_args(argv)
    check_output_file(args.out, ['.onnx'], inputs=[args.config,
                                                   args.checkpoint],
                      what='OUT')
    if args.int8:
        check_output_file(args.int8, ['.onnx'],
                          inputs=[args.config, args.checkpoint, args.out],
                          what='--int8')
    if args.json:
        check_output_file(args.json, ['.json'], what='--json')
    if args.batch < 1:
        raise InvalidInputError(f'--batch must be >= 1, got {args.batch}')
    if args.num_tokens is not None and args.num_tokens < 1:
        raise InvalidInputError(
            f'--num-tokens must be >= 1, got {args.num_tokens}')
    from projects.magnet.deployment import OPSET, export_onnx, require
    require('onnx')
    require('onnxscript')
    if args.verify or args.int8:
        require('onnxruntime')
    from projects.magnet.apis import init_model
    from projects.magnet.utils import load_config
    if args.checkpoint.lower() == 'none':
        # random weights, pretrained init_cfg entries dropped (nothing is
        # downloaded): for benchmarks
        from projects.magnet.engine.benchmarking import build_model
        cfg = load_config(args.config)
        model = build_model(cfg)
    else:
        model = init_model(args.config, args.checkpoint, device='cpu')
        cfg = model.cfg
    if args.shape and args.num_tokens:
        shape, num_tokens = tuple(args.shape), args.num_tokens
    else:
        shape, num_tokens = pipeline_input_shape(model, cfg)
        shape = tuple(args.shape or shape)
        num_tokens = args.num_tokens or num_tokens
    info = export_onnx(model, args.out, shape, num_tokens,
                       dynamic_batch=args.dynamic_batch, batch=args.batch,
                       opset=args.opset or OPSET)
    print(f'wrote {args.out} ({info["file_bytes"] / 2**20:.1f} MiB, opset '
          f'{info["opset"]}, onnx.checker passed)')
    for kind in ('inputs', 'outputs'):
        for name, dims in info[kind].items():
            print(f'  {kind[:-1]:6s} {name:16s} {dims}')
    summary = dict(out=args.out, **info)
    if args.verify:
        batch = 2 if args.dynamic_batch else args.batch
        diffs = compare(args.out, model, shape, num_tokens, batch)
        summary['max_abs_diff'] = diffs
        print(f'ONNX Runtime vs PyTorch on new inputs (batch {batch}): '
              + ', '.join(f'{k} {v:.2e}' for k, v in diffs.items()))
        if diffs['prob'] > args.tolerance:
            raise VerificationError(
                f'{args.out}: prob differs from PyTorch by '
                f'{diffs["prob"]:.3e} > --tolerance {args.tolerance}')
    if args.int8:
        from projects.magnet.deployment.quantize import quantize_int8
        quantize_int8(args.out, args.int8)
        diffs = compare(args.int8, model, shape, num_tokens,
                        2 if args.dynamic_batch else args.batch)
        summary['int8'] = dict(out=args.int8, max_abs_diff=diffs)
        print(f'wrote {args.int8} (int8 dynamic quantization); vs PyTorch: '
              + ', '.join(f'{k} {v:.2e}' for k, v in diffs.items()))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=1)
    return summary


def main() -> None:
    run()


if __name__ == '__main__':
    sys.exit(run_cli(main))
