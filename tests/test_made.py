"""MADE: the autoregressive dependency pattern in every layout and order, and the output layout itself."""

import pytest
import torch

from pyro_flowzoo.nn import MADE


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("params_first", [False, True])
@pytest.mark.parametrize("skip", [False, True])
def test_made_output_d_depends_only_on_earlier_inputs(reverse, params_first, skip):
    torch.manual_seed(0)
    dim, params = 4, 3
    net = MADE(
        dim,
        params,
        hidden_dims=(16, 16),
        skip_connections=skip,
        init_scale=1.0,
        reverse=reverse,
        params_first=params_first,
    ).double()
    x = torch.randn(dim, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(net, x)  # output shape + (dim,)
    if params_first:
        jac = jac.transpose(0, 1)  # -> (dim, params, dim)
    assert jac.shape == (dim, params, dim)
    depends = jac.abs().amax(1) > 0  # [output d, input j]
    allowed = torch.ones(dim, dim).triu(1).bool() if reverse else torch.ones(dim, dim).tril(-1).bool()
    assert not (depends & ~allowed).any(), "an output depends on an input it must not see"
    assert depends[allowed].all(), "an allowed dependency is missing (hidden layers wide enough for all)"


def test_made_layouts_hold_the_same_function():
    # params_first only changes where each number sits: copy the weights across and compare.
    torch.manual_seed(0)
    a = MADE(3, 2, hidden_dims=(8,), init_scale=1.0)
    b = MADE(3, 2, hidden_dims=(8,), init_scale=1.0, params_first=True)
    rows = torch.arange(6).view(2, 3).t().reshape(-1)  # (param, dim) row -> (dim, param) row
    with torch.no_grad():
        for la, lb in zip(a.arn.layers[:-1], b.arn.layers[:-1]):
            lb.weight.copy_(la.weight)
            lb.bias.copy_(la.bias)
        lb, la = b.arn.layers[-1], a.arn.layers[-1]
        lb.weight[rows] = la.weight
        lb.bias[rows] = la.bias
    x = torch.randn(5, 3)
    out_a, out_b = a(x), b(x)
    assert out_a.shape == (5, 3, 2) and out_b.shape == (5, 2, 3)
    assert out_a.is_contiguous() and out_b.is_contiguous()
    assert torch.equal(out_a, out_b.transpose(-1, -2))


@pytest.mark.parametrize("params_first", [False, True])
def test_made_output_bias_is_viewed_in_the_output_layout(params_first):
    net = MADE(3, 2, hidden_dims=(8,), init_scale=0.0, params_first=params_first)
    with torch.no_grad():
        net.output_bias.copy_(torch.arange(6.0).view(net.output_shape))
    assert torch.equal(net(torch.randn(4, 3)), torch.arange(6.0).view(net.output_shape).expand(4, -1, -1))
