"""The tanh residual gate."""
import torch

from projects.magnet.models.layers.gate import ResidualGate


def test_gate_starts_closed_and_opens():
    gate = ResidualGate(8)
    gate.init_weights()
    x, r = torch.randn(3, 8), torch.randn(3, 8)
    torch.testing.assert_close(gate(x, r), x)
    torch.nn.init.normal_(gate.fc1.weight)
    torch.nn.init.normal_(gate.fc2.weight)
    out = gate(x, r)
    assert not torch.allclose(out, x)
    assert ((out - x).abs() <= r.abs() + 1e-6).all()  # |tanh| <= 1
