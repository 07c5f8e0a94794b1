"""Catch a misspelt top-level config key or a value of the wrong type
before a run starts.

mmengine's ``Runner.from_cfg`` reads the keys it knows and ignores the rest:
``train_dataloder = dict(batch_size=4)`` in a config (or ``--cfg-options
optim_wraper.optimizer.lr=1e-4``) changes nothing and says nothing, while a
misspelt key *inside* a component (``embed_dim=``) already fails loudly when
the component is built. :func:`check_config_keys` refuses a top-level key
that is not one the Runner reads but is a near miss of one (helper variables
such as ``data_root`` or ``max_iters`` are far from every Runner key and
pass).

:func:`check_config_values` refuses a value of the wrong type at a key whose
type is known (``train_dataloader.batch_size='8'``, ``optim_wrapper.
optimizer.lr='1e-3'``...): PyTorch would fail on it deep inside the first
iteration, or compare a string with a number in the middle of a run.
"""
from __future__ import annotations

import difflib
import os.path as osp
from typing import Any, Iterable, Iterator, List, Optional, Tuple

from .errors import InputFileNotFoundError, InvalidInputError, UserError

__all__ = [
    'RUNNER_KEYS', 'COMMON_HELPERS', 'check_config_keys',
    'MisspeltConfigKeyError', 'ConfigFileError', 'load_config',
    'VALUE_TYPES', 'ConfigValueError', 'check_config_values',
    'check_option_shapes'
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


class MisspeltConfigKeyError(UserError, KeyError):
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


class ConfigFileError(UserError, ValueError):
    """A config file that cannot be read as an mmengine config."""


class ConfigValueError(InvalidInputError, TypeError):
    """A config value of the wrong type (a ``ValueError`` and a
    ``TypeError``: either ``except`` catches it)."""


def load_config(path: str):
    """``mmengine.Config.fromfile`` with the file named in its errors: a
    missing file, or one that is not valid Python (mmengine's own message
    says ``<unknown>`` for the file), or one mmengine cannot read (a missing
    ``_base_`` file, an unknown ``{{ }}`` variable...)."""
    from mmengine.config import Config
    if osp.isdir(path):
        raise InputFileNotFoundError(
            f'config file {path} is a folder; expected a config file (.py)')
    if not osp.isfile(path):
        raise InputFileNotFoundError(f'config file not found: {path}')
    try:
        # the file's own content only: custom_imports (project code) are
        # imported below, outside this try, so that a bug there keeps its
        # traceback instead of reading as a config mistake
        cfg = Config.fromfile(path, import_custom_modules=False)
    except SyntaxError as err:
        where = f'line {err.lineno}' if err.lineno else 'somewhere'
        raise ConfigFileError(
            f'{path}: not a valid config (Python syntax error at {where}: '
            f'{err.msg}); a _base_ file it inherits may be the one') from err
    except (OSError, KeyError, ImportError, AttributeError,
            NameError) as err:
        # mmengine parses the file itself (it executes it, resolves its
        # _base_ files and variables): these come from the file's content
        raise ConfigFileError(
            f'{path}: cannot be read as a config ({type(err).__name__}: '
            f'{err})') from err
    custom = cfg.get('custom_imports', None)
    if custom:
        from mmengine.utils import import_modules_from_strings
        try:
            import_modules_from_strings(**custom)
        except ImportError as err:
            # mmengine re-raises as "Failed to import X": the cause says
            # which module was missing. Only a listed module (or a parent
            # package of one) that does not exist is the config's mistake;
            # an import failing inside it is a bug and keeps its traceback
            cause = err.__cause__ or err.__context__ or err
            missing = getattr(cause, 'name', None)
            names = custom.get('imports', [])
            names = [names] if isinstance(names, str) else list(names)
            if not missing or not any(
                    n == missing or n.startswith(f'{missing}.')
                    for n in names):
                raise
            raise ConfigFileError(
                f'{path}: custom_imports names a module that cannot be '
                f'found: {missing}') from err
    return cfg


#: Expected types of config values, by dotted key (``*`` = every item of a
#: list, or every key of a dict). ``int`` excludes ``bool``; ``float``
#: accepts ``int``.
VALUE_TYPES: Tuple[Tuple[str, Tuple[type, ...]], ...] = tuple(
    [(f'{loader}.{key}', types)
     for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
     for key, types in (('batch_size', (int, )), ('num_workers', (int, )),
                        ('persistent_workers', (bool, )),
                        ('pin_memory', (bool, )),
                        ('prefetch_factor', (int, type(None))))] + [
        ('optim_wrapper.optimizer.lr', (float, )),
        ('optim_wrapper.optimizer.weight_decay', (float, )),
        ('optim_wrapper.optimizer.momentum', (float, )),
        ('optim_wrapper.optimizer.eps', (float, )),
        ('optim_wrapper.accumulative_counts', (int, )),
        ('optim_wrapper.clip_grad.max_norm', (float, )),
        ('optim_wrapper.max_consecutive_skips', (int, )),
        ('train_cfg.max_iters', (int, )),
        ('train_cfg.max_epochs', (int, )),
        ('train_cfg.val_interval', (int, )),
        ('train_cfg.val_begin', (int, )),
        ('train_cfg.min_iters', (int, )),
        ('train_cfg.max_time', (float, )),
        ('param_scheduler.*.begin', (int, )),
        ('param_scheduler.*.end', (int, )),
        ('param_scheduler.*.eta_min', (float, )),
        ('param_scheduler.*.power', (float, )),
        ('param_scheduler.*.start_factor', (float, )),
        ('default_hooks.*.interval', (int, )),
        ('default_hooks.checkpoint.max_keep_ckpts', (int, )),
        ('model.test_cfg.threshold', (float, )),
        ('randomness.seed', (int, type(None))),
        ('randomness.deterministic', (bool, )),
    ])


def _type_ok(value: Any, types: Tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    if float in types and isinstance(value, int):
        return True
    return isinstance(value, tuple(t for t in types if t is not bool))


def _find(node: Any, parts: List[str],
          prefix: str) -> Iterator[Tuple[str, Any]]:
    """(dotted key, value) of every value at ``parts`` under ``node``."""
    if not parts:
        yield prefix, node
        return
    head, rest = parts[0], parts[1:]
    if head == '*':
        if isinstance(node, (list, tuple)):
            items = [(str(i), v) for i, v in enumerate(node)]
        elif hasattr(node, 'items'):
            items = [(str(k), v) for k, v in node.items()]
        else:
            items = []
    elif hasattr(node, 'get') and head in node:
        items = [(head, node.get(head))]
    else:
        items = []
    for key, value in items:
        yield from _find(value, rest, f'{prefix}.{key}' if prefix else key)


def _type_names(types: Tuple[type, ...]) -> str:
    names = {int: 'an integer', float: 'a number', bool: 'true/false',
             type(None): 'None'}
    return ' or '.join(names.get(t, t.__name__) for t in types)


#: (dotted pattern of a dict, smaller key, larger key): values that must
#: be strictly increasing where both are set (mmengine's schedulers raise
#: "end should be larger than begin" only when the training starts)
VALUE_ORDER: Tuple[Tuple[str, str, str], ...] = (
    ('param_scheduler.*', 'begin', 'end'),
    ('param_scheduler', 'begin', 'end'),
)


def _order_problems(cfg, cfg_options: Optional[dict]) -> List[str]:
    problems = []
    for pattern, low, high in VALUE_ORDER:
        for key, node in _find(cfg, pattern.split('.'), ''):
            if not hasattr(node, 'get'):
                continue
            a, b = node.get(low), node.get(high)
            if not (_type_ok(a, (float, )) and _type_ok(b, (float, ))):
                continue  # unset (default) or a type error reported above
            if b <= a:
                given = [k for k in (f'{key}.{low}', f'{key}.{high}')
                         if cfg_options and k in cfg_options]
                origin = f' ({", ".join(given)} from --cfg-options)' \
                    if given else ''
                problems.append(f'{key}.{high}={b!r} is not after '
                                f'{key}.{low}={a!r}{origin}; expected '
                                f'{high} > {low}')
    return problems


def check_config_values(cfg, source: str = 'config',
                        cfg_options: Optional[dict] = None) -> None:
    """Raise :class:`ConfigValueError` for values of the wrong type at the
    keys of :data:`VALUE_TYPES` (every one found is listed), then for
    values out of order (:data:`VALUE_ORDER`: a scheduler that ends before
    it begins).

    Args:
        cfg: an mmengine ``Config`` (or a dict).
        source (str): the config file, for the message.
        cfg_options (dict, optional): the ``--cfg-options`` merged into
            ``cfg``; a bad value set there is said to come from there.
    """
    problems = []
    for pattern, types in VALUE_TYPES:
        for key, value in _find(cfg, pattern.split('.'), ''):
            if value is None and type(None) not in types \
                    and key.endswith(('max_epochs', 'max_iters', 'max_time')):
                continue  # unset: the loop uses the other bound
            if _type_ok(value, types):
                continue
            origin = ' (from --cfg-options)' if cfg_options and \
                key in cfg_options else ''
            problems.append(f'{key}={value!r}{origin} is a '
                            f'{type(value).__name__}; expected '
                            f'{_type_names(types)}')
    if not problems:
        problems = _order_problems(cfg, cfg_options)
        if problems:
            raise ConfigValueError(f'{source}: inconsistent values: ' +
                                   '; '.join(problems))
        return
    if problems:
        raise ConfigValueError(
            f'{source}: wrong value type: ' + '; '.join(problems) +
            (' (a quoted number is a string: write 8, not \'8\')'
             if any(' is a str;' in p for p in problems) else ''))


def _at(node: Any, parts: List[str]) -> Any:
    """The value at a dotted ``--cfg-options`` key (list indices allowed),
    or None where the key is new."""
    for part in parts:
        if isinstance(node, (list, tuple)) and part.isdigit() \
                and int(part) < len(node):
            node = node[int(part)]
        elif hasattr(node, 'get') and part in node:
            node = node.get(part)
        else:
            return None
    return node


def check_option_shapes(cfg, cfg_options: Optional[dict],
                        source: str = 'config') -> None:
    """Refuse a ``--cfg-options`` item that replaces a dict of ``cfg``
    (a component such as ``model.backbone``, or a group of settings) by a
    list or a plain value: the Runner fails on it while building, with
    ``cfg should be a dict ... but got <class 'int'>`` and no key. Call it
    **before** merging the options.

    Raises:
        ConfigValueError: naming every such key, its value and the fix.
    """
    problems = []
    for key, value in (cfg_options or {}).items():
        old = _at(cfg, key.split('.'))
        # None switches a component off (model.mask_grounding=None): allowed
        if value is not None and hasattr(old, 'keys') and \
                not hasattr(value, 'keys'):
            problems.append(
                f'{key}={value!r} replaces a dict (fields '
                f'{", ".join(sorted(map(str, old.keys()))[:4])}...) by a '
                f'{type(value).__name__}; set one of its fields instead '
                f'({key}.<field>=value)')
    if problems:
        raise ConfigValueError(f'{source}: --cfg-options: ' +
                               '; '.join(problems))
