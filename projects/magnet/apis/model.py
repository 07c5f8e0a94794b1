"""Build a segmentor for inference: :func:`init_model`."""
from __future__ import annotations

import contextlib
import copy
import logging
import os.path as osp
import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from ..compat.checkpoint import (CheckpointNotFoundError,
                                 install_checkpoint_loader)
from ..compat.runner_setup import config_build_errors
from ..datasets.refcoco import RefCOCODataset
from ..models.segmentors.magnet import OUTPUT_SIZES
from ..utils.config_check import load_config
from ..utils.errors import InvalidInputError, MissingKeyError, UserError

__all__ = [
    'OUTPUT_SIZES', 'as_config', 'check_device', 'init_model',
    'model_test_cfg', 'call_test_cfg', 'override_test_cfg',
    'CheckpointMismatchError', 'DeviceError', 'ConfigContentError',
    'ConfigTypeError', 'build_model'
]


class CheckpointMismatchError(UserError, ValueError, RuntimeError):
    """A checkpoint that is not the config's model's: another model, an
    unconverted official checkpoint, not a dict of weights."""


class DeviceError(UserError, ValueError, RuntimeError):
    """A device that is not a device name, or not available here."""


class ConfigContentError(MissingKeyError):
    """A config without a part the inference needs (``model``...)."""


class ConfigTypeError(UserError, TypeError):
    """A config that is neither a file path, a Config nor a dict."""


ConfigInput = Union[str, Path, Config, dict]


def as_config(config: ConfigInput) -> Config:
    """A config file / Config / dict as a new :class:`Config` (a copy).

    Raises:
        InputFileError (a FileNotFoundError too) / ConfigFileError: the file
            does not exist / cannot be read as a config.
        ConfigTypeError (a TypeError): another type.
    """
    if isinstance(config, (str, Path)):
        return load_config(str(config))
    if isinstance(config, Config):
        return copy.deepcopy(config)
    if isinstance(config, dict):
        return Config(copy.deepcopy(dict(config)))
    raise ConfigTypeError('config must be a file path, a mmengine Config or '
                          f'a dict, got {type(config).__name__}')


def check_device(device: Union[str, torch.device]) -> torch.device:
    """``device`` as a :class:`torch.device` that exists here.

    Raises:
        DeviceError (a ValueError and a RuntimeError): not a device name,
            or CUDA (or that CUDA index) is not available.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise DeviceError(f'invalid device {device!r}: {e}') from e
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise DeviceError(f'device {device!r} requested but CUDA is '
                               'not available; use device="cpu"')
        index = 0 if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f'device {device!r} requested but only '
                f'{torch.cuda.device_count()} CUDA device(s) are visible')
    return dev


def build_model(model_cfg: dict, source: str) -> torch.nn.Module:
    """``MODELS.build(model_cfg)``, a config mistake raised as a
    :class:`~projects.magnet.utils.UserError` naming ``source``.

    A component's own refusal of a value (e.g.
    :class:`~projects.magnet.models.errors.ModelConfigError` for widths
    that do not fit) is already a ``UserError`` and passes unchanged. As
    ``compat/runner_setup.build_runner`` does for the Runner, an argument a
    component does not take or a type the registry does not know becomes a
    :class:`~projects.magnet.compat.runner_setup.ConfigBuildError` (a
    ValueError); any other error keeps its type and traceback.
    """
    from mmseg.registry import MODELS
    with config_build_errors(source, 'the model'):
        return MODELS.build(model_cfg)


def _config_source(config: ConfigInput, cfg: Config) -> str:
    """The config file, for messages (``'the config'`` for a dict)."""
    if isinstance(config, (str, Path)):
        return str(config)
    return getattr(cfg, 'filename', None) or 'the config'


def _quiet_init_weights(model: torch.nn.Module) -> None:
    """``model.init_weights()`` without mmengine's per-parameter INFO log."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def default_dataset_meta() -> dict:
    """Classes / palette of a model whose checkpoint names none (the
    referring datasets' background / referent)."""
    return dict(classes=RefCOCODataset.METAINFO['classes'],
                palette=RefCOCODataset.METAINFO['palette'])


