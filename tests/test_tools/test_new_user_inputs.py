"""Bad inputs a new user gives the command-line tools: each ends with one
``error:`` line (exit 1) or a usage error (exit 2) before any long work
(model build, dataset generation, training), or is handled with a logged
note; nothing is overwritten or half-written.

(Over 400 lines: one short case per bad input of the sweep, grouped by
tool; splitting them would scatter one table's tests.)"""
from __future__ import annotations

import json
import os
import os.path as osp
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from projects.magnet.utils import OutputPathError, check_output_file
from projects.magnet.utils.config_check import (ConfigValueError,
                                                check_config_values)
from projects.magnet.utils.output_files import check_input_file

from ..conftest import REPO_ROOT, load_tool
from .test_fail_safe import CONFIG, _one_error, _run

NEVER_READ = '/nonexistent/never_read.py'


def _usage_error(capsys, argv_call, *needles):
    """``argv_call()`` ends with an argparse usage error naming
    ``needles``."""
    with pytest.raises(SystemExit) as exc:
        argv_call()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.fixture
def image(tmp_path):
    path = tmp_path / 'img.png'
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return str(path)


# ------------------------------------------------------- shared checks
@pytest.mark.skipif(not osp.isdir('/proc/self'), reason='needs /proc')
def test_output_in_a_folder_where_no_file_can_be_created():
    # os.access says /proc is writable for root; the write probe does not
    with pytest.raises(OutputPathError, match='no file can be created'):
        check_output_file('/proc/out.png')


def test_input_file_that_is_a_folder_or_empty(tmp_path):
    with pytest.raises(OSError, match='is a folder; expected a file'):
        check_input_file(str(tmp_path), 'checkpoint file')
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(OSError, match='empty file'):
        check_input_file(str(empty), 'checkpoint file')
    with pytest.raises(FileNotFoundError, match='checkpoint file not found'):
        check_input_file(str(tmp_path / 'nope.pth'), 'checkpoint file')


def test_scheduler_that_ends_before_it_begins():
    cfg = dict(param_scheduler=[dict(begin=0, end=30),
                                dict(begin=30, end=1)])
    with pytest.raises(ConfigValueError,
                       match=r'param_scheduler\.1\.end=1 is not after '
                       r'param_scheduler\.1\.begin=30 \(param_scheduler\.1'
                       r'\.end from --cfg-options\)'):
        check_config_values(cfg, 'c.py', {'param_scheduler.1.end': 1})
    check_config_values(dict(param_scheduler=[dict(begin=0, end=30)]))


# ------------------------------------------------------ train.py / test.py
def test_train_config_that_is_a_folder(tmp_path, capsys, monkeypatch):
    code = _run('tools/train.py', [tmp_path], monkeypatch)
    _one_error(capsys, code, 'is a folder', 'expected a config file')


def test_train_scheduler_end_before_begin_before_the_runner(
        tmp_path, capsys, monkeypatch):
    code = _run('tools/train.py', [
        CONFIG, '--work-dir', tmp_path / 'w', '--cfg-options',
        'param_scheduler.1.end=1'], monkeypatch)
    _one_error(capsys, code, 'inconsistent values', 'param_scheduler.1.end')
    assert not (tmp_path / 'w').exists() or not os.listdir(tmp_path / 'w')


def _bad_file(path: Path, kind: str, text: str = '') -> Path:
    """``path`` made a folder (``kind='folder'``), an empty file
    (``'empty'``) or a file holding ``text`` (any other kind)."""
    if kind == 'folder':
        path.mkdir()
    else:
        path.write_text('' if kind == 'empty' else text)
    return path


@pytest.mark.parametrize('kind, needle', [
    ('folder', 'is a folder; expected a file'),
    ('empty', 'an empty file'),
])
def test_test_checkpoint_folder_or_empty_before_the_config(
        kind, needle, tmp_path, capsys, monkeypatch):
    ckpt = _bad_file(tmp_path / 'ckpt.pth', kind)
    code = _run('tools/test.py', [NEVER_READ, ckpt], monkeypatch)
    _one_error(capsys, code, str(ckpt), needle)


