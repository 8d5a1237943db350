"""Pyro models whose posteriors are known, to test and benchmark variational guides."""

from __future__ import annotations

import math
from typing import Optional

import pyro
import pyro.distributions as dist
import torch
from torch import Tensor

__all__ = ["BananaPosterior", "GaussianLinearPosterior", "funnel_model", "logistic_regression_model"]


class BananaPosterior:
    r"""A model whose posterior is a banana, with its evidence ``log Z`` in closed form.

    .. math::
        x_1 \sim N(0, 1), \quad x_2 \sim N(b x_1^2, 1), \quad
        y_1 \sim N(x_1, s_1^2), \quad y_2 \sim N(x_2 - b x_1^2, s_2^2)

    With ``u = x_2 - b x_1^2`` the model factorises into two conjugate Gaussian pairs, so

    .. math::
        x_1 \mid y \sim N\!\left(\tfrac{y_1}{1 + s_1^2}, \tfrac{s_1^2}{1 + s_1^2}\right), \quad
        x_2 \mid x_1, y \sim N\!\left(b x_1^2 + \tfrac{y_2}{1 + s_2^2}, \tfrac{s_2^2}{1 + s_2^2}\right),
        \quad \log Z = \log N(y_1; 0, 1 + s_1^2) + \log N(y_2; 0, 1 + s_2^2).

    The latents are two scalar sites ``"x1"``, ``"x2"`` (a vector ``(x_1, x_2)`` in ``sample``/``log_prob``).

    Args:
        curvature: ``b``.
        noise: ``(s_1, s_2)``.
        obs: ``(y_1, y_2)``.

    References:
        Haario, Saksman, Tamminen, "Adaptive proposal distribution for random walk Metropolis
        algorithm", Computational Statistics 14 (1999) (the twisted Gaussian); Rezende, Mohamed,
        arXiv:1505.05770.

    Example:
        >>> banana = BananaPosterior()
        >>> x = banana.sample(5)
        >>> banana.log_prob(x).shape
        torch.Size([5])
        >>> round(banana.log_z, 4)
        -2.9542
    """

    def __init__(
        self, curvature: float = 1.0, noise: tuple[float, float] = (2.0, 0.5), obs: tuple[float, float] = (1.0, 0.5)
    ) -> None:
        if min(noise) <= 0:
            raise ValueError(f"expected positive noise scales, got {noise}")
        self.curvature = float(curvature)
        self.noise = tuple(float(s) for s in noise)
        self.obs = tuple(float(y) for y in obs)
        (s1, s2), (y1, y2) = self.noise, self.obs
        self.loc1, self.sd1 = y1 / (1 + s1**2), s1 / math.sqrt(1 + s1**2)
        self.shift2, self.sd2 = y2 / (1 + s2**2), s2 / math.sqrt(1 + s2**2)
        self.log_z = sum(
            -0.5 * y**2 / (1 + s**2) - 0.5 * math.log(2 * math.pi * (1 + s**2)) for y, s in zip(self.obs, self.noise)
        )

    def model(self) -> None:
        """The Pyro model: latent sites ``"x1"`` and ``"x2"`` (scalars), observed ``"y1"``, ``"y2"``."""
        b = self.curvature
        (s1, s2), (y1, y2) = self.noise, self.obs
        x1 = pyro.sample("x1", dist.Normal(0.0, 1.0))
        x2 = pyro.sample("x2", dist.Normal(b * x1**2, 1.0))
        pyro.sample("y1", dist.Normal(x1, s1), obs=torch.tensor(y1))
        pyro.sample("y2", dist.Normal(x2 - b * x1**2, s2), obs=torch.tensor(y2))

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """``n`` exact posterior draws, shape ``(n, 2)`` (float64)."""
        e = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        x1 = self.loc1 + self.sd1 * e[:, 0]
        x2 = self.curvature * x1**2 + self.shift2 + self.sd2 * e[:, 1]
        return torch.stack([x1, x2], -1)

    def log_prob(self, x: Tensor) -> Tensor:
        """The exact log posterior density of ``x`` (shape ``(..., 2)``)."""
        x1, x2 = x[..., 0], x[..., 1]
        return dist.Normal(self.loc1, self.sd1).log_prob(x1) + dist.Normal(
            self.curvature * x1**2 + self.shift2, self.sd2
        ).log_prob(x2)


