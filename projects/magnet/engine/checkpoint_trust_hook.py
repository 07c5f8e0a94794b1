"""Switch the project's checkpoint trust policy on for one Runner."""
from __future__ import annotations

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..compat.checkpoint import install_checkpoint_loader, trust_directory


@HOOKS.register_module()
class CheckpointTrustHook(Hook):
    """Load local checkpoints through the project's weights-only policy.

    Importing ``projects.magnet`` leaves mmengine's checkpoint loader as it
    is. This hook (in ``configs/_base_/default_runtime.py`` as
    ``default_hooks.checkpoint_trust``) installs
    :func:`~projects.magnet.compat.checkpoint.install_checkpoint_loader`
    in ``before_run``, which mmengine calls before it initialises weights
    (``init_cfg``) and before ``load_from`` / ``resume``: released weights
    load with ``weights_only=True``, and only checkpoints under the run's
    ``work_dir`` (or ``$MAGNET_TRUSTED_CHECKPOINT_DIRS``) may be fully
    unpickled.

    Args:
        trust_work_dir (bool): trust the run's ``work_dir`` (its own
            checkpoints, for ``resume``). Default: True.
    """

    priority = 'HIGHEST'

    def __init__(self, trust_work_dir: bool = True) -> None:
        self.trust_work_dir = trust_work_dir

    def before_run(self, runner) -> None:
        install_checkpoint_loader()
        if self.trust_work_dir:
            trust_directory(runner.work_dir)
