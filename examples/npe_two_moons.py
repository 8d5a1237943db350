"""Neural posterior estimation on sbibm's two moons: one conditional flow, posteriors for a few observations.

Simulates (theta, x) pairs, fits ``q(theta | x)`` (a conditional ``nsf_ar`` with context standardization)
by maximum likelihood on the pairs, then draws its posterior for three observations next to the exact
posterior (the likelihood is closed-form; the posterior is normalised on a grid), and reports the
held-out NLL against the exact posterior's.

    python examples/npe_two_moons.py            # 10,000 simulations, about a minute on one core
    python examples/npe_two_moons.py --quick    # seconds
"""

from __future__ import annotations

import math

import _common
import torch

import pyro_flowzoo as fz


def simulate(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """theta ~ U(-1, 1)^2; x = (r cos a + 0.25, r sin a) + (-|t1 + t2| / sqrt 2, (t2 - t1) / sqrt 2)."""
    theta = 2 * torch.rand(n, 2, generator=generator) - 1
    a = (torch.rand(n, generator=generator) - 0.5) * math.pi
    r = 0.1 + 0.01 * torch.randn(n, generator=generator)
    return theta, torch.stack([r * torch.cos(a) + 0.25, r * torch.sin(a)], -1) + shift(theta)


def shift(theta: torch.Tensor) -> torch.Tensor:
    return torch.stack([-(theta[..., 0] + theta[..., 1]).abs(), theta[..., 1] - theta[..., 0]], -1) / math.sqrt(2)


def exact_log_posterior(x: torch.Tensor, theta: torch.Tensor, cell: float, grid: torch.Tensor) -> torch.Tensor:
    """log p(theta | x) for one observation x, normalised on ``grid`` (cells of area ``cell``)."""

    def log_lik(t: torch.Tensor) -> torch.Tensor:
        u = x - shift(t)
        dx, dy = u[..., 0] - 0.25, u[..., 1]
        r = torch.sqrt(dx * dx + dy * dy)
        log_r = -0.5 * ((r - 0.1) / 0.01) ** 2 - math.log(0.01 * math.sqrt(2 * math.pi))
        return torch.where(dx > 0, log_r - math.log(math.pi) - torch.log(r), -math.inf)

    return log_lik(theta) - (torch.logsumexp(log_lik(grid), 0) + math.log(cell))


def main() -> None:
    args = _common.parser("npe_two_moons", __doc__.splitlines()[0]).parse_args()
    out = _common.setup(args)
    import matplotlib.pyplot as plt

    n, epochs = (1000, 3) if args.quick else (10_000, 60)
    g = torch.Generator().manual_seed(args.seed)
    theta, x = simulate(n, g)
    flow = fz.build("nsf_ar", (2,), context_shape=(2,), standardize="context", num_layers=3, hidden_dims=(64, 64))
    fz.flows.fit_standardization(flow, context=x)
    fz.fit(flow, (theta, x), epochs=epochs, batch_size=256, lr=1e-3, progress=False)
    flow.eval()

    test_theta, test_x = simulate(200, g)
    steps = 400
    axis = -1 + (torch.arange(steps, dtype=torch.float64) + 0.5) * (2 / steps)
    grid = torch.cartesian_prod(axis, axis)
    cell = (2 / steps) ** 2
    with torch.no_grad():
        nll = -flow.log_prob(test_theta, test_x).mean().item()
        exact = (
            -torch.stack(
                [exact_log_posterior(xi.double(), ti.double(), cell, grid) for xi, ti in zip(test_x, test_theta)]
            )
            .mean()
            .item()
        )

    observations = torch.tensor([[0.0, 0.0], [0.2, -0.1], [-0.3, 0.3]])
    fig, axes = plt.subplots(2, len(observations), figsize=(3.2 * len(observations), 6.4))
    for j, obs in enumerate(observations):
        with torch.no_grad():
            samples = flow.sample((2000 if args.quick else 10_000,), context=obs)
            density = exact_log_posterior(obs.double(), grid, cell, grid).exp().reshape(steps, steps)
        axes[0, j].hist2d(samples[:, 0].numpy(), samples[:, 1].numpy(), bins=120, range=[[-1, 1], [-1, 1]])
        axes[0, j].set_title(f"flow q(theta | x = ({obs[0]:.1f}, {obs[1]:.1f}))", fontsize=8)
        axes[1, j].imshow(density.T.numpy(), origin="lower", extent=(-1, 1, -1, 1))
        axes[1, j].set_title("exact posterior", fontsize=8)
        for ax in axes[:, j]:
            ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(out / "posteriors.png", dpi=90)
    _common.write_metrics(
        out,
        [
            f"two moons NPE: {n} simulations, nsf_ar (3 layers, 64 x 64), {epochs} epochs",
            f"held-out NLL of theta given x: {nll / 2:.4f} nats/dim; exact posterior: {exact / 2:.4f} nats/dim; "
            f"gap {(nll - exact) / 2:+.4f} nats/dim (200 test pairs)",
        ],
    )


if __name__ == "__main__":
    main()
