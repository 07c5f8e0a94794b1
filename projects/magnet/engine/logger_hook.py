"""mmengine's LoggerHook, with the test metrics written by one process."""
from __future__ import annotations

import os.path as osp
from typing import Dict, Optional

from mmengine.dist import is_main_process
from mmengine.fileio import dump
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
    loses nothing. Everything else is mmengine's.
    """

    def after_test_epoch(self,
                         runner,
                         metrics: Optional[Dict[str, float]] = None) -> None:
        tag, log_str = runner.log_processor.get_log_after_epoch(
            runner, len(runner.test_dataloader), 'test', with_non_scalar=True)
        runner.logger.info(log_str)
        if is_main_process():
            dump(self._process_tags(tag),
                 osp.join(runner.log_dir, self.json_log_path))