def test_test_empty_show_dir(tmp_path, capsys, monkeypatch):
    ckpt = tmp_path / 'w.pth'
    torch.save({'state_dict': {}}, ckpt)
    code = _run('tools/test.py', [NEVER_READ, ckpt, '--show-dir', ''],
                monkeypatch)
    _one_error(capsys, code, '--show-dir: empty path')


# -------------------------------------------------------------- the demo
@pytest.mark.parametrize('kind, needle', [
    ('folder', 'is a folder; expected a file'),
    ('empty', 'empty file (0 bytes)'),
    ('text', 'not an image PIL can read'),
])
def test_demo_image_refused_before_the_config_is_read(kind, needle,
                                                      tmp_path, capsys):
    path = _bad_file(tmp_path / 'in.png', kind, 'not an image')
    demo = load_tool('demo/image_demo.py')
    code = demo.main([str(path), 'the cat', '--config', NEVER_READ,
                      '--out-file', str(tmp_path / 'o.png')])
    _one_error(capsys, code, needle)


@pytest.fixture
def unbuildable_config(tmp_path):
    """A config that parses but whose model cannot be built: an error
    about another input proves that input was checked first."""
    cfg = tmp_path / 'unbuildable.py'
    cfg.write_text("model = dict(type='NoSuchModel')\n")
    return str(cfg)


@pytest.mark.parametrize('kind, needle', [
    ('folder', 'is a folder; expected a file'),
    ('empty', 'this file is an empty file'),
    ('text', 'this file is text'),
])
def test_demo_checkpoint_refused_before_the_model_build(
        kind, needle, image, unbuildable_config, tmp_path, capsys):
    ckpt = _bad_file(tmp_path / 'w.pth', kind, '<html>not found</html>')
    demo = load_tool('demo/image_demo.py')
    code = demo.main([image, 'the cat', '--checkpoint', str(ckpt),
                      '--config', unbuildable_config,
                      '--out-file', str(tmp_path / 'o.png')])
    _one_error(capsys, code, str(ckpt), needle)
    assert not (tmp_path / 'o.png').exists()


def test_demo_notes_animated_and_exif_rotated_images(tmp_path):
    demo = load_tool('demo/image_demo.py')
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8))
              for v in (0, 128, 255)]
    gif = tmp_path / 'a.gif'
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    assert any('3 frames; the first frame' in n
               for n in demo.check_image(str(gif)))
    exif = Image.Exif()
    exif[0x0112] = 6
    jpg = tmp_path / 'r.jpg'
    frames[1].save(jpg, exif=exif)
    notes = demo.check_image(str(jpg))
    assert any('EXIF orientation 6 (rotated 90) is ignored' in n
               for n in notes)
    plain = tmp_path / 'p.png'
    frames[1].save(plain)
    assert demo.check_image(str(plain)) == []


# ------------------------------------------------- counts and sizes
@pytest.mark.parametrize('tool, argv, needle', [
    ('tools/analysis_tools/get_flops.py', ['--batch', '0'],
     '--batch must be >= 1, got 0'),
    ('tools/analysis_tools/get_flops.py', ['--shape', '0', '-4'],
     '--shape must be >= 1, got 0 -4'),
    ('tools/analysis_tools/get_flops.py', ['--num-tokens', '0'],
     '--num-tokens must be >= 1'),
    ('tools/analysis_tools/get_flops.py',
     ['--num-tokens', '20', '--real-tokens', '30'],
     '--real-tokens (30) must be <= --num-tokens (20)'),
    ('tools/analysis_tools/check_gradients.py', ['--shape', '0', '0'],
     '--shape must be >= 1'),
    ('tools/analysis_tools/check_gradients.py', ['--num-tokens', '0'],
     '--num-tokens must be >= 1'),
    ('tools/analysis_tools/eval_unseen_scenes.py',
     ['ckpt', '--num-scenes', '0'], '--num-scenes must be >= 1'),
    ('tools/analysis_tools/eval_unseen_scenes.py', ['ckpt', '--size', '8'],
     '--size must be >= 32'),
    ('tools/analysis_tools/eval_unseen_scenes.py',
     ['ckpt', '--num-panels', '-3'], '--num-panels must be >= 0'),
], ids=['flops-batch', 'flops-shape', 'flops-tokens', 'flops-real-tokens',
        'grad-shape', 'grad-tokens', 'unseen-scenes', 'unseen-size',
        'unseen-panels'])
