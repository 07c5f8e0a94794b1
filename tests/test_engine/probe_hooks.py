"""Test-only hooks and a metric for the engine tests, imported by the
training / test processes through ``custom_imports``.

* ``ResumeTraceHook`` appends one JSON line per training iteration to
  ``<work_dir>/trace.jsonl``: the samples of the batch (image, ref, drawn
  sentence), the token ids the Mask Grounding masker produced, and one draw
  of each global generator after the step (so a generator that is not
  restored shows even when nothing else in the step used it).
* ``InjectNaNHook`` turns one loss term into NaN at one iteration.
* ``RecordSamplesMetric`` writes which samples an evaluation scored.
* ``StopAfterCheckpointHook`` waits (up to a minute) after the checkpoint of
  iteration ``at`` was written, having created ``<work_dir>/at_<it>``: the
  test SIGKILLs the process there.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import random
import time

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS, METRICS


@HOOKS.register_module()
class ResumeTraceHook(Hook):
    # before RandomStateHook (LOW) and CheckpointHook (VERY_LOW): what a
    # checkpoint holds is the state after this hook's draws
    priority = 'BELOW_NORMAL'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        self._masked = []
        head = getattr(model, 'mask_grounding', None)
        if head is not None:
            original = head.mask_tokens

            def recording(*args, **kwargs):
                masked_ids, labels = original(*args, **kwargs)
                self._masked.append(masked_ids.tolist())
                return masked_ids, labels

            head.mask_tokens = recording

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        samples = [[osp.basename(s.img_path), s.ref_id, s.sent_id, s.text]
                   for s in data_batch['data_samples']]
        # one draw from each global generator, as any code in the training
        # process may make (a hook, a loss, an augmentation in the main
        # process): a generator that is not restored on resume shows here
        # even where the data replay happens to re-create its state
        line = dict(
            iter=runner.iter, samples=samples, masked=self._masked,
            torch=int(torch.randint(1 << 30, (1, ))),
            numpy=int(np.random.randint(1 << 30)),
            python=random.getrandbits(30))
        self._masked = []
        with open(osp.join(runner.work_dir, 'trace.jsonl'), 'a') as f:
            f.write(json.dumps(line) + '\n')


@HOOKS.register_module()
class StopAfterCheckpointHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW)

    def __init__(self, at: int) -> None:
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.at:
            open(osp.join(runner.work_dir, f'at_{self.at}'), 'w').close()
            deadline = time.time() + 60
            while time.time() < deadline:  # SIGKILL arrives here
                time.sleep(0.05)
            os._exit(3)  # never killed: the test fails on the exit code


@HOOKS.register_module()
class InjectNaNHook(Hook):
    """Make one loss term NaN in training iteration ``at`` (1-based), for
    the non-finite guard's end-to-end test."""

    priority = 'LOWEST'

    def __init__(self, at: int) -> None:
        self.at = at
        self._armed = False

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model

        original = model.loss

        def poisoned(*args, **kwargs):
            losses = original(*args, **kwargs)
            if self._armed:  # one loss term becomes NaN
                key = next(k for k in losses if 'loss' in k)
                losses[key] = losses[key] * float('nan')
            return losses

        model.loss = poisoned

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._armed = runner.iter + 1 == self.at


@METRICS.register_module()
class RecordSamplesMetric(BaseMetric):
    """Writes the (split, ref_id, sent_id) of every scored sample, as the
    evaluator merged them across processes, to ``out_file`` (JSON)."""

    def __init__(self, out_file: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.out_file = out_file

    def process(self, data_batch, data_samples) -> None:
        for s in data_samples:
            self.results.append([s.get('split_tag'), s['ref_id'],
                                 s['sent_id']])

    def compute_metrics(self, results) -> dict:
        with open(self.out_file, 'w') as f:
            json.dump(results, f)
        return dict(num_recorded=float(len(results)))
