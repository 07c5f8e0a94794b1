"""ONNX export: the graph's documented inputs and outputs, its equality with
PyTorch on inputs never seen by the export (official fixture weights, tiny
models, a dynamic batch, full size), the command-line tool and its errors,
and the opt-in int8 copy."""
from __future__ import annotations

import json
import os.path as osp

import numpy as np
import pytest
import torch

from projects.magnet.deployment import (INPUT_NAMES, MagNetExportGraph,
                                        describe, export_onnx, make_session)
from projects.magnet.deployment.onnx_export import example_inputs
from projects.magnet.utils import UserError

from ..conftest import REPO_ROOT, load_tool

TOL = 2e-5


def _run(path, image, ids, mask):
    session = make_session(path)
    names = [o.name for o in session.get_outputs()]
    out = session.run(names, dict(image=image.numpy(), input_ids=ids.numpy(),
                                  attention_mask=mask.numpy()))
    return dict(zip(names, out))


def _pytorch(model, image, ids, mask):
    graph = MagNetExportGraph(model).eval()
    with torch.inference_mode():
        return dict(zip(graph.output_names, graph(image, ids, mask)))


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - b.numpy()).max())


# ------------------------------------------------------------ graph / I/O
def test_graph_inputs_outputs_and_metadata(tiny_onnx):
    import onnx
    path, info = tiny_onnx
    assert info['inputs'] == {'image': [1, 3, 64, 64],
                              'input_ids': [1, 20],
                              'attention_mask': [1, 20]}
    assert info['outputs'] == {'prob': [1, 1, 64, 64],
                               'mask_logits': [1, 1, 64, 64]}
    assert info['opset'] >= 16
    assert info['metadata']['magnet.image_shape'] == '64,64'
    assert info['metadata']['magnet.num_tokens'] == '20'
    assert info['metadata']['magnet.dynamic_batch'] == 'false'
    onnx.checker.check_model(path)
    model = onnx.load(path)
    # standard operators only (the deformable attention is GridSample)
    assert {o.domain for o in model.opset_import} <= {'', 'ai.onnx'}
    ops = {n.op_type for n in model.graph.node}
    assert 'GridSample' in ops
    assert model.graph.input[1].type.tensor_type.elem_type == \
        onnx.TensorProto.INT64


def test_export_leaves_the_model_as_it_was(tiny_model, tiny_onnx):
    """After the export (done by the fixture on this model) the deformable
    attention is back on its own core, the model in eval mode."""
    from projects.magnet.models.layers.ms_deform_attn import MSDeformAttn
    impls = [m.pytorch_impl for m in tiny_model.modules()
             if isinstance(m, MSDeformAttn)]
    assert impls and set(impls) == {'auto'}
    assert not tiny_model.training


# ------------------------------------------------------------ equality
@pytest.mark.parametrize('seed,real', [(5, 1), (6, 20), (7, 13)])
def test_tiny_graph_equals_pytorch_on_new_inputs(tiny_model, tiny_onnx, seed,
                                                 real):
    path, _ = tiny_onnx
    inputs = example_inputs((64, 64), 20, 1, 30522, real, seed=seed)
    got = _run(path, *inputs)
    ref = _pytorch(tiny_model, *inputs)
    assert _max_diff(got['prob'], ref['prob']) <= TOL
    assert _max_diff(got['mask_logits'], ref['mask_logits']) <= 1e-4
    # the graph's prob is the sigmoid of its logits
    np.testing.assert_allclose(got['prob'],
                               1 / (1 + np.exp(-got['mask_logits'])),
                               atol=1e-6)
    # not a constant: other inputs give other outputs
    other = _run(path, *example_inputs((64, 64), 20, 1, 30522, real,
                                       seed=seed + 100))
    assert np.abs(other['prob'] - got['prob']).max() > 1e-3


def test_official_fixture_weights(official_fixture_dir, tmp_path):
    """Converted official weights: the exported graph gives the official
    probability map on the fixture's inputs and equals PyTorch on new
    inputs."""
    from projects.magnet.converters.parity import (FINAL_TOLERANCE,
                                                   build_from_fixture)
    model = build_from_fixture(official_fixture_dir)
    inputs = torch.load(osp.join(official_fixture_dir, 'inputs.pt'),
                        weights_only=True)
    outputs = torch.load(osp.join(official_fixture_dir, 'outputs.pt'),
                         weights_only=True)
    image = inputs['image']
    B, _, H, W = image.shape
    N = inputs['input_ids'].shape[1]
    path = str(tmp_path / 'official.onnx')
    export_onnx(model, path, (H, W), N, batch=B)
    got = _run(path, image, inputs['input_ids'].long(),
               inputs['attention_mask'].long())
    assert _max_diff(got['prob'], outputs['prob'].reshape(
        got['prob'].shape)) <= FINAL_TOLERANCE['prob']
    vocab = model.text_encoder.bert.embeddings.word_embeddings.num_embeddings
    new = example_inputs((H, W), N, B, vocab, max(1, N - 2), seed=11)
    new = (new[0] * 2.0, ) + new[1:]  # another input distribution
    got = _run(path, *new)
    ref = _pytorch(model, *new)
    assert _max_diff(got['prob'], ref['prob']) <= TOL


