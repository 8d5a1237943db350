"""Two-dimensional toy densities with samplers and (where known) exact log-densities."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

__all__ = ["sample_moons", "moons_log_prob", "sample_smiley", "smiley_log_prob"]

_ARC_POINTS = 2048  # quadrature nodes along each arc (spacing ~ 0.0015, far below the noise sd)


def _arc_log_prob(x: Tensor, centres: Tensor, sd: float) -> Tensor:
    """log of (1/pi) * integral over t in [0, pi] of N(x; c(t), sd^2 I) dt, by the midpoint rule."""
    d2 = (x.unsqueeze(-2) - centres.to(x)).pow(2).sum(-1)  # (..., nodes)
    log_n = -0.5 * d2 / sd**2 - math.log(2 * math.pi * sd**2)
    return torch.logsumexp(log_n, -1) - math.log(centres.shape[0])


def _nodes(dtype=torch.float64) -> Tensor:
    return (torch.arange(_ARC_POINTS, dtype=dtype) + 0.5) * (math.pi / _ARC_POINTS)


def sample_moons(n: int, noise: float = 0.1, generator: Optional[torch.Generator] = None) -> Tensor:
    """Two interleaved half circles (scikit-learn's ``make_moons`` form) with Gaussian noise.

    Each point picks a moon with probability 1/2 and an angle ``t ~ U[0, pi]``: the outer moon is
    ``(cos t, sin t)``, the inner ``(1 - cos t, 0.5 - sin t)``.

    Example:
        >>> sample_moons(5).shape
        torch.Size([5, 2])
    """
    t = torch.rand(n, generator=generator, dtype=torch.float64) * math.pi
    inner = torch.rand(n, generator=generator, dtype=torch.float64) < 0.5
    x = torch.stack([torch.cos(t), torch.sin(t)], -1)
    x = torch.where(inner[:, None], torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], -1), x)
    return (x + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)).float()


def moons_log_prob(x: Tensor, noise: float = 0.1) -> Tensor:
    """Exact log-density of :func:`sample_moons` (quadrature over the arc angle)."""
    t = _nodes()
    outer = torch.stack([torch.cos(t), torch.sin(t)], -1)
    inner = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], -1)
    xd = x.double()
    lp = torch.logaddexp(_arc_log_prob(xd, outer, noise), _arc_log_prob(xd, inner, noise)) - math.log(2)
    return lp.to(x.dtype)


_EYES = ((-1.5, 2.5), (1.5, 2.5))


def sample_smiley(n: int, sd: float = 0.2, generator: Optional[torch.Generator] = None) -> Tensor:
    """A smiley face: two eyes ``N((+-1.5, 2.5), sd^2 I)`` and a mouth ``(2 cos t, -sin t) + N(0, sd^2 I)``.

    Each point is an eye or the mouth with probability 1/3; ``t ~ U[0, pi]``.

    Example:
        >>> sample_smiley(4).shape
        torch.Size([4, 2])
    """
    part = torch.randint(0, 3, (n,), generator=generator)
    t = torch.rand(n, generator=generator, dtype=torch.float64) * math.pi
    mouth = torch.stack([2 * torch.cos(t), -torch.sin(t)], -1)
    eyes = torch.tensor(_EYES, dtype=torch.float64)
    centre = torch.where((part == 2)[:, None], mouth, eyes[part.clamp(max=1)])
    return (centre + sd * torch.randn(n, 2, generator=generator, dtype=torch.float64)).float()


def smiley_log_prob(x: Tensor, sd: float = 0.2) -> Tensor:
    """Exact log-density of :func:`sample_smiley` (the mouth by quadrature over the angle)."""
    t = _nodes()
    mouth = torch.stack([2 * torch.cos(t), -torch.sin(t)], -1)
    xd = x.double()
    parts = [_arc_log_prob(xd, mouth, sd)]
    for e in _EYES:
        d2 = (xd - torch.tensor(e, dtype=torch.float64)).pow(2).sum(-1)
        parts.append(-0.5 * d2 / sd**2 - math.log(2 * math.pi * sd**2))
    return (torch.logsumexp(torch.stack(parts, -1), -1) - math.log(3)).to(x.dtype)
