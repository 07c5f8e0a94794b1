"""The README of a fixture: what every tensor is and how it was made."""
from __future__ import annotations



from .constants import OFFICIAL_REPO_NAME


# --------------------------------------------------------------------------
# README
# --------------------------------------------------------------------------
def tensor_docs(cfg):
    L = cfg['seq_len']
    vocab = cfg['model']['bert']['vocab_size']
    low = cfg['token_low']
    n = len(cfg['model']['swin']['depths'])
    inputs = {
        'image_uint8': 'the random RGB image as bytes, channels first (B, 3, '
                       'H, W); the "photo" before preprocessing',
        'image': 'the network input: image_uint8 converted to float32, '
                 'divided by 255, minus the ImageNet mean and divided by the '
                 'ImageNet std per channel (exactly torchvision ToTensor + '
                 'Normalize arithmetic)',
        'input_ids': f'BERT token ids (B, {L}) int64: 101 ([CLS]), random '
                     f'word ids in [{low}, {vocab}), 102 ([SEP]), then 0 '
                     'padding',
        'attention_mask': f'(B, {L}) int64, 1 for every real token ([CLS] '
                          '... [SEP]) and 0 for padding',
    }
    out = {
        'pred_logits': 'class logits of the single query from the last '
                       'Mask2Former decoder layer, (B, queries, 2): [object, '
                       'no-object]. It has NO influence on prob (see notes)',
        'pred_masks': 'mask logits of the queries from the last decoder '
                      'layer, (B, queries, H/4, W/4) = einsum of the '
                      'mask-embedding MLP output with mask_features',
        'prob': "probability map: pred_masks upsampled to (H, W) with "
                "F.interpolate(mode='bilinear', align_corners=True), then "
                'WrapperModel.semantic_inference (softmax(pred_logits, '
                'dim=1)[..., 1:] times sigmoid(mask)); shape (B, 1, H, W). '
                'test.py uses pred_masks[0] of this (batch size 1)',
        'mask': 'binary mask prob > 0.5, bool (B, 1, H, W) (test.py: '
                'output_mask = (output > 0.5))',
    }
    strides = ['(B, C1, H/4, W/4)', '(B, C2, H/8, W/8)',
               '(B, C3, ceil(H/16), ceil(W/16))',
               '(B, C4, ceil(H/32), ceil(W/32))']
    for k in range(1, n + 1):
        extra = (' (not the Swin stage output, no backbone norm0 applied)'
                 if k == 1 else '')
        out[f's{k}'] = (f'vision feature passed to the head for stride '
                        f'{4 * 2**(k - 1)}: the mixer output of stage {k}'
                        f'{extra}, {strides[min(k, 4) - 1]}')
    for k in range(1, n + 1):
        out[f'l{k}_residual_norm'] = (
            f'language side stage {k}: MultiModalBert.norms[{k - 1}]'
            f'(l{k}_residual), the LayerNorm-ed output of the language PWAM '
            f'(first return value of forward_pwam{k}); computed but unused '
            f'by the official forward. (B, {L}, hidden)')
    out['l4'] = (f'final language features: value of l4 after forward_pwam4,'
                 f' i.e. lang_stage4 + res_gates[3](r) * r with r = '
                 f'pwams[3](...) (B, {L}, hidden). Unused by the head')
    out['mask_features'] = ('pixel decoder per-pixel embedding (mask_features'
                            ' conv applied to the stride-4 level of the '
                            'MSDeformAttn encoder output), (B, MASK_DIM, '
                            'H/4, W/4)')
    for k in range(1, n + 1):
        src = 'encoder.layer[0:pwam_idx[0]]' if k == 1 else \
            f'input l{k - 1}_updated' if k == 2 else ''
        out[f'lang_stage{k}'] = (
            f'extra: BERT output after the stage-{k} layers'
            + (f' ({src})' if src else '') + f', (B, {L}, hidden)')
        out[f'vis_stage{k}'] = (f'extra: Swin stage-{k} block output before '
                                f'any fusion, token layout (B, H{k}*W{k}, '
                                f'C{k})')
    for k in range(1, n):
        out[f'l{k}_updated'] = (f'extra: l{k} after the language gate, '
                                f'lang_stage{k} + res_gates[{k - 1}](r)*r '
                                f'(input of BERT stage {k + 1})')
        out[f'i{k}_next'] = (f'extra: PatchMerging(vis_stage{k} + res_gate(f)'
                             f' * f), f = the stage-{k} vision PWAM output; '
                             f'input of Swin stage {k + 1}, (B, '
                             f'H{k + 1}*W{k + 1}, C{k + 1})')
    return inputs, out


