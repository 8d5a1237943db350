"""Focused tests for the image family: ActNorm init, batch norm modes, 1x1-conv caching, logit and
dequantization, multi-scale shapes, builders on real image shapes, conditional Glow, autocast."""

from __future__ import annotations

import math

import pytest
import torch

import pyro_flowzoo as fz
from pyro_flowzoo import Flow, StandardNormal
from pyro_flowzoo.transforms import (
    ActNorm,
    BatchNorm,
    Inverse,
    InvertibleConv1x1,
    Logit,
    Squeeze,
    uniform_dequantize,
)


# -- ActNorm --------------------------------------------------------------------------------------
def test_actnorm_data_dependent_init_standardises_each_channel():
    t = ActNorm(3)
    sd, mean = torch.tensor([0.5, 2.0, 7.0])[:, None, None], torch.tensor([1.0, -3.0, 10.0])[:, None, None]
    y = torch.randn(64, 3, 4, 4) * sd + mean
    z, log_det = t.inverse_and_log_det(y)
    assert bool(t.initialized)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    expected = 16 * torch.log(torch.tensor([0.5, 2.0, 7.0])).sum()
    assert abs(log_det[0].item() - expected.item()) < 0.1  # forward log-det = H W sum(log sd)


def test_actnorm_does_not_reinitialise_after_load_state_dict():
    trained = ActNorm(2)
    trained.inverse_and_log_det(5 + 3 * torch.randn(32, 2, 4, 4))
    with torch.no_grad():
        trained.loc.add_(1.0)  # as if training moved it away from the init statistics
    fresh = ActNorm(2)
    fresh.load_state_dict(trained.state_dict())
    fresh.train()
    fresh.inverse_and_log_det(torch.randn(32, 2, 4, 4))  # a first training call on other data
    assert torch.equal(fresh.loc, trained.loc) and torch.equal(fresh.log_scale, trained.log_scale)
    # A flow reloaded from a checkpoint scores exactly like the original.
    flow = fz.build("glow", (1, 4, 4), levels=1, steps=2, hidden_channels=8)
    x = torch.rand(16, 1, 4, 4)
    lp = flow.log_prob(x)
    again = fz.build("glow", (1, 4, 4), levels=1, steps=2, hidden_channels=8)
    again.load_state_dict(flow.state_dict())
    assert torch.allclose(again.log_prob(x), lp)


def test_actnorm_does_not_initialise_in_eval_mode():
    t = ActNorm(2).eval()
    t.inverse_and_log_det(5 + torch.randn(8, 2, 3, 3))
    assert not bool(t.initialized) and torch.equal(t.loc, torch.zeros(2, 1, 1))


# -- BatchNorm ------------------------------------------------------------------------------------
def test_batch_norm_training_uses_batch_statistics_and_tracks_running_ones():
    t = BatchNorm(2, momentum=0.5)
    y = torch.randn(50, 2, 3, 3) * 3 + 4
    z, log_det = t.inverse_and_log_det(y)
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(z.var(dim=(0, 2, 3), unbiased=False), torch.ones(2), atol=1e-3)
    var = y.var(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(log_det, (9 * 0.5 * torch.log(var + t.eps)).sum().expand(50), atol=1e-4)
    assert torch.allclose(t.running_mean.flatten(), 0.5 * y.mean(dim=(0, 2, 3)), atol=1e-5)
    t.eval()
    z_eval, _ = t.inverse_and_log_det(y)
    x_back, _ = t.forward_and_log_det(z_eval)
    assert torch.allclose(x_back, y, atol=1e-4)
    with pytest.raises(ValueError, match="more than one value"):
        BatchNorm(1).inverse_and_log_det(torch.randn(1, 1, 1))


def test_realnvp_with_batch_norm_trains_and_reconstructs_in_eval_mode():
    flow = fz.build("realnvp", (1, 4, 4), num_scales=2, num_blocks=1, hidden_channels=8, batch_norm=True)
    x = torch.rand(32, 1, 4, 4)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        (-flow.log_prob(x).mean()).backward()
        opt.step()
    flow.eval()
    z, _ = flow.to_latent(x)
    assert torch.allclose(flow.from_latent(z)[0], x, atol=1e-4)


# -- invertible 1x1 convolution ------------------------------------------------------------------
@pytest.mark.parametrize("lu", [True, False])
def test_invconv_log_det_is_hw_log_det_w(lu):
    t = InvertibleConv1x1(4, lu=lu).double()
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.1 * torch.randn_like(p))
    w = t._compute("w")
    x = torch.randn(2, 4, 3, 5, dtype=torch.float64)
    _, log_det = t.forward_and_log_det(x)
    expected = -15 * torch.linalg.slogdet(w).logabsdet  # forward (latent -> data) applies W^{-1}
    assert torch.allclose(log_det, expected.expand(2))
    assert torch.allclose(t._compute("w_inv") @ w, torch.eye(4, dtype=torch.float64), atol=1e-10)


