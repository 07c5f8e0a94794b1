"""The errors of :class:`~projects.magnet.evaluation.RefSegMetric` that a
user can fix: its arguments, and samples the pipeline or the model made
wrongly. All are :class:`~projects.magnet.utils.errors.UserError` s (one
``error:`` line in the tools) that keep their built-in family."""
from __future__ import annotations

from ..utils.errors import MissingKeyError, UserError

from typing import Any, Dict

__all__ = [
    'MetricConfigError', 'MetricArgumentError', 'SampleError',
    'SampleKeyError', 'reject_unknown_arguments'
]


class MetricConfigError(UserError, ValueError):
    """A metric argument has a value it cannot use (``iou_thrs``,
    ``length_buckets``); the message names it and what was expected."""


class MetricArgumentError(UserError, TypeError):
    """An argument the metric does not take, or of the wrong type."""


def reject_unknown_arguments(metric: str, kwargs: Dict[str, Any],
                             reports: str) -> None:
    """Raise :class:`MetricArgumentError` if ``kwargs`` (the extra keyword
    arguments of ``metric``'s constructor) hold anything but mmengine
    ``BaseMetric``'s ``collect_dir``; ``reports`` says what the metric
    always reports instead (mmseg metrics take options such as
    ``iou_metrics`` these metrics do not have)."""
    unknown = sorted(set(kwargs) - {'collect_dir'})
    if unknown:
        raise MetricArgumentError(
            f'{metric} got unknown argument(s) {unknown}: {reports}')


class SampleError(UserError, ValueError):
    """A sample (or the whole evaluation) cannot be scored: prediction and
    GT of different sizes, values that are not a binary mask, no sample at
    all. The message names the sample (``img_path``, ``ref_id``,
    ``sent_id``) and the field."""


def require_results(metric: str, results: list) -> None:
    """Raise :class:`SampleError` when ``compute_metrics`` of ``metric``
    gets no result row (nothing was processed)."""
    if not results:
        raise SampleError(
            f'{metric}: no sample to score (the results are empty): the '
            'evaluation dataloader gave no data sample, or process() was '
            'not called')


class SampleKeyError(MissingKeyError):
    """A sample lacks a field the metric needs (the message names the
    sample, the field and what adds it)."""
