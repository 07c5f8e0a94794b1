"""Leaf helpers used by every layer of the package (no project imports)."""
from .cli import (TRACEBACK_ENV, USER_ERRORS, CfgOptionsAction, error_line,
                  run_cli)
from .config_check import (RUNNER_KEYS, ConfigFileError,
                           MisspeltConfigKeyError, check_config_keys,
                           load_config)
from .errors import (InputFileError, InvalidInputError, OutputPathError,
                     UserError)
from .expressions import has_word, wordless_reason
from .pretrained import resolve_pretrained
from .random_state import (capture_random_state, preserved_random_state,
                           restore_random_state)

__all__ = [
    'resolve_pretrained', 'run_cli', 'CfgOptionsAction', 'error_line',
    'USER_ERRORS',
    'TRACEBACK_ENV', 'RUNNER_KEYS', 'MisspeltConfigKeyError',
    'check_config_keys', 'capture_random_state', 'restore_random_state',
    'preserved_random_state', 'ConfigFileError', 'load_config', 'UserError',
    'InvalidInputError', 'InputFileError', 'OutputPathError', 'has_word',
    'wordless_reason'
]
