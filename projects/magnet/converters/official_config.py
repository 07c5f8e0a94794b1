"""Model configs that match official MagNet checkpoints.

* :func:`model_cfg_from_official_args` builds this project's model config
  from the options the official code was run with (the ``config.json`` of a
  reference fixture: Swin / BERT / fusion / head sizes).
* :func:`infer_model_cfg` derives a config with the same parameter shapes
  from an official state dict alone (used by the converter to verify that a
  checkpoint converts completely). Head counts and layer groupings are not
  visible in shapes; defaults are used for them.
"""
from __future__ import annotations

import os.path as osp
import re
from typing import Any, Dict, Mapping

import torch
from mmengine.config import Config

from ..utils.errors import InputFileError

#: The paper model's base config: the one definition of what the official
#: checkpoints share with it and their shapes do not tell (the image
#: normalisation and padding of ``data_preprocessor``). Read, not repeated.
PAPER_MODEL_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))),
    'configs', '_base_', 'models', 'magnet_swin-b_bert-base.py')


def paper_data_preprocessor(config: str = PAPER_MODEL_CONFIG) -> Dict:
    """``data_preprocessor`` of a model config file (default: the paper
    model's base config), as a plain dict.

    Raises:
        InputFileError: ``config`` is not a file.
    """
    if not osp.isfile(config):
        raise InputFileError(
            f'{config}: no such config file; the official converters read '
            'the data preprocessor of the paper model config '
            '(configs/_base_/models/magnet_swin-b_bert-base.py)')
    # parsing only: registering the modules is not needed for a dict (and
    # would import this package again while it is being imported)
    cfg = Config.fromfile(config, import_custom_modules=False)
    return cfg.model.data_preprocessor.to_dict()


DATA_PREPROCESSOR = paper_data_preprocessor()


def magnet_head_cfg(in_channels, strides, feat_channels: int,
                    mask_channels: int, hidden_channels: int, num_heads: int,
                    num_encoder_layers: int, encoder_ffn_channels: int,
                    num_decoder_layers: int, decoder_ffn_channels: int,
                    num_queries: int = 1, num_classes: int = 1,
                    pre_norm: bool = False, common_stride: int = 4,
                    num_points: int = 4) -> Dict:
    """A nested :class:`MagNetHead` config from the official head sizes
    (``CONVS_DIM``, ``MASK_DIM``, ``HIDDEN_DIM``, ``NHEADS``, ...)."""
    return dict(
        type='MagNetHead',
        in_channels=tuple(in_channels),
        strides=tuple(strides),
        feat_channels=feat_channels,
        mask_channels=mask_channels,
        num_queries=num_queries,
        num_classes=num_classes,
        pixel_decoder=dict(
            type='MSDeformAttnPixelDecoder',
            common_stride=common_stride,
            encoder=dict(
                num_layers=num_encoder_layers,
                layer_cfg=dict(
                    self_attn_cfg=dict(num_heads=num_heads,
                                       num_points=num_points, dropout=0.0),
                    ffn_cfg=dict(feedforward_channels=encoder_ffn_channels,
                                 ffn_drop=0.0)))),
        transformer_decoder=dict(
            type='MaskedAttentionDecoder',
            hidden_channels=hidden_channels,
            num_heads=num_heads,
            num_layers=num_decoder_layers,
            feedforward_channels=decoder_ffn_channels,
            pre_norm=pre_norm))


def model_cfg_from_official_args(args: Mapping[str, Any]) -> Dict:
    """``config.json['model']`` of an official run -> MagNet config.

    Args:
        args (Mapping): With ``swin``, ``bert``, ``multimodal_bert``,
            ``wrapper`` and ``head`` sections (see
            ``tests/data/official_small/config.json``).
    """
    swin, bert = args['swin'], args['bert']
    mmb, head = args['multimodal_bert'], args['head']
    embed = swin['embed_dim']
    widths = [embed * 2**i for i in range(len(swin['depths']))]
    text_width = mmb.get('lang_dim', bert['hidden_size'])
    window = 12 if swin.get('window12') else swin.get('window_size', 7)
    in_features = head.get('DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES',
                           ['s1', 's2', 's3', 's4'])
    shapes = head['input_shape']
    return dict(
        type='MagNet',
        data_preprocessor=DATA_PREPROCESSOR,
        backbone=dict(
            type='MultimodalSwin',
            embed_dims=embed,
            depths=tuple(swin['depths']),
            num_heads=tuple(swin['num_heads']),
            window_size=window,
            patch_size=swin.get('patch_size', 4),
            strides=(swin.get('patch_size', 4), 2, 2, 2),
            mlp_ratio=swin.get('mlp_ratio', 4.0),
            drop_path_rate=swin.get('drop_path_rate', 0.3),
            text_channels=text_width,
            pwam_heads=tuple(mmb.get('num_heads_fusion', (1, 1, 1, 1))),
            fusion_dropout=mmb.get('fusion_drop', 0.0)),
        text_encoder=dict(
            type='BertLanguageEncoder',
            bert_cfg=dict(bert),
            stage_ends=tuple(mmb['pwam_idx']),
            vision_channels=tuple(widths),
            fusion_heads=tuple(mmb.get('num_heads_fusion', (1, 1, 1, 1))),
            fusion_dropout=mmb.get('fusion_drop', 0.0)),
        decode_head=magnet_head_cfg(
            in_channels=tuple(shapes[k]['channel'] for k in in_features),
            strides=tuple(shapes[k]['stride'] for k in in_features),
            feat_channels=head['CONVS_DIM'],
            mask_channels=head['MASK_DIM'],
            hidden_channels=head['HIDDEN_DIM'],
            num_heads=head['NHEADS'],
            num_encoder_layers=head['TRANSFORMER_ENC_LAYERS'],
            encoder_ffn_channels=head.get('TRANSFORMER_DIM_FEEDFORWARD',
                                          1024),
            # the official builder makes DEC_LAYERS - 1 decoder layers
            num_decoder_layers=head['DEC_LAYERS'] - 1,
            decoder_ffn_channels=head['DIM_FEEDFORWARD'],
            num_queries=head['NUM_OBJECT_QUERIES'],
            num_classes=head['NUM_CLASSES'],
            pre_norm=head.get('PRE_NORM', False),
            common_stride=head.get('COMMON_STRIDE', 4)),
        lang_proj_dim=args.get('wrapper', {}).get('lang_proj_out', 256))


