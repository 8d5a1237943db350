"""AutoFlowGuide's VI defaults: identity start, initial Gaussian, stability, NeuTra and Pyro integration."""

from __future__ import annotations

import math
from functools import partial

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC, NUTS, SVI, JitTrace_ELBO, Predictive, Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.autoguide import AutoMultivariateNormal
from pyro.infer.reparam import NeuTraReparam
from pyro.optim import Adam

from pyro_flowzoo import FLOWS
from pyro_flowzoo.infer import (
    GUIDE_DEFAULTS,
    VECTOR_BUILDERS,
    AutoFlowGuide,
    FlowPosterior,
    GaussianLinearPosterior,
    funnel_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")

BUILDERS = [
    pytest.param(n, id=n, marks=pytest.mark.skipif(n not in FLOWS, reason=f"{n} not registered"))
    for n in VECTOR_BUILDERS
]
# The defaults' layer counts with narrow networks: what these tests check does not depend on width.
TINY = {
    n: {**{k: v for k, v in GUIDE_DEFAULTS.get(n, {}).items() if k != "num_layers"}, "num_layers": 2}
    for n in VECTOR_BUILDERS
}
for n in ("nice", "realnvp", "maf", "nsf_ar", "nsf_coupling", "ar_flow"):
    TINY[n]["hidden_dims"] = (8,)


def svi_steps(
    model, guide, steps: int, lr: float = 1e-2, particles: int = 8, vectorize: bool = True, loss=Trace_ELBO, *args
) -> list[float]:
    elbo = loss(num_particles=particles, vectorize_particles=vectorize, max_plate_nesting=1)
    svi = SVI(model, guide, Adam({"lr": lr}), elbo)
    return [svi.step(*args) for _ in range(steps)]


def params_finite() -> bool:
    return all(bool(torch.isfinite(p).all()) for p in pyro.get_param_store().values())


# -- start ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILDERS)
def test_default_guide_starts_as_its_affine_layer(name):
    """Flow layers start at the identity, so the guide's transform is exactly mu + sigma L z at step 0."""
    guide = AutoFlowGuide(partial(funnel_model, 4), name, init_scale=0.5)
    guide()
    z = torch.randn(64, 4)
    x = guide.get_transform()(z)
    expected = guide.loc + guide.scale * z  # L is the identity at the start
    atol = 1e-2 if name == "ar_flow" else 1e-5  # mixture-CDF layers keep their components 0.1 apart
    assert torch.allclose(x, expected, atol=atol)
    # The flow has parameters that can move it away from the identity.
    assert sum(p.numel() for p in guide.flow.parameters()) > 0


def test_laplace_start_is_the_gaussian_posterior():
    problem = GaussianLinearPosterior(3)
    guide = AutoFlowGuide(problem.model, "realnvp", **TINY["realnvp"])
    guide()
    theta = guide.latent_samples(20000).double()  # MC s.e.: 0.007 sd for the mean, ~0.01 for the covariance
    sd = problem.cov.diagonal().sqrt()
    assert ((theta.mean(0) - problem.mean) / sd).abs().max() < 0.05
    assert ((torch.cov(theta.T) - problem.cov) / (sd[:, None] * sd)).abs().max() < 0.05


@pytest.mark.parametrize("name", ["realnvp", None])
def test_path_derivative_gradient_vanishes_at_the_posterior(name):
    """At the Laplace start of a Gaussian model q is the posterior: the ELBO gradient is ~0 for every draw,
    while the full (score-function-including) gradient of the same guide is not."""
    problem = GaussianLinearPosterior(3)
    norms = []
    for path_derivative in (True, False):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        guide = AutoFlowGuide(problem.model, name, path_derivative=path_derivative, **(TINY["realnvp"] if name else {}))
        guide()
        q = guide.get_posterior()
        x = q.rsample((4,))
        assert torch.allclose(q.log_prob(x), q.log_prob(x.detach().clone()), atol=1e-4)  # same value
        loss = Trace_ELBO(num_particles=16, vectorize_particles=True, max_plate_nesting=0).differentiable_loss(
            problem.model, guide
        )
        grads = torch.autograd.grad(loss, list(guide.parameters()), allow_unused=True)
        norms.append(sum(g.pow(2).sum() for g in grads if g is not None).sqrt().item())
    assert norms[0] < 0.01 < 0.3 < norms[1]


@pytest.mark.parametrize("affine_position", ["data", "latent"])
def test_path_derivative_score_is_the_log_density(affine_position):
    """The detached score (splines, affine layer and flow inverted) gives log q of the guide's own samples."""
    torch.manual_seed(0)
    guide = AutoFlowGuide(partial(funnel_model, 5), affine_position=affine_position)
    guide()
    with torch.no_grad():
        for p in guide.parameters():
            p.add_(0.2 * torch.randn_like(p))
    q = guide.get_posterior()
    assert guide._use_path_derivative
    x, log_q = FlowPosterior.rsample_and_log_prob(q, (6,))  # the forward pass's own log-density
    assert torch.allclose(q._score(x), log_q, atol=1e-4)


def test_path_derivative_score_follows_the_parameters():
    """The detached copy that scores the guide's draws sees every in-place update (an optimizer step) and is
    rebuilt when the parameters are replaced (a dtype move), so it never scores with stale values."""
    torch.manual_seed(0)
    guide = AutoFlowGuide(partial(funnel_model, 4))
    guide()
    guide.get_posterior()  # builds the copy
    for dtype in (torch.float32, torch.float64):
        guide.to(dtype)
        with torch.no_grad():
            for p in guide.parameters():
                p.add_(0.2 * torch.randn_like(p))
        q = guide.get_posterior()
        x, log_q = FlowPosterior.rsample_and_log_prob(q, (6,))
        assert x.dtype == dtype
        assert torch.allclose(q._score(x), log_q, atol=1e-4)
        # The copy shares the guide's storage: the score moves with the next in-place step, no rebuild.
        with torch.no_grad():
            for p in guide.flow.parameters():
                p.add_(0.2 * torch.randn_like(p))
        x_new, log_q_new = FlowPosterior.rsample_and_log_prob(guide.get_posterior(), (6,))
        assert torch.allclose(q._score(x_new), log_q_new, atol=1e-4)


def test_funnel_start_is_not_the_laplace_approximation():
    """The funnel's mode sits in the neck (v = -9 (D - 1) / 2): the ELBO check must reject it."""
    guide = AutoFlowGuide(partial(funnel_model, 6), "realnvp", **TINY["realnvp"])
    guide()
    assert guide.scale.min() > 0.05 and guide.loc[0] > -5.0
    pyro.clear_param_store()  # both guides' parameters have the same names in Pyro's store
    explicit = AutoFlowGuide(partial(funnel_model, 6), "realnvp", init_scale=0.3, **TINY["realnvp"])
    explicit()
    assert torch.allclose(explicit.scale, torch.full((6,), 0.3))


# -- architecture ---------------------------------------------------------------------------------
def assert_lower_triangular_after_perturbing(guide: AutoFlowGuide, dim: int) -> None:
    """With every parameter moved off its start, the guide's base-to-latent Jacobian is lower triangular and
    the first coordinate (a funnel's global scale v) moves every later one."""
    with torch.no_grad():
        for p in guide.parameters():
            p.add_(0.3 * torch.randn_like(p))
    jac = torch.autograd.functional.jacobian(guide.get_transform(), 0.5 * torch.randn(dim))
    assert torch.equal(jac.triu(1), torch.zeros(dim, dim))
    assert (jac[1:, 0].abs() > 1e-3).all()


def test_default_guide_is_triangular_in_the_models_order():
    """Prefix couplings, marginal splines and the tril affine layer: the guide's map is lower triangular, and
    the funnel's first site (its global scale v) moves every later coordinate."""
    guide = AutoFlowGuide(partial(funnel_model, 6))
    guide()
    assert [int(t.mask.sum()) for t in guide.flow._transforms if hasattr(t, "mask")] == [1, 2, 4]
    assert guide.marginals is not None
    assert_lower_triangular_after_perturbing(guide, 6)


@pytest.mark.parametrize("name", ["maf", "nsf_ar"])
def test_autoregressive_guides_are_triangular_in_the_models_order(name):
    """maf's and nsf_ar's default guides: one layer in the model's order, run forward, so each latent
    depends on the earlier ones only, and the path-derivative score is on."""
    guide = AutoFlowGuide(partial(funnel_model, 4), name)
    guide()
    assert not guide.invert and guide._use_path_derivative
    assert_lower_triangular_after_perturbing(guide, 4)


def _mixture_log_joint(z: torch.Tensor) -> torch.Tensor:
    locs = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    return torch.logsumexp(dist.Normal(locs, 1.0).to_event(1).log_prob(z.unsqueeze(-2)), -1) - math.log(2.0)


def _mixture_model() -> None:
    pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))  # only its shape matters here


