r"""Data sets with exact densities for measuring density estimators, in 1 to 16 dimensions.

Each set is a sampler ``sample_*(n, ..., generator=None) -> (x, labels)`` (``x`` float32 ``(n, D)``, labels
int64 ``(n,)``) and an exact ``*_log_prob(x, ...)`` computed in float64 (closed form through a known bijection,
no quadrature). :data:`EXACT_SETS` collects them with the 2-D toys of :mod:`pyro_flowzoo.data.toy` that
already have exact densities (separated modes: ``8gaussians``; thin manifolds: ``rings``, ``2spirals``,
``pinwheel``; the issue-8 toys ``moons`` and ``smiley``, by quadrature over their arcs), so a benchmark can loop
over one table; :func:`entropy` estimates the true entropy (closed form where one exists, else a Monte Carlo
mean of ``-log p`` with its standard error).

New sets (all built from an AR(1)-correlated Gaussian ``z ~ N(0, S)``, ``S_ij = rho^{|i-j|}``, through a
bijection with a closed-form inverse and log-determinant):

- ``sas``: skewed, heavy-tailed: the sinh-arcsinh map of Jones and Pewsey applied per coordinate,
  :math:`x_i = \sinh((\operatorname{asinh} z_i + \epsilon_i) / \delta_i)`;
- ``banana``: thin curved ridges in ``D`` dims, pairs :math:`(z_{2k}, z_{2k+1} + b\,(z_{2k}^2 - 1))`
  (unit Jacobian, so the entropy is that of ``z``);
- ``student_t``: multivariate Student-t (polynomial tails), closed-form density and entropy;
- ``gamma_mix`` (1-D, positive support) and ``beta_mix`` (1-D, support ``(0, 1)``) for bounded flows.

References:
    Jones, Pewsey, "Sinh-arcsinh distributions", Biometrika 96 (2009), doi:10.1093/biomet/asp053.

Example:
    >>> x, _ = sample_banana(4, dim=3)
    >>> banana_log_prob(x, dim=3).shape
    torch.Size([4])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch
from torch import Tensor

from . import toy

__all__ = [
    "ExactSet",
    "EXACT_SETS",
    "entropy",
    "sample_sas",
    "sas_log_prob",
    "sample_banana",
    "banana_log_prob",
    "banana_entropy",
    "sample_student_t",
    "student_t_log_prob",
    "student_t_entropy",
    "sample_gamma_mix",
    "gamma_mix_log_prob",
    "sample_beta_mix",
    "beta_mix_log_prob",
]

_RHO = 0.8


def _ar1_cholesky(dim: int, rho: float = _RHO) -> Tensor:
    """Cholesky factor of ``S_ij = rho^{|i-j|}`` (closed form: row d is ``rho^{d-j}`` times ``sqrt(1 - rho^2)``)."""
    i = torch.arange(dim, dtype=torch.float64)
    power = (i[:, None] - i[None, :]).clamp(min=0)
    lower = torch.tril(rho**power)
    lower[:, 1:] *= math.sqrt(1 - rho**2)
    return lower


def _ar1_sample(n: int, dim: int, generator: Optional[torch.Generator]) -> Tensor:
    eps = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    return eps @ _ar1_cholesky(dim).T


def _ar1_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, S)`` with the AR(1) precision (innovations ``z_d - rho z_{d-1}`` of variance ``1 - rho^2``)."""
    dim = z.shape[-1]
    innov = torch.cat([z[..., :1], (z[..., 1:] - _RHO * z[..., :-1]) / math.sqrt(1 - _RHO**2)], -1)
    log_det_s = (dim - 1) * math.log(1 - _RHO**2)
    return -0.5 * innov.pow(2).sum(-1) - 0.5 * log_det_s - 0.5 * dim * math.log(2 * math.pi)


def _ar1_entropy(dim: int) -> float:
    return 0.5 * dim * math.log(2 * math.pi * math.e) + 0.5 * (dim - 1) * math.log(1 - _RHO**2)