class GaussianLinearPosterior:
    r"""Bayesian linear regression with a correlated Gaussian posterior in closed form.

    .. math::
        \theta = (a, b) \sim N(0, I_D), \quad y \sim N(X\theta, \sigma^2 I), \qquad
        \theta \mid y \sim N(\mu, \Sigma), \quad
        \Sigma = (I + X^\top X / \sigma^2)^{-1}, \quad \mu = \Sigma X^\top y / \sigma^2

    The latents are two sites, ``"a"`` (a vector of ``dim - 1``) and ``"b"`` (a scalar), so a guide
    must pack several sites. ``X`` has correlated columns and ``y`` is drawn from ``theta_true``, so the
    posterior is correlated and centred away from the origin.

    Args:
        dim: ``D >= 2``.
        num_obs: number of observations.
        noise: ``sigma``.
        seed: seed of the fixed design and data.

    References:
        Bishop, "Pattern Recognition and Machine Learning" (2006), section 3.3.

    Example:
        >>> problem = GaussianLinearPosterior(3)
        >>> problem.mean.shape, problem.cov.shape
        (torch.Size([3]), torch.Size([3, 3]))
    """

    def __init__(self, dim: int = 3, num_obs: int = 4, noise: float = 0.5, seed: int = 0) -> None:
        if dim < 2:
            raise ValueError(f"expected dim >= 2, got {dim}")
        g = torch.Generator().manual_seed(seed)
        mix = torch.eye(dim) + 0.8 * torch.ones(dim, dim) / dim
        self.design = (torch.randn(num_obs, dim, generator=g) @ mix).float()
        self.theta_true = torch.linspace(2.0, -1.0, dim)
        self.noise = float(noise)
        self.obs = self.design @ self.theta_true + self.noise * torch.randn(num_obs, generator=g)
        x, y = self.design.double(), self.obs.double()
        precision = torch.eye(dim, dtype=torch.float64) + x.T @ x / self.noise**2
        self.cov = torch.linalg.inv(precision)
        self.mean = self.cov @ x.T @ y / self.noise**2
        self.dim = dim

    def model(self) -> None:
        """The Pyro model: latent sites ``"a"`` (``dim - 1``) and ``"b"``; observed ``"y"``."""
        a = pyro.sample("a", dist.Normal(torch.zeros(self.dim - 1), 1.0).to_event(1))
        b = pyro.sample("b", dist.Normal(0.0, 1.0))
        theta = torch.cat([a, b.unsqueeze(-1)], -1)
        pyro.sample("y", dist.Normal(theta @ self.design.T, self.noise).to_event(1), obs=self.obs)

    @staticmethod
    def pack(samples: dict[str, Tensor]) -> Tensor:
        """Joins samples of ``"a"`` and ``"b"`` into ``theta`` (shape ``(..., D)``)."""
        return torch.cat([samples["a"], samples["b"].unsqueeze(-1)], -1)


def funnel_model(dim: int = 10, scale: float = 3.0) -> None:
    r"""Neal's funnel: ``v ~ N(0, scale^2)``, ``x_i ~ N(0, exp(v))`` for ``i < dim``; ``log Z = 0``.

    .. math:: p(v, x) = N(v; 0, 3^2) \prod_{i=1}^{D-1} N(x_i; 0, e^{v})

    No data are observed, so the posterior is the prior: exact samples are easy while the
    geometry (a neck whose width changes by orders of magnitude) is hard for a variational guide.

    References:
        Neal, "Slice sampling", Annals of Statistics 31 (2003), arXiv:physics/0009028.

    Example:
        >>> tr = pyro.poutine.trace(funnel_model).get_trace(4)
        >>> tr.nodes["x"]["value"].shape
        torch.Size([3])
    """
    if dim < 2:
        raise ValueError(f"expected dim >= 2, got {dim}")
    v = pyro.sample("v", dist.Normal(0.0, scale))
    scale_x = torch.exp(v / 2).unsqueeze(-1)
    pyro.sample("x", dist.Normal(torch.zeros_like(scale_x), scale_x).expand(v.shape + (dim - 1,)).to_event(1))


def logistic_regression_model(features: Tensor, labels: Optional[Tensor] = None, prior_scale: float = 1.0) -> Tensor:
    r"""Bayesian logistic regression with Gaussian priors on the weights and the bias.

    .. math:: w \sim N(0, s^2 I), \quad b \sim N(0, s^2), \quad y_n \sim \text{Bernoulli}(\sigma(x_n^\top w + b))

    Args:
        features: ``(N, D)`` inputs (standardise them first).
        labels: ``(N,)`` 0/1 labels, or None to sample them.
        prior_scale: ``s``.

    Returns:
        the logits, shape ``(..., N)``.

    References:
        Gelman et al., "Bayesian Data Analysis", 3rd ed., chapter 16.

    Example:
        >>> tr = pyro.poutine.trace(logistic_regression_model).get_trace(torch.randn(5, 2))
        >>> tr.nodes["y"]["value"].shape
        torch.Size([5])
    """
    if features.dim() != 2:
        raise ValueError(f"expected features of shape (N, D), got {tuple(features.shape)}")
    n, d = features.shape
    w = pyro.sample("w", dist.Normal(features.new_zeros(d), prior_scale).to_event(1))
    b = pyro.sample("b", dist.Normal(features.new_zeros(()), prior_scale))
    # Broadcasting (not matmul) keeps the plate layout when particles or samples are vectorised.
    logits = (features * w).sum(-1) + b
    with pyro.plate("data", n, dim=-1):
        pyro.sample("y", dist.Bernoulli(logits=logits), obs=labels)
    return logits
