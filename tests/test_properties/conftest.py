"""Hypothesis settings of the property tests.

Two profiles, chosen with the ``HYPOTHESIS_PROFILE`` environment variable:

* ``ci`` (default): deterministic (``derandomize=True``: the same examples
  on every run and machine, no example database written), no deadline, and
  few enough examples that the whole folder runs in well under a minute on
  one core;
* ``thorough``: many more examples, randomised (a failure prints the seed
  blob to replay it with ``@reproduce_failure``), e.g.
  ``HYPOTHESIS_PROFILE=thorough pytest tests/test_properties``.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    'ci',
    max_examples=30,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    'thorough',
    max_examples=1000,
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'ci'))
