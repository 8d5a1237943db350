"""The generic property battery (GUIDE.md section 3) over every registered transform and flow."""

from __future__ import annotations

import copy
import io
import math
import pickle

import pyro
import pytest
import torch
from pyro.distributions.conditional import ConditionalTransform
from pyro.distributions.torch_transform import TransformModule
from registry import FLOW_CASES, TRANSFORM_CASES, FlowCase, TransformCase

import pyro_flowzoo
from pyro_flowzoo import FLOWS, StandardUniform, transforms

BATCH_SHAPES = [(), (3,), (2, 3)]


# -- helpers ----------------------------------------------------------------------------------
def make_transform(case: TransformCase):
    torch.manual_seed(0)
    t = case.make().double()
    with torch.no_grad():
        for p in t.parameters():
            p.add_(case.perturb * torch.randn_like(p))
    return t


def bind(t, case: TransformCase, batch_shape=()):
    """The transform itself, or conditioned on a fresh context."""
    if isinstance(t, ConditionalTransform):
        return t.condition(case.context(batch_shape))
    return t


def fwd(t, x):
    """Forward pass and log-det, bypassing any cache."""
    if hasattr(t, "forward_and_log_det"):
        return t.forward_and_log_det(x)
    y = t._call(x)
    return y, t.log_abs_det_jacobian(x, y)


def inv(t, y):
    """Inverse pass and the forward log-det at the result, bypassing any cache."""
    if hasattr(t, "inverse_and_log_det"):
        return t.inverse_and_log_det(y)
    x = t._inverse(y)
    return x, t.log_abs_det_jacobian(x, y)


def make_flow(case: FlowCase):
    torch.manual_seed(0)
    flow = FLOWS[case.builder](case.event_shape, **case.kwargs).double()
    with torch.no_grad():
        flow.log_prob(case.x((16,)), case.context((16,)))  # data-dependent initialisation, if any
        for p in flow.parameters():
            p.add_(case.perturb * torch.randn_like(p))
    return flow


def assert_close(a, b, tol, what=""):
    assert a.shape == b.shape, f"{what}: shapes {tuple(a.shape)} != {tuple(b.shape)}"
    err = (a - b).abs().max().item() if a.numel() else 0.0
    assert err < tol, f"{what}: max abs error {err:.3g} >= {tol:.3g}"


def tids(cases):
    return [c.id for c in cases]


# -- transforms -------------------------------------------------------------------------------
@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=tids(TRANSFORM_CASES))
def test_round_trips(case: TransformCase):
    t = bind(make_transform(case), case, (5,))
    x = case.x((5,))
    y, _ = fwd(t, x.clone())
    x_back, _ = inv(t, y.clone())
    assert_close(x_back, x, case.tol * 10, "inverse(forward(x))")
    y_back, _ = fwd(t, x_back.clone())
    assert_close(y_back, y, case.tol * 10, "forward(inverse(y))")
    # Through the Pyro Transform protocol too (our transforms keep no stale cache).
    assert_close(t.inv(t(x)), x, case.tol * 10, "t.inv(t(x))")


@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=tids(TRANSFORM_CASES))
def test_log_det_matches_autograd(case: TransformCase):
    t = bind(make_transform(case), case)
    x = case.x()
    y, log_det = fwd(t, x)

    def f(flat):
        return fwd(t, flat.reshape(x.shape))[0].reshape(-1)

    jac = torch.autograd.functional.jacobian(f, x.reshape(-1))
    expected = torch.linalg.slogdet(jac).logabsdet
    assert_close(log_det, expected, case.tol * 100, "log-det vs autograd")
    # The inverse pass reports the same forward log-det, and the Transform API agrees when called
    # with tensors it has never seen (no cache hit).
    _, log_det_inv = inv(t, y.clone())
    assert_close(log_det_inv, expected, case.tol * 100, "inverse's log-det vs autograd")
    assert_close(t.log_abs_det_jacobian(x.clone(), y.clone()), expected, case.tol * 100, "uncached log-det")


@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=tids(TRANSFORM_CASES))
def test_inverse_log_det_is_negative(case: TransformCase):
    t = bind(make_transform(case), case, (4,))
    x = case.x((4,))
    y = t(x)
    assert_close(t.inv.log_abs_det_jacobian(y, x), -t.log_abs_det_jacobian(x, y), case.tol, "inv log-det")


