"""pyro_flowzoo.data.exact: samplers, exact densities (normalised, matching the samples), entropies."""

from __future__ import annotations

import math

import pytest
import torch

import pyro_flowzoo as fz
from pyro_flowzoo.data import EXACT_SETS, exact

NEW = ["sas6", "banana4", "banana16", "student_t4", "gamma_mix", "beta_mix"]


def _draw(name: str, n: int, seed: int = 0) -> torch.Tensor:
    return EXACT_SETS[name].sample(n, generator=torch.Generator().manual_seed(seed))[0]


@pytest.mark.parametrize("name", NEW)
def test_shapes_seeds_and_finite_log_prob(name):
    s = EXACT_SETS[name]
    x = _draw(name, 500)
    assert x.shape == (500, s.dim) and x.dtype == torch.float32
    assert torch.equal(x, _draw(name, 500)) and not torch.equal(x, _draw(name, 500, seed=1))
    lp = s.log_prob(x)
    assert lp.shape == (500,) and lp.dtype == torch.float32 and bool(torch.isfinite(lp).all())
    assert s.log_prob(x.double().reshape(5, 100, s.dim)).shape == (5, 100)


@pytest.mark.parametrize("name, bounds", [("gamma_mix", (0.0, 40.0)), ("beta_mix", (0.0, 1.0))])
def test_one_d_densities_integrate_to_one_and_vanish_off_support(name, bounds):
    s = EXACT_SETS[name]
    grid = torch.linspace(*bounds, 400_001, dtype=torch.float64)[1:-1, None]
    assert torch.trapezoid(s.log_prob(grid).exp(), grid[:, 0]).item() == pytest.approx(1.0, abs=1e-5)
    outside = torch.tensor([[-0.5], [bounds[0]]], dtype=torch.float64)
    assert bool(torch.isneginf(s.log_prob(outside)).all())
    x = _draw(name, 2000)
    assert bool((x > bounds[0]).all()) and (s.support == "positive" or bool((x < bounds[1]).all()))


@pytest.mark.parametrize(
    "log_prob",
    [exact.sas_log_prob, exact.banana_log_prob, exact.student_t_log_prob],
    ids=["sas", "banana", "student_t"],
)
def test_two_d_versions_integrate_to_one(log_prob):
    g = torch.linspace(-60, 60, 2401, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1)
    p = log_prob(grid, dim=2).exp()
    # student_t (df 5) keeps ~1e-6 of its mass beyond 60
    assert torch.trapezoid(torch.trapezoid(p, g), g).item() == pytest.approx(1.0, abs=2e-5)


def test_density_matches_the_sampler_by_histogram():
    """The 1-D marginal of the samples agrees with the density's marginal (sas, first coordinate)."""
    x = _draw("sas6", 200_000)[:, :2].double()
    # marginal of coordinate 0 by integrating the 2-D density over coordinate 1 on a grid
    g0 = torch.linspace(-3, 6, 10, dtype=torch.float64)
    g1 = torch.linspace(-60, 60, 6001, dtype=torch.float64)
    pts = torch.stack(torch.broadcast_tensors(g0[:, None], g1[None, :]), -1)
    marginal = torch.trapezoid(exact.sas_log_prob(pts, dim=2).exp(), g1)
    # histogram density over bins of width 0.2 centred on the grid
    counts = ((x[:, None, 0] - g0).abs() < 0.1).double().mean(0) / 0.2
    torch.testing.assert_close(counts, marginal, rtol=0.05, atol=2e-3)


@pytest.mark.parametrize("name", ["banana4", "student_t4"])
def test_closed_form_entropy_matches_monte_carlo(name):
    s = EXACT_SETS[name]
    x = _draw(name, 100_000, seed=3).double()
    nlp = -s.log_prob(x)
    h, se = exact.entropy(name)
    assert se == 0.0
    assert h == pytest.approx(nlp.mean().item(), abs=4 * nlp.std().item() / math.sqrt(len(x)))


def test_monte_carlo_entropy_has_a_standard_error():
    h, se = exact.entropy("sas6", n=20_000)
    assert 0 < se < 0.05 and math.isfinite(h)


def test_exports_and_bad_dims():
    assert fz.data.EXACT_SETS is EXACT_SETS and {"8gaussians", "rings"} <= set(EXACT_SETS)
    assert EXACT_SETS["8gaussians"].log_prob is fz.data.toy.eight_gaussians_log_prob  # reused, not copied
    with pytest.raises(ValueError, match="dim"):
        exact.sample_banana(3, dim=1)
    with pytest.raises(ValueError, match="df"):
        exact.sample_student_t(3, df=2.5)