@pytest.mark.parametrize("marginals", [True, False])
def test_marginal_splines_fit_a_bimodal_posterior(marginals):
    """A triangular map keeps the first coordinate's marginal Gaussian; the splines at the base make it
    bimodal. The best Gaussian misses two unit modes at -+2 by about 0.3 nats."""
    torch.manual_seed(0)
    guide = AutoFlowGuide(_mixture_model, marginals=marginals, init_scale=1.0)
    guide()
    opt = torch.optim.Adam(guide.parameters(), lr=0.02)
    for _ in range(300):
        opt.zero_grad()
        z, log_q = guide.get_posterior().rsample_and_log_prob((64,))
        (log_q - _mixture_log_joint(z)).mean().backward()
        opt.step()
    with torch.no_grad():
        z, log_q = guide.get_posterior().rsample_and_log_prob((20000,))
        gap = (log_q - _mixture_log_joint(z)).mean().item()  # log Z = 0
    assert (gap < 0.05) if marginals else (gap > 0.15), f"marginals={marginals}: gap {gap:.3f}"


# -- stability --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILDERS)
def test_plain_loop_on_the_funnel_keeps_parameters_finite(name):
    guide = AutoFlowGuide(partial(funnel_model, 4), name, **TINY[name])
    losses = svi_steps(partial(funnel_model, 4), guide, steps=15, lr=1e-2, particles=16)
    assert params_finite()
    assert math.isfinite(losses[-1])