def test_invconv_cache_is_used_without_grad_and_never_stale():
    t = InvertibleConv1x1(3)
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        y1 = t(x)
        w_inv = t._cache["w_inv"][1]
        assert t(x.clone()) is not y1 and t._cache["w_inv"][1] is w_inv  # reused
    opt = torch.optim.SGD(t.parameters(), lr=0.1)
    opt.zero_grad()
    z, ld = t.inverse_and_log_det(x)
    assert "w" not in t._cache  # with gradients on, nothing is cached
    ((z**2).sum() + ld.sum()).backward()
    opt.step()
    with torch.no_grad():
        y2 = t(x)
    fresh = t._compute("w_inv")
    assert torch.allclose(y2, torch.einsum("ij,bjhw->bihw", fresh, x), atol=1e-5)
    assert not torch.allclose(y1, y2)
    # load_state_dict and .double() invalidate it too
    other = InvertibleConv1x1(3)
    with torch.no_grad():
        t.load_state_dict(other.state_dict())
        assert torch.allclose(t(x), other(x), atol=1e-6)
        assert t.double()(x.double()).dtype == torch.float64


# -- logit, dequantization, bits/dim -------------------------------------------------------------
def test_logit_rejects_data_outside_its_domain_with_a_clear_error():
    flow = fz.build("glow", (1, 4, 4), levels=1, steps=1, hidden_channels=8)
    with pytest.raises(ValueError, match=r"expects data in \[0, 1\]"):
        flow.log_prob(torch.full((2, 1, 4, 4), 3.0))
    # alpha = 0: exactly 0 or 1 would give inf; an error instead.
    with pytest.raises(ValueError, match="expects data"):
        Logit(0.0).forward_and_log_det(torch.ones(1, 2, 2))


def test_logit_inverse_log_det_is_finite_when_saturated():
    x, log_det = Logit(0.05).inverse_and_log_det(torch.tensor([[[[-200.0, 200.0]]]]))
    assert torch.isfinite(log_det).all() and torch.isfinite(x).all()


def test_logit_flow_density_integrates_to_one_on_its_domain_and_less_on_the_unit_interval():
    flow = Flow(StandardNormal((1, 1, 1)), [Inverse(Logit(0.05))]).double()
    t = flow._transforms[0].transform
    grid = torch.linspace(t.lo, t.hi, 200_001, dtype=torch.float64)[1:-1]
    dens = flow.log_prob(grid.reshape(-1, 1, 1, 1)).exp()
    cell = (grid[1] - grid[0]).item()
    assert abs(dens.sum().item() * cell - 1) < 1e-3
    inside = (grid >= 0) & (grid <= 1)
    mass01 = dens[inside].sum().item() * cell
    assert 0.9 < mass01 < 0.999


def test_uniform_dequantize_range_and_errors():
    k = torch.randint(0, 17, (1000,))
    x = uniform_dequantize(k, 17)
    assert bool(((x >= k / 17) & (x < (k + 1) / 17)).all())
    with pytest.raises(ValueError, match="integers in"):
        uniform_dequantize(torch.tensor([17]), 17)
    with pytest.raises(ValueError, match="integers in"):
        uniform_dequantize(torch.tensor([0.5]), 17)


def test_bits_per_dim_of_uniform_density_on_the_cube_is_log2_bins():
    flow = fz.build("nice", (1, 2, 2), hidden_dim=4, num_hidden_layers=1)
    lp = torch.zeros(3)  # log-density of the uniform density on [0, 1]^4
    assert torch.allclose(fz.bits_per_dim(lp, flow.event_shape, 17), torch.full((3,), math.log2(17)))