@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=tids(TRANSFORM_CASES))
@pytest.mark.parametrize("batch_shape", BATCH_SHAPES, ids=str)
def test_shapes(case: TransformCase, batch_shape):
    t = bind(make_transform(case), case, batch_shape)
    x = case.x(batch_shape)
    y, log_det = fwd(t, x)
    n_in = len(case.event_shape)
    event_out = tuple(t.forward_shape(torch.Size(case.event_shape)))
    assert tuple(y.shape) == batch_shape + event_out
    assert tuple(t.inverse_shape(y.shape)) == tuple(x.shape)
    assert tuple(log_det.shape) == batch_shape
    x_back, log_det_inv = inv(t, y)
    assert tuple(x_back.shape) == batch_shape + case.event_shape
    assert tuple(log_det_inv.shape) == batch_shape
    assert n_in == t.domain.event_dim


@pytest.mark.parametrize(
    "case", [c for c in TRANSFORM_CASES if c.autoregressive], ids=tids([c for c in TRANSFORM_CASES if c.autoregressive])
)
def test_jacobian_is_triangular(case: TransformCase):
    t = bind(make_transform(case), case)
    x = case.x()
    jac = torch.autograd.functional.jacobian(lambda v: fwd(t, v.reshape(x.shape))[0].reshape(-1), x.reshape(-1))
    if case.autoregressive == "reversed":
        lower = torch.tril(jac, diagonal=-1)
        assert lower.abs().max() < 1e-10, "reversed autoregressive Jacobian has entries below the diagonal"
    else:
        upper = torch.triu(jac, diagonal=1)
        assert upper.abs().max() < 1e-10, "autoregressive Jacobian has entries above the diagonal"
    assert jac.diagonal().abs().min() > 0


@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=tids(TRANSFORM_CASES))
def test_gradients_reach_every_parameter(case: TransformCase):
    t0 = make_transform(case)
    params = list(t0.parameters())
    if not params:
        pytest.skip("no parameters")
    t = bind(t0, case, (6,))
    x = case.x((6,))
    y, ld = fwd(t, x)
    x_back, ld_inv = inv(t, y.detach())
    loss = ld.sum() + ld_inv.sum() + (y**2).sum() + (x_back**2).sum()
    loss.backward()
    missing = [n for n, p in t0.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no (finite) gradient for {missing}"


@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=tids(TRANSFORM_CASES))
def test_memo_is_never_stale(case: TransformCase):
    """Scoring the same tensor after a parameter update gives the new log-det, not the old one."""
    t0 = make_transform(case)
    if not list(t0.parameters()):
        pytest.skip("no parameters")
    ctx = case.context((3,))
    t = t0.condition(ctx) if ctx is not None else t0
    y = fwd(t, case.x((3,)))[0].detach()
    x1 = t.inv(y)
    (t.log_abs_det_jacobian(x1, y).sum() + x1.sum()).backward()
    with torch.no_grad():
        for p in t0.parameters():
            p.add_(0.05 * torch.randn_like(p))
    t = t0.condition(ctx) if ctx is not None else t0
    x2 = t.inv(y)
    got = t.log_abs_det_jacobian(x2, y)
    _, expected = inv(t, y.clone())
    assert_close(got, expected, case.tol, "log-det after an update")
    (got.sum() + x2.sum()).backward()  # the graph is this step's, not a freed one


@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=tids(TRANSFORM_CASES))
def test_copy_pickle_state_dict(case: TransformCase):
    t0 = make_transform(case)
    ctx = case.context((4,))
    x = case.x((4,))
    y = (t0.condition(ctx) if ctx is not None else t0)(x)  # a forward pass first (fills any memo)

    def out(m):
        return fwd(m.condition(ctx) if ctx is not None else m, x)[0]

    assert_close(out(copy.deepcopy(t0)), y, 1e-12, "deepcopy")
    assert_close(out(pickle.loads(pickle.dumps(t0))), y, 1e-12, "pickle")
    fresh = make_transform(case)
    fresh.load_state_dict(t0.state_dict())
    assert_close(out(fresh), y, 1e-12, "state_dict")


@pytest.mark.parametrize("case", TRANSFORM_CASES, ids=tids(TRANSFORM_CASES))
def test_dtypes_and_buffers_move(case: TransformCase):
    t0 = make_transform(case)
    for name, b in t0.named_buffers():
        if b.is_floating_point():
            assert b.dtype == torch.float64, f"buffer {name} did not follow .double()"
    t32 = t0.float()
    for name, b in t32.named_buffers():
        if b.is_floating_point():
            assert b.dtype == torch.float32, f"buffer {name} did not follow .float()"
    ctx = case.context((2,))
    t = t32.condition(ctx.float()) if ctx is not None else t32
    y, ld = fwd(t, case.x((2,)).float())
    x_back, _ = inv(t, y)
    assert y.dtype == ld.dtype == x_back.dtype == torch.float32


