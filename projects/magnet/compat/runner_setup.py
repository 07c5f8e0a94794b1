"""What ``tools/train.py`` and ``tools/test.py`` share: the Runner's
arguments, the config they make, and the Runner built from it.

:func:`add_runner_arguments` adds ``--work-dir``, ``--cfg-options``,
``--launcher`` and ``--local-rank``; :func:`runner_config` reads the config
(naming the file in its errors), merges the options, refuses misspelt keys
and values of the wrong type, settles ``work_dir`` (CLI > config >
``./work_dirs/<config name>``) and checks it is a folder that can be written
before anything runs, and puts the project's checkpoint trust policy in
place; :func:`build_runner` turns a config mistake found while the Runner
builds its components into a user error naming the config.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import os.path as osp
import re
from typing import Iterator, Optional

from ..utils.cli import CfgOptionsAction
from ..utils.config_check import (check_config_keys, check_config_values,
                                  check_option_shapes, load_config)
from ..utils.errors import UserError
from ..utils.output_files import check_output_dir
from .checkpoint import install_checkpoint_loader, trust_directory
from .distributed import init_cpu_distributed

__all__ = [
    'ConfigBuildError', 'config_build_errors', 'add_runner_arguments',
    'runner_config', 'build_runner'
]


class ConfigBuildError(UserError, ValueError):
    """A component of the config cannot be built from its arguments."""


def add_runner_arguments(parser: argparse.ArgumentParser,
                         work_dir_help: str) -> None:
    """``--work-dir``, ``--cfg-options``, ``--launcher``, ``--local-rank``."""
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument(
        '--cfg-options', nargs='+', action=CfgOptionsAction,
        help='override settings of the config, key=value (xxx=yyy format)')
    parser.add_argument('--launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def runner_config(args: argparse.Namespace):
    """The run's :class:`mmengine.Config` from the parsed arguments
    (``config``, ``work_dir``, ``cfg_options``, ``launcher``,
    ``local_rank``), checked before anything is built.

    Raises:
        UserError: a missing / unreadable config, a misspelt key, a value
            of the wrong type, a ``work_dir`` that is a file, under a file
            or not writable.
    """
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    cfg = load_config(args.config)  # names the file in its errors
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        # a dict replaced by a list / value: refused before the merge
        check_option_shapes(cfg, args.cfg_options, args.config)
        cfg.merge_from_dict(args.cfg_options)
    check_config_keys(cfg.keys(), args.config)  # misspelt top-level keys
    check_config_values(cfg, args.config, args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    check_output_dir(cfg.work_dir, inputs=[args.config], what='work_dir')
    # checkpoints written by this run may be fully unpickled on resume
    install_checkpoint_loader()  # the project's checkpoint trust policy
    trust_directory(cfg.work_dir)
    return cfg


#: how a component's ``__init__`` refuses the config's arguments
_SIGNATURE = re.compile(r'unexpected keyword argument|missing \d+ required'
                        r'|cfg should be a dict')
_REGISTRY = re.compile(r'is not in the .* registry')


@contextlib.contextmanager
def config_build_errors(source: str, what: str) -> Iterator[None]:
    """Turn a config mistake met while building from a config into a
    :class:`ConfigBuildError` naming ``source``.

    A ``UserError`` (a component's own refusal, e.g. widths that do not
    fit) passes unchanged. An argument a component does not take
    (``embed_dim=``), a config node that is not a dict, or a type the
    registry does not know becomes ``"<source>: cannot build <what> from
    this config: ..."``; any other error keeps its type and traceback (a
    bug, or a third-party component's own check, whose traceback shows
    where it stopped).
    """
    try:
        yield
    except UserError:
        raise
    except (TypeError, KeyError) as err:
        message = str(err.args[0]) if isinstance(err, KeyError) and \
            err.args else str(err)
        if (isinstance(err, TypeError) and _SIGNATURE.search(message)) or \
                (isinstance(err, KeyError) and _REGISTRY.search(message)):
            raise ConfigBuildError(
                f'{source}: cannot build {what} from this config: '
                f'{message}') from err
        raise


def build_runner(cfg, source: str, launcher: Optional[str] = None):
    """``Runner.from_cfg(cfg)`` (after the CPU process group for torchrun
    without CUDA).

    The Runner builds the model from the config right away; what
    :func:`config_build_errors` treats as a mistake in the config is raised
    as :class:`ConfigBuildError` naming the config (the project's own
    components refuse bad values with a ``UserError`` already); any other
    error keeps its type and traceback.
    """
    from mmengine.runner import Runner
    init_cpu_distributed(launcher or cfg.get('launcher', 'none'), cfg)
    with config_build_errors(source, 'the run'):
        return Runner.from_cfg(cfg)
