"""Bad inputs given to tools/train.py and tools/test.py: each ends with one
``error: ...`` line naming what is wrong and exit status 1, no traceback
(``--traceback`` shows it)."""
from __future__ import annotations

import logging
import os.path as osp
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from projects.magnet.utils import run_cli

from ..conftest import (REPO_ROOT, load_tool,
                        save_unconverted_official_checkpoint, tiny_refer_data)

CONFIG = osp.join(REPO_ROOT, 'configs', 'magnet',
                  'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py')


def _tool(name):
    return load_tool(f'tools/{name}.py')


@pytest.fixture(autouse=True)
def _release_captured_streams(capsys):
    """The tools run in this process create mmengine loggers whose stream
    handlers hold pytest's captured stderr; point them back at the real one
    before the capture closes (later tests would log to a closed file)."""
    yield
    from mmengine.logging import MMLogger
    for logger in list(MMLogger._instance_dict.values()):
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and \
                    handler.stream not in (sys.__stderr__, sys.__stdout__):
                handler.stream = sys.__stderr__  # no flush of the old one


def _run(name, argv, capsys, monkeypatch):
    """(exit status, stderr lines) of ``tools/<name>.py argv``."""
    monkeypatch.setattr(sys, 'argv', [f'{name}.py'] + argv)
    monkeypatch.delenv('MAGNET_TRACEBACK', raising=False)
    capsys.readouterr()
    code = run_cli(_tool(name).main)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return tiny_refer_data(tmp_path_factory, 'refsynth', 2, 2, 2, seed=1)


def _data_opts(root):
    return [f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            'train_dataloader.num_workers=0']


def _assert_one_error(code, err, *needles):
    assert code == 1
    errors = [line for line in err if line.startswith('error: ')]
    assert len(errors) == 1, err[-5:]
    assert not any('Traceback' in line for line in err)
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


@pytest.mark.parametrize('options, needles', [
    # a misspelt top-level key would be ignored by the Runner
    (['train_dataloder.batch_size=2'],
     ['unknown top-level key "train_dataloder"',
      'did you mean "train_dataloader"']),
    # a misspelt argument of a component
    (['model.backbone.embed_dim=16'], ['embed_dim']),
    # a text encoder whose width is not the backbone's fusion width
    (['model.backbone.text_channels=256'],
     ['backbone.text_channels=256', 'width 384']),
    (['model.text_encoder.vision_channels=[32,64,128,512]'],
     ['text_encoder.vision_channels=(32, 64, 128, 512)',
      'stage widths (32, 64, 128, 256)']),
], ids=['misspelt-top-level-key', 'misspelt-component-key',
        'text-width-mismatch', 'vision-width-mismatch'])
def test_train_refuses_bad_configs(options, needles, data, tmp_path, capsys,
                                   monkeypatch):
    code, err = _run('train', [CONFIG, '--work-dir', str(tmp_path),
                               '--cfg-options'] + _data_opts(data) + options,
                     capsys, monkeypatch)
    _assert_one_error(code, err, *needles)


def test_train_missing_config_and_dataset(tmp_path, capsys, monkeypatch):
    code, err = _run('train', [str(tmp_path / 'nope.py')], capsys,
                     monkeypatch)
    _assert_one_error(code, err, 'config file not found', 'nope.py')
    code, err = _run('train', [CONFIG, '--work-dir', str(tmp_path),
                               '--cfg-options'] +
                     _data_opts(str(tmp_path / 'no_data')) +
                     ['train_cfg.max_iters=1'], capsys, monkeypatch)
    _assert_one_error(code, err, 'no_data')


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """This config's weights (random), another model's, a cut file, a
    text file and an unconverted official MagNet file."""
    tmp = tmp_path_factory.mktemp('ckpts')
    init_default_scope('mmseg')
    model_cfg = Config.fromfile(CONFIG).model.to_dict()
    model_cfg['text_encoder'].pop('init_cfg', None)
    model = MODELS.build(model_cfg)
    good = str(tmp / 'good.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), good)
    other = str(tmp / 'other.pth')
    torch.save(dict(state_dict={f'net.layer{i}.weight': torch.zeros(2)
                                for i in range(30)}), other)
    cut = str(tmp / 'cut.pth')
    data = open(good, 'rb').read()
    with open(cut, 'wb') as f:
        f.write(data[:len(data) // 2])
    text = str(tmp / 'page.pth')
    with open(text, 'w') as f:
        f.write('<html><body>Not Found</body></html>\n')
    official = str(tmp / 'refcoco.pth')
    save_unconverted_official_checkpoint(official)
    return dict(good=good, other=other, cut=cut, text=text,
                official=official)


@pytest.mark.parametrize('which, needles', [
    ('other', ["does not match the config's model", 'missing keys',
               '30 unexpected keys']),
    ('cut', ['cut.pth', 'truncated or corrupt']),
    ('text', ['page.pth: not a checkpoint', 'this file is text']),
    ('official', ['official MagNet checkpoint', 'magnet2mmseg.py']),
], ids=['another-model', 'truncated', 'text-file', 'unconverted-official'])
def test_test_tool_refuses_checkpoints_that_are_not_the_configs(
        which, needles, checkpoints, data, tmp_path, capsys, monkeypatch):
    code, err = _run('test', [CONFIG, checkpoints[which], '--work-dir',
                              str(tmp_path), '--cfg-options'] +
                     _data_opts(data), capsys, monkeypatch)
    _assert_one_error(code, err, *needles)


def test_traceback_when_asked(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('MAGNET_TRACEBACK', '0')  # restored afterwards
    monkeypatch.setattr(sys, 'argv', ['train.py', str(tmp_path / 'x.py'),
                                      '--traceback'])
    with pytest.raises(FileNotFoundError, match='config file not found'):
        run_cli(_tool('train').main)


def test_config_that_is_not_valid_python(tmp_path, capsys, monkeypatch):
    bad = tmp_path / 'broken.py'
    bad.write_text("_base_ = ['../x.py'\nmodel = dict(\n")
    code, err = _run('train', [str(bad)], capsys, monkeypatch)
    _assert_one_error(code, err, f'{bad}: not a valid config',
                      'Python syntax error at line')


def test_cfg_options_item_without_equals_is_a_usage_error(capsys,
                                                          monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['train.py', CONFIG, '--cfg-options',
                                      'train_dataloader.batch_size'])
    with pytest.raises(SystemExit) as exit_info:
        _tool('train').parse_args()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --cfg-options: expects key=value items" in err
    assert "got 'train_dataloader.batch_size'" in err
