"""run_cli (one error: line), the misspelt-config-key check, and the
random-state capture / restore used for exact resume."""
from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from projects.magnet.utils import (MisspeltConfigKeyError, UserError,
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


class _RefsError(UserError, pickle.UnpicklingError):
    """A user error of the unpickling family, as the project's readers
    define them."""


def test_run_cli_exit_status_and_traceback(capsys, monkeypatch):
    monkeypatch.setenv('MAGNET_TRACEBACK', '0')

    def bad():
        raise _RefsError('refs.p: not a REFER pickle')

    assert run_cli(lambda: None) == 0
    assert run_cli(lambda: 3) == 3
    assert run_cli(bad) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        'error: _RefsError: refs.p: not a REFER pickle']
    monkeypatch.setenv('MAGNET_TRACEBACK', '1')
    with pytest.raises(pickle.UnpicklingError):
        run_cli(bad)

    def bug():
        raise ZeroDivisionError('a bug keeps its traceback')

    monkeypatch.setenv('MAGNET_TRACEBACK', '0')
    with pytest.raises(ZeroDivisionError):
        run_cli(bug)


@pytest.mark.parametrize('error', [
    TypeError('f() got 2 arguments'), KeyError('x'), RuntimeError('bug'),
    AssertionError('bug'), ValueError('bug'), FileNotFoundError('bug'),
    pickle.UnpicklingError('bug')])
def test_run_cli_prints_only_user_errors(error, capsys, monkeypatch):
    """A built-in exception that is not a UserError is a bug: it keeps its
    traceback (no error: line), whatever its family."""
    monkeypatch.setenv('MAGNET_TRACEBACK', '0')

    def main():
        raise error

    with pytest.raises(type(error)):
        run_cli(main)
    assert 'error:' not in capsys.readouterr().err
    # the same family as a UserError: one line, exit 1
    user = type(f'User{type(error).__name__}', (UserError, type(error)), {})
    assert run_cli(lambda: (_ for _ in ()).throw(user('fix me'))) == 1
    assert capsys.readouterr().err.count('error:') == 1


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
