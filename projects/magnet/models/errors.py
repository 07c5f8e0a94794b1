"""The errors of the model components that a user can fix.

A component refuses a value of its config (a width that does not fit, a
ratio outside its range, a name it does not know) with
:class:`ModelConfigError`, a pretrained checkpoint that is not its own with
:class:`PretrainedWeightsError`, and a data sample that lacks what the pipeline
should have put in it with :class:`MissingSampleKeyError`; both are
:class:`~projects.magnet.utils.errors.UserError` s (one ``error:`` line in
the tools) and keep their built-in family (``ValueError`` / ``KeyError``).
A shape mismatch that only a bug can produce stays a built-in error.
"""
from __future__ import annotations

from ..utils.errors import MissingKeyError, UserError

__all__ = [
    'ModelConfigError', 'MissingSampleKeyError', 'PretrainedWeightsError'
]


class ModelConfigError(UserError, ValueError):
    """A model component's config value is not usable; the message names
    the key, the value and what was expected."""


class PretrainedWeightsError(UserError, ValueError):
    """A pretrained checkpoint named by a component's ``init_cfg`` does not
    hold that component's weights (the message names the file)."""


class MissingSampleKeyError(MissingKeyError):
    """A data sample lacks a key the pipeline should have added (the
    message names the key and the transform / meta key that adds it)."""
