"""mmengine's LoggerHook, with the test metrics written by one process."""
from __future__ import annotations

from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.hooks import LoggerHook
from mmseg.registry import HOOKS


@HOOKS.register_module()
class MainProcessLoggerHook(LoggerHook):
    """:class:`mmengine.hooks.LoggerHook` whose end-of-test metrics file
    (``<log_dir>/<timestamp>.json``) is written by the main process only.

    mmengine's hook dumps that file from every rank; under ``torchrun`` the
    ranks share the timestamp and the log folder, so the concurrent writes can
    interleave into an unreadable file (seen with 2 processes). The metrics
    are the same on every rank (the evaluator merges them), so one writer
    loses nothing (the other ranks skip mmengine's end-of-test step, its log
    line included). Everything else is mmengine's.
    """

    def after_test_epoch(self,
                         runner,
                         metrics: Optional[Dict[str, float]] = None) -> None:
        if is_main_process():  # the other ranks would write the same file
            super().after_test_epoch(runner, metrics)
