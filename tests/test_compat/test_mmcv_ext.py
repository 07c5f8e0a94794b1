import sys

import pytest
import torch

from projects.magnet.compat import (MissingCompiledOpError,
                                    has_compiled_mmcv_ops)


def test_mmseg_models_import_under_mmcv_lite():
    import mmseg.models  # noqa: F401  (imports mmcv.ops at module level)
    assert 'mmcv.ops' in sys.modules


@pytest.mark.skipif(has_compiled_mmcv_ops(),
                    reason='full mmcv installed: nothing is patched')
def test_compiled_op_fails_loudly_only_when_called():
    from mmcv.ops import sigmoid_focal_loss
    ext = sys.modules['mmcv._ext']
    assert getattr(ext, '__magnet_placeholder__')
    with pytest.raises(MissingCompiledOpError, match='sigmoid_focal_loss'):
        sigmoid_focal_loss(torch.zeros(2, 3), torch.zeros(2).long())


def test_pure_pytorch_paths_still_work():
    from mmcv.ops.multi_scale_deform_attn import \
        multi_scale_deformable_attn_pytorch
    value = torch.rand(1, 4 * 4, 2, 8)
    shapes = torch.tensor([[4, 4]])
    loc = torch.rand(1, 5, 2, 1, 3, 2)
    weights = torch.rand(1, 5, 2, 1, 3)
    out = multi_scale_deformable_attn_pytorch(value, shapes, loc, weights)
    assert out.shape == (1, 5, 16)
    assert torch.isfinite(out).all()


@pytest.mark.skipif(has_compiled_mmcv_ops(),
                    reason='full mmcv installed: nothing is patched')
def test_lookups_report_no_full_mmcv():
    """mmengine asks pkgutil whether mmcv._ext exists (Runner.wrap_model)."""
    from mmengine.utils.dl_utils import mmcv_full_available
    assert mmcv_full_available() is False
