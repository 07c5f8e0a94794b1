"""``config_build_errors``: which errors met while building from a config
are the config's mistakes (one error line) and which are bugs (traceback)."""
import pytest

from projects.magnet.compat.runner_setup import (ConfigBuildError,
                                                 config_build_errors)
from projects.magnet.models.errors import ModelConfigError
from projects.magnet.utils import UserError


@pytest.mark.parametrize('error', [
    TypeError("__init__() got an unexpected keyword argument 'embed_dim'"),
    TypeError("__init__() missing 1 required positional argument: 'x'"),
    TypeError("cfg should be a dict, ConfigDict or Config, but got <class "
              "'list'>"),
    KeyError('NoSuchHead is not in the mmseg::model registry'),
])
def test_config_mistakes_name_the_config(error):
    with pytest.raises(ConfigBuildError) as err:
        with config_build_errors('my_config.py', 'the run'):
            raise error
    assert str(err.value).startswith(
        'my_config.py: cannot build the run from this config: ')
    assert err.value.__cause__ is error


@pytest.mark.parametrize('error', [
    ValueError('shapes (3, 4) and (5, 6) do not broadcast'),
    TypeError("unsupported operand type(s) for +: 'int' and 'str'"),
    KeyError('backbone'),
    RuntimeError('CUDA error'),
    AssertionError('an internal invariant'),
])
def test_other_errors_keep_their_type(error):
    """A bug (or a third-party check) is not reported as the config's
    mistake: it keeps its type, so run_cli shows its traceback."""
    with pytest.raises(type(error)) as err:
        with config_build_errors('my_config.py', 'the run'):
            raise error
    assert err.value is error and not isinstance(err.value, UserError)


def test_a_components_own_refusal_passes_unchanged():
    refusal = ModelConfigError('backbone.text_channels=48: expected 32')
    with pytest.raises(ModelConfigError) as err:
        with config_build_errors('my_config.py', 'the model'):
            raise refusal
    assert err.value is refusal
