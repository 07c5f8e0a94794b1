"""Catch a misspelt top-level config key before a run starts.

mmengine's ``Runner.from_cfg`` reads the keys it knows and ignores the rest:
``train_dataloder = dict(batch_size=4)`` in a config (or ``--cfg-options
optim_wraper.optimizer.lr=1e-4``) changes nothing and says nothing, while a
misspelt key *inside* a component (``embed_dim=``) already fails loudly when
the component is built. :func:`check_config_keys` refuses a top-level key
that is not one the Runner reads but is a near miss of one (helper variables
such as ``data_root`` or ``max_iters`` are far from every Runner key and
pass).
"""
from __future__ import annotations

import difflib
from typing import Iterable, List

__all__ = [
    'RUNNER_KEYS', 'COMMON_HELPERS', 'check_config_keys',
    'MisspeltConfigKeyError', 'ConfigFileError', 'load_config'
]

#: Top-level keys mmengine's Runner (``from_cfg`` and the runner's build
#: methods) and mmseg's tools read.
RUNNER_KEYS = frozenset((
    'model', 'work_dir', 'train_dataloader', 'val_dataloader',
    'test_dataloader', 'train_cfg', 'val_cfg', 'test_cfg', 'auto_scale_lr',
    'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from',
    'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level',
    'visualizer', 'default_scope', 'randomness', 'experiment_name',
    'custom_imports', 'find_unused_parameters', 'model_wrapper_cfg',
    'compile', 'tta_model', 'tta_pipeline', 'vis_backends'))


#: Helper variables of OpenMMLab configs that are close to a Runner key but
#: are not misspellings of it.
COMMON_HELPERS = frozenset((
    'train_pipeline', 'val_pipeline', 'test_pipeline', 'dataset_type',
    'data_root', 'crop_size', 'img_scale', 'img_ratios', 'backend_args',
    'norm_cfg', 'checkpoint', 'pretrained', 'metainfo', 'meta_keys',
    'max_iters', 'max_epochs', 'max_time', 'warmup_iters', 'data_generator',
    'tokenizer', 'max_tokens', 'train_ann', 'test_ann', 'num_classes'))


class MisspeltConfigKeyError(KeyError):
    """A top-level config key is a near miss of a key the Runner reads."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ''


def check_config_keys(keys: Iterable[str], source: str = 'config',
                      cutoff: float = 0.85) -> None:
    """Raise :class:`MisspeltConfigKeyError` for near-miss keys.

    Args:
        keys: the config's top-level keys (``cfg.keys()``).
        source (str): the config file, for the message.
        cutoff (float): ``difflib`` similarity above which an unknown key is
            taken for a misspelling. Defaults to 0.85 (``train_dataloder``
            vs ``train_dataloader`` is 0.97; ``data_root`` vs
            ``load_from`` 0.33).
    """
    problems: List[str] = []
    for key in keys:
        if (key in RUNNER_KEYS or key in COMMON_HELPERS
                or key.startswith('_')):
            continue
        close = difflib.get_close_matches(key, RUNNER_KEYS, n=1,
                                          cutoff=cutoff)
        if close:
            problems.append(f'"{key}" (did you mean "{close[0]}"?)')
    if problems:
        raise MisspeltConfigKeyError(
            f'{source}: unknown top-level key {", ".join(problems)}; the '
            'Runner ignores keys it does not read, so this setting would '
            'have no effect')


class ConfigFileError(ValueError):
    """A config file that cannot be read as an mmengine config."""


def load_config(path: str):
    """``mmengine.Config.fromfile`` with the file named in its errors: a
    missing file, or one that is not valid Python (mmengine's own message
    says ``<unknown>`` for the file)."""
    import os.path as osp

    from mmengine.config import Config
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file not found: {path}')
    try:
        return Config.fromfile(path)
    except SyntaxError as err:
        where = f'line {err.lineno}' if err.lineno else 'somewhere'
        raise ConfigFileError(
            f'{path}: not a valid config (Python syntax error at {where}: '
            f'{err.msg}); a _base_ file it inherits may be the one') from err
