"""The ONNX Runtime backend: ``MagNetInferencer(..., backend=
'onnxruntime')`` gives the PyTorch backend's results; session options; clear
errors for a missing onnxruntime, a wrong file or a wrong input size."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from projects.magnet.apis import MagNetInferencer
from projects.magnet.deployment import (BackendNotInstalledError,
                                        OnnxRuntimeSegmentor, make_session)
from projects.magnet.utils import UserError

from ..conftest import load_tool

TOL = 2e-5


@pytest.fixture(scope='module')
def image_bgr():
    rng = np.random.default_rng(3)
    img = rng.integers(60, 120, (48, 80, 3), dtype=np.uint8)
    img[8:30, 6:30] = (40, 40, 220)
    img[20:44, 44:76] = (220, 60, 30)
    return img


TEXTS = ['the red blob on the left', 'the blue thing', 'a square']


def _compare(a, b, threshold=0.5):
    """Probabilities within TOL; masks equal wherever the probability is
    not within TOL of the threshold."""
    assert a.probs.shape == b.probs.shape
    assert np.abs(a.probs - b.probs).max() <= TOL
    decided = np.abs(a.probs - threshold) > TOL
    assert np.array_equal(a.masks[decided], b.masks[decided])


@pytest.mark.parametrize('output_size', ['original', 'input'])
def test_inferencer_backends_agree(tiny_files, tiny_onnx, image_bgr,
                                   output_size):
    cfg, ckpt = tiny_files
    torch_inf = MagNetInferencer(cfg, ckpt, device='cpu')
    ort_inf = MagNetInferencer(cfg, tiny_onnx[0], device='cpu',
                               backend='onnxruntime',
                               backend_options=dict(threads=1))
    assert isinstance(ort_inf.model, OnnxRuntimeSegmentor)
    # batch_size 2 runs the fixed-batch-1 graph twice per chunk
    a = torch_inf(image_bgr, TEXTS, output_size=output_size, batch_size=2)
    b = ort_inf(image_bgr, TEXTS, output_size=output_size, batch_size=2)
    want = (48, 80) if output_size == 'original' else (64, 64)
    assert a.probs.shape == (3, *want)
    _compare(a, b)
    assert b.no_target is None
    # the texts matter: the three expressions give three different maps
    assert np.abs(b.probs[0] - b.probs[1]).max() > 1e-3


def test_no_target_decision_through_onnxruntime(gres_files, gres_onnx,
                                                image_bgr):
    cfg, ckpt = gres_files
    overrides = {'model.test_cfg.no_target_threshold': 0.3}
    torch_inf = MagNetInferencer(cfg, ckpt, device='cpu',
                                 cfg_options=overrides)
    ort_inf = MagNetInferencer(cfg, gres_onnx[0], device='cpu',
                               cfg_options=overrides, backend='onnxruntime')
    a = torch_inf(image_bgr, TEXTS, batch_size=3)
    b = ort_inf(image_bgr, TEXTS, batch_size=3)  # dynamic batch: one run
    np.testing.assert_allclose(b.no_target_scores, a.no_target_scores,
                               atol=TOL)
    assert np.array_equal(a.no_target, b.no_target)
    for i, flag in enumerate(b.no_target):
        if flag:
            assert not b.masks[i].any()


@pytest.mark.parametrize('level', ['disable', 'basic', 'extended', 'all'])
def test_graph_optimisation_levels_give_the_same_outputs(tiny_onnx, level):
    from projects.magnet.deployment.onnx_export import example_inputs
    image, ids, mask = example_inputs((64, 64), 20, 1, 30522, 8, seed=4)
    feeds = dict(image=image.numpy(), input_ids=ids.numpy(),
                 attention_mask=mask.numpy())
    ref = make_session(tiny_onnx[0], threads=1,
                       graph_optimization_level='all').run(['prob'], feeds)
    got = make_session(tiny_onnx[0], threads=2,
                       graph_optimization_level=level).run(['prob'], feeds)
    assert np.abs(got[0] - ref[0]).max() <= TOL


def test_missing_onnxruntime_is_a_clear_error(tiny_files, tiny_onnx,
                                              monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # import fails
    with pytest.raises(BackendNotInstalledError,
                       match=r'onnxruntime is not installed.*'
                       r'pip install -r requirements/deploy\.txt'):
        MagNetInferencer(tiny_files[0], tiny_onnx[0],
                         backend='onnxruntime')
    assert issubclass(BackendNotInstalledError, ImportError)


@pytest.mark.parametrize('kwargs,match', [
    (dict(backend='tensorrt'), "backend must be one of 'pytorch', "
     "'onnxruntime'"),
    (dict(backend='onnxruntime', checkpoint=None), 'give the config and '
     'the .onnx file'),
    (dict(backend_options=dict(threads=1)), 'backend_options go with'),
    (dict(backend='onnxruntime',
          backend_options=dict(graph_optimization_level='max')),
     'graph_optimization_level must be one of'),
    (dict(backend='onnxruntime', checkpoint='missing.onnx'),
     'ONNX file not found: missing.onnx'),
])
def test_bad_backend_arguments(tiny_files, tiny_onnx, kwargs, match):
    args = dict(checkpoint=tiny_onnx[0])
    args.update(kwargs)
    with pytest.raises(UserError, match=match):
        MagNetInferencer(tiny_files[0], device='cpu', **args)


def test_not_a_magnet_file_and_wrong_input_size(tiny_files, tiny_onnx,
                                                tmp_path):
    import onnx
    from onnx import TensorProto, helper
    graph = helper.make_graph(
        [helper.make_node('Identity', ['x'], ['y'])], 'g',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])])
    other = str(tmp_path / 'other.onnx')
    onnx.save(helper.make_model(graph), other)
    preproc = dict(type='SegDataPreProcessor')
    with pytest.raises(UserError, match='not a MagNet export'):
        OnnxRuntimeSegmentor(other, preproc)
    model = OnnxRuntimeSegmentor(tiny_onnx[0], preproc)
    with pytest.raises(UserError, match=r'exported for image of shape '
                       r'\[1, 3, 64, 64\], got \[1, 3, 32, 64\]'):
        model.run(torch.zeros(1, 3, 32, 64), torch.ones(1, 20).long(),
                  torch.ones(1, 20).long())
    with pytest.raises(UserError, match='inference only'):
        model(torch.zeros(1, 3, 64, 64), [], mode='loss')


def test_image_demo_runs_the_onnx_file(tiny_files, tiny_onnx, image_bgr,
                                       tmp_path):
    import cv2
    demo = load_tool('demo/image_demo.py')
    img = str(tmp_path / 'img.png')
    cv2.imwrite(img, image_bgr)
    outs = {}
    for backend, ckpt in (('pytorch', tiny_files[1]),
                          ('onnxruntime', tiny_onnx[0])):
        outs[backend] = str(tmp_path / f'{backend}.png')
        assert demo.main([img, 'the red blob', 'the blue thing', '--config',
                          tiny_files[0], '--checkpoint', ckpt, '--device',
                          'cpu', '--backend', backend, '--out-file',
                          outs[backend]]) in (0, None)
    a, b = (cv2.imread(outs[k]) for k in ('pytorch', 'onnxruntime'))
    assert a.shape == b.shape
    assert (a != b).any(-1).mean() < 1e-3  # pixels at the threshold only