# -- multi-scale structure ------------------------------------------------------------------------
def test_squeeze_layout_and_shapes():
    x = torch.arange(16.0).reshape(1, 4, 4)
    y = Squeeze()(x)
    assert y.shape == (4, 2, 2)
    assert y[:, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # one 2x2 block becomes 4 channels
    with pytest.raises(ValueError, match="divisible"):
        Squeeze()(torch.zeros(1, 3, 4))


@pytest.mark.parametrize(
    "name, shape",
    [
        ("realnvp", (1, 28, 28)),
        ("realnvp", (3, 32, 32)),
        ("realnvp", (1, 8, 8)),
        ("glow", (3, 32, 32)),
        ("glow", (1, 8, 8)),
        ("glow", (1, 28, 28)),
        ("cglow", (1, 8, 8)),
        ("nice", (1, 28, 28)),
        ("nice", (1, 8, 8)),
    ],
)
def test_builders_with_defaults_on_image_shapes(name, shape):
    try:
        flow = fz.build(name, shape)
    except ValueError as error:
        assert name.endswith("glow") and "divisible by 2^levels" in str(error)
        return
    assert flow.event_shape == shape
    ctx = torch.eye(10)[:1] if name == "cglow" else None
    with torch.no_grad():
        lp = flow.log_prob(torch.rand((1,) + shape), ctx)
    assert lp.shape == (1,) and torch.isfinite(lp).all()


def test_glow_paper_configuration_parameter_count():
    flow = fz.build("glow", (3, 32, 32), levels=3, steps=32, hidden_channels=512)
    assert 43e6 < flow.num_parameters < 45e6  # the paper's CIFAR-10 model: about 44M


# -- sampling, temperature, conditional Glow ----------------------------------------------------
def test_temperature_zero_point_and_reconstruction():
    flow = fz.build("glow", (1, 8, 8), levels=2, steps=2, hidden_channels=8).double()
    flow.log_prob(torch.rand(16, 1, 8, 8, dtype=torch.float64))
    x = flow.sample((5,), temperature=0.7)
    z, _ = flow.to_latent(x)
    assert torch.allclose(flow.from_latent(z)[0], x, atol=1e-8)
    cold = flow.sample((3,), temperature=1e-6)  # all samples collapse onto the latent mode's image
    assert torch.allclose(cold[0], cold[1], atol=1e-4) and torch.allclose(cold[1], cold[2], atol=1e-4)


def test_cglow_uses_its_context():
    flow = fz.build("cglow", (1, 4, 4), context_shape=(3,), levels=2, steps=1, hidden_channels=8)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.rand(4, 1, 4, 4)
    a = flow.log_prob(x, context=torch.eye(3)[[0, 0, 0, 0]])
    b = flow.log_prob(x, context=torch.eye(3)[[1, 1, 1, 1]])
    assert not torch.allclose(a, b)
    s = flow.sample((2,), context=torch.eye(3))
    assert s.shape == (2, 3, 1, 4, 4)
    with pytest.raises(ValueError, match="context"):
        flow.log_prob(x)


def test_bf16_autocast_leaves_the_1x1_convolution_in_float32_with_gradients_on():
    # With gradients on W = P L U is rebuilt on every call; multiplied out under autocast it would be
    # bf16-rounded and no longer have the determinant that log_s reports.
    t = InvertibleConv1x1(12)
    with torch.no_grad():
        t.upper.normal_(std=0.5)
        t.lower.normal_(std=0.5)
    x = torch.randn(4, 12, 4, 4)
    ref, ref_ld = t.inverse_and_log_det(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, ld = t.inverse_and_log_det(x)
        back, _ = t.forward_and_log_det(y)
        with torch.no_grad():  # fills the cache under autocast: it must hold the float32 weights
            t.inverse_and_log_det(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ld, ref_ld, rtol=0, atol=0)
    torch.testing.assert_close(back, x, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(t.inverse_and_log_det(x)[0], ref, rtol=1e-6, atol=1e-6)


def test_bf16_autocast_keeps_log_determinants_in_float32():
    torch.manual_seed(0)
    flow = fz.build("glow", (3, 8, 8), levels=2, steps=2, hidden_channels=16)
    x = torch.rand(8, 3, 8, 8)
    flow.log_prob(x)  # ActNorm init
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.02 * torch.randn_like(p))
        ref = flow.log_prob(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lp = flow.log_prob(x)
    assert lp.dtype == torch.float32
    # Only the coupling networks run in bf16; the bijections and their log-dets stay float32.
    assert (lp - ref).abs().max().item() < 0.02 * ref.abs().max().item() + 1.0


def test_invconv_cache_is_not_stale_after_a_fused_adam_step():
    # torch's fused Adam updates the parameters in place without bumping their version counters; the cache
    # compares values too, so evaluation after such a step scores with the new weights.
    t = InvertibleConv1x1(3)
    x = torch.randn(2, 3, 4, 4)
    opt = torch.optim.Adam(t.parameters(), lr=0.1, fused=True)
    with torch.no_grad():
        before = t.inverse_and_log_det(x)[0]
    versions = [p._version for p in t.parameters()]
    z, ld = t.inverse_and_log_det(x)
    ((z**2).sum() + ld.sum()).backward()
    opt.step()
    assert [p._version for p in t.parameters()] == versions  # the situation the value check exists for
    with torch.no_grad():
        after = t.inverse_and_log_det(x)[0]
        fresh = torch.einsum("ij,bjhw->bihw", t._compute("w"), x)
    torch.testing.assert_close(after, fresh)
    assert not torch.allclose(after, before)
