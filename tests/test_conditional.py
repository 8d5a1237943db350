"""The conditional axis: one registry, per-context densities, embeddings, standardization, checkpoints, errors."""

from __future__ import annotations

import pytest
import torch
from registry import FLOW_CASES, FlowCase
from test_properties import make_flow

import pyro_flowzoo as fz
from pyro_flowzoo.checkpoint import CheckpointError, checkpoint_payload, flow_from_checkpoint, save_checkpoint
from pyro_flowzoo.flows import FLOW_INFO, FLOWS, builders, fit_standardization
from pyro_flowzoo.nn import MADE

pytestmark = pytest.mark.usefixtures("one_thread")

CONDITIONAL = [c for c in FLOW_CASES if c.context_shape is not None]
SMALL_VECTORS = [c for c in CONDITIONAL if len(c.event_shape) == 1 and c.event_shape[0] <= 2]


def ids(cases: list[FlowCase]) -> list[str]:
    return [c.id for c in cases]


@pytest.mark.parametrize("case", SMALL_VECTORS, ids=ids(SMALL_VECTORS))
def test_density_integrates_to_one_for_every_context(case: FlowCase):
    flow = make_flow(case)
    half, n = 8.0, (2000 if case.event_shape == (1,) else 300)
    axis = torch.linspace(-half, half, n, dtype=torch.float64)
    cell = (axis[1] - axis[0]).item()
    pts, area = (axis[:, None], cell) if case.event_shape == (1,) else (torch.cartesian_prod(axis, axis), cell**2)
    torch.manual_seed(3)
    contexts = case.context((2,))
    with torch.no_grad():
        lp = flow.log_prob(pts, contexts[:, None])  # (2 contexts, points): the context batch broadcasts
    assert lp.shape == (2, pts.shape[0])
    mass = lp.exp().sum(-1) * area
    assert (mass - 1).abs().max() < 0.01, f"per-context masses {mass.tolist()}"
    # The context matters: the two densities differ.
    assert (lp[0] - lp[1]).abs().max() > 1e-3


@pytest.mark.parametrize("case", CONDITIONAL, ids=ids(CONDITIONAL))
def test_context_broadcasts_like_a_loop(case: FlowCase):
    flow = make_flow(case)
    x, contexts = case.x((4,)), case.context((3, 1))
    with torch.no_grad():
        lp = flow.log_prob(x, contexts)
        looped = torch.stack([flow.log_prob(x, contexts[i].expand((4,) + case.context_shape)) for i in range(3)])
    assert lp.shape == (3, 4)
    assert torch.allclose(lp, looped, atol=1e-9)
    assert flow.sample((2,), context=contexts).shape == (2, 3, 1) + case.event_shape


@pytest.mark.parametrize("case", CONDITIONAL, ids=ids(CONDITIONAL))
def test_checkpoint_round_trip(case: FlowCase, tmp_path):
    flow = make_flow(case)
    x, ctx = case.x((4,)), case.context((4,))
    if case.kwargs.get("standardize"):
        fit_standardization(flow, 3 + 2 * case.x((50,)), 1 - 4 * case.context((50,)))
    lp = flow.log_prob(x, ctx)
    save_checkpoint(tmp_path / "flow.pt", checkpoint_payload(flow))
    again, _ = flow_from_checkpoint(tmp_path / "flow.pt")
    assert again.context_shape == flow.context_shape and again.builder == case.builder
    assert torch.allclose(again.log_prob(x, ctx), lp, atol=1e-10)


def test_registry_metadata_covers_every_builder():
    assert set(FLOW_INFO) == set(FLOWS)
    for name, info in FLOW_INFO.items():
        assert set(info.conditional) <= set(info.shapes), name
    vectors = builders("vector")
    assert set(builders("vector", conditional=True)) == set(vectors)  # every vector family has its twin
    assert set(builders("image", conditional=True)) == set(builders("image"))  # images too, pixelcnn_flow included
    assert FLOW_INFO["cglow"].alias_of == "glow" and "cglow" not in builders("image")
    assert FLOW_INFO["planar"].accepts((1,), conditional=True) and not FLOW_INFO["maf"].accepts((2, 2))