def init_model(config: ConfigInput,
               checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None,
               strict: bool = True) -> torch.nn.Module:
    """Build a MagNet (or any mmseg) segmentor for inference.

    Args:
        config: config file, :class:`mmengine.Config` or dict (with a
            ``model`` key and a test pipeline: ``test_dataloader`` /
            ``val_dataloader`` / ``test_pipeline``).
        checkpoint (str, optional): weights, read with mmengine's
            ``load_checkpoint`` through the project's weights-only loader
            (see ``projects/magnet/compat/checkpoint.py``). ``None``: no
            checkpoint — the weights are those of ``init_weights()``
            (random, or pretrained parts named by ``init_cfg``) and a
            warning says so.
        device: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
        cfg_options (dict, optional): overrides merged into the config.
        strict (bool): refuse a checkpoint whose keys do not match the
            model. Defaults to True (a missing weight makes the masks
            meaningless).

    Returns:
        nn.Module: the model in eval mode on ``device``, built without its
        training-only modules (Mask Grounding, alignment loss), with ``cfg``
        (the config) and ``dataset_meta`` (classes/palette) attributes. Its
        ``test_cfg`` is the config's (``output_size``, ``threshold``).

    Raises:
        FileNotFoundError: the config or the checkpoint does not exist.
        KeyError: the config has no ``model``.
        ValueError: a value of the model config that its component refuses
            (``ModelConfigError``), or an argument / type it does not take
            (``ConfigBuildError``, naming the config; see
            :func:`build_model`).
        ValueError / RuntimeError: a bad or unavailable device; a
            checkpoint with missing or unexpected keys (``strict``).
        All of them are :class:`~projects.magnet.utils.UserError` s.
    """
    cfg = as_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ConfigContentError('the config has no "model"')
    dev = check_device(device)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from ..models.segmentors import inference_model_cfg

    model_cfg = inference_model_cfg(cfg.model)
    model_cfg.pop('pretrained', None)
    model = build_model(model_cfg, _config_source(config, cfg))
    meta: dict = {}
    if checkpoint is None:
        warnings.warn(
            'init_model: no checkpoint given; the model has the weights '
            'of init_weights() (random, or the pretrained parts of its '
            'init_cfg): its masks are not meaningful')
        _quiet_init_weights(model)
    else:
        checkpoint = str(checkpoint)
        if '://' not in checkpoint and not osp.isfile(checkpoint):
            raise CheckpointNotFoundError(
                f'checkpoint file not found: {checkpoint}')
        install_checkpoint_loader()  # weights-only unless trusted
        ckpt = _load_checked(model, checkpoint, strict)
        meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    model.dataset_meta = meta.get('dataset_meta') or default_dataset_meta()
    model.cfg = cfg
    model.to(dev)
    model.eval()
    return model


def check_checkpoint_matches(model: torch.nn.Module, ckpt: object,
                             checkpoint: str) -> dict:
    """Refuse a loaded checkpoint that is not ``model``'s.

    An unconverted official MagNet checkpoint is recognised (use the
    converter); anything but a dict of weights is refused; a key mismatch
    is summarised (counts and the first keys) instead of listed in full.
    Training-only modules (Mask Grounding...) may be present or absent.

    Args:
        model: the model the weights are for (unwrapped).
        ckpt: what ``CheckpointLoader.load_checkpoint`` returned.
        checkpoint (str): its file, for the messages.

    Returns:
        dict: the state dict inside ``ckpt``.
    """
    from ..compat.checkpoint import official_checkpoint_hint
    from ..models.segmentors import TRAINING_ONLY_MODULES
    hint = official_checkpoint_hint(ckpt)
    if hint is not None:
        raise CheckpointMismatchError(f'{checkpoint}: {hint}')
    if not isinstance(ckpt, dict):
        raise CheckpointMismatchError(
            f'{checkpoint}: expected a dict of weights, got '
            f'{type(ckpt).__name__}')
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict):
        raise CheckpointMismatchError(
            f'{checkpoint}: "state_dict" is a {type(state).__name__}, '
            'expected a dict')
    own = set(model.state_dict())
    keys = {k[len('module.'):] if k.startswith('module.') else k
            for k in state}
    missing, unexpected = sorted(own - keys), sorted(keys - own)
    unexpected = [k for k in unexpected
                  if k.split('.')[0] not in TRAINING_ONLY_MODULES]
    missing = [k for k in missing
               if k.split('.')[0] not in TRAINING_ONLY_MODULES]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing keys, e.g. {missing[:5]}')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected keys, e.g. '
                         f'{unexpected[:5]}')
        raise CheckpointMismatchError(
            f'{checkpoint} does not match the config\'s model: ' +
            '; '.join(parts) + ' (another model or config?)')
    return state