def _count(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state for m in [regex.match(k)] if m})


def infer_model_cfg(state: Mapping[str, torch.Tensor]) -> Dict:
    """A MagNet config with the parameter shapes of an official state dict.

    Raises:
        KeyError: A key needed to read a size is missing.
    """
    patch = state['image_model.patch_embed.proj.weight']
    embed, patch_size = patch.shape[0], patch.shape[-1]
    num_stages = _count(state, r'image_model\.layers\.(\d+)\.')
    depths, heads = [], []
    for s in range(num_stages):
        depths.append(_count(
            state, rf'image_model\.layers\.{s}\.blocks\.(\d+)\.'))
        heads.append(state[f'image_model.layers.{s}.blocks.0.attn.'
                           'relative_position_bias_table'].shape[1])
    table = state['image_model.layers.0.blocks.0.attn.'
                  'relative_position_bias_table'].shape[0]
    window = (int(round(table**0.5)) + 1) // 2
    widths = [embed * 2**i for i in range(num_stages)]
    num_pools = _count(state, r'image_model\.layers\.0\.pyramids\.(\d+)\.')

    words = state['language_model.embeddings.word_embeddings.weight']
    vocab, hidden = words.shape
    layers = _count(state, r'language_model\.encoder\.layer\.(\d+)\.')
    ffn = state['language_model.encoder.layer.0.intermediate.dense.weight']
    bert_cfg = dict(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=ffn.shape[0],
        max_position_embeddings=state[
            'language_model.embeddings.position_embeddings.weight'].shape[0],
        type_vocab_size=state[
            'language_model.embeddings.token_type_embeddings.weight'].shape[0])
    per_stage = layers // num_stages
    stage_ends = [per_stage * (i + 1) for i in range(num_stages)]
    stage_ends[-1] = layers

    pd = 'classifier.pixel_decoder.'
    pr = 'classifier.predictor.'
    feat = state[pd + 'input_proj.0.0.weight'].shape[0]
    lang_proj = state.get('lang_proj.weight')
    return dict(
        type='MagNet',
        data_preprocessor=DATA_PREPROCESSOR,
        backbone=dict(
            type='MultimodalSwin', embed_dims=embed, depths=tuple(depths),
            num_heads=tuple(heads), window_size=window,
            patch_size=patch_size, strides=(patch_size, 2, 2, 2),
            text_channels=hidden, pwam_heads=(1, ) * num_stages,
            pool_sizes=(1, 2, 3, 6)[:num_pools]),
        text_encoder=dict(
            type='BertLanguageEncoder', bert_cfg=bert_cfg,
            stage_ends=tuple(stage_ends), vision_channels=tuple(widths),
            fusion_heads=(1, ) * num_stages),
        decode_head=magnet_head_cfg(
            in_channels=tuple(widths),
            strides=tuple(4 * 2**i for i in range(num_stages)),
            feat_channels=feat,
            mask_channels=state[pd + 'mask_features.weight'].shape[0],
            hidden_channels=state[pr + 'query_feat.weight'].shape[1],
            num_heads=8,
            num_encoder_layers=_count(
                state, pd.replace('.', r'\.') +
                r'transformer\.encoder\.layers\.(\d+)\.'),
            encoder_ffn_channels=state[
                pd + 'transformer.encoder.layers.0.linear1.weight'].shape[0],
            num_decoder_layers=_count(
                state, pr.replace('.', r'\.') +
                r'transformer_ffn_layers\.(\d+)\.'),
            decoder_ffn_channels=state[
                pr + 'transformer_ffn_layers.0.linear1.weight'].shape[0],
            num_queries=state[pr + 'query_feat.weight'].shape[0],
            num_classes=state[pr + 'class_embed.weight'].shape[0] - 1),
        lang_proj_dim=None if lang_proj is None else lang_proj.shape[0])
