r"""Planar and radial flows with true inverses (Pyro's raise KeyError outside the cache, pyro-ppl/pyro#2718).

Planar: ``y = x + \hat u \tanh(w^\top x + b)``. Projecting on ``w`` gives a monotone scalar equation
for ``a = w^\top x + b``: ``a + (w^\top \hat u) \tanh(a) = w^\top y + b``, solved by
:func:`~pyro_flowzoo.transforms.mixture_cdf.monotone_solve` inside the bracket
``[t - |w^\top \hat u|, t + |w^\top \hat u|]``; then ``x = y - \hat u \tanh(a)``.

Radial: ``y = x + \beta (x - x_0) / (\alpha + r)`` with ``r = |x - x_0|``. Taking norms gives
``r (1 + \beta / (\alpha + r)) = |y - x_0|``, a quadratic in ``r`` with one non-negative root,
solved in closed form (cancellation-free); then ``x = x_0 + (y - x_0) / (1 + \beta / (\alpha + r))``.

Invertibility constraints are built into the parametrisation: ``w^\top \hat u > -1`` and
``\alpha > 0``, ``\beta > -\alpha``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import FlowTransform
from .mixture_cdf import monotone_solve

__all__ = ["Planar", "Radial"]


class Planar(FlowTransform):
    r"""Planar flow ``y = x + \hat u\, \tanh(w^\top x + b)`` with an exact inverse.

    .. math::
        \hat u = u + \left(m(w^\top u) - w^\top u\right) \frac{w}{\|w\|^2}, \quad m(a) = -1 + \mathrm{softplus}(a),
        \qquad \log|\det J| = \log\left|1 + w^\top \hat u\,(1 - \tanh^2(w^\top x + b))\right|

    so ``w^\top \hat u > -1`` (invertible) whatever the raw parameters. Pyro's ``Planar`` has no inverse
    outside its cache; the inverse here solves the scalar equation along ``w`` (see the module docstring).

    What it is for: one layer moves points along the single direction ``\hat u`` by an amount that depends
    on one projection ``w^\top x`` (a tanh ridge), so its volume change is confined to a slab around one
    hyperplane; ``K`` layers give ``K`` such ridges and ``2 D + 1`` parameters each. That suits small
    corrections of a simple distribution in a few dimensions (the paper's use: refining a Gaussian
    variational posterior, sampled in the cheap direction), and illustrations. It is not a density
    estimator for data: the density direction needs a root solve per layer, and ridges add expressiveness
    slowly (the affine, spline and mixture-CDF flows of this package are the density builders).

    Args:
        dim: vector size ``D >= 1``.

    References:
        Rezende, Mohamed, "Variational Inference with Normalizing Flows", arXiv:1505.05770.

    Example:
        >>> t = Planar(3).double()
        >>> y = torch.randn(4, 3, dtype=torch.float64)
        >>> torch.allclose(t(t.inv(y)), y)
        True
    """

    def __init__(self, dim: int) -> None:
        super().__init__(event_dim=1)
        if dim < 1:
            raise ValueError(f"Planar needs dim >= 1, got {dim}")
        self.dim = dim
        bound = 1 / math.sqrt(dim)
        self.u = nn.Parameter(torch.empty(dim).uniform_(-bound, bound))
        self.w = nn.Parameter(torch.empty(dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(()))

    def _u_hat(self) -> tuple[Tensor, Tensor]:
        u_hat = planar_u_hat(self.u, self.w)
        return u_hat, self.w @ u_hat

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u_hat, wu_hat = self._u_hat()
        h = torch.tanh(x @ self.w + self.bias)
        y = x + h.unsqueeze(-1) * u_hat
        return y, torch.log1p(wu_hat * (1 - h * h))

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        u_hat, wu_hat = self._u_hat()
        h = torch.tanh(solve_planar(y @ self.w + self.bias, wu_hat))
        return y - h.unsqueeze(-1) * u_hat, torch.log1p(wu_hat * (1 - h * h))


def planar_u_hat(u: Tensor, w: Tensor) -> Tensor:
    r"""The constrained ``\hat u = u + (m(w^\top u) - w^\top u)\, w / \|w\|^2``, ``m(a) = -1 + \mathrm{softplus}(a)``,
    so ``w^\top \hat u > -1`` (an invertible planar map); batched over leading dims."""
    wu = (w * u).sum(-1, keepdim=True)
    return u + (F.softplus(wu) - 1 - wu) * w / w.pow(2).sum(-1, keepdim=True).clamp(min=1e-12)


def solve_planar(t: Tensor, wu_hat: Tensor) -> Tensor:
    r"""The ``a`` with ``a + c \tanh(a) = t`` (``c = w^\top \hat u > -1``: increasing in ``a``), elementwise.

    Solved without gradient by :func:`monotone_solve` in the bracket ``t \pm (|c| + \epsilon)``, then one
    differentiable Newton step at the root (implicit-function gradients in ``t`` and ``c``).
    """
    with torch.no_grad():
        td = t.detach()
        c = wu_hat.detach().expand(td.shape).reshape(-1)
        spread = (c.abs() + 1e-6 * (1 + td.reshape(-1).abs())).view(td.shape)

        def func(a: Tensor, index: Optional[Tensor]) -> tuple[Tensor, Tensor]:
            ci = c if index is None else c[index]
            h = torch.tanh(a)
            return a + ci * h, 1 + ci * (1 - h * h)

        root = monotone_solve(func, td, td - spread, td + spread)
    h = torch.tanh(root)
    return root - (root + wu_hat * h - t) / (1 + wu_hat * (1 - h * h))


class Radial(FlowTransform):
    r"""Radial flow ``y = x + \beta\, h(r) (x - x_0)``, ``h(r) = 1 / (\alpha + r)``, with an exact inverse.

    .. math::
        \alpha = \mathrm{softplus}(\tilde\alpha), \quad \beta = -\alpha + \mathrm{softplus}(\tilde\beta), \qquad
        \log|\det J| = (D - 1) \log(1 + \beta h) + \log(1 + \beta h + \beta h'(r)\, r)

    The inverse solves ``r^2 + (\alpha + \beta - \rho) r - \rho\alpha = 0`` for ``r \ge 0``, with
    ``\rho = |y - x_0|`` (Pyro's ``Radial`` has no inverse outside its cache).

    What it is for: one layer contracts or expands space around one centre ``x_0`` (a radially symmetric
    bump in the density, ``D + 2`` parameters), so a stack can widen, narrow or add rounded modes to a
    simple distribution in a few dimensions, as in the paper's variational posteriors; it cannot shear or
    bend, so it is not a density estimator for data with curved or skewed structure (use the affine,
    spline or mixture-CDF builders).

    Args:
        dim: vector size ``D >= 1``.

    References:
        Rezende, Mohamed, "Variational Inference with Normalizing Flows", arXiv:1505.05770.

    Example:
        >>> t = Radial(2).double()
        >>> y = torch.randn(4, 2, dtype=torch.float64)
        >>> torch.allclose(t(t.inv(y)), y)
        True
    """

    def __init__(self, dim: int) -> None:
        super().__init__(event_dim=1)
        if dim < 1:
            raise ValueError(f"Radial needs dim >= 1, got {dim}")
        self.dim = dim
        bound = 1 / math.sqrt(dim)
        self.x0 = nn.Parameter(torch.empty(dim).uniform_(-bound, bound))
        self.raw_alpha = nn.Parameter(torch.empty(()).uniform_(-bound, bound))
        self.raw_beta = nn.Parameter(torch.empty(()).uniform_(-bound, bound))

    def _alpha_beta(self) -> tuple[Tensor, Tensor]:
        alpha = F.softplus(self.raw_alpha)
        return alpha, -alpha + F.softplus(self.raw_beta)

    def _log_det(self, r: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        h = 1 / (alpha + r)
        bh = beta * h
        # 1 + bh + beta h'(r) r = 1 + beta alpha / (alpha + r)^2
        return (self.dim - 1) * torch.log1p(bh) + torch.log1p(beta * alpha * h * h)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        alpha, beta = self._alpha_beta()
        diff = x - self.x0
        r = diff.norm(dim=-1)
        y = x + (beta / (alpha + r)).unsqueeze(-1) * diff
        return y, self._log_det(r, alpha, beta)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        alpha, beta = self._alpha_beta()
        diff = y - self.x0
        rho = diff.norm(dim=-1)
        b = alpha + beta - rho
        root = torch.sqrt(b * b + 4 * rho * alpha)
        # The non-negative root of r^2 + b r - rho alpha, without cancellation for either sign of b.
        r = torch.where(b > 0, 2 * rho * alpha / (b + root), (root - b) / 2)
        x = self.x0 + diff / (1 + beta / (alpha + r)).unsqueeze(-1)
        return x, self._log_det(r, alpha, beta)