def _check_dim(name: str, dim: int, low: int = 2) -> None:
    if not isinstance(dim, int) or dim < low:
        raise ValueError(f"{name}: dim must be an int >= {low}, got {dim!r}")


def _labels(n: int) -> Tensor:
    return torch.zeros(n, dtype=torch.long)


# -- sinh-arcsinh: skew and heavy tails -------------------------------------------------------------
def _sas_params(dim: int) -> tuple[Tensor, Tensor]:
    """Skew ``epsilon`` alternating in sign, tail weight ``delta`` alternating 0.6 (heavy) / 0.85."""
    i = torch.arange(dim, dtype=torch.float64)
    epsilon = torch.where(i % 2 == 0, 0.5, -0.3).double()
    delta = torch.where(i % 2 == 0, 0.6, 0.85).double()
    return epsilon, delta


def sample_sas(n: int, dim: int = 6, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    r"""Skewed, heavy-tailed set: sinh-arcsinh of an AR(1)-correlated Gaussian (``rho = 0.8``).

    .. math:: x_i = \sinh\big((\operatorname{asinh} z_i + \epsilon_i) / \delta_i\big), \quad
        \epsilon = (0.5, -0.3, \dots), \ \delta = (0.6, 0.85, \dots)

    ``delta = 0.6`` makes the tails of ``x_i`` much heavier than Gaussian (``|x| ~ |z|^{1/0.6}``), the skew
    puts more of them on one side. Labels are zeros.

    Example:
        >>> x, _ = sample_sas(3, dim=2)
        >>> x.shape
        torch.Size([3, 2])
    """
    _check_dim("sas", dim)
    z = _ar1_sample(n, dim, generator)
    epsilon, delta = _sas_params(dim)
    return torch.sinh((torch.asinh(z) + epsilon) / delta).float(), _labels(n)


def sas_log_prob(x: Tensor, dim: int = 6) -> Tensor:
    r"""Exact log-density of :func:`sample_sas`.

    .. math:: \log p(x) = \log \mathcal N(z; 0, S) + \sum_i \log \frac{\delta_i \cosh(\delta_i
        \operatorname{asinh} x_i - \epsilon_i)}{\sqrt{1 + x_i^2}}, \quad z_i = \sinh(\delta_i \operatorname{asinh}
        x_i - \epsilon_i)
    """
    xd = x.double()
    epsilon, delta = _sas_params(xd.shape[-1])
    w = delta * torch.asinh(xd) - epsilon
    log_jac = torch.log(delta) + _log_cosh(w) - 0.5 * torch.log1p(xd * xd)
    return (_ar1_log_prob(torch.sinh(w)) + log_jac.sum(-1)).to(x.dtype)


def _log_cosh(w: Tensor) -> Tensor:
    return w.abs() + torch.log1p(torch.exp(-2 * w.abs())) - math.log(2)


# -- banana: thin curved ridges in D dims ---------------------------------------------------------
_BANANA_B = 0.8
_BANANA_SCALE = 0.35  # sd of the even coordinates' z: the ridges' width across their curves


def sample_banana(n: int, dim: int = 8, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    r"""Curved thin ridges: in each pair, :math:`x_{2k} = z_{2k}`, :math:`x_{2k+1} = z_{2k+1} + b\,(z_{2k}^2 - 1)`.

    0-based coordinates, ``b = 0.8``; ``z`` is AR(1)-correlated (``rho = 0.8``) with sd 1 on the even
    coordinates (along the ridges) and 0.35 on the odd ones (across); an odd ``dim`` leaves the last
    coordinate unwarped. The map is triangular with unit diagonal, so ``log p(x) = log N(z)`` and the
    entropy is that of ``z``.

    Example:
        >>> sample_banana(2, dim=4)[0].shape
        torch.Size([2, 4])
    """
    _check_dim("banana", dim)
    z = _ar1_sample(n, dim, generator) * _banana_scales(dim)
    x = z.clone()
    x[:, 1::2] = z[:, 1::2] + _BANANA_B * (z[:, 0 : 2 * (dim // 2) : 2] ** 2 - 1)
    return x.float(), _labels(n)


def _banana_scales(dim: int) -> Tensor:
    scales = torch.ones(dim, dtype=torch.float64)
    scales[1::2] = _BANANA_SCALE
    return scales


def banana_log_prob(x: Tensor, dim: int = 8) -> Tensor:
    """Exact log-density of :func:`sample_banana` (explicit inverse ``z_{2k+1} = x_{2k+1} - b (x_{2k}^2 - 1)``)."""
    xd = x.double()
    dim = xd.shape[-1]
    z = xd.clone()
    z[..., 1::2] = xd[..., 1::2] - _BANANA_B * (xd[..., 0 : 2 * (dim // 2) : 2] ** 2 - 1)
    scales = _banana_scales(dim)
    return (_ar1_log_prob(z / scales) - torch.log(scales).sum()).to(x.dtype)


def banana_entropy(dim: int = 8) -> float:
    """Exact entropy of :func:`sample_banana` in nats (unit Jacobian: the entropy of ``z``)."""
    return _ar1_entropy(dim) + float(torch.log(_banana_scales(dim)).sum())


# -- multivariate Student-t: polynomial tails -------------------------------------------------------
_T_DF = 5.0


def sample_student_t(
    n: int, dim: int = 4, df: float = _T_DF, generator: Optional[torch.Generator] = None
) -> tuple[Tensor, Tensor]:
    r"""Multivariate Student-t with ``df`` degrees of freedom and AR(1) scale matrix: :math:`x = z / \sqrt{w/\nu}`.

    ``w ~ chi^2_df`` is a sum of ``df`` squared normals (``df`` an integer); labels are zeros.

    Example:
        >>> sample_student_t(3, dim=2)[0].shape
        torch.Size([3, 2])
    """
    _check_dim("student_t", dim)
    if int(df) != df or df < 1:
        raise ValueError(f"student_t: df must be a positive integer, got {df}")
    z = _ar1_sample(n, dim, generator)
    w = torch.randn(n, int(df), generator=generator, dtype=torch.float64).pow(2).sum(-1)  # chi^2_df
    return (z / torch.sqrt(w / df)[:, None]).float(), _labels(n)


def student_t_log_prob(x: Tensor, dim: int = 4, df: float = _T_DF) -> Tensor:
    r"""Exact log-density of :func:`sample_student_t`.

    .. math:: \log p(x) = \log\Gamma(\tfrac{\nu+D}{2}) - \log\Gamma(\tfrac{\nu}{2}) - \tfrac D2 \log(\nu\pi)
        - \tfrac12 \log|S| - \tfrac{\nu+D}{2} \log(1 + x^\top S^{-1} x / \nu)
    """
    xd = x.double()
    dim = xd.shape[-1]
    maha = -2 * (_ar1_log_prob(xd) + 0.5 * dim * math.log(2 * math.pi) + 0.5 * (dim - 1) * math.log(1 - _RHO**2))
    const = (
        math.lgamma((df + dim) / 2)
        - math.lgamma(df / 2)
        - 0.5 * dim * math.log(df * math.pi)
        - 0.5 * (dim - 1) * math.log(1 - _RHO**2)
    )
    return (const - 0.5 * (df + dim) * torch.log1p(maha / df)).to(x.dtype)


def student_t_entropy(dim: int = 4, df: float = _T_DF) -> float:
    r"""Exact entropy of :func:`sample_student_t`:
    :math:`-\log\Gamma(\frac{\nu+D}{2}) + \log\Gamma(\frac\nu2) + \frac D2\log(\nu\pi) + \frac12\log|S|
    + \frac{\nu+D}{2}(\psi(\frac{\nu+D}{2}) - \psi(\frac\nu2))`.
    """
    dg = torch.special.digamma(torch.tensor([(df + dim) / 2, df / 2], dtype=torch.float64))
    return (
        -math.lgamma((df + dim) / 2)
        + math.lgamma(df / 2)
        + 0.5 * dim * math.log(df * math.pi)
        + 0.5 * (dim - 1) * math.log(1 - _RHO**2)
        + 0.5 * (df + dim) * float(dg[0] - dg[1])
    )


# -- 1-D sets with bounded support ------------------------------------------------------------------
_GAMMA_MIX = ((0.6, 2, 4.0), (0.4, 9, 1.5))  # (weight, integer shape, rate)
_BETA_MIX = ((0.5, 2, 8), (0.5, 6, 2))  # (weight, a, b), integer a and b


def _gamma_int(shape: Tensor, u: Tensor) -> Tensor:
    """Gamma(k, 1) for integer shapes ``k`` (per element) as ``-sum log U`` over the first ``k`` of ``u (..., K)``."""
    keep = torch.arange(u.shape[-1]) < shape[..., None]
    return -torch.where(keep, torch.log(u), 0.0).sum(-1)


_MAX_SHAPE = 9


def _mix_sample(n: int, components, generator: Optional[torch.Generator]) -> tuple[Tensor, Tensor]:
    weights = torch.tensor([c[0] for c in components], dtype=torch.float64)
    k = torch.multinomial(weights, n, replacement=True, generator=generator)
    u = torch.rand(n, _MAX_SHAPE, generator=generator, dtype=torch.float64)
    shape = torch.tensor([c[1] for c in components])[k]
    rate = torch.tensor([c[2] for c in components], dtype=torch.float64)[k]
    return (_gamma_int(shape, u) / rate)[:, None].float(), k


def _mix_log_prob(x: Tensor, components, log_density) -> Tensor:
    xd = x.double()[..., 0]
    parts = torch.stack([math.log(c[0]) + log_density(c, xd) for c in components], -1)
    return torch.logsumexp(parts, -1).to(x.dtype)


def sample_gamma_mix(n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """1-D mixture on ``(0, inf)``: 0.6 Gamma(2, rate 4) + 0.4 Gamma(9, rate 1.5); labels = component.

    Example:
        >>> x, k = sample_gamma_mix(5)
        >>> x.shape, bool((x > 0).all())
        (torch.Size([5, 1]), True)
    """
    return _mix_sample(n, _GAMMA_MIX, generator)


def gamma_mix_log_prob(x: Tensor) -> Tensor:
    """Exact log-density of :func:`sample_gamma_mix` (``-inf`` at ``x <= 0``)."""

    def log_gamma(c, v: Tensor) -> Tensor:
        vp = v.clamp(min=1e-300)
        lp = c[1] * math.log(c[2]) - math.lgamma(c[1]) + (c[1] - 1) * torch.log(vp) - c[2] * vp
        return torch.where(v > 0, lp, -math.inf)

    return _mix_log_prob(x, _GAMMA_MIX, log_gamma)


def sample_beta_mix(n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """1-D mixture on ``(0, 1)``: 0.5 Beta(2, 8) + 0.5 Beta(6, 2); labels = component.

    Drawn as ``G_a / (G_a + G_b)`` with integer-shape Gamma variates (sums of exponentials).

    Example:
        >>> x, _ = sample_beta_mix(5)
        >>> bool(((x > 0) & (x < 1)).all())
        True
    """
    weights = torch.tensor([c[0] for c in _BETA_MIX], dtype=torch.float64)
    k = torch.multinomial(weights, n, replacement=True, generator=generator)
    u = torch.rand(n, 2, _MAX_SHAPE, generator=generator, dtype=torch.float64)
    ga = _gamma_int(torch.tensor([c[1] for c in _BETA_MIX])[k], u[:, 0])
    gb = _gamma_int(torch.tensor([c[2] for c in _BETA_MIX])[k], u[:, 1])
    return (ga / (ga + gb))[:, None].float().clamp(1e-7, 1 - 1e-7), k


def beta_mix_log_prob(x: Tensor) -> Tensor:
    """Exact log-density of :func:`sample_beta_mix` (``-inf`` outside ``(0, 1)``)."""

    def log_beta(c, v: Tensor) -> Tensor:
        inside = (v > 0) & (v < 1)
        vc = v.clamp(1e-300, 1 - 1e-16)
        lp = (
            (c[1] - 1) * torch.log(vc)
            + (c[2] - 1) * torch.log1p(-vc)
            + math.lgamma(c[1] + c[2])
            - math.lgamma(c[1])
            - math.lgamma(c[2])
        )
        return torch.where(inside, lp, -math.inf)

    return _mix_log_prob(x, _BETA_MIX, log_beta)


# -- the table ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExactSet:
    """One set of :data:`EXACT_SETS`: ``sample(n, generator=) -> (x, labels)``, ``log_prob(x)``, its dimension.

    ``kind`` says what makes it hard; ``support`` is ``None`` (all of R^D), ``"positive"`` or ``(low, high)``;
    ``exact_entropy`` is the closed-form entropy in nats where known, else None (use :func:`entropy`).
    """

    name: str
    dim: int
    sample: Callable[..., tuple[Tensor, Tensor]]
    log_prob: Callable[[Tensor], Tensor]
    kind: str
    support: Union[None, str, tuple[float, float]] = None
    exact_entropy: Optional[float] = None


def _with(fn: Callable, **kw) -> Callable:
    def bound(*args, **more):
        return fn(*args, **kw, **more)

    bound.__name__ = fn.__name__
    bound.__doc__ = fn.__doc__
    return bound


EXACT_SETS: dict[str, ExactSet] = {
    "8gaussians": ExactSet("8gaussians", 2, toy.sample_8gaussians, toy.eight_gaussians_log_prob, "separated modes"),
    "rings": ExactSet("rings", 2, toy.sample_rings, toy.rings_log_prob, "thin manifold (four rings)"),
    "2spirals": ExactSet("2spirals", 2, toy.sample_2spirals, toy.two_spirals_log_prob, "thin manifold (spirals)"),
    "pinwheel": ExactSet("pinwheel", 2, toy.sample_pinwheel, toy.pinwheel_log_prob, "thin curved arms"),
    "moons": ExactSet("moons", 2, toy.moons_with_labels, toy.moons_log_prob, "two noisy half circles"),
    "smiley": ExactSet("smiley", 2, toy.smiley_with_labels, toy.smiley_log_prob, "two eyes and a curved mouth"),
    "sas6": ExactSet("sas6", 6, _with(sample_sas, dim=6), _with(sas_log_prob, dim=6), "skew and heavy tails"),
    "banana16": ExactSet(
        "banana16",
        16,
        _with(sample_banana, dim=16),
        _with(banana_log_prob, dim=16),
        "warped correlated Gaussian (thin ridge), 16-D",
        exact_entropy=banana_entropy(16),
    ),
    "banana4": ExactSet(
        "banana4",
        4,
        _with(sample_banana, dim=4),
        _with(banana_log_prob, dim=4),
        "warped correlated Gaussian (thin ridge), 4-D",
        exact_entropy=banana_entropy(4),
    ),
    "student_t4": ExactSet(
        "student_t4",
        4,
        _with(sample_student_t, dim=4),
        _with(student_t_log_prob, dim=4),
        "polynomial tails (df 5)",
        exact_entropy=student_t_entropy(4),
    ),
    "gamma_mix": ExactSet(
        "gamma_mix", 1, sample_gamma_mix, gamma_mix_log_prob, "1-D bimodal, positive", support="positive"
    ),
    "beta_mix": ExactSet(
        "beta_mix", 1, sample_beta_mix, beta_mix_log_prob, "1-D bimodal on (0, 1)", support=(0.0, 1.0)
    ),
}


def entropy(name: str, n: int = 200_000, seed: int = 12345) -> tuple[float, float]:
    """The true entropy (nats, whole vector) of ``EXACT_SETS[name]`` and its standard error.

    Closed form where the set has one (standard error 0), else the Monte Carlo mean of ``-log p(x)``
    over ``n`` fresh draws.

    Example:
        >>> h, se = entropy("banana4")
        >>> se
        0.0
    """
    s = EXACT_SETS[name]
    if s.exact_entropy is not None:
        return s.exact_entropy, 0.0
    x, _ = s.sample(n, generator=torch.Generator().manual_seed(seed))
    nlp = -s.log_prob(x.double())
    return float(nlp.mean()), float(nlp.std() / math.sqrt(n))
