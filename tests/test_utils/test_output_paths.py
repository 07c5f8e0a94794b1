"""Output paths are checked before any work and written atomically."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from projects.magnet.utils import (IMAGE_EXTENSIONS, OutputPathError,
                                   UserError, atomic_write, check_output_dir,
                                   check_output_file, save_checkpoint,
                                   save_image)


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / 'input.png'
    path.write_bytes(b'original')
    return path


def test_parent_that_is_a_file_is_refused(a_file):
    target = str(a_file / 'out.png')
    with pytest.raises(OutputPathError, match=f'{a_file} is a file, not a '
                       'folder') as err:
        check_output_file(target, IMAGE_EXTENSIONS)
    assert isinstance(err.value, (UserError, OSError))
    with pytest.raises(OutputPathError, match='is a file, not a folder'):
        check_output_dir(str(a_file / 'sub' / 'dir'))


def test_folder_as_output_file_and_file_as_output_dir(tmp_path, a_file):
    with pytest.raises(OutputPathError, match='is a folder; expected a '
                       'file path ending in .png'):
        check_output_file(str(tmp_path), ['.png'])
    with pytest.raises(OutputPathError, match='is a folder'):
        check_output_file(str(tmp_path / 'new') + os.sep)
    with pytest.raises(OutputPathError,
                       match=f'{a_file} is a file; expected a folder'):
        check_output_dir(str(a_file), what='work_dir')


def test_unknown_extension(tmp_path):
    with pytest.raises(OutputPathError, match=r"out\.pdf has extension "
                       r"'\.pdf'; expected one of \.png, \.jpg"):
        check_output_file(str(tmp_path / 'out.pdf'), IMAGE_EXTENSIONS)
    with pytest.raises(OutputPathError, match=r"extension '\(none\)'"):
        check_output_file(str(tmp_path / 'out'), ['.pth'])
    # case does not matter
    assert check_output_file(str(tmp_path / 'A.PNG'), IMAGE_EXTENSIONS)


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes anywhere')
def test_folder_that_is_not_writable(tmp_path):
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputPathError,
                           match=f'folder {locked} is not writable'):
            check_output_file(str(locked / 'sub' / 'x.png'))
        with pytest.raises(OutputPathError, match='not writable'):
            check_output_dir(str(locked / 'work'))
    finally:
        locked.chmod(0o700)


def test_output_that_is_an_input(tmp_path, a_file):
    with pytest.raises(OutputPathError, match='is the input'):
        check_output_file(str(a_file), IMAGE_EXTENSIONS,
                          inputs=[None, str(a_file)])
    # through a symbolic link and through a relative path
    link = tmp_path / 'link.png'
    link.symlink_to(a_file)
    with pytest.raises(OutputPathError, match='is the input'):
        check_output_file(str(link), inputs=[str(a_file)])
    rel = os.path.relpath(a_file)
    with pytest.raises(OutputPathError, match='is the input'):
        check_output_file(rel, inputs=[str(a_file)])
    assert a_file.read_bytes() == b'original'


def test_missing_parents_are_created(tmp_path):
    target = tmp_path / 'a' / 'b' / 'out.png'
    assert check_output_file(str(target), IMAGE_EXTENSIONS) == str(target)
    assert target.parent.is_dir() and not target.exists()
    work = tmp_path / 'w' / 'x'
    check_output_dir(str(work))
    assert work.is_dir()


def test_atomic_write_failure_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / 'ckpt.pth'
    target.write_bytes(b'old weights')
    with pytest.raises(KeyError):
        with atomic_write(str(target)) as f:
            f.write(b'half of the new')
            raise KeyError('interrupted')
    assert target.read_bytes() == b'old weights'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ckpt.pth']


def test_atomic_write_replaces_on_success(tmp_path):
    target = tmp_path / 'ckpt.pth'
    target.write_bytes(b'old weights')
    save_checkpoint({'w': torch.arange(3)}, str(target))
    assert torch.load(str(target))['w'].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ckpt.pth']
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_image_writes_the_format_of_the_extension(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200
    save_image(rgb, str(tmp_path / 'x.png'))
    save_image(rgb, str(tmp_path / 'x.jpg'))
    assert Image.open(tmp_path / 'x.png').format == 'PNG'
    assert Image.open(tmp_path / 'x.jpg').format == 'JPEG'
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'x.png')),
                                  rgb)
    with pytest.raises(OutputPathError, match='no image writer'):
        save_image(rgb, str(tmp_path / 'x.pdfx'))
    assert not (tmp_path / 'x.pdfx').exists()
