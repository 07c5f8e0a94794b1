"""Helpers shared by the metric tests."""
from __future__ import annotations

from types import ModuleType
from typing import List


def capture_print_log(monkeypatch, module: ModuleType) -> List[str]:
    """The messages ``module`` passes to ``print_log`` from now on (in the
    returned list, which fills as the test runs) instead of logging them."""
    messages: List[str] = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    return messages
