"""Every runnable config parses and builds its model and datasets offline."""
import glob
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from ..conftest import REPO_ROOT

CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'magnet', '*.py')))


def test_there_are_configs():
    names = [osp.basename(c) for c in CONFIGS]
    assert any('refcoco-480x480' in n for n in names)
    assert any('refsynth' in n for n in names)
    assert any('grefcoco-480x480' in n for n in names)
    assert any('grefsynth-128x128' in n for n in names)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_offline(path, monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('TRANSFORMERS_OFFLINE', '1')
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'MagNet'
    assert cfg.custom_imports['imports'] == ['projects.magnet']
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)  # no weights, no network
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params > 1e6
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert loader in cfg
    pipeline = cfg.train_dataloader.dataset.pipeline
    types = [t['type'] for t in pipeline]
    assert types.index('TokenizeText') < types.index('PackSegInputs')
    assert 'input_ids' in pipeline[-1]['meta_keys']
    del model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    assert os.environ['HF_HUB_OFFLINE'] == '1'


ABLATIONS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'magnet', 'ablations', '*.py')))
#: algo field of the name -> (Mask Grounding, alignment loss, alignment
#: module)
SWITCHES = {
    'magnet': (True, True, True),
    'magnet-wo-mg': (False, True, True),
    'magnet-wo-cal': (True, False, True),
    'magnet-wo-cam': (True, True, False),
    'lavt-style': (False, False, False),
    'lavt-style-mg': (True, False, False),
}


def _switches(cfg):
    return (bool(cfg.model.get('mask_grounding')),
            bool(cfg.model.get('alignment_loss')),
            cfg.model.backbone.get('use_alignment', True))


def test_paper_and_cpu_configs_train_all_three_parts():
    for path in CONFIGS:
        assert _switches(Config.fromfile(path)) == SWITCHES['magnet'], path


def test_ablation_set_is_complete():
    names = {osp.basename(p).split('_')[0] for p in ABLATIONS}
    assert names == set(SWITCHES) - {'magnet'}
    for kind in ('refcoco-480x480', 'refsynth-128x128'):
        assert sum(kind in p for p in ABLATIONS) == len(SWITCHES) - 1


@pytest.mark.parametrize('path', ABLATIONS, ids=osp.basename)
def test_ablation_switches(path):
    cfg = Config.fromfile(path)
    assert _switches(cfg) == SWITCHES[osp.basename(path).split('_')[0]]
    suffix = osp.basename(path).split('_', 1)[1]
    base = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'magnet', 'magnet_' + suffix))
    # an ablation changes the model only: same data, schedule and budget
    for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler',
                'train_cfg'):
        assert cfg[key] == base[key], key
    if 'refsynth' in path:  # small: build it
        init_default_scope('mmseg')
        model = MODELS.build(cfg.model)
        assert model.with_mask_grounding == _switches(cfg)[0]
        assert (model.backbone.alignments is not None) == _switches(cfg)[2]


def test_one_bert_base_definition():
    """The paper configs take bert-base-uncased from the encoder's default
    (one definition), and that default is bert-base-uncased's config."""
    import inspect

    from projects.magnet.models.language.bert_encoder import (
        BERT_BASE_UNCASED, BertLanguageEncoder)
    default = inspect.signature(BertLanguageEncoder).parameters['bert_cfg']
    assert default.default is BERT_BASE_UNCASED
    assert {k: BERT_BASE_UNCASED[k] for k in (
        'vocab_size', 'hidden_size', 'num_hidden_layers',
        'num_attention_heads', 'intermediate_size')} == dict(
            vocab_size=30522, hidden_size=768, num_hidden_layers=12,
            num_attention_heads=12, intermediate_size=3072)
    for path in CONFIGS:
        cfg = Config.fromfile(path)
        if 'bert-base' in osp.basename(path):
            assert 'bert_cfg' not in cfg.model.text_encoder, path


GRES_CONFIGS = [p for p in CONFIGS
                if 'grefcoco' in osp.basename(p)
                or 'grefsynth' in osp.basename(p)]


@pytest.mark.parametrize('path', GRES_CONFIGS, ids=osp.basename)
def test_gres_configs_train_and_score_no_target(path):
    """The GRES configs read gRefCOCO with the union mask, pack the truth
    'no_target' in training and testing, switch the no-target decision on
    and score with GRefSegMetric."""
    cfg = Config.fromfile(path)
    assert cfg.model.decode_head.no_target == dict(loss_weight=1.0)
    assert cfg.model.test_cfg.no_target_threshold == 0.5
    assert cfg.model.test_cfg.mode == 'whole'
    datasets = [cfg.train_dataloader.dataset, cfg.val_dataloader.dataset,
                *cfg.test_dataloader.dataset.datasets]
    for ds in datasets:
        assert ds.type == 'GRefCOCODataset'
        types = [t['type'] for t in ds.pipeline]
        assert 'LoadGRefMask' in types and 'LoadReferringMask' not in types
        assert 'no_target' in ds.pipeline[-1]['meta_keys']
    for key in ('val_evaluator', 'test_evaluator'):
        assert cfg[key].type == 'GRefSegMetric'
