"""Build the official model the way its test.py does, randomise it."""
from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn


# --------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------
def model_args(o):
    """config.json['model'] from the command-line options."""
    embed = o.embed_dim
    n = len(o.depths)
    widths = [embed * 2**i for i in range(n)]
    return {
        'name': f'{o.fixture_set} (same code/structure/key names, reduced '
                'sizes)',
        'swin': dict(swin_type='custom', embed_dim=embed,
                     depths=list(o.depths), num_heads=list(o.num_heads),
                     window12=False, window_size=7, mha='', fusion_drop=0.0,
                     drop_path_rate=0.3, patch_size=4, mlp_ratio=4.0),
        'bert': dict(vocab_size=o.vocab_size, hidden_size=o.bert_hidden,
                     num_hidden_layers=o.bert_layers,
                     num_attention_heads=o.bert_heads,
                     intermediate_size=o.bert_intermediate, hidden_act='gelu',
                     hidden_dropout_prob=0.1,
                     attention_probs_dropout_prob=0.1,
                     max_position_embeddings=o.max_position,
                     type_vocab_size=2, initializer_range=0.02,
                     layer_norm_eps=1e-12, pad_token_id=0),
        'multimodal_bert': dict(pwam_idx=list(o.pwam_idx),
                                num_heads_fusion=[1] * n, fusion_drop=0.0,
                                lang_dim=o.bert_hidden, pooler=None),
        'wrapper': dict(lang_proj_in=o.bert_hidden,
                        lang_proj_out=o.lang_proj_out or o.bert_hidden),
        'head': {
            'input_shape': {f's{i + 1}': dict(channel=w, stride=4 * 2**i)
                            for i, w in enumerate(widths)},
            'COMMON_STRIDE': 4, 'DROPOUT': 0.0, 'NHEADS': o.head_heads,
            'TRANSFORMER_ENC_LAYERS': o.enc_layers,
            'TRANSFORMER_DIM_FEEDFORWARD': o.enc_ffn,
            'CONVS_DIM': o.conv_dim, 'MASK_DIM': o.mask_dim,
            'DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES':
                [f's{i + 1}' for i in range(n)],
            'NUM_CLASSES': 1, 'HIDDEN_DIM': o.hidden_dim,
            'NUM_OBJECT_QUERIES': o.num_queries,
            'DIM_FEEDFORWARD': o.dec_ffn, 'DEC_LAYERS': o.dec_layers,
            'PRE_NORM': False},
    }


def build_model(margs, WrapperModel):
    """test.py main() without data / checkpoint loading / hub download."""
    from addict import Dict
    from bert.configuration_bert import BertConfig
    from bert.multimodal_bert import MultiModalBert
    from lib import multimodal_segmentation
    from modeling.MaskFormerModel import MaskFormerHead

    swin, mmb, head = margs['swin'], margs['multimodal_bert'], margs['head']
    args = SimpleNamespace(
        swin_type=swin['swin_type'], embed_dim=swin['embed_dim'],
        depths=swin['depths'], num_heads=swin['num_heads'],
        window12=swin['window12'], mha=swin['mha'],
        fusion_drop=swin['fusion_drop'], lang_dim=mmb['lang_dim'],
        **margs['wrapper'])
    image_model = multimodal_segmentation.lavt(pretrained='', args=args)
    language_model = MultiModalBert(
        BertConfig(**margs['bert']), embed_dim=image_model.backbone.embed_dim,
        pwam_idx=list(mmb['pwam_idx']),
        num_heads_fusion=list(mmb['num_heads_fusion']),
        fusion_drop=mmb['fusion_drop'], lang_dim=mmb['lang_dim'])
    language_model.pooler = None
    input_shape = {k: Dict(v) for k, v in head['input_shape'].items()}
    cfg = Dict()  # the keys test.py sets (addict: assign via full paths)
    for key in ('COMMON_STRIDE', 'TRANSFORMER_ENC_LAYERS',
                'TRANSFORMER_DIM_FEEDFORWARD', 'CONVS_DIM', 'MASK_DIM',
                'DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES', 'NUM_CLASSES'):
        cfg.MODEL.SEM_SEG_HEAD[key] = head[key]
    for key in ('DROPOUT', 'NHEADS', 'HIDDEN_DIM', 'NUM_OBJECT_QUERIES',
                'DIM_FEEDFORWARD', 'DEC_LAYERS', 'PRE_NORM'):
        cfg.MODEL.MASK_FORMER[key] = head[key]
    maskformer_head = MaskFormerHead(cfg, input_shape)
    return WrapperModel(image_model.backbone, language_model, maskformer_head,
                        args)


def _is_norm(module):
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or \
        type(module).__name__ == 'LayerNorm'


def randomize_(model):
    """Overwrite every float entry of state_dict (see RANDOMIZATION)."""
    modules = dict(model.named_modules())
    count, untouched = 0, []
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if not value.is_floating_point():
                untouched.append(key)
                continue
            owner, _, leaf = key.rpartition('.')
            z = torch.randn(value.shape)
            if leaf == 'weight' and _is_norm(modules[owner]):
                new = 1 + 0.05 * z
            elif key.endswith('bias'):
                new = 0.02 * z
            else:
                new = 0.05 * z
            value.copy_(new)
            count += 1
    return count, untouched