@pytest.mark.parametrize("name", builders("vector", conditional=True))
def test_every_vector_builder_is_conditional_through_build(name):
    flow = fz.build(name, (2,), context_shape=(3,), num_layers=1)
    assert flow.is_conditional and flow.context_shape == (3,)
    assert flow.sample((5,), context=torch.randn(3)).shape == (5, 2)
    assert isinstance(flow.dist.condition(torch.randn(4, 3)).sample(), torch.Tensor)


def test_cglow_is_glow_with_a_context():
    small = dict(levels=1, steps=1, hidden_channels=4)
    assert fz.build("cglow", (1, 4, 4), **small).context_shape == (10,)
    a = fz.build("cglow", (1, 4, 4), context_shape=(3,), **small)
    b = fz.build("glow", (1, 4, 4), context_shape=(3,), **small)
    assert a.state_dict().keys() == b.state_dict().keys()


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: fz.build("maf", (2,), context_shape=(3,)).log_prob(torch.zeros(4, 2)),
            r"this flow is conditional: pass context= of shape \(\.\.\., 3\)$",
        ),
        (lambda: fz.build("maf", (2,)).log_prob(torch.zeros(4, 2), torch.zeros(4, 3)), "not conditional"),
        (
            lambda: fz.build("maf", (2,), context_shape=(3,)).log_prob(torch.zeros(4, 2), torch.zeros(4, 2)),
            "expected context of shape",
        ),
        (lambda: fz.build("maf", (2,), context_shape=(3,)).sample((2,), context=torch.zeros(5)), "expected context"),
        (lambda: fz.build("maf", (2,), context_shape=(3,)).dist.condition(torch.zeros(2)), "expected context"),
        (lambda: fz.build("nsf_ar", (1,), context_shape=(3,)), "no conditional version"),
        (lambda: fz.build("maf", (2,), embedding=torch.nn.Linear(3, 4)), "needs context_shape"),
        (lambda: fz.build("maf", (2,), context_shape=(3,), embedding=torch.nn.Linear(5, 4)), "embedding failed"),
        (lambda: fz.build("maf", (2,), context_shape=(3,), standardize="all"), "standardize must be"),
        (lambda: fit_standardization(fz.build("maf", (2,)), torch.zeros(3, 2)), "no data standardization"),
    ],
)
def test_bad_input_gives_one_line_errors(call, message):
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_user_embedding_trains_with_the_flow_and_checkpoints_need_it(tmp_path):
    torch.manual_seed(0)
    embedding = torch.nn.Sequential(torch.nn.Flatten(-2), torch.nn.Linear(12, 5), torch.nn.Tanh())
    flow = fz.build("nsf_coupling", (2,), context_shape=(3, 4), embedding=embedding, num_layers=2, hidden_dims=(8,))
    assert flow.embedding is embedding and flow.hparams["embedding"] == "module:Sequential"
    x, c = torch.randn(6, 2), torch.randn(6, 3, 4)
    (-flow.log_prob(x, c).mean() + flow.transforms[0].net.net[-1].weight.sum()).backward()
    assert all(p.grad is not None for p in embedding.parameters())
    save_checkpoint(tmp_path / "f.pt", checkpoint_payload(flow))
    with pytest.raises(CheckpointError, match="user nn.Module"):
        flow_from_checkpoint(tmp_path / "f.pt")
    again = fz.build(
        "nsf_coupling",
        (2,),
        context_shape=(3, 4),
        num_layers=2,
        hidden_dims=(8,),
        embedding=torch.nn.Sequential(torch.nn.Flatten(-2), torch.nn.Linear(12, 5), torch.nn.Tanh()),
    )
    again.load_state_dict(flow.state_dict())
    assert torch.allclose(again.log_prob(x, c), flow.log_prob(x, c))