def test_counts_and_sizes_below_their_minimum(tool, argv, needle, capsys):
    module = load_tool(tool)
    _usage_error(capsys, lambda: module.parse_args([NEVER_READ] + argv),
                 needle)


def test_check_official_equivalence_threads_and_empty_fixture(
        tmp_path, capsys, monkeypatch):
    tool = 'tools/analysis_tools/check_official_equivalence.py'
    monkeypatch.setattr(sys, 'argv', [tool, '--threads', '0'])
    _usage_error(capsys, load_tool(tool).main, '--threads must be >= 1')
    for name in load_tool(tool).FIXTURE_FILES:
        (tmp_path / name).write_bytes(b'')
    code = _run(tool, [tmp_path], monkeypatch)
    _one_error(capsys, code, 'missing (or empty)', 'inputs.pt')


# ------------------------------------------------- outputs up front
@pytest.mark.skipif(not osp.isdir('/proc/self'), reason='needs /proc')
def test_get_flops_out_checked_before_the_config(capsys, monkeypatch):
    code = _run('tools/analysis_tools/get_flops.py',
                [NEVER_READ, '--out', '/proc/flops.json'], monkeypatch)
    _one_error(capsys, code, '--out', 'no file can be created')


def test_get_flops_config_with_a_broken_base(tmp_path, capsys,
                                             monkeypatch):
    (tmp_path / 'base.py').write_text('x = (\n')
    child = tmp_path / 'child.py'
    child.write_text("_base_ = ['base.py']\n")
    code = _run('tools/analysis_tools/get_flops.py', [child], monkeypatch)
    _one_error(capsys, code, 'not a valid config', 'syntax error')


@pytest.mark.parametrize('out, needle', [
    ('{tmp}/sub/', 'is a folder'),
    ('{tmp}/refs.txt', "extension '.txt'"),
    ('/proc/refs.json', 'no file can be created'),
], ids=['folder', 'not-json', 'proc'])
def test_refs_to_json_out_checked_before_reading(out, needle, tmp_path,
                                                 capsys, monkeypatch):
    if out.startswith('/proc') and not osp.isdir('/proc/self'):
        pytest.skip('needs /proc')
    src = tmp_path / 'refs(unc).p'
    src.write_bytes(b'not read')
    code = _run('tools/dataset_converters/refs_to_json.py',
                [src, '--out', out.format(tmp=tmp_path)], monkeypatch)
    _one_error(capsys, code, '--out', needle)
    assert not (tmp_path / 'refs.txt').exists()


def test_plot_gradient_health_rows_that_are_not_objects(
        tmp_path, capsys, monkeypatch):
    scalars = tmp_path / 'scalars.json'
    scalars.write_text('[1, 2]\n')
    code = _run('tools/analysis_tools/plot_gradient_health.py',
                [scalars, '--out', tmp_path / 'p.png'], monkeypatch)
    _one_error(capsys, code, 'line 1 is a list, not a JSON object')
    code = _run('tools/analysis_tools/plot_gradient_health.py',
                [tmp_path / 'nope'], monkeypatch)
    _one_error(capsys, code, 'nope not found')


# ------------------------------------------------- inputs up front
@pytest.mark.parametrize('tool', ['tools/model_converters/magnet2mmseg.py',
                                  'tools/model_converters/publish_model.py'])
