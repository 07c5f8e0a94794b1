"""Multi-scale deformable attention: the gather core against mmcv's
reference, one module forward for training and inference, query chunks."""
import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import \
    multi_scale_deformable_attn_pytorch

from projects.magnet.models.layers import (MSDeformAttn,
                                           multi_scale_deformable_attn_fast,
                                           select_core)


@pytest.mark.parametrize('chunk', [None, 7])
def test_msda_core_matches_mmcv_reference(chunk):
    torch.manual_seed(0)
    shapes = torch.tensor([(3, 5), (6, 4), (1, 1), (7, 7)])
    bs, num_heads, head_dims, num_points, num_query = 2, 3, 4, 2, 23
    num_value = int(shapes.prod(1).sum())
    value = torch.randn(bs, num_value, num_heads, head_dims,
                        dtype=torch.float64, requires_grad=True)
    # many points outside [0, 1] (zero padding)
    loc = (torch.rand(bs, num_query, num_heads, len(shapes), num_points, 2,
                      dtype=torch.float64) * 1.8 - 0.4).requires_grad_()
    weights = torch.rand(bs, num_query, num_heads, len(shapes), num_points,
                         dtype=torch.float64, requires_grad=True)
    ours = multi_scale_deformable_attn_fast(value, shapes, loc, weights,
                                            query_chunk_size=chunk)
    ref = multi_scale_deformable_attn_pytorch(value, shapes, loc, weights)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    grad = torch.randn_like(ref)
    g_ours = torch.autograd.grad(ours, (value, loc, weights), grad)
    g_ref = torch.autograd.grad(ref, (value, loc, weights), grad)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)

    # float32, exact pixel centres / borders / far outside
    coords = torch.tensor([-1.0, -0.1, 0.0, 0.05, 0.5, 0.999, 1.0, 1.1, 3.0])
    grid = torch.stack(torch.meshgrid(coords, coords, indexing='ij'), -1)
    loc = grid.view(1, -1, 1, 1, 1, 2).expand(1, -1, 1, 2, 1, 2)
    shapes = torch.tensor([(4, 6), (5, 3)])
    value = torch.randn(1, 39, 1, 8)
    weights = torch.rand(1, loc.shape[1], 1, 2, 1)
    torch.testing.assert_close(
        multi_scale_deformable_attn_fast(value, shapes, loc, weights),
        multi_scale_deformable_attn_pytorch(value, shapes, loc, weights),
        rtol=0,
        atol=1e-6)


def test_msda_module_impls_agree():
    torch.manual_seed(0)
    attn = MSDeformAttn(
        embed_dims=32, num_heads=4, num_levels=2, num_points=3,
        batch_first=True, dropout=0.0).eval()
    torch.nn.init.normal_(attn.sampling_offsets.weight, std=0.5)
    shapes = torch.tensor([(5, 7), (3, 2)])
    start = torch.tensor([0, 35])
    query = torch.randn(2, 41, 32)
    ref_pts = torch.rand(2, 41, 2, 2)
    kwargs = dict(query=query, value=query, reference_points=ref_pts,
                  spatial_shapes=shapes, level_start_index=start)
    fast = attn(**kwargs)
    attn.pytorch_impl = 'grid_sample'
    torch.testing.assert_close(attn(**kwargs), fast, rtol=0, atol=1e-5)


def _attn_inputs(seed=0):
    torch.manual_seed(seed)
    attn = MSDeformAttn(embed_dims=32, num_heads=4, num_levels=2,
                        num_points=3, batch_first=True, dropout=0.0)
    torch.nn.init.normal_(attn.sampling_offsets.weight, std=0.5)
    shapes = torch.tensor([(5, 7), (3, 2)])
    start = torch.tensor([0, 35])
    query = torch.randn(2, 41, 32)
    ref_pts = torch.rand(2, 41, 2, 2)
    return attn, dict(query=query, value=query, reference_points=ref_pts,
                      spatial_shapes=shapes, level_start_index=start)


def test_core_is_chosen_in_one_place():
    cpu = torch.zeros(1)
    assert select_core(cpu, needs_grad=False) == 'fast'
    assert select_core(cpu, needs_grad=True) == 'grid_sample'
    assert select_core(cpu, True, 'fast') == 'fast'
    assert select_core(cpu, False, 'grid_sample') == 'grid_sample'
    with pytest.raises(ValueError, match='pytorch_impl'):
        select_core(cpu, False, 'nope')
    attn, kw = _attn_inputs()
    attn.train()
    assert attn.core(kw['value']) == 'grid_sample'
    attn.eval()
    assert attn.core(kw['value']) == 'fast'
    with torch.no_grad():
        attn.train()
        assert attn.core(kw['value']) == 'fast'


def test_training_and_inference_run_the_same_forward():
    """train mode (grid_sample core, with autograd) and eval mode (gather
    core) give the same outputs; gradients of the gather core agree too."""
    attn, kw = _attn_inputs()
    attn.train()
    train_out = attn(**kw)
    train_out.square().sum().backward()
    grads = {n: p.grad.clone() for n, p in attn.named_parameters()}
    attn.eval()
    with torch.no_grad():
        eval_out = attn(**kw)
    torch.testing.assert_close(eval_out, train_out.detach(), rtol=0,
                               atol=1e-5)
    attn.zero_grad()
    attn.pytorch_impl = 'fast'
    attn.train()
    attn(**kw).square().sum().backward()
    for n, p in attn.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('impl', ['fast', 'grid_sample'])