# -- the builders' data side: standardization from the first batch, 1-D builders, support= -----------------
@pytest.mark.parametrize("name", ["realnvp", "maf", "nsf_ar", "nsf_coupling", "ar_flow", "nice"])
def test_builders_standardize_from_the_first_batch(name):
    torch.manual_seed(0)
    flow = fz.build(name, (3,), **({"num_layers": 2} if name != "ar_flow" else {}))
    x = torch.tensor([100.0, -5.0, 0.01]) + torch.tensor([30.0, 2.0, 1e-3]) * torch.randn(256, 3)
    flow.log_prob(x)  # the first batch scored in training mode sets the data-side shift and scale
    norm = flow.transforms[-1]
    torch.testing.assert_close(norm.loc.detach(), x.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(norm.log_scale.detach().exp(), x.std(0, unbiased=False), rtol=1e-3, atol=1e-6)
    before = norm.loc.detach().clone()
    flow.log_prob(x + 50.0)  # later batches do not re-initialise
    assert torch.equal(norm.loc.detach(), before)


@pytest.mark.parametrize(
    "name, support, inside",
    [
        ("nsf_ar", "positive", lambda s: s > 0),
        ("nsf_coupling", (2.0, 3.0), lambda s: (s > 2) & (s < 3)),
        ("ar_flow", (0.0, 1.0), lambda s: (s > 0) & (s < 1)),
        ("maf", "positive", lambda s: s > 0),
    ],
)
def test_support_keeps_samples_inside_and_scores_outside_as_zero(name, support, inside):
    torch.manual_seed(0)
    dim = 2 if name == "maf" else 1
    flow = fz.build(name, (dim,), support=support, **({"num_layers": 2} if name == "maf" else {}))
    low = 0.0 if support == "positive" else support[0]
    data = low + 0.2 + 0.5 * torch.rand(128, dim)
    flow.log_prob(data)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.5 * torch.randn_like(p))  # far from the identity: wide samples
        samples = flow.sample((4000,))
        assert bool(inside(samples).all())
        if dim == 1:
            off = torch.tensor([[low - 1.0]])
            assert flow.log_prob(off).item() == -math.inf
    assert bool(torch.isfinite(flow.log_prob(data)).all())


def test_one_d_builders_are_elementwise_and_affine_ones_refuse():
    assert type(fz.build("nsf_ar", (1,)).transforms[0]).__name__ == "ElementwiseSpline"
    assert type(fz.build("ar_flow", (1,)).transforms[0]).__name__ == "MixtureCDF"
    with pytest.raises(ValueError, match="D >= 2"):
        fz.build("maf", (1,))
    with pytest.raises(ValueError, match="support"):
        fz.build("nsf_ar", (1,), support="negative")


def test_one_d_flow_fits_a_bounded_set_under_a_plain_loop():
    """A few hundred Adam steps on beta_mix with support=(0, 1) beat the uniform density (0 nats) clearly."""
    torch.manual_seed(0)
    x = _draw("beta_mix", 1000)
    flow = fz.build("nsf_ar", (1,), support=(0.0, 1.0))
    opt = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for _ in range(150):
        loss = -flow.log_prob(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    test = _draw("beta_mix", 5000, seed=1)
    with torch.no_grad():
        nll = -flow.log_prob(test).mean().item()
    truth = -EXACT_SETS["beta_mix"].log_prob(test).mean().item()
    assert math.isfinite(nll) and nll < -0.05 and nll - truth < 0.05


# -- bounded conditioner inputs (maf, realnvp): the affine parameters level off beyond the data -------------
@pytest.mark.parametrize("kind", ["maf", "coupling"])
@pytest.mark.parametrize("bound", [1.0, None])
def test_input_bound_makes_far_shifts_and_scales_constant(kind, bound):
    from pyro_flowzoo.nn import MLP
    from pyro_flowzoo.transforms import AffineCoupling, MaskedAffineAutoregressive, half_mask

    torch.manual_seed(0)
    if kind == "maf":  # entry 0 conditions entries 1.. (natural order)
        t, changed = MaskedAffineAutoregressive(4, hidden_dims=(16,), input_bound=bound), slice(1, None)
    else:  # entries 0, 1 condition entries 2, 3
        t, changed = (
            AffineCoupling(half_mask(4), MLP(2, 4, (16,)), split_channels=True, input_bound=bound),
            slice(2, None),
        )
    t = t.double()
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.5 * torch.randn_like(p))
    # two points that differ only in entry 0, a conditioning entry, both far out (tanh(20) is 1 in float64)
    x = torch.tensor([[20.0, 0.3, -0.2, 0.1], [200.0, 0.3, -0.2, 0.1]], dtype=torch.float64)
    z, log_det = t.inverse_and_log_det(x)
    if bound is None:  # ReLU nets grow linearly: the shifts move with the far entry
        assert not torch.allclose(z[0, changed], z[1, changed])
    else:  # c tanh(x / c) is c at both points: the same shifts and log-scales
        torch.testing.assert_close(z[0, changed], z[1, changed], rtol=0, atol=0)
        torch.testing.assert_close(log_det[0], log_det[1], rtol=0, atol=0)
    z, _ = t.inverse_and_log_det(torch.tensor([[1e4, -1e4, 3.0, 2.0]], dtype=torch.float64))
    assert bool(torch.isfinite(z).all())


def test_builders_bound_the_conditioner_inputs_of_unconditional_affine_flows():
    for name in ("maf", "realnvp"):
        layers = [t for t in fz.build(name, (3,)).transforms if hasattr(t, "input_bound")]
        assert layers and all(t.input_bound == 2.0 for t in layers)
        assert all(getattr(t, "input_bound", None) is None for t in fz.build(name, (3,), input_bound=None).transforms)
    with pytest.raises(ValueError, match="input_bound"):
        fz.build("maf", (3,), input_bound=0.0)
