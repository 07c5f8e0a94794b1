"""The tanh residual gate: its initialisations and whether they train."""
import pytest
import torch

from projects.magnet.models.layers.gate import ResidualGate


def _grads(gate, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 8, generator=g)
    r = torch.randn(4, 8, generator=g)
    target = torch.randn(4, 8, generator=g)
    gate.zero_grad()
    ((gate(x, r) - target)**2).mean().backward()
    return gate.fc1.weight.grad, gate.fc2.weight.grad


@pytest.mark.parametrize('act', ['GELU', 'ReLU'])
def test_freshly_built_gate_passes_gradient_to_both_layers(act):
    """The default initialisation (truncated normal, std 0.02) starts
    almost closed and trains: both layers get a gradient in the first
    step, and a few steps open the gate further."""
    torch.manual_seed(0)
    gate = ResidualGate(8, act_cfg=dict(type=act))
    gate.init_weights()
    g1, g2 = _grads(gate)
    assert g1.abs().sum() > 0 and g2.abs().sum() > 0
    r = torch.randn(16, 8)
    before = gate.gate_values(r).abs().mean()
    assert 0 < before < 0.01  # almost closed
    opt = torch.optim.Adam(gate.parameters(), lr=1e-2)
    for step in range(20):
        opt.zero_grad()
        _grads(gate, seed=step % 2)
        opt.step()
    assert gate.gate_values(r).abs().mean() > 3 * before


def test_zero_initialised_gate_never_trains():
    """``init='zeros'`` (the official language-side constructor): closed,
    and neither layer can ever receive a gradient."""
    gate = ResidualGate(8, act_cfg=dict(type='ReLU'), init='zeros')
    gate.init_weights()
    x, r = torch.randn(3, 8), torch.randn(3, 8)
    torch.testing.assert_close(gate(x, r), x)
    g1, g2 = _grads(gate)
    assert g1.abs().sum() == 0 and g2.abs().sum() == 0


def test_gate_is_bounded_and_validates_init():
    gate = ResidualGate(8)
    torch.nn.init.normal_(gate.fc1.weight)
    torch.nn.init.normal_(gate.fc2.weight)
    x, r = torch.randn(3, 8), torch.randn(3, 8)
    out = gate(x, r)
    assert not torch.allclose(out, x)
    assert ((out - x).abs() <= r.abs() + 1e-6).all()  # |tanh| <= 1
    with pytest.raises(ValueError, match='gate init'):
        ResidualGate(8, init='ones')