def _load_checked(model: torch.nn.Module, checkpoint: str,
                  strict: bool) -> dict:
    """``load_checkpoint`` with the project's errors
    (:func:`check_checkpoint_matches` when ``strict``)."""
    from mmengine.runner.checkpoint import (CheckpointLoader,
                                            _load_checkpoint_to_model)

    from ..compat.checkpoint import official_checkpoint_hint
    ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    if strict:
        check_checkpoint_matches(model, ckpt, checkpoint)
    else:
        hint = official_checkpoint_hint(ckpt)
        if hint is not None:
            raise CheckpointMismatchError(f'{checkpoint}: {hint}')
    _load_checkpoint_to_model(model, ckpt, strict=strict, logger='silent')
    return ckpt


def model_test_cfg(model: torch.nn.Module):
    """The segmentor's ``test_cfg`` (``output_size``, ``threshold``...).

    Raises:
        ValueError: the model has none.
    """
    test_cfg = getattr(model, 'test_cfg', None)
    if test_cfg is None:
        raise InvalidInputError(f'{type(model).__name__} has no test_cfg '
                         '(output_size, threshold)')
    return test_cfg


def call_test_cfg(model_output_size: str,
                  threshold: Optional[float] = None,
                  output_size: Optional[str] = None) -> dict:
    """The ``test_cfg`` entries of an inference call.

    Args:
        model_output_size (str): the config's ``test_cfg.output_size``.
        threshold (float, optional): ``test_cfg.threshold`` for the call.
        output_size (str, optional): one of :data:`OUTPUT_SIZES`, the
            segmentor's own vocabulary: ``'original'`` (the image's size;
            the default when None) or ``'input'`` (the network input size).
            The former spelling ``'model'`` (the config's own
            ``test_cfg.output_size``) still works with a
            ``DeprecationWarning``.

    Returns:
        dict: ``output_size`` and ``threshold`` when given.

    Raises:
        InvalidInputError: another ``output_size``; ``threshold`` not a
            number in [0, 1].
    """
    output_size = output_size or 'original'
    if output_size == 'model':
        warnings.warn(
            'output_size="model" is deprecated: say "input" (masks at the '
            'network input size) or "original" (at the image size), the '
            'words of the segmentor\'s test_cfg.output_size',
            DeprecationWarning, stacklevel=4)
        output_size = model_output_size
    if output_size not in OUTPUT_SIZES:
        raise InvalidInputError(
            f'output_size must be one of {", ".join(map(repr, OUTPUT_SIZES))}'
            f', got {output_size!r}')
    overrides = dict(output_size=output_size)
    if threshold is not None:
        number = isinstance(threshold, (int, float, np.floating)) and \
            not isinstance(threshold, bool)
        value = float(threshold) if number else float('nan')
        if not 0.0 <= value <= 1.0:
            raise InvalidInputError(
                f'threshold must be a number in [0, 1], got {threshold!r}')
        overrides['threshold'] = value
    return overrides


@contextlib.contextmanager
def override_test_cfg(model: torch.nn.Module, overrides: dict):
    """Set entries of ``model.test_cfg`` inside a ``with`` block; restore
    them (or remove the added ones) on exit, exceptions included."""
    test_cfg = model_test_cfg(model)
    saved = {k: test_cfg[k] for k in overrides if k in test_cfg}
    test_cfg.update(overrides)
    try:
        yield test_cfg
    finally:
        for key in overrides:
            if key in saved:
                test_cfg[key] = saved[key]
            else:
                test_cfg.pop(key)
