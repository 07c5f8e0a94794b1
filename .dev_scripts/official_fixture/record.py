"""Inputs, the official forward with its intermediates, and the probes."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .constants import CLS_ID, MEAN, SEP_ID, STD


# --------------------------------------------------------------------------
# inputs / recording
# --------------------------------------------------------------------------
def make_inputs(o):
    g = torch.Generator().manual_seed(o.seed)
    H, W = o.image_size
    B = len(o.real_tokens)
    image_uint8 = torch.randint(0, 256, (B, 3, H, W), dtype=torch.uint8,
                                generator=g)
    ids = torch.zeros(B, o.seq_len, dtype=torch.long)
    mask = torch.zeros(B, o.seq_len, dtype=torch.long)
    for b, n in enumerate(o.real_tokens):
        assert 2 <= n <= o.seq_len
        words = torch.randint(o.token_low, o.vocab_size, (n - 2, ),
                              generator=g)
        ids[b, :n] = torch.cat([torch.tensor([CLS_ID]), words,
                                torch.tensor([SEP_ID])])
        mask[b, :n] = 1
    mean = torch.tensor(MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(STD, dtype=torch.float32)[:, None, None]
    image = (image_uint8.float().div(255) - mean) / std
    return dict(image_uint8=image_uint8, image=image, input_ids=ids,
                attention_mask=mask)


def postprocess(model, out, hw):
    up = F.interpolate(out['pred_masks'], size=hw, mode='bilinear',
                       align_corners=True)
    prob = model.semantic_inference(out['pred_logits'], up)
    return prob


def run(model, inputs):
    with torch.no_grad():
        out = model(inputs['image'], inputs['input_ids'],
                    inputs['attention_mask'])
        prob = postprocess(model, out, inputs['image'].shape[-2:])
    return out, prob


def run_recorded(model, inputs):
    """Final outputs + intermediates, in the order of the fixture."""
    rec, handles = {}, []
    im, lm = model.image_model, model.language_model
    n = len(im.layers)

    def keep(name, pick=lambda o: o):
        def hook(module, args, out):
            rec[name] = pick(out).detach().clone()
        return hook

    def keep_feats(module, args):
        for k, v in args[0].items():
            rec[k] = v.detach().clone()

    handles.append(model.classifier.register_forward_pre_hook(keep_feats))
    handles.append(model.classifier.register_forward_hook(
        keep('mask_features', lambda o: o[1])))
    for s in range(n):
        k = s + 1
        handles.append(im.layers[s].blocks[-1].register_forward_hook(
            keep(f'vis_stage{k}')))
        handles.append(lm.encoder.layer[lm.pwam_idx[s] - 1]
                       .register_forward_hook(keep(f'lang_stage{k}',
                                                   lambda o: o[0])))
        handles.append(lm.norms[s].register_forward_hook(
            keep(f'l{k}_residual_norm')))
        if im.layers[s].downsample is not None:
            handles.append(im.layers[s].downsample.register_forward_hook(
                keep(f'i{k}_next')))
    wrapped = []
    for s in range(n):
        name = f'forward_pwam{s + 1}'
        orig = getattr(lm, name)
        key = 'l4' if s == n - 1 else f'l{s + 1}_updated'

        def wrapper(*a, _orig=orig, _key=key, **kw):
            result = _orig(*a, **kw)
            rec[_key] = result[1].detach().clone()
            return result
        setattr(lm, name, wrapper)
        wrapped.append(name)
    try:
        out, prob = run(model, inputs)
    finally:
        for h in handles:
            h.remove()
        for name in wrapped:
            delattr(lm, name)
    order = ['pred_logits', 'pred_masks', 'prob', 'mask']
    order += [f's{k}' for k in range(1, n + 1)]
    order += [f'l{k}_residual_norm' for k in range(1, n + 1)]
    order += ['l4', 'mask_features']
    for k in range(1, n + 1):
        order += [f'lang_stage{k}', f'vis_stage{k}']
    for k in range(1, n):
        order += [f'l{k}_updated', f'i{k}_next']
    final = dict(pred_logits=out['pred_logits'].clone(),
                 pred_masks=out['pred_masks'].clone(), prob=prob.clone(),
                 mask=prob > 0.5)
    rec.update(final)
    assert set(order) == set(rec), set(order) ^ set(rec)
    return {k: rec[k].contiguous() for k in order}


# --------------------------------------------------------------------------
# probes
# --------------------------------------------------------------------------
def maxabs(a, b):
    return (a.double() - b.double()).abs().max().item()


def gate_check(model, inputs, ref):
    """Per res_gate: size of its output and the effect of zeroing it.
    Returns (config entry, effect on the next stage's input: i{k}_next /
    l{k}_updated, for the README)."""
    im, lm = model.image_model, model.language_model
    n = len(im.layers)
    gates = [(f'vis_gate{s + 1}', layer.res_gate, f'i{s + 1}_next')
             for s, layer in enumerate(im.layers)]
    gates += [(f'lang_gate{s + 1}', g,
               'l4' if s == n - 1 else f'l{s + 1}_updated')
              for s, g in enumerate(lm.res_gates)]
    result, downstream = {}, {}
    for name, gate, nxt in gates:
        seen = []
        h = gate.register_forward_hook(
            lambda m, a, o: seen.append(o.detach().clone()))
        run(model, inputs)
        h.remove()
        g = torch.cat([t.flatten() for t in seen])
        h = gate.register_forward_hook(lambda m, a, o: torch.zeros_like(o))
        try:
            out = run_recorded(model, inputs)
        finally:
            h.remove()
        prob = out['prob']
        if nxt in ref:
            downstream[name] = (nxt, maxabs(out[nxt], ref[nxt]))
        result[name] = dict(
            max_abs=g.abs().max().item(), mean_abs=g.abs().mean().item(),
            all_nonzero_fraction=(g != 0).double().mean().item(),
            effect_of_zeroing_on_pred_masks_maxabs=maxabs(
                out['pred_masks'], ref['pred_masks']),
            effect_of_zeroing_on_prob_maxabs=maxabs(prob, ref['prob']))
    return result, downstream


def train_mode_check(model, inputs, ref, seed):
    """One forward/backward in train mode (dropout, drop path active), with
    the global RNG seeded just before so that the numbers are repeatable."""
    torch.manual_seed(seed)
    model.train()
    try:
        model.zero_grad(set_to_none=True)
        out = model(inputs['image'], inputs['input_ids'],
                    inputs['attention_mask'])
        (out['pred_masks'].sum() + out['pred_logits'].sum()).backward()
        no_grad = sorted(n for n, p in model.named_parameters()
                         if p.grad is None)
        return dict(ran=True, pred_masks_shape=list(out['pred_masks'].shape),
                    max_abs_diff_vs_eval=maxabs(out['pred_masks'].detach(),
                                                ref['pred_masks']),
                    params_without_grad_after_backward=no_grad)
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def float64_run(model, inputs):
    """The pixel decoder casts its inputs with .float(); during this probe
    Tensor.float keeps float64 tensors float64."""
    m64 = copy.deepcopy(model).double()
    orig = torch.Tensor.float

    def keep64(self, *a, **kw):
        return self if self.dtype == torch.float64 else orig(self, *a, **kw)
    x = dict(inputs, image=inputs['image'].double())
    torch.Tensor.float = keep64
    try:
        return run(m64, x)
    finally:
        torch.Tensor.float = orig


def numerical_probes(model, inputs, ref, threads):
    """Returns (config entry, {tensor: 1-thread vs reference max abs diff})."""
    torch.set_num_threads(1)
    try:
        out1 = run_recorded(model, inputs)
    finally:
        torch.set_num_threads(threads)
    prob1 = out1['prob']
    per_tensor = {k: maxabs(out1[k], v) for k, v in ref.items()
                  if v.is_floating_point()}
    out64, prob64 = float64_run(model, inputs)
    prob, pm = ref['prob'], ref['pred_masks']
    return {
        '1thread_vs_2thread_pred_masks_maxabs': maxabs(out1['pred_masks'],
                                                       pm),
        '1thread_vs_2thread_prob_maxabs': maxabs(prob1, prob),
        'float64_vs_float32_pred_masks_maxabs': maxabs(out64['pred_masks'],
                                                       pm),
        'float64_vs_float32_pred_logits_maxabs': maxabs(
            out64['pred_logits'], ref['pred_logits']),
        'float64_vs_float32_prob_maxabs': maxabs(prob64, prob),
        'float64_vs_float32_mask_mismatch_pixels': int(
            ((prob64 > 0.5) != ref['mask']).sum()),
        'prob_min': prob.min().item(),
        'prob_max': prob.max().item(),
        'mask_fraction_true': ref['mask'].float().mean().item(),
        'pred_masks_fraction_positive': (pm > 0).float().mean().item(),
        'min_abs_prob_minus_half': (prob - 0.5).abs().min().item(),
    }, per_tensor