def test_large_context_gets_an_mlp_embedding_by_default():
    flow = fz.build("maf", (2,), context_shape=(100,), num_layers=1, hidden_dims=(8,))
    assert flow.embedding is not None and flow.transforms[0].made.context_features == 32
    assert fz.build("maf", (2,), context_shape=(5,), num_layers=1).embedding is None


def test_standardization_is_part_of_the_density():
    torch.manual_seed(0)
    flow = fz.build("maf", (2,), context_shape=(1,), standardize="both", num_layers=2, hidden_dims=(8,)).double()
    x, c = 5 + 3 * torch.randn(400, 2, dtype=torch.float64), 100 + 10 * torch.randn(400, 1, dtype=torch.float64)
    fit_standardization(flow, x, c)
    inner = fz.flows.ConditionalFlow(flow.base, flow._transforms[:-1], (1,))
    data, ctx = flow.transforms[-1], flow.embedding
    expected = inner.log_prob((x - data.loc) / data.scale, ctx(c)) - data.scale.log().sum()
    assert torch.allclose(flow.log_prob(x, c), expected)
    assert ctx(c).mean().abs() < 1e-8 and (ctx(c).std() - 1).abs() < 1e-8


@pytest.mark.parametrize("name", ["maf", "nsf_ar", "ar_flow"])
def test_density_direction_is_one_made_pass_per_layer(name):
    flow = fz.build(name, (4,), context_shape=(2,), num_layers=3, hidden_dims=(16,))
    calls = []
    for t in flow.transforms:
        if hasattr(t, "made"):
            t.made.register_forward_hook(lambda *_: calls.append(1))
    flow.log_prob(torch.randn(7, 4), torch.randn(7, 2))
    assert len(calls) == 3


def test_made_context_enters_every_hidden_layer_and_keeps_the_mask():
    torch.manual_seed(0)
    net = MADE(3, 2, hidden_dims=(8, 8, 8), context_features=2, init_scale=1.0).double()
    x, c = torch.randn(3, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: net(v, c), x)  # (3, 2, 3)
    depends = jac.abs().amax(1) > 0
    assert not (depends & ~torch.ones(3, 3).tril(-1).bool()).any()
    assert torch.autograd.functional.jacobian(lambda v: net(x, v), c).abs().amax((0, 1)).min() > 0
    net(x, c).sum().backward()
    grads = net.context_proj.weight.grad.split(net.hidden_dims, 0)
    assert all(g.abs().sum() > 0 for g in grads), "a hidden layer does not see the context"


@pytest.mark.parametrize("reverse", [False, True])
def test_made_every_output_reads_the_context(reverse):
    # The first variable in the order has no inputs to read; its parameters must still follow the context
    # (Pyro's conditional MADE: hidden units of degree 0 see the context only).
    torch.manual_seed(0)
    net = MADE(3, 2, hidden_dims=(32, 32), context_features=2, init_scale=1.0, reverse=reverse).double()
    x, c = torch.randn(3, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    jac_c = torch.autograd.functional.jacobian(lambda v: net(x, v), c)  # (3, 2, 2)
    assert jac_c.abs().amax((1, 2)).min() > 0, "an output ignores the context"
    jac_x = torch.autograd.functional.jacobian(lambda v: net(v, c), x)
    strict = torch.ones(3, 3).tril(-1).bool()
    strict = strict.t() if reverse else strict
    assert torch.equal(jac_x.abs().amax(1) > 0, strict)  # exactly the autoregressive dependencies


def test_fit_trains_a_conditional_flow_on_pairs():
    torch.manual_seed(0)
    c = torch.randn(512, 1)
    x = torch.cat([c + 0.1 * torch.randn(512, 1), 0.1 * torch.randn(512, 1)], -1)
    flow = fz.build("maf", (2,), context_shape=(1,), num_layers=2, hidden_dims=(32,))
    before = flow.log_prob(x, c).mean().item()
    fz.fit(flow, (x, c), epochs=20, batch_size=128, lr=5e-3, progress=False)
    after = flow.log_prob(x, c).mean().item()
    # Exact: 2 (log 10 - 0.919) = 2.77 nats; the best density ignoring the context is about -0.04.
    assert after > 0.5 > before
