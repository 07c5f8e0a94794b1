"""Leaf helpers used by every layer of the package (no project imports)."""
from .cli import (TRACEBACK_ENV, USER_ERRORS, CfgOptionsAction, error_line,
                  run_cli)
from .config_check import (RUNNER_KEYS, ConfigFileError, ConfigValueError,
                           MisspeltConfigKeyError, check_config_keys,
                           check_config_values, load_config)
from .errors import (InputFileError, InputFileNotFoundError,
                     InvalidInputError, InvalidTypeError, MissingKeyError,
                     OutputPathError, UserError)
from .expressions import has_word, wordless_reason
from .output_files import (CHECKPOINT_EXTENSIONS, IMAGE_EXTENSIONS,
                           JSON_EXTENSIONS, atomic_write, check_output_dir,
                           check_output_file, save_checkpoint, save_image,
                           save_json)
from .pretrained import resolve_pretrained
from .random_state import (capture_random_state, preserved_random_state,
                           restore_random_state)

__all__ = [
    'resolve_pretrained', 'run_cli', 'CfgOptionsAction', 'error_line',
    'USER_ERRORS',
    'TRACEBACK_ENV', 'RUNNER_KEYS', 'MisspeltConfigKeyError',
    'check_config_keys', 'capture_random_state', 'restore_random_state',
    'preserved_random_state', 'ConfigFileError', 'load_config', 'UserError',
    'InvalidInputError', 'InvalidTypeError', 'MissingKeyError',
    'InputFileError',
    'InputFileNotFoundError',
    'OutputPathError', 'has_word',
    'wordless_reason', 'ConfigValueError', 'check_config_values',
    'atomic_write', 'check_output_dir', 'check_output_file',
    'save_checkpoint', 'save_image', 'save_json', 'IMAGE_EXTENSIONS',
    'CHECKPOINT_EXTENSIONS', 'JSON_EXTENSIONS'
]
