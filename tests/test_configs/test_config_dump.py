"""What every config file dumps: only keys an OpenMMLab user expects (no
helper variables), faithfully; the dataset and schedule bases give the
derived configs the settings they name."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from projects.magnet.utils.config_check import COMMON_HELPERS, RUNNER_KEYS

from ..conftest import REPO_ROOT

ALL_CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True))
#: Top-level keys a dumped config may have: what mmengine's Runner and
#: mmseg's tools read, and the helper names OpenMMLab configs commonly
#: carry (``data_root``, ``train_pipeline``, ``crop_size``, ``max_iters``,
#: ...) plus the project's documented ones (``tokenizer``, ``max_tokens``,
#: ``meta_keys``, ``max_time``, ``data_generator``), see
#: ``projects/magnet/utils/config_check.py``.
ALLOWED_KEYS = RUNNER_KEYS | COMMON_HELPERS


def _load(path: str) -> Config:
    # parsing only: the keys do not depend on the registered modules
    return Config.fromfile(path, import_custom_modules=False)


def _rel(path: str) -> str:
    return osp.relpath(path, REPO_ROOT)


def test_every_config_file_is_checked():
    names = {_rel(p) for p in ALL_CONFIGS}
    assert 'configs/_base_/schedules/schedule_10min_cpu.py' in names
    assert any(n.startswith('configs/pretrain/') for n in names)
    assert any(n.startswith('configs/magnet/ablations/') for n in names)


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=_rel)
def test_dump_has_no_helper_keys_and_round_trips(path, tmp_path):
    cfg = _load(path)
    unexpected = sorted(set(cfg.keys()) - ALLOWED_KEYS)
    assert not unexpected, f'{_rel(path)} dumps helper keys {unexpected}'
    dumped = tmp_path / 'dumped.py'
    cfg.dump(str(dumped))
    assert _load(str(dumped)).to_dict() == cfg.to_dict()


def _splits(cfg: Config):
    return [(d.dataset, d.split_by, d.split)
            for d in cfg.test_dataloader.dataset.datasets]


@pytest.mark.parametrize('name, splits', [
    ('refcoco', [('refcoco', 'unc', s) for s in ('val', 'testA', 'testB')]),
    ('refcoco+', [('refcoco+', 'unc', s) for s in ('val', 'testA', 'testB')]),
    ('refcocog_umd', [('refcocog', 'umd', s) for s in ('val', 'test')]),
    ('refcocog_google', [('refcocog', 'google', 'val')]),
    ('refsynth', [('refsynth', 'unc', s) for s in ('val', 'testA', 'testB')]),
    ('grefcoco', [('grefcoco', 'unc', s) for s in ('val', 'testA', 'testB')]),
    ('grefsynth',
     [('grefsynth', 'unc', s) for s in ('val', 'testA', 'testB')]),
])
def test_dataset_bases_name_their_annotations(name, splits):
    cfg = _load(osp.join(REPO_ROOT, 'configs', '_base_', 'datasets',
                         name + '.py'))
    assert _splits(cfg) == splits
    dataset, split_by = splits[0][:2]
    for loader, split in (('train_dataloader', 'train'),
                          ('val_dataloader', 'val')):
        ds = cfg[loader].dataset
        assert (ds.dataset, ds.split_by, ds.split) == (dataset, split_by,
                                                       split), loader
        assert ds.test_mode == (split != 'train') and ds.data_root == \
            cfg.data_root
    # every test split reads the val split's files with its pipeline
    for ds in cfg.test_dataloader.dataset.datasets:
        assert ds.test_mode and ds.data_root == cfg.data_root
        assert ds.pipeline == cfg.test_pipeline == cfg.val_dataloader.\
            dataset.pipeline


def test_cpu_configs_share_the_cpu_schedule():
    """The time-budget helpers agree with the loop they feed, and the
    pre-training config differs from the referring one only where it says
    so (budget, learning rate, no language model, a final val loop)."""
    schedule = _load(osp.join(REPO_ROOT, 'configs', '_base_', 'schedules',
                              'schedule_10min_cpu.py'))
    cpu = _load(osp.join(
        REPO_ROOT, 'configs', 'magnet',
        'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py'))
    pre = _load(osp.join(
        REPO_ROOT, 'configs', 'pretrain',
        'fpn_swin-nano_1xb16-3min_refsynth-categories-128x128.py'))
    for cfg in (schedule, cpu, pre):
        assert cfg.train_cfg.type == 'TimeBudgetTrainLoop'
        assert cfg.train_cfg.max_time == cfg.max_time
        assert cfg.train_cfg.max_iters == cfg.max_iters
        assert cfg.param_scheduler[0].end == cfg.warmup_iters
        assert cfg.param_scheduler[1].end == cfg.max_iters
        assert cfg.param_scheduler == schedule.param_scheduler
    assert (cpu.max_time, pre.max_time) == (600, 180)
    assert cpu.train_cfg == schedule.train_cfg
    assert pre.train_cfg == dict(schedule.train_cfg, max_time=180,
                                 val_begin=1, val_interval=pre.max_iters)
    keys = dict(schedule.optim_wrapper.paramwise_cfg.custom_keys)
    assert cpu.optim_wrapper.paramwise_cfg.custom_keys == dict(
        keys, **{'text_encoder.bert': dict(lr_mult=0.1)})
    assert pre.optim_wrapper.paramwise_cfg.custom_keys == keys
    assert pre.optim_wrapper.optimizer == dict(
        schedule.optim_wrapper.optimizer, lr=2e-3)
    assert cpu.optim_wrapper.optimizer == schedule.optim_wrapper.optimizer


def test_converter_reads_the_paper_config_preprocessor(tmp_path):
    from projects.magnet.converters.official_config import (
        DATA_PREPROCESSOR, PAPER_MODEL_CONFIG, paper_data_preprocessor)
    from projects.magnet.utils.errors import InputFileError
    paper = _load(PAPER_MODEL_CONFIG)
    assert DATA_PREPROCESSOR == paper.model.data_preprocessor.to_dict()
    assert DATA_PREPROCESSOR == paper.data_preprocessor.to_dict()
    # another model config gives its own preprocessor, not a copy
    other = tmp_path / 'model.py'
    other.write_text("model = dict(data_preprocessor=dict(type='X', "
                     "size_divisor=64))\n")
    assert paper_data_preprocessor(str(other)) == dict(type='X',
                                                        size_divisor=64)
    missing = str(tmp_path / 'absent.py')
    with pytest.raises(InputFileError, match='absent.py: no such config'):
        paper_data_preprocessor(missing)
