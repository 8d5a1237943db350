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


@pytest.mark.parametrize("log_prob", [exact.sas_log_prob, exact.banana_log_prob, exact.student_t_log_prob],
                         ids=["sas", "banana", "student_t"])
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
