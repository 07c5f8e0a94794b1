"""Compare the project's model with outputs of the official implementation.

A fixture directory holds ``config.json`` (the official run's sizes),
``official_tiny.pth`` (official checkpoint format), ``inputs.pt`` and
``outputs.pt`` (final outputs and intermediates of the official code). See
``tests/data/official_small/README.md`` for the tensor names.
"""
from __future__ import annotations

import json
import os.path as osp
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from projects.magnet.compat.checkpoint import load_weights
from projects.magnet.converters.official import convert_official_checkpoint
from projects.magnet.converters.official_config import \
    model_cfg_from_official_args

#: max abs diff allowed: final outputs / everything else
FINAL_TOLERANCE = {'pred_masks': 2e-5, 'prob': 2e-5}
INTERMEDIATE_TOLERANCE = 1e-4


def build_from_fixture(fixture_dir: str,
                       checkpoint: str = 'official_tiny.pth'):
    """Build the model of ``config.json`` and load the converted weights."""
    init_default_scope('mmseg')
    with open(osp.join(fixture_dir, 'config.json')) as f:
        config = json.load(f)
    model = MODELS.build(model_cfg_from_official_args(config['model']))
    state = convert_official_checkpoint(
        load_weights(osp.join(fixture_dir, checkpoint)))
    model.load_state_dict(state, strict=True)
    return model.eval()


def trace_official_outputs(model, inputs: Dict[str, torch.Tensor]
                           ) -> Dict[str, torch.Tensor]:
    """Run ``model`` on fixture inputs; return tensors named as the official
    fixture names them (final outputs and per-stage intermediates), recorded
    with forward hooks so the model's own forward runs unchanged."""
    rec: Dict[str, torch.Tensor] = {}
    hooks = []
    backbone, text = model.backbone, model.text_encoder
    num_stages = len(backbone.stages)

    def save(name):
        def hook(module, args, out):
            rec[name] = out[0] if isinstance(out, tuple) else out
        return hook

    def save_norm(fusion, name):
        def hook(module, args):
            rec[name] = fusion.residual_norm(args[1])
        return hook

    for s in range(num_stages):
        k = s + 1
        fusion = text.fusions[s]
        hooks += [
            backbone.stages[s].blocks[-1].register_forward_hook(
                save(f'vis_stage{k}')),
            text.bert.encoder.layer[text.stage_ends[s] - 1]
            .register_forward_hook(save(f'lang_stage{k}')),
            fusion.register_forward_hook(
                save('l4' if k == num_stages else f'l{k}_updated')),
            fusion.gate.register_forward_pre_hook(
                save_norm(fusion, f'l{k}_residual_norm')),
        ]
        if backbone.stages[s].downsample is not None:
            hooks.append(backbone.stages[s].downsample.register_forward_hook(
                save(f'i{k}_next')))
    try:
        with torch.no_grad():
            enc = model.encode(inputs['image'], inputs['input_ids'],
                               inputs['attention_mask'], return_words=True)
            head = model.decode_head(enc['feats'])
    finally:
        for h in hooks:
            h.remove()
    for s, feat in enumerate(enc['feats']):
        rec[f's{s + 1}'] = feat
    rec.update(pred_masks=head['pred_masks'],
               pred_logits=head['pred_logits'],
               mask_features=head['mask_features'])
    up = F.interpolate(head['pred_masks'], size=inputs['image'].shape[-2:],
                       mode='bilinear', align_corners=True)
    rec['prob'] = up.sigmoid()
    rec['mask'] = rec['prob'] > 0.5
    return rec


def compare_with_fixture(fixture_dir: str, model=None
                         ) -> List[Tuple[str, tuple, float, float]]:
    """(name, shape, max abs diff, tolerance) for every float tensor of
    ``outputs.pt`` that the model produces. Missing tensors are skipped."""
    model = model or build_from_fixture(fixture_dir)
    inputs = torch.load(osp.join(fixture_dir, 'inputs.pt'),
                        weights_only=True)
    outputs = torch.load(osp.join(fixture_dir, 'outputs.pt'),
                         weights_only=True)
    ours = trace_official_outputs(model, inputs)
    rows = []
    for name, ref in outputs.items():
        if name not in ours or not ref.is_floating_point():
            continue
        got = ours[name]
        if got.shape != ref.shape:
            raise AssertionError(f'{name}: shape {tuple(got.shape)} vs '
                                 f'official {tuple(ref.shape)}')
        diff = (got - ref).abs().max().item()
        tol = FINAL_TOLERANCE.get(name, INTERMEDIATE_TOLERANCE)
        rows.append((name, tuple(ref.shape), diff, tol))
    return rows