def test_converters_source_that_is_a_folder(tool, tmp_path, capsys,
                                            monkeypatch):
    src = tmp_path / 'src.pth'
    src.mkdir()
    code = _run(tool, [src, tmp_path / 'dst.pth'], monkeypatch)
    _one_error(capsys, code, 'is a folder; expected a file')
    assert not (tmp_path / 'dst.pth').exists()


def test_check_gradients_config_without_an_optimizer(tmp_path, capsys,
                                                     monkeypatch):
    cfg = tmp_path / 'test_only.py'
    cfg.write_text("model = dict(type='NoSuchModel')\n")
    code = _run('tools/analysis_tools/check_gradients.py', [cfg],
                monkeypatch)
    _one_error(capsys, code, 'no optim_wrapper')


def test_check_gradients_checkpoint_that_is_a_folder(tmp_path, capsys,
                                                     monkeypatch):
    ckpt = tmp_path / 'ckpt'
    ckpt.mkdir()
    code = _run('tools/analysis_tools/check_gradients.py',
                [CONFIG, '--checkpoint', ckpt], monkeypatch)
    _one_error(capsys, code, 'is a folder; expected a file')


def test_eval_unseen_scenes_checkpoint_before_the_model(
        tmp_path, unbuildable_config, capsys, monkeypatch):
    ckpt = tmp_path / 'w.pth'
    ckpt.write_text('<html>')
    code = _run('tools/analysis_tools/eval_unseen_scenes.py',
                [unbuildable_config, ckpt, '--num-scenes', '1'],
                monkeypatch)
    _one_error(capsys, code, 'not a checkpoint', 'text')


def test_browse_dataset_without_its_image_folder(tmp_path, capsys,
                                                 monkeypatch):
    (tmp_path / 'refsynth').mkdir()
    code = _run('tools/analysis_tools/browse_dataset.py', [
        '--data-root', tmp_path, '--dataset', 'refsynth',
        '--output-dir', tmp_path / 'out'], monkeypatch)
    _one_error(capsys, code, 'image folder', 'not found', '--img-dir')


# ------------------------------------------------ the dataset generator
def test_generator_refuses_a_root_that_holds_a_dataset(tmp_path, capsys,
                                                       monkeypatch):
    tool = 'tools/dataset_converters/generate_refer_dataset.py'
    small = ['--num-train-images', '1', '--num-val-images', '0',
             '--num-test-images', '0', '--img-size', '32', '--no-progress']
    assert _run(tool, ['--out', tmp_path] + small, monkeypatch) == 0
    capsys.readouterr()
    image = next((tmp_path / 'images').rglob('SYN_*'))
    before = image.read_bytes()
    # another name and seed would redraw image 1 under refsynth's masks
    code = _run(tool, ['--out', tmp_path, '--name', 'other', '--seed', '5']
                + small, monkeypatch)
    _one_error(capsys, code, 'already holds a generated dataset',
               '--overwrite')
    assert image.read_bytes() == before
    assert not (tmp_path / 'other').exists()
    assert _run(tool, ['--out', tmp_path, '--overwrite'] + small,
                monkeypatch) == 0


def test_generator_with_nothing_to_generate(tmp_path, capsys):
    gen = load_tool('tools/dataset_converters/generate_refer_dataset.py')
    _usage_error(capsys, lambda: gen.parse_args(
        ['--out', str(tmp_path), '--num-train-images', '0',
         '--num-val-images', '0', '--num-test-images', '0']),
        'nothing to generate')


# ------------------------------------------------------------ main_job
def test_main_job_missing_config(tmp_path, capsys, monkeypatch):
    code = _run('tools/main_job.py', ['--config', tmp_path / 'nope.py',
                                      '--work-dir', tmp_path / 'w'],
                monkeypatch)
    _one_error(capsys, code, 'config file not found')


