"""Focused tests of the autoregressive family: solver accuracy, identity tails, exact inverses, constraints."""

from __future__ import annotations

import pytest
import torch

import pyro_flowzoo as fz
from pyro_flowzoo.transforms import (
    MaskedAffineAutoregressive,
    MixtureCDF,
    MixtureCDFAutoregressive,
    NeuralSplineAutoregressive,
    NeuralSplineCoupling,
    PixelCNNMixtureCDF,
    Planar,
    Radial,
    half_mask,
    mixture_log_cdfs,
    mixture_quantile,
    monotone_solve,
    rational_quadratic_spline,
)


def _random_mixture(shape, k, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    log_w = torch.randn(shape + (k,), generator=g, dtype=dtype).mul(2).log_softmax(-1)
    loc = 3 * torch.randn(shape + (k,), generator=g, dtype=dtype)
    log_scale = torch.randn(shape + (k,), generator=g, dtype=dtype) * 0.7 - 0.5
    return log_w, loc, log_scale


def _reference_quantile(target, log_w, loc, log_scale, family):
    """Plain bisection on the log-space logit CDF, 200 halvings (no Newton): an independent reference."""
    lo = torch.full_like(target, -1e4)
    hi = torch.full_like(target, 1e4)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        log_cdf, log_sf, _ = mixture_log_cdfs(mid, log_w, loc, log_scale, family)
        above = log_cdf - log_sf > target
        hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("family", ["gaussian", "logistic"])
def test_quantile_solver_accurate_in_far_tails_float64(family):
    # Targets on the logit scale from 1e-260 to 1 - 1e-260 in probability: far in both tails.
    targets = torch.linspace(-600, 600, 241, dtype=torch.float64)
    log_w, loc, log_scale = _random_mixture((241,), 5)
    x = mixture_quantile(targets, log_w, loc, log_scale, family)
    ref = _reference_quantile(targets, log_w, loc, log_scale, family)
    assert torch.isfinite(x).all()
    err = (x - ref).abs().max().item()
    assert err < 1e-6, f"quantile error {err:.3g} (float64)"


def test_quantile_solver_float32():
    targets = torch.linspace(-60, 60, 121)
    log_w, loc, log_scale = _random_mixture((121,), 4, dtype=torch.float32)
    x = mixture_quantile(targets, log_w, loc, log_scale)
    ref = _reference_quantile(targets.double(), log_w.double(), loc.double(), log_scale.double(), "gaussian")
    assert (x.double() - ref).abs().max().item() < 1e-4


def test_mixture_cdf_uniform_latent_round_trip_in_tails():
    t = MixtureCDF(2, num_components=3).double()
    # Lower tail down to 1e-300, and the upper tail as far as float64 resolves u.
    u = torch.tensor([1e-300, 1e-100, 1e-12, 0.3, 0.5, 1 - 1e-9], dtype=torch.float64)[:, None].expand(6, 2)
    x = t(u)
    assert torch.isfinite(x).all()
    assert (t.inv(x) - u).abs().max().item() < 1e-15
    assert ((t.inv(x) / u) - 1).abs()[:3].max().item() < 1e-9  # relative accuracy where u is tiny
    # Data far out in the lower tail (u down to ~1e-268) comes back to itself.
    x_far = torch.tensor([[-35.0, -30.0], [-20.0, 0.0]], dtype=torch.float64)
    assert (t(t.inv(x_far)) - x_far).abs().max().item() < 1e-6


def test_mixture_cdf_logit_latent_round_trip_both_tails():
    t = MixtureCDF(2, num_components=3, to_real=True).double()
    x = torch.linspace(-35, 35, 71, dtype=torch.float64)[:, None].expand(71, 2)
    z = t.inv(x)
    assert z.abs().max() > 200  # truly far tails
    assert (t(z) - x).abs().max().item() < 1e-6


def test_monotone_solve_respects_iteration_cap():
    calls = []

    def func(x, index):
        calls.append(1)
        return x.pow(3), 3 * x.pow(2)  # flat derivative at 0: Newton is slow there

    target = torch.tensor([1e-30, 8.0], dtype=torch.float64)
    monotone_solve(func, target, target.new_full((2,), -5.0), target.new_full((2,), 5.0), max_iter=7)
    assert len(calls) == 7


def test_mixture_cdf_rejects_bad_family():
    with pytest.raises(ValueError, match="family"):
        MixtureCDF(2, family="cauchy")
    with pytest.raises(ValueError, match="num_components"):
        MixtureCDFAutoregressive(2, num_components=0)


def test_ar_flow_default_is_one_uniform_layer_with_dimension_one_on_its_own():
    flow = fz.build("ar_flow", (2,), hidden_dims=(16,), num_components=3).double()
    assert isinstance(flow.base, fz.StandardUniform)
    # one mixture-CDF layer, then the data-side standardization every density builder ends with
    assert len(flow._transforms) == 2 and type(flow._transforms[1]).__name__ == "FirstBatchNorm"
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    t = flow._transforms[0]
    x = torch.randn(2, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: t.inverse_and_log_det(v)[0], x)
    assert jac[0, 1] == 0 and jac[1, 0] != 0  # u1 ignores x2; u2 depends on x1


def test_ar_flow_sampling_round_trip_float64():
    flow = fz.build("ar_flow", (2,), hidden_dims=(16,)).double().eval()  # eval: no first-batch init in between
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
        z = flow.base.sample((500,))
        x, _ = flow.from_latent(z)
        z_back, _ = flow.to_latent(x)
    assert (z_back - z).abs().max().item() < 1e-10


@pytest.mark.parametrize("family", ["gaussian", "logistic"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_quantile_solver_exact_beyond_sigmoid_underflow(family, dtype):
    # Logit targets past where sigmoid underflows (|t| > 80 in float32, > 700 in float64) used to be
    # clamped to +-80 / +-700: the solver returned the quantile of the clamped value.
    targets = torch.cat([torch.linspace(-1500, -70, 40), torch.linspace(70, 1500, 40)]).to(dtype)
    log_w, loc, log_scale = _random_mixture((80,), 4, dtype=dtype, seed=3)
    x = mixture_quantile(targets, log_w, loc, log_scale, family)
    ref = _reference_quantile(targets.double(), log_w.double(), loc.double(), log_scale.double(), family)
    assert torch.isfinite(x).all()
    tol = 1e-6 if dtype == torch.float64 else 1e-4
    err = ((x.double() - ref).abs() / (1 + ref.abs())).max().item()
    assert err < tol, f"quantile error {err:.3g} beyond the old clamp ({dtype})"


def test_ar_flow_stacked_round_trip_when_a_layer_outputs_large_logits():
    # Trained by SVI (banana), the first of two to_real layers learnt to emit data values > 80, which are
    # logit latents of the next layer: sampling clamped them to 80, so z -> x -> z was off by up to 5.9
    # and the sampling log-det disagreed with the density's (ELBO above log Z).
    torch.manual_seed(0)
    flow = fz.build("ar_flow", (2,), num_layers=2, to_real=True, hidden_dims=(8, 8), num_components=3).eval()
    layers = [t for t in flow._transforms if isinstance(t, MixtureCDFAutoregressive)]
    with torch.no_grad():
        layers[0].made.output_bias[:, 6:] = 40.0  # component scales ~40: this layer's outputs reach far beyond +-80
    z = torch.tensor([[6.0, -7.0], [-8.0, 5.0], [9.0, 9.0], [0.3, -0.2]])
    with torch.no_grad():
        x, ld_sample = flow.from_latent(z)
        z_back, ld_density = flow.to_latent(x)
        assert layers[0].forward_and_log_det(z)[0].abs().max() > 100
    assert torch.isfinite(x).all()
    assert (z_back - z).abs().max().item() < 1e-3
    assert (ld_sample - ld_density).abs().max().item() < 1e-3
    # The elementwise layer shares the solver; infinite latents give finite (clamped) data, not NaN.
    t = MixtureCDF(2, num_components=3, to_real=True)
    z = torch.tensor([[150.0, -300.0], [-85.0, 1e4]])
    x, ld = t.forward_and_log_det(z)
    assert ((t.inv(x) - z).abs() / z.abs()).max().item() < 1e-5
    x_inf, ld_inf = t.forward_and_log_det(torch.tensor([[float("inf"), -float("inf")]]))
    assert torch.isfinite(x_inf).all() and torch.isfinite(ld_inf).all()
    u = torch.tensor([[0.0, 1.0], [1e-40, 0.5]])
    x_u, ld_u = MixtureCDF(2, num_components=3).forward_and_log_det(u)
    assert torch.isfinite(x_u).all() and torch.isfinite(ld_u).all()


@pytest.mark.parametrize(
    "make",
    [
        lambda: NeuralSplineAutoregressive(2, num_bins=5, hidden_dims=(8,), bound=3.0),
        lambda: NeuralSplineCoupling(half_mask(2), num_bins=5, hidden_dims=(8,), bound=3.0),
    ],
    ids=["ar", "coupling"],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_spline_identity_tails_without_nan(make, dtype):
    t = make().to(dtype)
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.5 * torch.randn_like(p))
    x = torch.tensor([[-1e3, 1e3], [-3.0, 3.0], [3.0 + 1e-6, -50.0], [0.1, -0.2]], dtype=dtype, requires_grad=True)
    z, log_det = t.inverse_and_log_det(x)
    x_back, log_det_fwd = t.forward_and_log_det(z)
    assert torch.isfinite(z).all() and torch.isfinite(log_det).all()
    outside = x.detach().abs() > 3.0
    assert torch.equal(z.detach()[outside], x.detach()[outside])
    assert log_det[outside.all(-1)].abs().max() == 0  # rows entirely outside: log-det exactly 0
    (z.sum() + log_det.sum() + x_back.sum() + log_det_fwd.sum()).backward()
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in t.parameters())
    assert (x_back - x).abs().max().item() < (1e-10 if dtype == torch.float64 else 1e-4)


def test_rational_quadratic_spline_matches_pyro_in_inner_bins_and_is_c1_at_the_bounds():
    from pyro.distributions.transforms.spline import _monotonic_rational_spline

    g = torch.Generator().manual_seed(0)
    w, h, d = (torch.randn(1, k, generator=g, dtype=torch.float64) for k in (6, 6, 5))
    x = torch.linspace(-2.999, 2.999, 301, dtype=torch.float64)[:, None]
    ours, ld = rational_quadratic_spline(x, w, h, d, bound=3.0)
    deriv = torch.nn.functional.softplus(d + torch.log(torch.expm1(torch.tensor(0.999, dtype=torch.float64))))
    theirs, ld_pyro = _monotonic_rational_spline(x, torch.softmax(w, -1), torch.softmax(h, -1), deriv, bound=3.0)
    # Same spline in the inner bins; Pyro pins the boundary slopes at 0.999 instead of 1, which only
    # changes the first and last bins.
    knots = -3 + 6 * torch.cumsum(1e-3 + (1 - 6e-3) * torch.softmax(w, -1), -1)
    inner = ((x > knots[0, 0]) & (x < knots[0, -2])).squeeze(-1)
    assert inner.sum() > 100
    assert torch.allclose(ours[inner], theirs[inner]) and torch.allclose(ld[inner], ld_pyro[inner])
    # Ours is C^1: slope 1 at both bounds, matching the identity tails.
    edge, ld_edge = rational_quadratic_spline(torch.tensor([[-3.0], [3.0]], dtype=torch.float64), w, h, d, bound=3.0)
    assert ld_edge.abs().max() < 1e-12


def test_planar_radial_inverse_without_cache():
    for t in (Planar(3).double(), Radial(3).double()):
        with torch.no_grad():
            for p in t.parameters():
                p.add_(torch.randn_like(p))
        y = 3 * torch.randn(50, 3, dtype=torch.float64)
        x = t.inv(y.clone())  # never produced by t: Pyro's Planar/Radial raise KeyError here
        assert (t(x.clone()) - y).abs().max().item() < 1e-9


def test_planar_constraint_w_dot_u_hat_above_minus_one():
    t = Planar(2).double()
    with torch.no_grad():
        t.w.copy_(torch.tensor([1.0, 0.0]))
        t.u.copy_(torch.tensor([-5.0, 0.0]))  # raw w.u = -5 would not be invertible
    _, wu_hat = t._u_hat()
    assert wu_hat.item() > -1
    x = torch.linspace(-3, 3, 101, dtype=torch.float64)[:, None] * torch.tensor([1.0, 0.0], dtype=torch.float64)
    y, log_det = t.forward_and_log_det(x)
    assert torch.isfinite(log_det).all()
    assert (y[1:, 0] - y[:-1, 0] > 0).all()  # monotone along w


def test_radial_constraint_beta_above_minus_alpha():
    t = Radial(2).double()
    with torch.no_grad():
        t.raw_beta.fill_(-30.0)
        t.raw_alpha.fill_(2.0)
    alpha, beta = t._alpha_beta()
    assert (beta > -alpha).item()
    y = torch.randn(20, 2, dtype=torch.float64)
    x, log_det = t.inverse_and_log_det(y)
    assert torch.isfinite(log_det).all()
    assert (t(x) - y).abs().max().item() < 1e-9


def test_maf_sequential_direction_in_float64():
    # Pyro's AffineAutoregressive inverse builds an undtyped torch.zeros and fails in float64; ours does not.
    t = MaskedAffineAutoregressive(3, hidden_dims=(8,)).double()
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.3 * torch.randn_like(p))
    z = torch.randn(10, 3, dtype=torch.float64)
    x, log_det = t.forward_and_log_det(z)  # the sequential (sampling) direction
    assert x.dtype == log_det.dtype == torch.float64
    z_back, log_det_back = t.inverse_and_log_det(x)
    assert (z_back - z).abs().max().item() < 1e-12
    assert (log_det_back - log_det).abs().max().item() < 1e-12


def test_pixelcnn_jacobian_triangular_in_pixel_then_channel_order():
    t = PixelCNNMixtureCDF((2, 3, 3), num_components=2, hidden_channels=4, num_blocks=1, to_real=True).double()
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 3, 3, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: t.inverse_and_log_det(v)[0], x).reshape(18, 18)
    # Reorder (C, H, W) -> (H, W, C): raster over pixels, channels within a pixel.
    order = torch.arange(18).reshape(2, 3, 3).permute(1, 2, 0).reshape(-1)
    jac = jac[order][:, order]
    assert torch.triu(jac, diagonal=1).abs().max() == 0
    assert jac.diagonal().abs().min() > 0


