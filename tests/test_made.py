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
    net = MADE(dim, params, hidden_dims=(16, 16), skip_connections=skip, init_scale=1.0, reverse=reverse,
               params_first=params_first).double()
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


def _to_pyro_row_order(state: dict, net: MADE) -> dict:
    """A state dict as saved before 1752ae4: output rows in Pyro's (param, dim) order."""
    inverse = torch.argsort(net._rows)
    out = dict(state)
    last = f"arn.layers.{len(net.arn.layers) - 1}."
    for name in [last] + (["arn.skip_layer."] if net.arn.skip_layer is not None else []):
        for key in ("weight", "bias", "mask"):
            if name + key in out:
                out[name + key] = out[name + key][inverse]
    return out


@pytest.mark.parametrize("skip", [False, True])
def test_made_loads_state_saved_in_pyro_row_order(skip):
    torch.manual_seed(0)
    net = MADE(3, 4, hidden_dims=(8,), skip_connections=skip, init_scale=1.0)
    old = _to_pyro_row_order(net.state_dict(), net)
    assert not torch.equal(old[f"arn.layers.{len(net.arn.layers) - 1}.weight"],
                           net.arn.layers[-1].weight)  # the layouts really differ
    fresh = MADE(3, 4, hidden_dims=(8,), skip_connections=skip)
    fresh.load_state_dict(old)
    x = torch.randn(5, 3)
    assert torch.equal(fresh(x), net(x))
    again = MADE(3, 4, hidden_dims=(8,), skip_connections=skip)
    again.load_state_dict(net.state_dict())  # the current layout loads unchanged
    assert torch.equal(again(x), net(x))


def test_one_layer_flow_saved_in_pyro_row_order_keeps_its_density():
    import pyro_flowzoo as fz

    torch.manual_seed(0)
    flow = fz.build("nsf_ar", (2,), num_layers=1, hidden_dims=(8,), num_bins=4)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.3 * torch.randn_like(p))
    made = flow.transforms[0].made
    state = {k: v for k, v in flow.state_dict().items()}
    old = {("transforms.0.made." + k): v for k, v in _to_pyro_row_order(made.state_dict(), made).items()}
    state.update(old)
    fresh = fz.build("nsf_ar", (2,), num_layers=1, hidden_dims=(8,), num_bins=4)
    fresh.load_state_dict(state)
    x = torch.randn(6, 2)
    assert torch.allclose(fresh.log_prob(x), flow.log_prob(x))


@pytest.mark.parametrize("name", ["maf", "nsf_ar", "ar_flow"])
@pytest.mark.parametrize("num_layers", [2, 3])
def test_checkpoint_of_a_reverse_interleaved_stack_loads_with_the_same_density(name, num_layers):
    # Before 1752ae4 these builders were [layer, Reverse, layer, ...] with natural-order layers and MADE rows
    # in Pyro's (param, dim) order; such checkpoints must load into today's alternating stacks unchanged.
    import pyro_flowzoo as fz
    from pyro_flowzoo.checkpoint import checkpoint_payload, flow_from_checkpoint
    from pyro_flowzoo.flow import Flow
    from pyro_flowzoo.transforms import (
        MaskedAffineAutoregressive,
        MixtureCDFAutoregressive,
        NeuralSplineAutoregressive,
        Reverse,
    )

    hp = {"num_layers": num_layers, "hidden_dims": (8,)}
    if name == "ar_flow":
        hp["to_real"] = True
    new = {"maf": lambda: MaskedAffineAutoregressive(3, (8,)),
           "nsf_ar": lambda: NeuralSplineAutoregressive(3, 8, (8,), 5.0),
           "ar_flow": lambda: MixtureCDFAutoregressive(3, 8, (8,), "gaussian", True)}[name]
    template = fz.build(name, (3,), **hp)
    torch.manual_seed(0)
    parts = []
    for i in range(num_layers):
        if i:
            parts.append(Reverse(3))
        layer = new()
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.3 * torch.randn_like(p))
        parts.append(layer)
    old = Flow(template.base, parts)
    state = {}
    for key, value in old.state_dict().items():
        state[key] = value
    for i, t in enumerate(old.transforms):
        if hasattr(t, "made") and t.made._rows is not None:
            for k, v in _to_pyro_row_order(t.made.state_dict(), t.made).items():
                state[f"transforms.{i}.made.{k}"] = v
    flow, _ = flow_from_checkpoint(checkpoint_payload(template, state_dict=state))
    x = torch.randn(7, 3)
    if name == "maf":
        x = 2 * x
    with torch.no_grad():
        assert torch.allclose(flow.log_prob(x), old.log_prob(x), atol=1e-5)
    assert [t.reverse for t in flow.transforms][-1] is False