def test_main_job_work_dir_checked_before_the_dataset(tmp_path, capsys,
                                                      monkeypatch):
    a_file = tmp_path / 'a_file'
    a_file.write_text('keep')
    data = tmp_path / 'data'
    code = _run('tools/main_job.py', [
        '--work-dir', a_file, '--data-root', data, '--num-train-images',
        '1', '--num-val-images', '1', '--num-test-images', '2'],
        monkeypatch)
    _one_error(capsys, code, '--work-dir', 'is a file')
    assert a_file.read_text() == 'keep'
    assert not (data / 'refsynth').exists()  # nothing generated


def test_main_job_max_iters_shorter_than_the_warmup(tmp_path, capsys,
                                                    monkeypatch):
    code = _run('tools/main_job.py', [
        '--max-iters', '1', '--work-dir', tmp_path / 'w', '--data-root',
        tmp_path / 'data'], monkeypatch)
    _one_error(capsys, code, 'param_scheduler.1.end=1 is not after')
    assert not (tmp_path / 'data' / 'refsynth').exists()


@pytest.mark.parametrize('argv, needle', [
    (['--max-iters', '-1'], '--max-iters must be >= 1'),
    (['--num-overlays', '-1'], '--num-overlays must be >= 0'),
    (['--num-test-images', '1'], '--num-test-images must be >= 2'),
])
def test_main_job_counts(argv, needle, capsys, monkeypatch):
    main_job = load_tool('tools/main_job.py')
    monkeypatch.setattr(sys, 'argv', ['main_job.py'] + argv)
    _usage_error(capsys, main_job.parse_args, needle)


def test_main_job_failed_step_is_one_error_line(tmp_path):
    main_job = load_tool('tools/main_job.py')
    script = tmp_path / 'fails.py'
    script.write_text('import sys\nsys.exit(3)\n')
    with pytest.raises(main_job.StepFailedError,
                       match=r'fails.py failed \(exit status 3\)'):
        main_job.run([sys.executable, str(script)])


# ------------------------------------------------ the launcher scripts
def _fake_launcher(tmp_path, name):
    """A ``name`` on PATH that writes its arguments, one per line."""
    bindir = tmp_path / 'bin'
    bindir.mkdir(exist_ok=True)
    record = tmp_path / f'{name}.args'
    fake = bindir / name
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f'{bindir}{os.pathsep}{os.environ["PATH"]}')
    return env, record


def _script(argv, env):
    return subprocess.run(['bash'] + [str(a) for a in argv], env=env,
                          cwd=REPO_ROOT, capture_output=True, text=True)


@pytest.mark.parametrize('argv, extra_env, needle', [
    (['tools/dist_train.sh', CONFIG, '0'], {},
     "GPUS must be an integer >= 1, got '0'"),
    (['tools/dist_train.sh', CONFIG, 'two'], {},
     "GPUS must be an integer >= 1, got 'two'"),
    (['tools/dist_train.sh', '/nonexistent.py', '1'], {},
     'config file not found: /nonexistent.py'),
    (['tools/dist_test.sh', CONFIG, '{tmp}', '1'], {},
     'is a folder; expected a file'),
    (['tools/slurm_train.sh', 'p', 'j', CONFIG], {'GPUS': '0'},
     "GPUS must be an integer >= 1, got '0'"),
], ids=['gpus-0', 'gpus-word', 'no-config', 'ckpt-folder', 'slurm-gpus-0'])
def test_launcher_scripts_refuse_before_launching(argv, extra_env, needle,
                                                  tmp_path):
    env, record = _fake_launcher(tmp_path, 'torchrun')
    _fake_launcher(tmp_path, 'srun')
    env.update(extra_env)
    res = _script([a.format(tmp=tmp_path) for a in argv], env)
    assert res.returncode == 1, res.stderr
    errors = [li for li in res.stderr.splitlines()
              if li.startswith('error: ')]
    assert len(errors) == 1 and needle in errors[0], res.stderr
    assert not record.exists()  # nothing launched


