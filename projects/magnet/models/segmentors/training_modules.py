"""Training-only modules of the segmentor: builds and weights without them.

``mask_grounding`` and ``alignment_loss`` never run at inference. An
inference build leaves them out (:func:`inference_model_cfg`); weights with
or without them load strictly into either build
(:func:`tolerate_training_modules`, a load-state-dict post hook).
"""
from __future__ import annotations

import copy

import torch.nn as nn
from mmengine.logging import print_log

__all__ = [
    'TRAINING_ONLY_MODULES', 'inference_model_cfg',
    'tolerate_training_modules'
]

#: Submodules used by training objectives only: never run at inference,
#: stripped by ``tools/model_converters/publish_model.py`` and allowed to be
#: missing when inference weights are loaded.
TRAINING_ONLY_MODULES = ('mask_grounding', 'alignment_loss')


def inference_model_cfg(model_cfg: dict) -> dict:
    """Copy of a segmentor config without its training-only modules.

    ``mask_grounding`` and ``alignment_loss`` never run at inference; an
    inference build leaves them out (about 10 M parameters and 40 MB for the
    paper model). Weights that contain them still load strictly (their keys
    are ignored, see :func:`tolerate_training_modules`).
    """
    cfg = copy.deepcopy(model_cfg)
    for name in TRAINING_ONLY_MODULES:
        if cfg.get(name) is not None:
            cfg[name] = None
    cfg['train_cfg'] = None
    return cfg


def tolerate_training_modules(module: nn.Module,
                              incompatible_keys) -> None:
    """Let weights load strictly whatever training-only modules they have.

    A training-only module whose keys are *all* missing keeps its fresh
    initialisation; partially missing keys are still reported. Keys of a
    training-only module that the model does not build (an inference build,
    :func:`inference_model_cfg`) are ignored.
    """
    unexpected = incompatible_keys.unexpected_keys
    for name in TRAINING_ONLY_MODULES:
        if getattr(module, name, None) is not None:
            continue
        keys = [k for k in unexpected if k.startswith(name + '.')]
        for k in keys:
            unexpected.remove(k)
        if keys:
            print_log(f'{name}: {len(keys)} weights ignored (training-only '
                      'module not built)', logger='current')
    missing = incompatible_keys.missing_keys
    for name in TRAINING_ONLY_MODULES:
        sub = getattr(module, name, None)
        if sub is None:
            continue
        keys = [k for k in missing if k.startswith(name + '.')]
        own = [name + '.' + k for k in sub.state_dict()]
        if keys and sorted(keys) == sorted(own):
            for k in keys:
                missing.remove(k)
            print_log(f'{name}: not in the loaded weights (training-only '
                      'module), keeps its initialisation', logger='current')
