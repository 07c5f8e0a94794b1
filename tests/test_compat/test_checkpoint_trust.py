import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

from projects.magnet.compat.checkpoint import (TRUST_ENV,
                                               UntrustedCheckpointError,
                                               load_runner_checkpoint,
                                               load_weights, trust_directory)


class _Payload:
    """Unpickling this writes a marker file: stands for arbitrary code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


class _Custom:

    def __init__(self):
        self.value = 3


def _save_malicious(path, marker):
    torch.save({'state_dict': {'w': torch.ones(1)},
                'evil': _Payload(marker)}, path)


def test_plain_weights_load(tmp_path):
    path = str(tmp_path / 'w.pth')
    torch.save({'model': {'a': torch.arange(3)}}, path)
    assert torch.equal(load_weights(path)['model']['a'], torch.arange(3))


def test_weights_refuse_code_and_do_not_run_it(tmp_path):
    path = str(tmp_path / 'evil.pth')
    marker = str(tmp_path / 'ran')
    _save_malicious(path, marker)
    with pytest.raises(UntrustedCheckpointError, match='evil.pth'):
        load_weights(path)
    with pytest.raises(UntrustedCheckpointError, match='refusing'):
        CheckpointLoader.load_checkpoint(path)
    assert not osp.exists(marker)


def test_truncated_file_is_reported(tmp_path):
    path = str(tmp_path / 'cut.pth')
    torch.save({'a': torch.rand(1000)}, path)
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(RuntimeError, match='cut.pth'):
        load_weights(path)


def test_runner_checkpoint_types_load_weights_only(tmp_path):
    """What mmengine's CheckpointHook writes loads without full unpickling."""
    buf = HistoryBuffer()
    buf.update(np.float64(0.5))
    ckpt = {
        'meta': {'seed': 0, 'epoch': 1, 'iter': 2, 'dtype': np.dtype('f4'),
                 'np_scalar': np.float32(1.5), 'arr': np.zeros(3)},
        'state_dict': {'w': torch.ones(2)},
        'message_hub': {'log_scalars': {'loss': buf}},
    }
    path = str(tmp_path / 'iter_2.pth')
    torch.save(ckpt, path)
    loaded = CheckpointLoader.load_checkpoint(path)
    assert loaded['meta']['iter'] == 2
    assert isinstance(loaded['message_hub']['log_scalars']['loss'],
                      HistoryBuffer)
    model = torch.nn.Linear(1, 2, bias=False)
    torch.save({'state_dict': {'weight': torch.full((2, 1), 7.)},
                'message_hub': {'log_scalars': {'loss': buf}}}, path)
    load_checkpoint(model, path, strict=True)
    assert torch.all(model.weight == 7)


def test_trusted_directory_allows_full_unpickling(tmp_path, monkeypatch):
    trusted, other = tmp_path / 'work_dir', tmp_path / 'downloads'
    trusted.mkdir()
    other.mkdir()
    for d in (trusted, other):
        torch.save({'state_dict': {}, 'obj': _Custom()}, str(d / 'c.pth'))
    with pytest.raises(UntrustedCheckpointError, match='downloads'):
        CheckpointLoader.load_checkpoint(str(other / 'c.pth'))
    monkeypatch.setenv(TRUST_ENV, str(trusted))
    assert CheckpointLoader.load_checkpoint(
        str(trusted / 'c.pth'))['obj'].value == 3
    monkeypatch.delenv(TRUST_ENV)
    with pytest.raises(UntrustedCheckpointError):
        CheckpointLoader.load_checkpoint(str(trusted / 'c.pth'))
    trust_directory(str(trusted))
    assert CheckpointLoader.load_checkpoint(
        str(trusted / 'c.pth'))['obj'].value == 3
    # the released-weights loader never unpickles, trusted or not
    with pytest.raises(UntrustedCheckpointError):
        load_weights(str(trusted / 'c.pth'))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_weights(str(tmp_path / 'nope.pth'))
    assert not os.path.exists(tmp_path / 'nope.pth')


class _GetattrGadget:
    """Pickles as getattr(numpy.ndarray, 'tofile'): a gadget to reach code."""

    def __reduce__(self):
        return (getattr, (np.ndarray, 'tofile'))


def test_getattr_is_restricted_to_history_buffer(tmp_path):
    path = str(tmp_path / 'gadget.pth')
    torch.save({'x': _GetattrGadget()}, path)
    with pytest.raises(UntrustedCheckpointError, match='gadget.pth'):
        CheckpointLoader.load_checkpoint(path)


@pytest.mark.parametrize('content,kind', [(b'', 'an empty file'),
                                          (b'key: value\n', 'text'),
                                          (b'\xff\xd8\xff\xe0JFIF', 'binary')])
def test_files_that_are_not_checkpoints(tmp_path, content, kind):
    from projects.magnet.compat import NotACheckpointError, check_torch_file
    path = tmp_path / 'x.pth'
    path.write_bytes(content)
    for load in (check_torch_file, load_weights, load_runner_checkpoint):
        with pytest.raises(NotACheckpointError,
                           match=rf'x\.pth: not a checkpoint.*{kind}'):
            load(str(path))
    # real torch files pass: zip archives and legacy pickles
    torch.save({'a': torch.zeros(1)}, str(path))
    check_torch_file(str(path))
    torch.save({'a': torch.zeros(1)}, str(path),
               _use_new_zipfile_serialization=False)
    check_torch_file(str(path))
    assert torch.equal(load_weights(str(path))['a'], torch.zeros(1))
