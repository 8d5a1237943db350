"""Amortized guides (``FlowEncoder``): every conditional vector family as a VAE-style encoder."""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import ClippedAdam

from pyro_flowzoo.flows import builders
from pyro_flowzoo.infer.amortized import ENCODER_ALIASES, ENCODER_DEFAULTS, FlowEncoder, encoder_flows

FAMILIES = list(encoder_flows())
POSITIONS = ["latent", "data"]


def _perturbed(encoder: FlowEncoder, scale: float = 0.05) -> FlowEncoder:
    """Moves every parameter off its start (flows start at the identity, which would hide errors)."""
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(scale * torch.randn_like(p))
    return encoder


def test_every_conditional_vector_family_has_encoder_defaults():
    assert set(ENCODER_DEFAULTS) == set(builders("vector", conditional=True))
    assert set(encoder_flows()) == set(ENCODER_DEFAULTS) | set(ENCODER_ALIASES)


@pytest.mark.parametrize("flow", [*FAMILIES, None], ids=[*FAMILIES, "gaussian"])
def test_every_family_trains_as_an_amortized_guide(flow):
    """A few SVI steps (ClippedAdam as in examples/vi_vae.py, vectorised particles): finite, every parameter moves."""
    pyro.set_rng_seed(0)
    data = torch.rand(8, 6).round()
    decoder = torch.nn.Linear(3, 6)
    encoder = FlowEncoder(6, 3, hidden_dims=(16,), flow=flow, context_features=4)

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(3), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", encoder(x))

    start = {name: p.detach().clone() for name, p in encoder.named_parameters()}
    elbo = Trace_ELBO(num_particles=2, vectorize_particles=True)
    svi = SVI(model, guide, ClippedAdam({"lr": 1e-2, "clip_norm": 10.0}), elbo)
    losses = [svi.step(data) for _ in range(3)]
    assert all(math.isfinite(v) for v in losses)
    assert all(p.isfinite().all() for p in encoder.parameters())
    unmoved = [name for name, p in encoder.named_parameters() if torch.equal(p, start[name])]
    assert not unmoved, f"parameters that never moved: {unmoved}"
    store = set(pyro.get_param_store().keys())
    assert sum(n.startswith("encoder$$$") for n in store) == len(list(encoder.parameters()))


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("flow", FAMILIES)
def test_encoder_scores_its_own_samples(flow, position):
    """log_prob of a sample (through the inverses, the remembered pair bypassed) is the log-density drawn with it."""
    torch.manual_seed(1)
    encoder = FlowEncoder(5, 3, hidden_dims=(16,), flow=flow, context_features=4, affine_position=position)
    encoder = _perturbed(encoder.double())
    q = encoder(torch.randn(4, 5, dtype=torch.float64))
    z, log_q = q.rsample_and_log_prob((3,))
    assert z.shape == (3, 4, 3) and log_q.shape == (3, 4)
    assert torch.allclose(q.log_prob(z.clone()), log_q, atol=1e-6)
    assert q.log_prob(z) is log_q  # the ELBO's scoring of the guide's own sample reuses it


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("flow", FAMILIES)
def test_encoder_density_integrates_to_one(flow, position):
    """A 2-D posterior's density on a grid sums to 1 (the Gaussian and the flow's log-dets composed right)."""
    torch.manual_seed(2)
    encoder = FlowEncoder(3, 2, hidden_dims=(8,), flow=flow, context_features=2, affine_position=position)
    encoder = _perturbed(encoder.double(), 0.1)
    q = encoder(torch.randn(1, 3, dtype=torch.float64))
    z = q.sample((2000,)).reshape(-1, 2)
    lo, hi = z.min(0).values - 3 * z.std(0), z.max(0).values + 3 * z.std(0)
    axes = [torch.linspace(lo[i].item(), hi[i].item(), 301, dtype=torch.float64) for i in range(2)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 1, 2)
    cell = (axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0])
    with torch.no_grad():
        mass = q.log_prob(grid).exp().sum() * cell
    assert abs(mass.item() - 1) < 0.01


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("flow", FAMILIES)
def test_fresh_encoder_is_its_gaussian(flow, position):
    """The flow starts at the identity: a fresh encoder draws and scores as its diagonal Gaussian."""
    torch.manual_seed(3)
    encoder = FlowEncoder(5, 3, hidden_dims=(16,), flow=flow, context_features=4, affine_position=position)
    x = torch.randn(6, 5)
    loc, raw_scale, _ = encoder.net(x).split([3, 3, 4], -1)
    gaussian = dist.Normal(loc, torch.nn.functional.softplus(raw_scale) + 1e-5).to_event(1)
    torch.manual_seed(4)
    z, log_q = encoder(x).rsample_and_log_prob((2,))
    torch.manual_seed(4)
    z0 = gaussian.rsample((2,)) if position == "latent" else loc + gaussian.base_dist.scale * torch.randn(2, 6, 3)
    # mixture-CDF layers start within about 0.01 of the identity, the others exactly there
    atol = 0.1 if flow == "ar_flow" else 1e-5
    assert torch.allclose(z, z0, atol=atol)
    assert torch.allclose(log_q, gaussian.log_prob(z0), atol=atol)


def test_encoder_arguments_are_checked():
    with pytest.raises(ValueError, match="affine_position"):
        FlowEncoder(4, 2, flow="realnvp", affine_position="base")
    with pytest.raises(ValueError, match="unknown conditional flow"):
        FlowEncoder(4, 2, flow="glow")
    with pytest.raises(ValueError, match="no flow hyper-parameters"):
        FlowEncoder(4, 2, flow=None, flow_kwargs={"num_layers": 2})