def test_dynamic_batch_and_no_target_output(gres_files, gres_onnx):
    from projects.magnet.apis import init_model
    path, summary, _ = gres_onnx
    assert summary['inputs']['image'][0] == 'batch'
    assert list(summary['outputs']) == ['prob', 'mask_logits',
                                        'no_target_score']
    assert summary['outputs']['no_target_score'] == ['batch']
    assert summary['max_abs_diff']['prob'] <= TOL  # the tool's own check
    model = init_model(*gres_files, device='cpu')
    for batch in (1, 3):
        inputs = example_inputs((64, 64), 20, batch, 30522, 7,
                                seed=20 + batch)
        got = _run(path, *inputs)
        ref = _pytorch(model, *inputs)
        assert got['prob'].shape == (batch, 1, 64, 64)
        assert _max_diff(got['prob'], ref['prob']) <= TOL
        assert _max_diff(got['no_target_score'],
                         ref['no_target_score']) <= TOL


@pytest.mark.slow
def test_full_size_random_weights_equal_pytorch(tmp_path):
    """The paper config (Swin-B + BERT-base, 480x480), random weights."""
    from projects.magnet.engine.benchmarking import build_model
    config = osp.join(REPO_ROOT, 'configs', 'magnet',
                      'magnet_swin-b_bert-base_8xb4-40e_refcoco-480x480.py')
    torch.manual_seed(0)
    model = build_model(config)
    path = str(tmp_path / 'full.onnx')
    export_onnx(model, path, (480, 480), 20)
    inputs = example_inputs((480, 480), 20, 1, 30522, 9, seed=3)
    got = _run(path, *inputs)
    ref = _pytorch(model, *inputs)
    assert _max_diff(got['prob'], ref['prob']) <= TOL


# ------------------------------------------------------------ int8
def test_int8_is_opt_in_and_its_deviation_is_reported(gres_onnx):
    import onnx
    path, summary, int8 = gres_onnx
    float_ops = {n.op_type for n in onnx.load(path).graph.node}
    int8_ops = {n.op_type for n in onnx.load(int8).graph.node}
    assert not any('Integer' in op or 'Quantize' in op for op in float_ops)
    assert any('Integer' in op or 'Quantize' in op for op in int8_ops)
    dev = summary['int8']['max_abs_diff']['prob']
    assert 0 < dev < 0.5
    assert osp.getsize(int8) < osp.getsize(path)


# ------------------------------------------------------------ the tool
def test_tool_json_and_printed_io(gres_onnx, capsys):
    path, summary, _ = gres_onnx
    with open(osp.join(osp.dirname(path), 'summary.json')) as f:
        saved = json.load(f)
    assert saved['inputs'] == summary['inputs']
    assert set(saved) >= {'out', 'inputs', 'outputs', 'opset',
                          'max_abs_diff', 'int8'}


@pytest.mark.parametrize('args,match', [
    (['OUT.txt'], "expected one of .onnx"),
    (['OUT.onnx', '--batch', '0'], '--batch must be >= 1'),
    (['OUT.onnx', '--opset', '15'], 'opset must be >= 16'),
    (['OUT.onnx', '--num-tokens', '0'], '--num-tokens must be >= 1'),
])
def test_tool_refuses_bad_arguments(tiny_files, tmp_path, args, match):
    tool = load_tool('tools/deployment/pytorch2onnx.py')
    args = [str(tmp_path / args[0])] + args[1:]
    with pytest.raises(UserError, match=match):
        tool.run([*tiny_files, *args])
    assert not osp.exists(args[0])


def test_tool_verification_fails_loudly(tiny_files, tiny_onnx, tmp_path,
                                       monkeypatch):
    """A graph that does not reproduce PyTorch is an error, not a note."""
    import shutil

    import projects.magnet.deployment as deployment
    tool = load_tool('tools/deployment/pytorch2onnx.py')
    real = tool.pytorch_outputs

    def exported(model, out, *args, **kwargs):  # the fixture's export
        shutil.copy(tiny_onnx[0], out)
        return describe(out)

    def shifted(*args):
        out = real(*args)
        out['prob'] = out['prob'] + 1e-3
        return out

    monkeypatch.setattr(deployment, 'export_onnx', exported)
    out = str(tmp_path / 'x.onnx')
    assert tool.run([*tiny_files, out])['max_abs_diff']['prob'] <= TOL
    monkeypatch.setattr(tool, 'pytorch_outputs', shifted)
    with pytest.raises(tool.VerificationError, match='prob differs'):
        tool.run([*tiny_files, out])


def test_export_refuses_bad_shapes(tiny_model, tmp_path):
    with pytest.raises(UserError, match='shape must be'):
        export_onnx(tiny_model, str(tmp_path / 'a.onnx'), (16, 64), 20)
    assert INPUT_NAMES == ('image', 'input_ids', 'attention_mask')
