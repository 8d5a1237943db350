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


_TOY_CHUNK = 1024  # points per quadrature chunk (keeps nodes x points tensors ~ tens of MB)


def _chunked(fn, x: Tensor) -> Tensor:
    """Applies a (points, 2) -> (points,) density chunk-wise over any batch shape, in float64."""
    flat = x.double().reshape(-1, x.shape[-1])
    out = (
        torch.cat([fn(flat[i : i + _TOY_CHUNK]) for i in range(0, flat.shape[0], _TOY_CHUNK)])
        if flat.shape[0]
        else flat.new_zeros(0)
    )
    return out.reshape(x.shape[:-1]).to(x.dtype)


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
    return _chunked(
        lambda p: torch.logaddexp(_arc_log_prob(p, outer, noise), _arc_log_prob(p, inner, noise)) - math.log(2), x
    )


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

    def chunk(xd: Tensor) -> Tensor:
        parts = [_arc_log_prob(xd, mouth, sd)]
        for e in _EYES:
            d2 = (xd - torch.tensor(e, dtype=torch.float64)).pow(2).sum(-1)
            parts.append(-0.5 * d2 / sd**2 - math.log(2 * math.pi * sd**2))
        return torch.logsumexp(torch.stack(parts, -1), -1) - math.log(3)

    return _chunked(chunk, x)


# ---------------------------------------------------------------------------------------------
# Labelled samplers and the other toy densities. Every ``sample_*`` below returns ``(x, labels)``:
# ``x`` float32 of shape (n, d), ``labels`` int64 (n,) naming the mixture component / arm / ring.
# Every ``*_log_prob`` is exact (closed form) or a converged quadrature, computed in float64.
# ---------------------------------------------------------------------------------------------