@pytest.mark.parametrize("particles,vectorize", [(1, False), (4, False), (16, True)])
def test_particles_vectorised_or_not(particles, vectorize):
    guide = AutoFlowGuide(partial(funnel_model, 4), "realnvp", **TINY["realnvp"])
    losses = svi_steps(partial(funnel_model, 4), guide, 5, 1e-3, particles, vectorize)
    assert params_finite() and all(math.isfinite(v) for v in losses)


def overflow_model():
    """A likelihood that overflows wherever z_0 > 1: log density -inf there, and an infinite gradient."""
    z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    gain = torch.where(z[..., 0] > 1.0, torch.tensor(math.inf), torch.tensor(1.0))
    pyro.sample("y", dist.Normal(z[..., 0] * gain, 1.0), obs=torch.tensor(0.0))


def test_non_finite_elbo_does_not_corrupt_parameters():
    guide = AutoFlowGuide(overflow_model, "realnvp", init_scale=1.0, **TINY["realnvp"])
    losses = svi_steps(overflow_model, guide, steps=3, particles=64)
    assert not all(math.isfinite(v) for v in losses)  # some particles hit the NaN region
    assert params_finite()
    # Without the guard one such step turns Pyro's own guide into NaN.
    pyro.clear_param_store()
    svi_steps(overflow_model, AutoMultivariateNormal(overflow_model, init_scale=1.0), steps=1, particles=64)
    assert not params_finite()


def _guide_gradients(guide: AutoFlowGuide, upstream: list[float]) -> list[float]:
    """The gradient norm reaching the guide's parameters when the sample receives gradients of the given norms."""
    norms = []
    for scale in upstream:
        x = guide.get_posterior().rsample((8,))
        direction = torch.ones_like(x) / math.sqrt(x.numel())
        grads = torch.autograd.grad((x * direction).sum() * scale, [guide.loc])
        norms.append(grads[0].norm().item())
    return norms


def test_spike_guard_scales_down_a_rare_large_gradient():
    """After steady steps, a step with 50 times the usual gradient at the sample reaches the parameters at
    3 times the running mean (the default factor); without the guard it passes whole, and steady steps
    are never changed."""
    model = partial(funnel_model, 3)
    upstream = [1.0] * 10 + [50.0, 1.0]
    guarded = AutoFlowGuide(model, flow=None, init_scale=1.0)
    guarded()
    pyro.clear_param_store()
    plain = AutoFlowGuide(model, flow=None, init_scale=1.0, spike_guard=None)
    plain()
    with_guard, without = _guide_gradients(guarded, upstream), _guide_gradients(plain, upstream)
    # loc receives the sample's gradient unchanged (d x / d loc = I), summed over the 8 draws.
    assert without[10] == pytest.approx(50 * without[0])
    assert with_guard[:10] == pytest.approx(without[:10])
    assert with_guard[10] == pytest.approx(3 * without[0], rel=1e-4)
    assert with_guard[11] == pytest.approx(without[11])


def test_spike_guard_is_checked():
    for bad in (1.0, 0.5, -3.0, "3"):
        with pytest.raises(ValueError, match="spike_guard"):
            AutoFlowGuide(partial(funnel_model, 3), spike_guard=bad)