@pytest.mark.parametrize(
    "case",
    [c for c in TRANSFORM_CASES if c.context_shape is not None],
    ids=tids([c for c in TRANSFORM_CASES if c.context_shape is not None]),
)
def test_conditional_inverse_and_broadcasting(case: TransformCase):
    t = make_transform(case)
    ctx = case.context()
    x = case.x((4,))
    y = fwd(t.condition(ctx), x)[0]
    a = t.condition(ctx).inv(y.clone())
    b = t.inv.condition(ctx)(y.clone())
    assert_close(a, b, 1e-12, ".condition(c).inv vs .inv.condition(c)")
    # One context broadcasts over the batch exactly as an expanded one does.
    y_expanded = fwd(t.condition(ctx.expand((4,) + ctx.shape)), x)[0]
    assert_close(y, y_expanded, 1e-12, "context broadcasting")


def test_every_transform_class_has_a_case():
    covered = set()
    for case in TRANSFORM_CASES:
        covered.update(case.covers or (type(case.make()),))
    exported = {
        getattr(transforms, n)
        for n in transforms.__all__
        if isinstance(getattr(transforms, n), type)
        and issubclass(getattr(transforms, n), (TransformModule, ConditionalTransform))
        and not getattr(transforms, n).__name__.startswith(("FlowTransform", "ConditionalFlowTransform"))
    }
    missing = sorted(c.__name__ for c in exported if not any(issubclass(k, c) and k is c for k in covered))
    assert not missing, f"transforms without a battery case: {missing}"


# -- flows ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", FLOW_CASES, ids=tids(FLOW_CASES))
def test_flow_shapes_and_round_trip(case: FlowCase):
    flow = make_flow(case)
    for batch_shape in BATCH_SHAPES:
        x = case.x(batch_shape)
        ctx = case.context(batch_shape)
        lp = flow.log_prob(x, ctx)
        assert tuple(lp.shape) == batch_shape and torch.isfinite(lp).all()
        z, _ = flow.to_latent(x, ctx)
        x_back, _ = flow.from_latent(z, ctx)
        assert_close(x_back, x, case.tol * 100, "from_latent(to_latent(x))")
    for sample_shape in [(), (4,), (2, 3)]:
        s = flow.sample(sample_shape, context=case.context())
        assert tuple(s.shape) == sample_shape + case.event_shape
        assert torch.isfinite(s).all()
    assert flow.event_shape == torch.Size(case.event_shape)


@pytest.mark.parametrize("case", FLOW_CASES, ids=tids(FLOW_CASES))
def test_flow_log_prob_matches_pyro_distribution(case: FlowCase):
    flow = make_flow(case)
    x = case.x((5,))
    ctx = case.context((5,))
    d = flow.dist.condition(ctx) if ctx is not None else flow.dist
    assert_close(d.log_prob(x), flow.log_prob(x, ctx), 1e-8, "Pyro TransformedDistribution vs Flow.log_prob")
    assert tuple(d.sample((3,)).shape)[-len(case.event_shape) :] == case.event_shape


@pytest.mark.parametrize(
    "case",
    [c for c in FLOW_CASES if len(c.event_shape) == 1 and c.event_shape[0] <= 2 and c.context_shape is None],
    ids=tids([c for c in FLOW_CASES if len(c.event_shape) == 1 and c.event_shape[0] <= 2 and c.context_shape is None]),
)
def test_flow_density_integrates_to_one(case: FlowCase):
    flow = make_flow(case)
    half, n = case.grid
    axis = torch.linspace(-half, half, n, dtype=torch.float64)
    cell = (axis[1] - axis[0]).item()
    if case.event_shape == (1,):
        pts = axis[:, None]
        area = cell
    else:
        pts = torch.cartesian_prod(axis, axis)
        area = cell**2
    with torch.no_grad():
        mass = sum(flow.log_prob(chunk).exp().sum().item() for chunk in pts.split(40_000)) * area
    assert abs(mass - 1) < 0.01, f"density integrates to {mass:.4f}"


