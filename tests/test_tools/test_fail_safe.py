"""Tools that fail safely: outputs checked before any work, never written
over an input, config values of the wrong type refused before the Runner,
wordless expressions refused by the demo. Each case ends with one
``error:`` line and exit status 1."""
from __future__ import annotations

import os.path as osp
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from projects.magnet.utils import run_cli

from ..conftest import REPO_ROOT, load_tool

CONFIG = osp.join(REPO_ROOT, 'configs', 'magnet',
                  'magnet_swin-nano_minilm-l6_1xb8-10min_refsynth-128x128.py')


def _one_error(capsys, code, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1, err
    errors = [line for line in err if line.startswith('error: ')]
    assert len(errors) == 1, err[-5:]
    assert not any('Traceback' in line for line in err)
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def _run(tool, argv, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [tool] + [str(a) for a in argv])
    monkeypatch.delenv('MAGNET_TRACEBACK', raising=False)
    return run_cli(load_tool(tool).main)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / 'img.png'
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return str(path)


# --------------------------------------------------------------- the demo
@pytest.mark.parametrize('out, needles', [
    ('{file}/demo.png', ['--out-file', 'is a file, not a folder']),
    ('{dir}', ['--out-file', 'is a folder']),
    ('{dir}/demo.pdf', ["extension '.pdf'", '.png, .jpg']),
    ('{image}', ['is the input']),
], ids=['under-a-file', 'a-folder', 'unknown-extension', 'the-input'])
def test_demo_refuses_out_file_before_building_the_model(
        out, needles, image, tmp_path, capsys):
    a_file = tmp_path / 'notes.txt'
    a_file.write_text('keep')
    out = out.format(file=a_file, dir=tmp_path, image=image)
    demo = load_tool('demo/image_demo.py')
    # a config that does not exist: the output is refused before the build
    code = demo.main([image, 'the cat', '--out-file', out, '--config',
                      str(tmp_path / 'never_read.py')])
    _one_error(capsys, code, *needles)
    assert a_file.read_text() == 'keep'
    assert Image.open(image).size == (8, 8)


@pytest.mark.parametrize('text', ['🐶🐱', '?!'])
def test_demo_refuses_wordless_expressions(text, image, capsys):
    demo = load_tool('demo/image_demo.py')
    code = demo.main([image, 'the cat', text])
    _one_error(capsys, code, 'expression 1:', 'has no word', repr(text))


# ------------------------------------------------------- model converters
def test_magnet2mmseg_refuses_to_overwrite_its_source(tmp_path, capsys,
                                                      monkeypatch):
    src = tmp_path / 'official.pth'
    torch.save({'model': {'x': torch.zeros(1)}}, src)
    before = src.read_bytes()
    code = _run('tools/model_converters/magnet2mmseg.py', [src, src],
                monkeypatch)
    _one_error(capsys, code, 'DST', 'is the input')
    assert src.read_bytes() == before
    code = _run('tools/model_converters/magnet2mmseg.py',
                [src, tmp_path / 'out.bin'], monkeypatch)
    _one_error(capsys, code, "extension '.bin'", '.pth')


def test_publish_model_checks_out_and_writes_atomically(tmp_path, capsys,
                                                        monkeypatch):
    src = tmp_path / 'iter_10.pth'
    torch.save({'state_dict': {'backbone.w': torch.ones(2),
                               'mask_grounding.w': torch.ones(2)},
                'meta': {}}, src)
    code = _run('tools/model_converters/publish_model.py', [src, src],
                monkeypatch)
    _one_error(capsys, code, 'OUT', 'is the input')
    code = _run('tools/model_converters/publish_model.py',
                [src, f'{tmp_path}/folder/'], monkeypatch)
    _one_error(capsys, code, 'is a folder')
    code = _run('tools/model_converters/publish_model.py',
                [src, tmp_path / 'pub' / 'model.pth'], monkeypatch)
    assert code == 0
    written = sorted((tmp_path / 'pub').iterdir())
    assert len(written) == 1 and written[0].name.startswith('model-')
    assert list(torch.load(written[0])['state_dict']) == ['backbone.w']


# --------------------------------------------------- train.py / test.py
def test_work_dir_that_is_a_file(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / 'results'
    a_file.write_text('x')
    code = _run('tools/train.py', [CONFIG, '--work-dir', a_file],
                monkeypatch)
    _one_error(capsys, code, 'work_dir', f'{a_file} is a file; expected a '
               'folder')
    code = _run('tools/train.py', [CONFIG, '--work-dir', a_file / 'sub'],
                monkeypatch)
    _one_error(capsys, code, 'work_dir', 'is a file, not a folder')
    ckpt = tmp_path / 'c.pth'
    torch.save({}, ckpt)
    code = _run('tools/test.py', [CONFIG, ckpt, '--work-dir', a_file],
                monkeypatch)
    _one_error(capsys, code, 'work_dir', 'is a file')
    code = _run('tools/test.py', [CONFIG, ckpt, '--work-dir', tmp_path,
                                  '--show-dir', 'results/vis'], monkeypatch)
    _one_error(capsys, code, '--show-dir', 'is a file, not a folder')


@pytest.mark.parametrize('option, needle', [
    ('train_dataloader.batch_size=eight',
     "train_dataloader.batch_size='eight' (from --cfg-options) is a str; "
     'expected an integer'),
    ('optim_wrapper.optimizer.lr=fast',
     "optim_wrapper.optimizer.lr='fast' (from --cfg-options) is a str; "
     'expected a number'),
    ('train_cfg.max_iters=10.5',
     'train_cfg.max_iters=10.5 (from --cfg-options) is a float; expected '
     'an integer'),
    ('train_dataloader.num_workers=True', 'num_workers=True'),
], ids=['batch_size', 'lr', 'max_iters', 'num_workers'])
def test_wrong_value_types_are_refused_before_the_runner(
        option, needle, tmp_path, capsys, monkeypatch):
    import mmengine.runner
    monkeypatch.setattr(mmengine.runner.Runner, 'from_cfg',
                        lambda cfg: pytest.fail('the Runner was built'))
    code = _run('tools/train.py', [CONFIG, '--work-dir', tmp_path,
                                   '--cfg-options', option], monkeypatch)
    _one_error(capsys, code, 'wrong value type', needle)


def test_wrong_value_type_in_a_config_file(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / 'my_config.py'
    cfg.write_text(f"_base_ = [{CONFIG!r}]\n"
                   "optim_wrapper = dict(optimizer=dict(lr='1e-3'))\n"
                   "train_dataloader = dict(batch_size='8')\n")
    code = _run('tools/train.py', [cfg, '--work-dir', tmp_path / 'w'],
                monkeypatch)
    line = _one_error(capsys, code, f'{cfg}: wrong value type',
                      "optim_wrapper.optimizer.lr='1e-3' is a str; expected "
                      'a number',
                      "train_dataloader.batch_size='8' is a str; expected "
                      'an integer', "write 8, not '8'")
    assert '--cfg-options' not in line


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    """Only user errors become an error: line: an exception of the Runner
    that is not about the config (here an AssertionError) propagates."""
    import mmengine.runner

    def broken(cfg):
        assert False, 'a bug in the runner'
    monkeypatch.setattr(mmengine.runner.Runner, 'from_cfg', broken)
    with pytest.raises(AssertionError, match='a bug in the runner'):
        _run('tools/train.py', [CONFIG, '--work-dir', tmp_path],
             monkeypatch)


# ---------------------------------------------------------- data tools
def test_generate_refer_dataset_out_under_a_file(tmp_path, capsys,
                                                 monkeypatch):
    a_file = tmp_path / 'data'
    a_file.write_text('x')
    code = _run('tools/dataset_converters/generate_refer_dataset.py',
                ['--out', a_file / 'refsynth', '--num-train-images', '1',
                 '--no-progress'], monkeypatch)
    _one_error(capsys, code, '--out', 'is a file, not a folder')


def test_plot_gradient_health_checks_out(tmp_path, capsys, monkeypatch):
    scalars = tmp_path / 'scalars.json'
    scalars.write_text('{"step": 1, "gate/a": 0.5}\n')
    code = _run('tools/analysis_tools/plot_gradient_health.py',
                [scalars, '--out', scalars], monkeypatch)
    _one_error(capsys, code, '--out', "extension '.json'")
    code = _run('tools/analysis_tools/plot_gradient_health.py',
                [scalars, '--out', scalars / 'x.png'],
                monkeypatch)
    _one_error(capsys, code, 'is a file, not a folder')
    scalars.write_text('{"step": 1, "gate/a"\n')
    code = _run('tools/analysis_tools/plot_gradient_health.py',
                [scalars], monkeypatch)
    _one_error(capsys, code, 'line 1 is not JSON')
