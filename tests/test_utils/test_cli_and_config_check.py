"""run_cli (one error: line), the misspelt-config-key check, and the
random-state capture / restore used for exact resume."""
from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from projects.magnet.utils import (MisspeltConfigKeyError,
                                   capture_random_state,
                                   check_config_keys, error_line,
                                   preserved_random_state,
                                   restore_random_state, run_cli)


def test_error_line_forms():
    assert error_line(FileNotFoundError('x.json not found')) == \
        'error: x.json not found'
    assert error_line(KeyError('"images" is missing')) == \
        'error: KeyError: "images" is missing'
    assert error_line(RuntimeError('two\nlines')) == \
        'error: RuntimeError: two\n  lines'
    assert error_line(ValueError()) == 'error: ValueError'


def test_run_cli_exit_status_and_traceback(capsys, monkeypatch):
    monkeypatch.setenv('MAGNET_TRACEBACK', '0')

    def bad():
        raise pickle.UnpicklingError('refs.p: not a REFER pickle')

    assert run_cli(lambda: None) == 0
    assert run_cli(lambda: 3) == 3
    assert run_cli(bad) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        'error: UnpicklingError: refs.p: not a REFER pickle']
    monkeypatch.setenv('MAGNET_TRACEBACK', '1')
    with pytest.raises(pickle.UnpicklingError):
        run_cli(bad)

    def bug():
        raise ZeroDivisionError('a bug keeps its traceback')

    monkeypatch.setenv('MAGNET_TRACEBACK', '0')
    with pytest.raises(ZeroDivisionError):
        run_cli(bug)


def test_misspelt_top_level_keys():
    check_config_keys(['model', 'data_root', 'max_iters', 'train_pipeline',
                       'test_pipeline', 'tokenizer', 'minilm', '_base_'])
    with pytest.raises(MisspeltConfigKeyError) as err:
        check_config_keys(['optim_wraper', 'param_schedular', 'model'],
                          'my.py')
    msg = str(err.value)
    assert msg.startswith('my.py: unknown top-level key')
    assert '"optim_wraper" (did you mean "optim_wrapper"?)' in msg
    assert '"param_schedular" (did you mean "param_scheduler"?)' in msg


def _draws():
    return (random.random(), float(np.random.rand()),
            float(torch.rand(())))


def test_random_state_round_trip_and_safe_form(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    _draws()
    state = capture_random_state()
    expected = _draws()
    _draws()
    # plain values and tensors: loads with weights_only=True
    path = str(tmp_path / 'state.pth')
    torch.save(state, path)
    loaded = torch.load(path, weights_only=True)
    restore_random_state(loaded)
    assert _draws() == expected
    with preserved_random_state():
        _draws()
    after = _draws()
    restore_random_state(loaded)
    _draws()
    assert _draws() == after
    with pytest.raises(ValueError, match='not a state written by'):
        restore_random_state({'python': {}})