def write_readme(path, cfg, command, sizes):
    m = cfg['model']
    sw, bert, mmb, head = m['swin'], m['bert'], m['multimodal_bert'], \
        m['head']
    d = cfg['derived']
    probes = cfg['numerical_probes']
    H, W = cfg['image_hw']
    in_docs, out_docs = tensor_docs(cfg)
    sd = cfg['state_dict']
    lines = [
        f"# MagNet (mask-grounding) reference fixture: `{cfg['fixture_set']}`",
        '',
        'Numbers produced by running the official MagNet evaluation code '
        f"({OFFICIAL_REPO_NAME}, commit `{cfg['official_source']['commit']}`)"
        f", on CPU with torch {cfg['torch_version']} and "
        f"{cfg['torch_num_threads']} threads. The model is test.py's "
        '`WrapperModel` (multimodal Swin + MultiModalBert + MaskFormerHead) '
        'at reduced sizes, with every floating-point weight replaced by '
        'random values so that no path is switched off by a zero-initialised '
        'gate. A re-implementation that loads `official_tiny.pth` and runs '
        '`inputs.pt` must reproduce `outputs.pt`.',
        '',
        '**Licence.** The official code is AGPL-3.0. No official code is '
        'contained here or was copied into this project: these files are '
        'data produced by running that code (out of tree, in a temporary '
        'directory) with random weights and random inputs.',
        '',
        '## How it was made',
        '',
        '```',
        command,
        '```',
        '',
        '`.dev_scripts/make_official_fixture.py` extracts the '
        'official sources to a temporary directory, applies the patches '
        'listed in `config.json` (`patches`: P1 makes an mmcv-only import '
        'optional, C1-C6 turn hard-coded widths into arguments whose '
        'defaults keep the full-size model unchanged), writes small stand-in '
        '`timm` / `mmseg` modules there, builds the model as test.py `main()`'
        ' does (see `harness_notes`), randomises the weights, makes seeded '
        'inputs and records outputs and intermediates with forward hooks and'
        ' method wrappers around the unmodified official forward. '
        + cfg['_isa_note'],
        '',
        '## Files',
        '',
        f"- `official_tiny.pth` ({sizes['official_tiny.pth']} bytes): "
        "`{'model': state_dict}` exactly as test.py loads it "
        "(`model.load_state_dict(checkpoint['model'])`, strict). "
        f"{sd['num_keys']} keys, {sd['num_parameters']} parameters, float32 "
        '(plus int64 `relative_position_index` buffers).',
        f"- `inputs.pt` ({sizes['inputs.pt']} bytes): dict of input tensors "
        '(torch.load).',
        f"- `outputs.pt` ({sizes['outputs.pt']} bytes): dict of reference "
        'output tensors in eval mode (torch.load).',
        '- `config.json`: every size/option used to build the model, seed, '
        'versions, the list of patches applied to the official code, and '
        'sanity/conditioning measurements.',
        f"- total {sum(sizes.values())} bytes (with this README and "
        'config.json).',
        '',
        '## Setting',
        '',
        f"- seed {cfg['seed']}; batch {cfg['batch']}; image {H}x{W} (H x W);"
        f" {cfg['seq_len']} token slots with {cfg['real_tokens_per_sample']} "
        'real tokens per sample.',
        f"- Swin: embed {sw['embed_dim']}, depths {sw['depths']}, heads "
        f"{sw['num_heads']}, window {d['swin_window_size']}, patch "
        f"{sw['patch_size']}, mlp_ratio {sw['mlp_ratio']:g}, drop_path_rate "
        f"{sw['drop_path_rate']} (inactive in eval), PWAM heads "
        f"{mmb['num_heads_fusion'][0]}; stage widths {d['swin_dims']}; "
        f"pyramid pools {d['pyramid_psizes']} with reduction widths "
        f"{d['pyramid_reduction_dims']}.",
        f"- BERT: hidden {bert['hidden_size']}, {bert['num_hidden_layers']} "
        f"layers, {bert['num_attention_heads']} heads, intermediate "
        f"{bert['intermediate_size']}, vocab {bert['vocab_size']}, "
        f"max_position {bert['max_position_embeddings']}, type_vocab "
        f"{bert['type_vocab_size']}, LayerNorm eps {bert['layer_norm_eps']};"
        f" pwam_idx {mmb['pwam_idx']}; pooler None.",
        f"- Head: conv/mask dim {head['CONVS_DIM']}/{head['MASK_DIM']}, "
        f"hidden {head['HIDDEN_DIM']}, heads {head['NHEADS']}, pixel-decoder"
        f" MSDeformAttn encoder layers {head['TRANSFORMER_ENC_LAYERS']} (FFN "
        f"{head['TRANSFORMER_DIM_FEEDFORWARD']}), DEC_LAYERS "
        f"{head['DEC_LAYERS']} -> {d['mask2former_decoder_layers_built']} "
        'decoder layers built (MaskFormerHead uses DEC_LAYERS-1), decoder '
        f"FFN {head['DIM_FEEDFORWARD']}, {head['NUM_OBJECT_QUERIES']} query, "
        '1 class (+ no-object), post-norm.',
        f"- Weights: {cfg['randomization']}",
        '',
        '## Tensors',
        '',
        'B = batch, H x W = image size, hidden = BERT width. All float '
        'tensors are float32.',
        '',
        '### inputs.pt',
        '',
        '| key | shape | dtype | meaning |',
        '|---|---|---|---|',
    ]
    for k, v in cfg['inputs'].items():
        lines.append(f"| `{k}` | {tuple(v['shape'])} | {v['dtype']} | "
                     f'{in_docs[k]} |')
    lines += ['', '### outputs.pt', '', '| key | shape | dtype | meaning |',
              '|---|---|---|---|']
    for k, v in cfg['outputs'].items():
        lines.append(f"| `{k}` | {tuple(v['shape'])} | {v['dtype']} | "
                     f'{out_docs[k]} |')
    gates = cfg['gate_check']
    s4 = cfg['outputs']['s4']['shape']
    vis_eff = [gates[f'vis_gate{k}']['effect_of_zeroing_on_pred_masks_maxabs']
               for k in (1, 2, 3)]
    lines += [
        '', '## How the outputs were produced', '', '```python',
        'model.eval()',
        'with torch.no_grad():',
        "    out = model(inputs['image'], inputs['input_ids'], "
        "inputs['attention_mask'])   # test.py WrapperModel.forward",
        "    up = F.interpolate(out['pred_masks'], size=image.shape[-2:], "
        "mode='bilinear', align_corners=True)",
        "    prob = model.semantic_inference(out['pred_logits'], up)",
        '    mask = prob > 0.5', '```', '',
        'Intermediate tensors were recorded with forward hooks / method '
        'wrappers around the unmodified official forward. Reloading '
        '`official_tiny.pth` into a freshly built model and rerunning '
        'reproduces every tensor with max abs difference '
        f"{cfg['_reload_maxabs']:.3g} (same machine, same threads).", '',
        '## Notes for re-implementers', '',
        '- Float noise floor: 1 thread vs 2 threads differ by up to '
        f"{probes['1thread_vs_2thread_pred_masks_maxabs']:.2g} in pred_masks;"
        ' a float64 run differs from this float32 reference by up to '
        f"{probes['float64_vs_float32_pred_masks_maxabs']:.2g} (pred_masks) "
        f"/ {probes['float64_vs_float32_prob_maxabs']:.2g} (prob). Closest "
        'prob to the 0.5 threshold: |prob-0.5| = '
        f"{probes['min_abs_prob_minus_half']:.2g}, so compare the binary mask"
        ' only where |prob-0.5| exceeds your tolerance. (The float64 run '
        'keeps float64 through the pixel decoder\'s `.float()` casts.) '
        'Largest 1-thread vs 2-thread differences over all tensors: '
        + ', '.join(f'{k} {v:.2g}' for k, v in sorted(
            cfg['_thread_noise'].items(), key=lambda kv: -kv[1])[:4])
        + '.',
        f"- prob lies in [{probes['prob_min']:.4f}, {probes['prob_max']:.4f}]"
        f"; {100 * probes['mask_fraction_true']:.1f}% of mask pixels are "
        'True.',
        '- semantic_inference softmaxes pred_logits over dim=1, the query '
        'axis of size 1, so the class scores are exactly 1 and prob == '
        'sigmoid(upsampled pred_masks); pred_logits do not affect prob.',
        '- MultiModalBert.forward_pwamK is called with the BERT *extended* '
        'attention mask (0 for real tokens, -10000 for padding), not the 0/1'
        ' mask (the language-side fusion multiplies features by it: '
        '`projects/magnet/models/language/bert_encoder.py`, '
        '`ADDITIVE_MASK_VALUE`).',
        '- Unused by the forward (no gradient reaches any output): see '
        '`train_mode_check.params_without_grad_after_backward` in '
        'config.json.',
        '- Gate paths are weak: zeroing one of the stage 1-3 vision gates '
        'changes pred_masks by only '
        f'{min(vis_eff):.2g} to {max(vis_eff):.2g} (`gate_check`); check '
        'gate paths on l1..l3_updated / i1..i3_next rather than on the final'
        " outputs. Effect of zeroing each gate on the next stage's input: "
        + ', '.join(f'{g} -> {t}: {v:.2g}' for g, (t, v)
                    in cfg['_gate_downstream'].items())
        + '. Where these are below your tolerance the fixture cannot tell a '
        'missing gate apart (the weight randomisation is fixed, so narrow '
        'layers give weak gates).',
        f"- Small maps: the last Swin stage is {s4[2]}x{s4[3]}, smaller "
        'than the largest '
        'pyramid pool (6x6), so AdaptiveAvgPool2d(6) uses overlapping bins; '
        'Swin pads maps that are not a multiple of the window (7) with '
        'zeros after norm1.',
    ]
    if min(d['pyramid_reduction_dims']) < 2:
        lines += [
            '- Reduction width 1: the stage-1 pyramid PWAMs work on 1 '
            'channel, so their LayerNorms (f_query, W) output exactly their '
            'bias; those branches do not depend on the language there. Other '
            'stages are not affected.',
        ]
    lines += [
        '',
        '## Also here',
        '',
        '`tests/data/official_fullsize_keys.json.gz` (beside this folder): '
        'gzip of the key list of a full-size official checkpoint (1,310 '
        'keys: name, shape, dtype, whether it reaches the output): data '
        'describing an official checkpoint, no code.',
        '',
    ]
    with open(path, 'w') as f:
        f.write('\n'.join(lines))