def moons_with_labels(n: int, noise: float = 0.1, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """:func:`sample_moons` plus labels (0 outer, 1 inner moon); the same draws for the same generator state.

    Example:
        >>> x, y = moons_with_labels(4)
        >>> y.dtype
        torch.int64
    """
    state = torch.get_rng_state() if generator is None else generator.get_state()
    x = sample_moons(n, noise, generator)
    replay = torch.Generator()
    replay.set_state(state)
    torch.rand(n, generator=replay, dtype=torch.float64)  # the angles
    inner = torch.rand(n, generator=replay, dtype=torch.float64) < 0.5
    return x, inner.long()


def smiley_with_labels(n: int, sd: float = 0.2, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """:func:`sample_smiley` plus labels (0/1 the eyes, 2 the mouth); the same draws for the same generator state.

    Example:
        >>> smiley_with_labels(3)[1].shape
        torch.Size([3])
    """
    state = torch.get_rng_state() if generator is None else generator.get_state()
    x = sample_smiley(n, sd, generator)
    replay = torch.Generator()
    replay.set_state(state)
    return x, torch.randint(0, 3, (n,), generator=replay)


def _iso_mixture_sample(
    n: int, means: Tensor, sds: Tensor, weights: Tensor, generator: Optional[torch.Generator]
) -> tuple[Tensor, Tensor]:
    k = torch.multinomial(weights, n, replacement=True, generator=generator)
    eps = torch.randn(n, means.shape[-1], generator=generator, dtype=torch.float64)
    return (means[k] + sds[k, None] * eps).float(), k


def _iso_mixture_log_prob(x: Tensor, means: Tensor, sds: Tensor, weights: Tensor) -> Tensor:
    xd = x.double()
    d = means.shape[-1]
    d2 = (xd.unsqueeze(-2) - means).pow(2).sum(-1)  # (..., K)
    log_n = -0.5 * d2 / sds**2 - d * torch.log(sds) - 0.5 * d * math.log(2 * math.pi)
    return torch.logsumexp(log_n + weights.log(), -1).to(x.dtype)


_TWO_GAUSSIANS = (
    torch.tensor([[-1.5, -1.5], [1.5, 1.5]], dtype=torch.float64),
    torch.tensor([0.5, 0.5], dtype=torch.float64),
    torch.tensor([0.5, 0.5], dtype=torch.float64),
)


def sample_two_gaussians(n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """Equal mixture of ``N((-1.5, -1.5), 0.5^2 I)`` and ``N((1.5, 1.5), 0.5^2 I)``; labels 0/1.

    Example:
        >>> x, y = sample_two_gaussians(3)
        >>> x.shape, y.shape
        (torch.Size([3, 2]), torch.Size([3]))
    """
    return _iso_mixture_sample(n, *_TWO_GAUSSIANS, generator)


def two_gaussians_log_prob(x: Tensor) -> Tensor:
    r"""Exact log-density of :func:`sample_two_gaussians`.

    .. math:: p(x) = \tfrac12 \mathcal{N}(x; -\mu, \sigma^2 I) + \tfrac12 \mathcal{N}(x; \mu, \sigma^2 I)
    """
    return _iso_mixture_log_prob(x, *_TWO_GAUSSIANS)


_MOG = {
    1: (
        torch.tensor([[-2.0], [0.5], [3.0]], dtype=torch.float64),
        torch.tensor([0.5, 0.8, 0.4], dtype=torch.float64),
        torch.tensor([0.3, 0.5, 0.2], dtype=torch.float64),
    ),
    2: (
        torch.tensor([[-2.0, -1.5], [2.0, -1.0], [0.0, 2.0], [-2.5, 2.0]], dtype=torch.float64),
        torch.tensor([0.5, 0.7, 0.4, 0.3], dtype=torch.float64),
        torch.tensor([0.3, 0.3, 0.25, 0.15], dtype=torch.float64),
    ),
}


def _mog_params(dim: int) -> tuple[Tensor, Tensor, Tensor]:
    if dim not in _MOG:
        raise ValueError(f"mog: dim must be 1 or 2, got {dim!r}")
    return _MOG[dim]


def sample_mog(n: int, dim: int = 2, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """A fixed mixture of isotropic Gaussians in 1-D (3 components) or 2-D (4 components); labels = component.

    1-D: weights (0.3, 0.5, 0.2), means (-2, 0.5, 3), sds (0.5, 0.8, 0.4).
    2-D: weights (0.3, 0.3, 0.25, 0.15), means (-2,-1.5), (2,-1), (0,2), (-2.5,2), sds (0.5, 0.7, 0.4, 0.3).

    Example:
        >>> sample_mog(4, dim=1)[0].shape
        torch.Size([4, 1])
    """
    return _iso_mixture_sample(n, *_mog_params(dim), generator)


def mog_log_prob(x: Tensor, dim: int = 2) -> Tensor:
    r"""Exact log-density of :func:`sample_mog`: :math:`\log \sum_k w_k \mathcal{N}(x; \mu_k, \sigma_k^2 I)`."""
    return _iso_mixture_log_prob(x, *_mog_params(dim))


def _eight_gaussians_params() -> tuple[Tensor, Tensor, Tensor]:
    s = 1 / math.sqrt(2)
    centres = torch.tensor([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)], dtype=torch.float64)
    return (
        2 * centres / 1.414,
        torch.full((8,), 0.5 / 1.414, dtype=torch.float64),
        torch.full((8,), 1 / 8.0, dtype=torch.float64),
    )


def sample_8gaussians(n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """FFJORD's 8 Gaussians: centres ``2 (cos, sin)(k pi / 4) / 1.414``, sd ``0.5 / 1.414``; labels = centre.

    References:
        Grathwohl et al., "FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models",
        arXiv:1810.01367 (the toy set).

    Example:
        >>> sample_8gaussians(2)[0].shape
        torch.Size([2, 2])
    """
    return _iso_mixture_sample(n, *_eight_gaussians_params(), generator)


def eight_gaussians_log_prob(x: Tensor) -> Tensor:
    r"""Exact log-density of :func:`sample_8gaussians`: :math:`\log \frac18 \sum_k N(x; \mu_k, \sigma^2 I)`."""
    return _iso_mixture_log_prob(x, *_eight_gaussians_params())


def sample_checkerboard(n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """FFJORD's checkerboard: uniform on the 8 black 2x2 squares of ``[-4, 4)^2``; labels = square index.

    References:
        Grathwohl et al., "FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models",
        arXiv:1810.01367 (the toy set).

    Example:
        >>> x, _ = sample_checkerboard(100)
        >>> bool((x.abs() <= 4).all())
        True
    """
    x1 = torch.rand(n, generator=generator, dtype=torch.float64) * 4 - 2
    x2 = torch.rand(n, generator=generator, dtype=torch.float64) - torch.randint(0, 2, (n,), generator=generator) * 2
    x2 = x2 + torch.floor(x1) % 2
    x = torch.stack([x1, x2], -1) * 2
    label = (torch.floor(x[:, 0] / 2) + 2) * 2 + torch.div(torch.floor(x[:, 1] / 2) + 2, 2, rounding_mode="floor")
    return x.float(), label.long()


def checkerboard_log_prob(x: Tensor) -> Tensor:
    """Exact log-density of :func:`sample_checkerboard`: ``-log 32`` on the black squares, ``-inf`` elsewhere."""
    xd = x.double()
    f = torch.floor(xd / 2)
    inside = ((xd >= -4) & (xd < 4)).all(-1) & ((f[..., 0] + f[..., 1]) % 2 == 0)
    return torch.where(inside, -math.log(32.0), -math.inf).to(x.dtype)


_SPIRAL_SD = 0.1
_SPIRAL_NODES = 2048


def sample_2spirals(n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """FFJORD's two spirals; labels 0/1 = spiral.

    ``t = 3 pi sqrt(u)``, ``c(t) = (-t cos t, t sin t)``, ``x = s (c(t) + U / 2) / 3 + N(0, 0.1^2 I)``
    with ``u ~ U(0,1)``, ``U ~ U(0,1)^2`` and the spiral sign ``s = +-1`` with probability 1/2 each.

    References:
        Grathwohl et al., "FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models",
        arXiv:1810.01367 (the toy set).

    Example:
        >>> sample_2spirals(3)[0].shape
        torch.Size([3, 2])
    """
    t = torch.sqrt(torch.rand(n, generator=generator, dtype=torch.float64)) * 3 * math.pi
    c = torch.stack([-torch.cos(t) * t, torch.sin(t) * t], -1)
    c = c + torch.rand(n, 2, generator=generator, dtype=torch.float64) * 0.5
    sign = torch.randint(0, 2, (n,), generator=generator)
    x = torch.where((sign == 1)[:, None], -c, c) / 3
    x = x + _SPIRAL_SD * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return x.float(), sign


def _log_box_gauss(w: Tensor, width: float, sd: float) -> Tensor:
    """log density of ``U(0, width) + N(0, sd^2)`` at ``w``: ``log[(Phi(w/sd) - Phi((w-width)/sd)) / width]``."""
    a, b = w / sd, (w - width) / sd
    # Phi(a) - Phi(b) = Phi(-b) - Phi(-a): take the form whose arguments are in the lower tail (no cancellation).
    flip = (a + b) > 0
    hi, lo = torch.where(flip, -b, a), torch.where(flip, -a, b)
    lh, ll = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return lh + torch.log1p(-torch.exp(ll - lh)) - math.log(width)


def _box_gauss(w: Tensor, width: float, sd: float) -> Tensor:
    """Density of ``U(0, width) + N(0, sd^2)`` at ``w`` (probability space; see :func:`_log_box_gauss`)."""
    a, b = w / sd, (w - width) / sd
    flip = (a + b) > 0
    return (torch.special.ndtr(torch.where(flip, -b, a)) - torch.special.ndtr(torch.where(flip, -a, b))) / width


def _spirals_chunk(x: Tensor) -> Tensor:
    u = (torch.arange(_SPIRAL_NODES, dtype=torch.float64) + 0.5) / _SPIRAL_NODES
    t = torch.sqrt(u) * 3 * math.pi
    c = torch.stack([-torch.cos(t) * t, torch.sin(t) * t], -1) / 3  # (nodes, 2)
    width = 0.5 / 3
    # fast path in probability space over the nodes within 8 sd of the box only (the rest add < 1e-14 relative);
    # points too far from both spirals (density underflow) are redone in log space over all nodes
    reach = 8 * _SPIRAL_SD
    total = x.new_zeros(x.shape[0])
    for s in (1.0, -1.0):
        w0, w1 = s * x[:, None, 0] - c[:, 0], s * x[:, None, 1] - c[:, 1]
        near = (w0 > -reach) & (w0 < width + reach) & (w1 > -reach) & (w1 < width + reach)
        p_idx, n_idx = near.nonzero(as_tuple=True)
        vals = _box_gauss(w0[p_idx, n_idx], width, _SPIRAL_SD) * _box_gauss(w1[p_idx, n_idx], width, _SPIRAL_SD)
        total.index_add_(0, p_idx, vals)
    out = torch.log(total) - math.log(2 * _SPIRAL_NODES)
    far = total < 1e-200
    if bool(far.any()):
        xf = x[far]
        parts = []
        for s in (1.0, -1.0):
            # the 128 nearest nodes carry all but a negligible part of these points' (tiny) density
            nearest = torch.cdist(s * xf - width / 2, c).topk(min(128, c.shape[0]), largest=False).indices
            w = s * xf.unsqueeze(-2) - c[nearest]
            parts.append(torch.logsumexp(_log_box_gauss(w, width, _SPIRAL_SD).sum(-1), -1))
        out[far] = torch.logsumexp(torch.stack(parts, -1), -1) - math.log(2 * _SPIRAL_NODES)
    return out


def two_spirals_log_prob(x: Tensor) -> Tensor:
    """Log-density of :func:`sample_2spirals`: exact in the noise (box * Gaussian), quadrature over ``u``."""
    return _chunked(_spirals_chunk, x)


def _ring_log_prob(x: Tensor, radii: Tensor, sd: float) -> Tensor:
    """Equal mixture of rings ``r (cos a, sin a) + N(0, sd^2 I)``, ``a ~ U[0, 2 pi)``, via the Bessel ``I_0``."""
    rho = x.double().norm(dim=-1, keepdim=True)
    kappa = rho * radii / sd**2
    lp = -0.5 * (rho - radii).pow(2) / sd**2 + torch.log(torch.special.i0e(kappa)) - math.log(2 * math.pi * sd**2)
    return (torch.logsumexp(lp, -1) - math.log(radii.shape[0])).to(x.dtype)


def _sample_rings(n: int, radii: Tensor, sd: float, generator: Optional[torch.Generator]) -> tuple[Tensor, Tensor]:
    k = torch.randint(0, radii.shape[0], (n,), generator=generator)
    a = torch.rand(n, generator=generator, dtype=torch.float64) * 2 * math.pi
    x = radii[k, None] * torch.stack([torch.cos(a), torch.sin(a)], -1)
    return (x + sd * torch.randn(n, 2, generator=generator, dtype=torch.float64)).float(), k


_RINGS = torch.tensor([0.25, 0.55, 0.9, 1.2], dtype=torch.float64) * 3.0
_CIRCLES = torch.tensor([1.5, 3.0], dtype=torch.float64)


def sample_rings(n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """FFJORD's rings: radii ``3 * (0.25, 0.55, 0.9, 1.2)``, equal weights, noise sd 0.08; labels = ring.

    (FFJORD spaces the angles evenly; here they are uniform, so the density is exact.)

    References:
        Grathwohl et al., "FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models",
        arXiv:1810.01367 (the toy set).

    Example:
        >>> sample_rings(2)[0].shape
        torch.Size([2, 2])
    """
    return _sample_rings(n, _RINGS, 0.08, generator)


def rings_log_prob(x: Tensor) -> Tensor:
    r"""Exact log-density of :func:`sample_rings`.

    A ring of radius r blurred by :math:`N(0, \sigma^2 I)` has the density

    .. math:: p(x) = \frac{1}{2 \pi \sigma^2} e^{-(|x|^2 + r^2) / 2\sigma^2} I_0(|x| r / \sigma^2)

    computed with ``i0e`` for stability; the set is an equal mixture of four such rings.
    """
    return _ring_log_prob(x, _RINGS, 0.08)


def sample_circles(n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """FFJORD's circles (scikit-learn ``make_circles(factor=0.5, noise=0.08)`` times 3): radii 1.5 and 3, sd 0.24.

    References:
        Grathwohl et al., "FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models",
        arXiv:1810.01367 (the toy set).

    Example:
        >>> sample_circles(2)[0].shape
        torch.Size([2, 2])
    """
    return _sample_rings(n, _CIRCLES, 0.24, generator)


def circles_log_prob(x: Tensor) -> Tensor:
    """Exact log-density of :func:`sample_circles`."""
    return _ring_log_prob(x, _CIRCLES, 0.24)


_SWISS_NODES = 4096


def sample_swissroll(n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """FFJORD's swiss roll: ``(t cos t, t sin t) / 5 + N(0, 0.2^2 I)``, ``t ~ U[1.5 pi, 4.5 pi]``.

    Labels: 0 for the inner half of the roll (``t < 3 pi``), 1 for the outer half.

    References:
        Grathwohl et al., "FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models",
        arXiv:1810.01367 (the toy set).

    Example:
        >>> sample_swissroll(2)[0].shape
        torch.Size([2, 2])
    """
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
    x = torch.stack([t * torch.cos(t), t * torch.sin(t)], -1) / 5
    x = x + 0.2 * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return x.float(), (t >= 3 * math.pi).long()


def swissroll_log_prob(x: Tensor) -> Tensor:
    """Log-density of :func:`sample_swissroll` (midpoint quadrature over ``t``, 4096 nodes)."""
    t = 1.5 * math.pi * (1 + 2 * (torch.arange(_SWISS_NODES, dtype=torch.float64) + 0.5) / _SWISS_NODES)
    centres = torch.stack([t * torch.cos(t), t * torch.sin(t)], -1) / 5
    return _chunked(lambda p: _arc_log_prob(p, centres, 0.2), x)


_PIN_ARMS, _PIN_RADIAL_SD, _PIN_TANGENT_SD, _PIN_RATE = 5, 0.3, 0.1, 0.25


def sample_pinwheel(n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """FFJORD's pinwheel: 5 arms; ``f ~ N((1, 0), diag(0.3^2, 0.1^2))`` rotated by ``2 pi k / 5 + exp(f_0) / 4``.

    ``x = 2 R(-a) f`` with ``a = 2 pi k / 5 + 0.25 exp(f_0)`` and ``k`` uniform; labels = arm ``k``.

    References:
        Grathwohl et al., "FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models",
        arXiv:1810.01367 (the toy set).

    Example:
        >>> sample_pinwheel(2)[0].shape
        torch.Size([2, 2])
    """
    k = torch.randint(0, _PIN_ARMS, (n,), generator=generator)
    f = torch.randn(n, 2, generator=generator, dtype=torch.float64) * torch.tensor(
        [_PIN_RADIAL_SD, _PIN_TANGENT_SD], dtype=torch.float64
    )
    f[:, 0] += 1
    a = 2 * math.pi * k / _PIN_ARMS + _PIN_RATE * torch.exp(f[:, 0])
    c, s = torch.cos(a), torch.sin(a)
    x = torch.stack([f[:, 0] * c + f[:, 1] * s, -f[:, 0] * s + f[:, 1] * c], -1) * 2
    return x.float(), k


_PIN_GRID = 512


def _pinwheel_chunk(x: Tensor) -> Tensor:
    # Polar change of variables: |x| = 2 rho with rho = |f|, arg x = psi - a(rho cos psi) with psi = arg f,
    # so p(x) = sum over arms and over the roots psi of G(psi) = psi - 0.25 exp(rho cos psi) = arg x + 2 pi k / 5
    # (mod 2 pi) of p_f(f) / (4 |G'(psi)|). Roots: sign changes on a fine psi grid, then two Newton steps.
    rho = x.norm(dim=-1) / 2  # (P,)
    theta = torch.atan2(x[:, 1], x[:, 0])
    psi = torch.linspace(-math.pi, 3 * math.pi, 2 * _PIN_GRID + 1, dtype=torch.float64)  # covers psi range twice
    g = psi - _PIN_RATE * torch.exp(rho[:, None] * torch.cos(psi))  # (P, G)
    out = torch.zeros_like(rho)
    for k in range(_PIN_ARMS):
        target = theta + 2 * math.pi * k / _PIN_ARMS
        # distance to the nearest target + 2 pi m, wrapped to (-pi, pi]
        h = torch.remainder(g - target[:, None] + math.pi, 2 * math.pi) - math.pi
        cross = (h[:, :-1] * h[:, 1:] <= 0) & ((h[:, :-1] - h[:, 1:]).abs() < math.pi)  # real roots, not wraps
        # keep roots with psi in [-pi, pi) only, so each root is counted once
        cross = cross & (psi[:-1] >= -math.pi) & (psi[:-1] < math.pi)
        p_idx, g_idx = cross.nonzero(as_tuple=True)
        if p_idx.numel() == 0:
            continue
        h0, h1 = h[p_idx, g_idx], h[p_idx, g_idx + 1]
        denom = torch.where(h0 == h1, torch.ones_like(h0), h0 - h1)
        r = psi[g_idx] + (psi[g_idx + 1] - psi[g_idx]) * h0 / denom
        rr = rho[p_idx]
        tg = target[p_idx]
        for _ in range(2):
            e = torch.exp(rr * torch.cos(r))
            val = torch.remainder(r - _PIN_RATE * e - tg + math.pi, 2 * math.pi) - math.pi
            r = r - val / (1 + _PIN_RATE * e * rr * torch.sin(r))
        e = torch.exp(rr * torch.cos(r))
        dg = (1 + _PIN_RATE * e * rr * torch.sin(r)).abs()
        f0, f1 = rr * torch.cos(r), rr * torch.sin(r)
        log_pf = (
            -0.5 * ((f0 - 1) / _PIN_RADIAL_SD) ** 2
            - 0.5 * (f1 / _PIN_TANGENT_SD) ** 2
            - math.log(2 * math.pi * _PIN_RADIAL_SD * _PIN_TANGENT_SD)
        )
        out.index_add_(0, p_idx, torch.exp(log_pf) / (4 * dg))
    return torch.log(out / _PIN_ARMS)


def pinwheel_log_prob(x: Tensor) -> Tensor:
    """Log-density of :func:`sample_pinwheel` by a polar change of variables (numerical root finding)."""
    return _chunked(_pinwheel_chunk, x)