def test_pixelcnn_cropped_sampling_matches_the_parallel_pass():
    # Receptive reach 2 on an 7x6 image: sampling runs the network on crops, log_prob on the whole image.
    t = PixelCNNMixtureCDF((2, 7, 6), num_components=2, hidden_channels=4, num_blocks=1, first_kernel=3).double()
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.3 * torch.randn_like(p))
    assert t.net.reach == 2
    u = torch.rand(3, 2, 7, 6, dtype=torch.float64)
    x, log_det = t.forward_and_log_det(u)
    u_back, log_det_back = t.inverse_and_log_det(x)
    assert (u_back - u).abs().max().item() < 1e-10
    assert (log_det_back - log_det).abs().max().item() < 1e-8


@pytest.mark.parametrize(
    "name, shape",
    [
        ("maf", (2, 2, 2)),
        ("nsf_ar", (2, 2)),
        ("nsf_coupling", (3, 4)),
        ("ar_flow", (2, 3)),
        ("planar", (2, 3)),
        ("pixelcnn_flow", (4,)),
        ("maf", (1,)),
    ],
)
def test_builders_reject_unsupported_shapes(name, shape):
    with pytest.raises(ValueError, match="supports"):
        fz.build(name, shape)


@pytest.mark.parametrize("name", ["maf", "nsf_ar", "ar_flow"])
@pytest.mark.parametrize("num_layers", [1, 2, 3, 4])
def test_autoregressive_builders_alternate_orders_from_the_data_side(name, num_layers):
    # The data-side (last) layer keeps the natural order and the orders alternate towards the latent:
    # the family of natural-order layers with a Reverse between them (RESULTS.md: the other way round
    # a 24-layer maf put one moons test point at 79,420 nats/dim).
    # nsf_ar's affine layer in front of the splines (D >= 3) is not one of the num_layers: it reads the data
    # in the natural order too, after the standardization.
    kw = {"to_real": True} if name == "ar_flow" else {}
    flow = fz.build(name, (3,), num_layers=num_layers, hidden_dims=(8,), **kw)
    layers = [t for t in flow.transforms if hasattr(t, "reverse")]  # not the data-side FirstBatchNorm
    if name == "nsf_ar":
        *layers, affine = layers
        assert type(affine).__name__ == "MaskedAffineAutoregressive" and affine.reverse is False
        assert flow.transforms[-2] is affine  # the data side: only the standardization after it
    orders = [t.reverse for t in layers]
    assert len(orders) == num_layers
    assert orders[-1] is False
    assert all(a != b for a, b in zip(orders, orders[1:]))