def test_query_chunks_sharing_one_projected_value(impl):
    attn, kw = _attn_inputs(1)
    attn.eval().pytorch_impl = impl
    with torch.no_grad():
        whole = attn(**kw)
        value = attn.project_value(kw['value'], kw['spatial_shapes'])
        assert value.core == impl
        parts = [
            attn(query=kw['query'][:, s:s + 10],
                 reference_points=kw['reference_points'][:, s:s + 10],
                 spatial_shapes=kw['spatial_shapes'],
                 level_start_index=kw['level_start_index'],
                 projected_value=value) for s in range(0, 41, 10)
        ]
    torch.testing.assert_close(torch.cat(parts, 1), whole, rtol=0,
                               atol=1e-6)


@pytest.mark.parametrize('impl', ['fast', 'grid_sample'])
def test_key_padding_mask_zeroes_the_padded_values(impl):
    from projects.magnet.models.layers import ProjectedValue
    attn, kw = _attn_inputs(2)
    attn.eval().pytorch_impl = impl
    mask = torch.zeros(2, 41, dtype=torch.bool)
    mask[0, 35:] = True  # image 0: the second level is padding
    with torch.no_grad():
        out = attn(**kw, key_padding_mask=mask)
        value = attn.value_proj(kw['value'])
        value[0, 35:] = 0
        manual = ProjectedValue('grid_sample', value.view(2, 41, 4, 8), None)
        ref = attn(**kw, projected_value=manual)
        unmasked = attn(**kw)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    assert not torch.allclose(out[0], unmasked[0], atol=1e-4)
    torch.testing.assert_close(out[1], unmasked[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize('impl', ['fast', 'grid_sample'])
@pytest.mark.parametrize('batch_first', [True, False])
@pytest.mark.parametrize('ref_dims', [2, 4])
def test_forward_gives_mmcv_module_numbers(impl, batch_first, ref_dims):
    """MSDeformAttn.forward keeps mmcv's sampling-location arithmetic (see
    its comment): same parameters -> mmcv's own forward, to float64
    rounding, for point and box references, both layouts, padding."""
    from mmcv.ops.multi_scale_deform_attn import \
        MultiScaleDeformableAttention
    torch.manual_seed(1)
    cfg = dict(embed_dims=16, num_heads=2, num_levels=2, num_points=3,
               batch_first=batch_first, dropout=0.0)
    ours = MSDeformAttn(pytorch_impl=impl, **cfg).double().eval()
    ref = MultiScaleDeformableAttention(**cfg).double().eval()
    torch.nn.init.normal_(ours.sampling_offsets.weight, std=0.5)
    ref.load_state_dict(ours.state_dict())
    shapes = torch.tensor([(4, 5), (2, 3)])
    start = torch.tensor([0, 20])
    query = torch.randn(2, 26, 16, dtype=torch.float64)
    pos = torch.randn_like(query)
    pad = torch.zeros(2, 26, dtype=torch.bool)
    pad[1, -4:] = True
    ref_pts = torch.rand(2, 26, 2, ref_dims, dtype=torch.float64)
    if not batch_first:
        query, pos = query.transpose(0, 1), pos.transpose(0, 1)
    kwargs = dict(query=query, value=query, query_pos=pos,
                  key_padding_mask=pad, reference_points=ref_pts,
                  spatial_shapes=shapes, level_start_index=start)
    with torch.no_grad():
        torch.testing.assert_close(ours(**kwargs), ref(**kwargs), rtol=0,
                                   atol=1e-12)


def test_training_gradients_give_mmcv_module_numbers():
    """The float (L, P, 2) offset normaliser (faster than mmcv's int64
    (L, 2) broadcast): in fp32 training mode (grid_sample core), outputs
    and the gradients of the input and of every parameter equal mmcv's
    module."""
    from mmcv.ops.multi_scale_deform_attn import \
        MultiScaleDeformableAttention
    torch.manual_seed(2)
    cfg = dict(embed_dims=16, num_heads=2, num_levels=3, num_points=4,
               batch_first=True, dropout=0.0)
    ours = MSDeformAttn(pytorch_impl='grid_sample', **cfg).train()
    ref = MultiScaleDeformableAttention(**cfg).train()
    torch.nn.init.normal_(ours.sampling_offsets.weight, std=0.5)
    ref.load_state_dict(ours.state_dict())
    shapes = torch.tensor([(6, 5), (3, 3), (2, 1)])
    start = torch.tensor([0, 30, 39])
    query = torch.randn(2, 41, 16)
    ref_pts = torch.rand(2, 41, 3, 2)
    grads = []
    for module in (ours, ref):
        q = query.clone().requires_grad_()
        out = module(query=q, value=q, reference_points=ref_pts,
                     spatial_shapes=shapes, level_start_index=start)
        out.square().sum().backward()
        grads.append((out.detach(), q.grad,
                      {n: p.grad for n, p in module.named_parameters()}))
    (out, g, pg), (out_ref, g_ref, pg_ref) = grads
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5)
    assert pg.keys() == pg_ref.keys()
    for name in pg:
        torch.testing.assert_close(pg[name], pg_ref[name], rtol=1e-5,
                                   atol=1e-5, msg=name)