@pytest.mark.parametrize("case", FLOW_CASES, ids=tids(FLOW_CASES))
def test_flow_repeated_mle_steps_through_pyro(case: FlowCase):
    """SVI with obs= on the same tensor every step: no stale graph, every parameter trained."""
    flow = make_flow(case)
    pyro.clear_param_store()
    data = case.x((8,))
    ctx = case.context((8,))

    def model(x):
        pyro.module("flow", flow)
        d = flow.dist.condition(ctx) if ctx is not None else flow.dist
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", d, obs=x)

    def guide(x):
        pass

    before = {n: p.detach().clone() for n, p in flow.named_parameters()}
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), pyro.infer.Trace_ELBO())
    losses = [svi.step(data) for _ in range(3)]
    assert all(math.isfinite(v) for v in losses)
    names = set(pyro.get_param_store().keys())
    assert len(names) == len(before), "pyro.module did not register every parameter"
    unchanged = [n for n, p in flow.named_parameters() if torch.equal(p.detach(), before[n])]
    assert not unchanged, f"parameters never updated: {unchanged}"
    # And the plain torch way: the same tensor scored on every step.
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        (-flow.log_prob(data, ctx).mean()).backward()
        opt.step()


@pytest.mark.parametrize("case", FLOW_CASES, ids=tids(FLOW_CASES))
def test_flow_copy_pickle_state_dict(case: FlowCase):
    flow = make_flow(case)
    x = case.x((4,))
    ctx = case.context((4,))
    lp = flow.log_prob(x, ctx)
    assert_close(copy.deepcopy(flow).log_prob(x, ctx), lp, 1e-10, "deepcopy")
    assert_close(pickle.loads(pickle.dumps(flow)).log_prob(x, ctx), lp, 1e-10, "pickle")
    fresh = FLOWS[case.builder](case.event_shape, **case.kwargs).double()
    buffer = io.BytesIO()
    torch.save(flow.state_dict(), buffer)
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert_close(fresh.log_prob(x, ctx), lp, 1e-10, "state_dict")


@pytest.mark.parametrize("case", FLOW_CASES, ids=tids(FLOW_CASES))
def test_flow_dtypes(case: FlowCase):
    flow = make_flow(case)
    for name, b in flow.named_buffers():
        if b.is_floating_point():
            assert b.dtype == torch.float64, f"buffer {name} did not follow .double()"
    flow = flow.float()
    ctx = case.context((3,))
    lp = flow.log_prob(case.x((3,)).float(), None if ctx is None else ctx.float())
    assert lp.dtype == torch.float32 and torch.isfinite(lp).all()
    assert flow.sample((2,), context=None if ctx is None else ctx[0].float()).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("case", FLOW_CASES, ids=tids(FLOW_CASES))
def test_flow_cuda(case: FlowCase):
    flow = make_flow(case)
    x = case.x((4,))
    ctx = case.context((4,))
    lp = flow.log_prob(x, ctx)
    flow_gpu = flow.to("cuda")
    lp_gpu = flow_gpu.log_prob(x.cuda(), None if ctx is None else ctx.cuda())
    assert_close(lp_gpu.cpu(), lp, 1e-6, "CUDA vs CPU")


@pytest.mark.parametrize("case", FLOW_CASES, ids=tids(FLOW_CASES))
def test_flow_bad_input(case: FlowCase):
    flow = make_flow(case)
    ctx = case.context((2,))
    wrong = torch.zeros((2,) + tuple(s + 1 for s in case.event_shape), dtype=torch.float64)
    with pytest.raises(ValueError, match="expected data of shape"):
        flow.log_prob(wrong, ctx)
    x = case.x((2,))
    x.view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        flow.log_prob(x, ctx)
    x.view(-1)[0] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        flow.log_prob(x, ctx)


@pytest.mark.parametrize(
    "case",
    [c for c in FLOW_CASES if c.context_shape is None],
    ids=tids([c for c in FLOW_CASES if c.context_shape is None]),
)
def test_flow_temperature_scales_the_latent(case: FlowCase):
    flow = make_flow(case)
    if isinstance(flow.base, StandardUniform):
        with pytest.raises(ValueError, match="temperature"):
            flow.sample((2,), temperature=0.5)
        return
    torch.manual_seed(1)
    with torch.no_grad():
        z, _ = flow.to_latent(flow.sample((4000,), temperature=0.5))
        z1, _ = flow.to_latent(flow.sample((4000,)))
    ratio = (z.std() / z1.std()).item()
    assert abs(ratio - 0.5) < 0.05, f"latent spread ratio {ratio:.3f}, expected 0.5"


def test_every_builder_has_a_case():
    missing = sorted(set(FLOWS) - {c.builder for c in FLOW_CASES})
    assert not missing, f"builders without a battery case: {missing}"


def test_public_api():
    for name in pyro_flowzoo.__all__:
        assert hasattr(pyro_flowzoo, name)
