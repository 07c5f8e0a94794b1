"""Config values of the wrong type are refused before the Runner is built,
naming the key, the value and the expected type; config files mmengine
cannot read name the file."""
from __future__ import annotations

import os.path as osp

import pytest
from mmengine.config import Config

from projects.magnet.utils import (ConfigFileError, ConfigValueError,
                                   InputFileError, UserError,
                                   check_config_values, load_config)

from ..conftest import REPO_ROOT

CONFIGS = osp.join(REPO_ROOT, 'configs', 'magnet')


def _cfg(**parts) -> Config:
    base = dict(train_dataloader=dict(batch_size=8, num_workers=2),
                optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-4)),
                train_cfg=dict(type='IterBasedTrainLoop', max_iters=100,
                               val_interval=50),
                param_scheduler=[dict(type='PolyLR', end=100, power=0.9)])
    base.update(parts)
    return Config(base)


@pytest.mark.parametrize('key, value, expected', [
    ('train_dataloader.batch_size', '8', 'an integer'),
    ('train_dataloader.num_workers', 2.5, 'an integer'),
    ('train_dataloader.batch_size', True, 'an integer'),
    ('optim_wrapper.optimizer.lr', '1e-3', 'a number'),
    ('train_cfg.max_iters', '100', 'an integer'),
    ('train_cfg.val_interval', None, 'an integer'),
    ('param_scheduler.0.end', '100', 'an integer'),
    ('val_dataloader.persistent_workers', 'yes', 'true/false'),
])
def test_wrong_types_are_named(key, value, expected):
    cfg = _cfg(val_dataloader=dict(batch_size=1))
    cfg.merge_from_dict({key: value} if not key.startswith('param_') else
                        {})
    if key.startswith('param_'):
        cfg.param_scheduler[0]['end'] = value
    with pytest.raises(ConfigValueError) as err:
        check_config_values(cfg, 'my.py')
    msg = str(err.value)
    assert msg.startswith('my.py: wrong value type: ')
    assert f'{key}={value!r}' in msg
    assert f'is a {type(value).__name__}; expected {expected}' in msg
    # a UserError, and still caught as the built-in families
    assert isinstance(err.value, (UserError, TypeError, ValueError))
    if isinstance(value, str) and value[0].isdigit():
        assert "write 8, not '8'" in msg


def test_right_types_pass_and_all_problems_are_listed():
    cfg = _cfg()
    check_config_values(cfg)  # ints, floats; an int for a float is fine
    cfg.optim_wrapper.optimizer.lr = 1
    check_config_values(cfg)
    cfg.train_dataloader.batch_size = '8'
    cfg.train_cfg.max_iters = '100'
    with pytest.raises(ConfigValueError) as err:
        check_config_values(cfg, 'x.py', {'train_cfg.max_iters': '100'})
    msg = str(err.value)
    assert "train_dataloader.batch_size='8' is a str" in msg
    assert "train_cfg.max_iters='100' (from --cfg-options) is a str" in msg


@pytest.mark.parametrize('name', sorted(
    f for f in __import__('os').listdir(CONFIGS) if f.endswith('.py')))
def test_every_shipped_config_passes(name):
    path = osp.join(CONFIGS, name)
    check_config_values(load_config(path), path)


def test_unreadable_configs_name_the_file(tmp_path):
    with pytest.raises(InputFileError, match='config file not found'):
        load_config(str(tmp_path / 'nope.py'))
    bad_base = tmp_path / 'bad_base.py'
    bad_base.write_text("_base_ = ['./missing_base.py']\n")
    with pytest.raises(ConfigFileError,
                       match=f'{bad_base}: cannot be read as a config'):
        load_config(str(bad_base))


def test_custom_imports_missing_module_is_a_config_error(tmp_path):
    """A config naming a module that does not exist is the config's
    mistake (one error line); an import failing *inside* an existing
    module is a bug and keeps its type (a traceback under run_cli)."""
    import sys

    from projects.magnet.utils import UserError
    from projects.magnet.utils.config_check import ConfigFileError
    from projects.magnet.utils.config_check import load_config as read
    cfg = tmp_path / 'missing.py'
    cfg.write_text("custom_imports = dict(imports=['nosuch_pkg_xyz.mod'], "
                   "allow_failed_imports=False)\n")
    with pytest.raises(ConfigFileError, match='nosuch_pkg_xyz'):
        read(str(cfg))
    pkg = tmp_path / 'buggy_mod_xyz.py'
    pkg.write_text('import dependency_that_is_missing_xyz\n')
    cfg = tmp_path / 'buggy.py'
    cfg.write_text("custom_imports = dict(imports=['buggy_mod_xyz'], "
                   "allow_failed_imports=False)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ImportError) as err:
            read(str(cfg))
        assert not isinstance(err.value, UserError)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop('buggy_mod_xyz', None)