# -- Pyro integration ------------------------------------------------------------------------------
def test_neutra_nuts_on_a_funnel():
    model = partial(funnel_model, 3)
    guide = AutoFlowGuide(model, "realnvp", **TINY["realnvp"])
    svi_steps(model, guide, steps=60, lr=1e-2, particles=8)
    neutra = NeuTraReparam(guide.requires_grad_(False))
    reparam_model = pyro.poutine.reparam(model, config=lambda site: neutra)
    mcmc = MCMC(NUTS(reparam_model, max_tree_depth=4), warmup_steps=30, num_samples=40, disable_progbar=True)
    mcmc.run()
    latent = mcmc.get_samples()["v_shared_latent"]
    assert latent.shape == (40, 3)
    samples = neutra.transform_sample(latent)
    assert samples["v"].shape == (40,) and samples["x"].shape == (40, 2)
    assert bool(torch.isfinite(samples["x"]).all())
    # The chain moves along the funnel's neck (v ~ N(0, 3^2)) instead of sticking.
    assert samples["v"].std() > 1.0
    # get_transform's log-determinant is the Jacobian's.
    z = torch.randn(3)
    transform = guide.get_transform()
    jac = torch.autograd.functional.jacobian(transform, z)
    assert torch.allclose(transform.log_abs_det_jacobian(z, transform(z)), torch.linalg.slogdet(jac)[1], atol=1e-4)


def constrained_model(data):
    """Positive, simplex and bounded sites, a latent inside a plate, and a data plate."""
    rate = pyro.sample("rate", dist.Gamma(2.0, 2.0))
    probs = pyro.sample("probs", dist.Dirichlet(torch.ones(3)))
    frac = pyro.sample("frac", dist.Beta(2.0, 2.0))
    with pyro.plate("groups", 2, dim=-1):
        offset = pyro.sample("offset", dist.Normal(0.0, rate))
    with pyro.plate("data", data.shape[0], dim=-1):
        pyro.sample("y", dist.Normal(offset.sum(-1, keepdim=True) + frac + probs[..., :1], 1.0), obs=data)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:FutureWarning")
@pytest.mark.parametrize("loss", [Trace_ELBO, TraceMeanField_ELBO, JitTrace_ELBO], ids=lambda c: c.__name__)
def test_elbos_constrained_sites_and_plates(loss):
    data = torch.tensor([0.3, 0.8, 1.1, 0.2])
    guide = AutoFlowGuide(constrained_model, "realnvp", **TINY["realnvp"])
    # JIT needs the default ELBO keyword arguments only; the others get vectorised particles too.
    if loss is JitTrace_ELBO:
        elbo = loss(num_particles=2, max_plate_nesting=1, ignore_jit_warnings=True)
    else:
        elbo = loss(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    svi = SVI(constrained_model, guide, Adam({"lr": 1e-2}), elbo)
    losses = [svi.step(data) for _ in range(4)]
    assert all(math.isfinite(v) for v in losses) and params_finite()
    assert guide.latent_dim == 1 + 2 + 1 + 2  # the simplex of 3 has 2 unconstrained coordinates
    draws = Predictive(constrained_model, guide=guide, num_samples=50, parallel=True)(data)
    assert (draws["rate"] > 0).all()
    assert torch.allclose(draws["probs"].sum(-1), torch.ones(()), atol=1e-5) and (draws["probs"] > 0).all()
    assert ((draws["frac"] > 0) & (draws["frac"] < 1)).all()
    assert draws["offset"].shape[-1] == 2 and draws["y"].shape[-1] == 4
    median, q = guide.median(data), guide.quantiles([0.1, 0.9], data)
    assert median["probs"].shape == (3,) and q["offset"].shape == (2, 2)
    assert (q["rate"][0] < median["rate"]).all() and (median["rate"] < q["rate"][1]).all()


def test_inverted_guides_sample_through_their_parallel_pass():
    """maf with ``invert=True`` is an IAF: its posterior samples and scores with one MADE pass per layer.
    By default only ar_flow (a root solve per entry to sample) is inverted."""
    guide = AutoFlowGuide(partial(funnel_model, 5), "maf", invert=True, **TINY["maf"])
    guide()
    assert guide.invert and AutoFlowGuide(partial(funnel_model, 5), "ar_flow").invert
    assert not any(AutoFlowGuide(partial(funnel_model, 5), n).invert for n in ("realnvp", "maf", "nsf_ar"))
    calls = []
    for made in (m for m in guide.flow.modules() if type(m).__name__ == "MADE"):
        made.register_forward_hook(lambda *a: calls.append(1))
    guide.get_posterior().rsample((7,))
    assert len(calls) == 2  # one pass per layer, not one per dimension