@pytest.mark.parametrize('script, launcher', [
    ('tools/dist_train.sh', 'torchrun'), ('tools/slurm_train.sh', 'srun')])
def test_launcher_scripts_keep_arguments_with_spaces(script, launcher,
                                                     tmp_path):
    env, record = _fake_launcher(tmp_path, launcher)
    head = [CONFIG, '2'] if launcher == 'torchrun' else ['p', 'j', CONFIG]
    res = _script([script] + head + ['--work-dir', '/tmp/a b'], env)
    assert res.returncode == 0, res.stderr
    args = record.read_text().splitlines()
    assert args[-2:] == ['--work-dir', '/tmp/a b'], args


def test_launcher_scripts_without_arguments_print_usage(tmp_path):
    for script in ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh',
                   'slurm_test.sh'):
        res = _script([osp.join('tools', script)], dict(os.environ))
        assert res.returncode == 2 and 'usage:' in res.stderr, res.stderr


def test_get_flops_missing_config_leaves_out_untouched(tmp_path, capsys,
                                                      monkeypatch):
    """A missing config is one error line; an existing ``--out`` stays as
    it was."""
    out = tmp_path / 'flops.json'
    out.write_text(json.dumps({'keep': 1}))
    code = _run('tools/analysis_tools/get_flops.py',
                [tmp_path / 'nope.py', '--out', out], monkeypatch)
    _one_error(capsys, code, 'config file not found')
    assert json.loads(out.read_text()) == {'keep': 1}


def test_refs_to_json_source_that_is_a_folder(tmp_path, capsys,
                                              monkeypatch):
    code = _run('tools/dataset_converters/refs_to_json.py', [tmp_path],
                monkeypatch)
    _one_error(capsys, code, 'refs pickle', 'is a folder; expected a file')


@pytest.mark.parametrize('tool, head', [
    ('tools/train.py', [CONFIG]),
    ('tools/analysis_tools/check_gradients.py', [CONFIG]),
])
def test_cfg_options_replacing_a_component_by_a_list(tool, head, tmp_path,
                                                     capsys, monkeypatch):
    code = _run(tool, head + ['--cfg-options', 'model.backbone=[1,2]'],
                monkeypatch)
    _one_error(capsys, code, "model.backbone=[1, 2] replaces a dict",
               'model.backbone.<field>=value')


def test_cfg_options_keep_dicts_and_new_keys():
    from projects.magnet.utils.config_check import check_option_shapes
    cfg = dict(model=dict(backbone=dict(type='X', depth=2)),
               param_scheduler=[dict(type='A', end=3)])
    check_option_shapes(cfg, {'model.backbone.depth': 4,
                              'model.backbone': dict(type='Y'),
                              'param_scheduler.0.end': 5,
                              'new_key.sub': [1]})
    # None switches a component off (model.mask_grounding=None)
    check_option_shapes(cfg, {'model.backbone': None})
    with pytest.raises(ConfigValueError, match=r'param_scheduler\.0=3'):
        check_option_shapes(cfg, {'param_scheduler.0': 3})


def test_refs_to_json_interrupted_mid_write(tmp_path, monkeypatch):
    """Ctrl-C while the JSON is written: no partial file, no temporary
    file left, an existing output (``--force``) untouched."""
    tool = load_tool('tools/dataset_converters/refs_to_json.py')
    dst = tmp_path / 'refs.json'
    dst.write_text('old')
    calls = []
    dumps = json.dumps

    def interrupted(obj, **kwargs):  # the second ref: after a write
        calls.append(obj)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return dumps(obj, **kwargs)

    monkeypatch.setattr(tool.json, 'dumps', interrupted)
    with pytest.raises(KeyboardInterrupt):
        tool.write_refs_json([{'ref_id': 1}, {'ref_id': 2}], str(dst))
    assert len(calls) == 2  # one ref was written before the interrupt
    assert dst.read_text() == 'old'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['refs.json']
