r"""Mixture-CDF transforms: elementwise (:class:`MixtureCDF`) and autoregressive with a MADE conditioner.

Direction (as every Flow transform): *forward* maps the latent to the data. For a mixture CDF the
latent is the CDF value ``u = F(x)`` in ``(0, 1)`` (or its logit ``z = logit F(x)`` with
``to_real=True``), so the forward pass is the quantile function, solved numerically by
:func:`monotone_solve`, and the inverse pass (data to latent, the density direction) is a closed form
``F(x)``. The log-determinants are those of the forward (quantile) map:

.. math::
    \log\left|\frac{dx}{du}\right| = -\log f(x), \qquad
    \log\left|\frac{dx}{dz}\right| = \log F(x) + \log(1 - F(x)) - \log f(x).

The solver works on the logit scale, ``g(x) = \log F(x) - \log S(x) - \text{logit}(u)`` with the
survival function ``S = 1 - F`` computed from the components' own survival functions, so both tails are
resolved to the precision of the latent value itself (in ``u``-space the upper tail holds only about
``1e-16`` of absolute resolution; in logit space both tails are exact).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import constraints

from ..nn.made import MADE
from .base import FlowTransform

__all__ = [
    "MixtureCDF",
    "MixtureCDFAutoregressive",
    "monotone_solve",
    "mixture_log_cdfs",
    "mixture_log_terms",
    "mixture_quantile",
]

FAMILIES = ("gaussian", "logistic")
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _default_tol(dtype: torch.dtype) -> float:
    return 1e-12 if dtype == torch.float64 else 1e-6


def _rtsafe_step(
    func: Callable[[Tensor, Optional[Tensor]], tuple[Tensor, Tensor]],
    t: Tensor,
    x: Tensor,
    lo: Tensor,
    hi: Tensor,
    step_old: Tensor,
    index: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One safeguarded Newton/bisection step on the elements ``index`` (None: all): ``(x, lo, hi, |step|)``."""
    g, dg = func(x, index)
    g = g - t
    lo = torch.where(g < 0, x, lo)
    hi = torch.where(g > 0, x, hi)
    newton = x - g / dg
    use_newton = torch.isfinite(newton) & (newton >= lo) & (newton <= hi) & ((2 * g).abs() <= (step_old * dg).abs())
    x_new = torch.where(g == 0, x, torch.where(use_newton, newton, 0.5 * (lo + hi)))
    return x_new, lo, hi, (x_new - x).abs()


def _solve_traced(
    func: Callable[[Tensor, Optional[Tensor]], tuple[Tensor, Tensor]],
    t: Tensor,
    lo: Tensor,
    hi: Tensor,
    x: Tensor,
    step_old: Tensor,
    tol: float,
    max_iter: int,
) -> Tensor:
    """:func:`monotone_solve`'s loop as one ``while_loop`` for ``torch.compile`` (no data-dependent shapes):
    every element steps until all have converged or ``max_iter`` is reached."""
    from torch._higher_order_ops.while_loop import while_loop

    def cond(i: Tensor, x: Tensor, lo: Tensor, hi: Tensor, step_old: Tensor, done: Tensor) -> Tensor:
        return (i < max_iter) & ~done

    def body(i: Tensor, x: Tensor, lo: Tensor, hi: Tensor, step_old: Tensor, done: Tensor) -> tuple[Tensor, ...]:
        x_new, lo, hi, step = _rtsafe_step(func, t, x, lo, hi, step_old)
        return i + 1, x_new, lo, hi, step, (step <= tol * (1 + x_new.abs())).all()

    start = (
        torch.zeros((), dtype=torch.long, device=x.device),
        x,
        lo,
        hi,
        step_old,
        torch.zeros((), dtype=torch.bool, device=x.device),
    )
    return while_loop(cond, body, start)[1]


def monotone_solve(
    func: Callable[[Tensor, Optional[Tensor]], tuple[Tensor, Tensor]],
    target: Tensor,
    lo: Tensor,
    hi: Tensor,
    tol: Optional[float] = None,
    max_iter: int = 100,
    x0: Optional[Tensor] = None,
) -> Tensor:
    r"""Solves ``g(x) = target`` elementwise for an increasing ``g`` by safeguarded Newton/bisection.

    .. math:: x_{n+1} = x_n - \frac{g(x_n) - t}{g'(x_n)} \text{ if inside } [lo_n, hi_n] \text{ and at most half
        the previous step, else } \frac{lo_n + hi_n}{2}

    The bracket ``[lo, hi]`` (which must contain the root) shrinks at every iteration, so the method
    converges like bisection at worst and like Newton near the root ("rtsafe"). All elements are solved
    together, with no Python loop over elements; an element stops once its step is below
    ``tol * (1 + |x|)``, and later iterations evaluate ``g`` only on the elements still moving. The
    loop ends when all have converged or after ``max_iter`` iterations. Runs without gradient: callers
    add one differentiable Newton step at the root (implicit-function gradients).

    Args:
        func: ``(x, index) -> (g(x), g'(x))`` on a flat vector of values; ``index`` is None for all
            elements (in the flattened broadcast shape) or the flat indices of the values passed.
        target: the right-hand side ``t``.
        lo, hi: a bracket of the root (broadcastable with ``target``).
        tol: relative step tolerance (default ``1e-12`` in float64, ``1e-6`` otherwise).
        max_iter: iteration cap.
        x0: starting point inside the bracket (default: its midpoint).

    References:
        Press et al., Numerical Recipes, "rtsafe" (Newton-Raphson with bisection).

    Example:
        >>> t = torch.tensor([-3.0, 0.5, 8.0], dtype=torch.float64)
        >>> lo, hi = t.new_full((3,), -9.0), t.new_full((3,), 9.0)
        >>> x = monotone_solve(lambda x, i: (x**3 + x, 3 * x**2 + 1), t, lo, hi)
        >>> torch.allclose(x**3 + x, t)
        True
    """
    tol = _default_tol(target.dtype) if tol is None else tol
    with torch.no_grad():
        shape = torch.broadcast_shapes(target.shape, lo.shape, hi.shape)
        t = target.expand(shape).reshape(-1)
        lo, hi = lo.expand(shape).reshape(-1), hi.expand(shape).reshape(-1)
        x = 0.5 * (lo + hi) if x0 is None else torch.minimum(torch.maximum(x0.expand(shape).reshape(-1), lo), hi)
        x = x.clone()
        step_old = hi - lo
        index: Optional[Tensor] = None  # None: every element is still active
        xa = x
        if torch.compiler.is_compiling():
            return _solve_traced(func, t, lo, hi, x, hi - lo, tol, max_iter).reshape(shape)
        for _ in range(max_iter):
            x_new, lo, hi, step = _rtsafe_step(func, t, xa, lo, hi, step_old, index)
            if index is None:
                x = x_new
            else:
                x.index_copy_(0, index, x_new)
            active = step > tol * (1 + x_new.abs())
            if not bool(active.any()):
                break
            keep = active.nonzero().squeeze(-1)
            index = keep if index is None else index[keep]
            xa, t, lo, hi, step_old = x_new[keep], t[keep], lo[keep], hi[keep], step[keep]
    return x.reshape(shape)


def _params(raw: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Splits ``(..., 3K)`` raw parameters into log-weights, locations and log-scales (scale >= 1e-3)."""
    logits, loc, raw_scale = raw.chunk(3, dim=-1)
    log_w = torch.log_softmax(logits, -1)
    # softplus(x + 0.5413) = 1 at x = 0; the floor keeps components from collapsing onto points.
    log_scale = torch.log(F.softplus(raw_scale + 0.5413) + 1e-3)
    return log_w, loc, log_scale


def mixture_log_cdfs(
    x: Tensor, log_w: Tensor, loc: Tensor, log_scale: Tensor, family: str = "gaussian"
) -> tuple[Tensor, Tensor, Tensor]:
    r"""``(log F(x), log S(x), log f(x))`` of a K-component mixture, elementwise (components in the last dim).

    .. math:: F(x) = \sum_k w_k \Phi\left(\frac{x - \mu_k}{s_k}\right), \qquad
        S(x) = \sum_k w_k \Phi\left(-\frac{x - \mu_k}{s_k}\right)

    (``\Phi`` the standard normal or logistic CDF). Every term is computed on the log scale, so the
    values are accurate far in both tails.

    Example:
        >>> z = torch.zeros(1, 1, dtype=torch.float64)
        >>> [round(v.exp().item(), 4) for v in mixture_log_cdfs(torch.zeros(1, dtype=torch.float64), z, z, z)]
        [0.5, 0.5, 0.3989]
    """
    z = (x.unsqueeze(-1) - loc) * torch.exp(-log_scale)
    if family == "gaussian":
        log_cdf, log_sf = torch.special.log_ndtr(z), torch.special.log_ndtr(-z)
        log_pdf = -0.5 * z * z - _LOG_SQRT_2PI - log_scale
    elif family == "logistic":
        log_cdf, log_sf = F.logsigmoid(z), F.logsigmoid(-z)
        log_pdf = log_cdf + log_sf - log_scale
    else:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return (
        torch.logsumexp(log_w + log_cdf, -1),
        torch.logsumexp(log_w + log_sf, -1),
        torch.logsumexp(log_w + log_pdf, -1),
    )


def _logit_clamp(dtype: torch.dtype) -> float:
    # Largest |logit| whose sigmoid (and the normal quantile of it) stays finite and normal: below it
    # the standard normal quantile comes from ``ndtri``, beyond it from a certified bracket.
    return 700.0 if dtype == torch.float64 else 80.0


def _logit_bound(dtype: torch.dtype) -> float:
    # Where an infinite logit target is clamped to (the best finite answer): large enough that no
    # finite latent a flow produces is ever touched, small enough that the bracket ``sqrt(2 |t|)`` and
    # its square stay finite.
    return math.sqrt(torch.finfo(dtype).max) / 4


def _std_normal_logit_quantile_bracket(t: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(lo, hi)`` with ``lo <= \Phi^{-1}(\sigma(t)) <= hi``, for every logit ``t`` (exact where ``|t|`` is moderate).

    For ``|t|`` below :func:`_logit_clamp` both are ``ndtri(sigmoid(t))`` (computed on the smaller
    tail). Beyond it (where ``sigmoid`` would underflow) the Mills-ratio bounds
    ``\phi(a)/(2a) \le \Phi(-a) \le \phi(a)/a`` (``a \ge 1``) give, with ``L = -2 \log \sigma(-|t|)``,

    .. math:: \sqrt{L - 2\log(2\sqrt{2\pi L})} \le |\Phi^{-1}(\sigma(t))| \le \sqrt{L},

    a bracket of relative width about ``\log(L) / L`` that holds for any finite ``t``.
    """
    a = t.abs()
    small = a < _logit_clamp(t.dtype)
    a_small = torch.where(small, a, torch.zeros_like(a))
    exact = -torch.special.ndtri(torch.sigmoid(-a_small))  # >= 0: the quantile of sigmoid(|t|)
    big_l = -2 * F.logsigmoid(-torch.where(small, torch.full_like(a, 1e3), a))  # L >= 2 * 80
    outer = big_l.sqrt()
    inner = (big_l - 2 * torch.log(2 * math.sqrt(2 * math.pi) * outer)).sqrt()
    q_lo, q_hi = torch.where(small, exact, inner), torch.where(small, exact, outer)  # bounds of |quantile|
    neg = t < 0
    return torch.where(neg, -q_hi, q_lo), torch.where(neg, -q_lo, q_hi)


def mixture_log_terms(
    x: Tensor, log_w: Tensor, loc: Tensor, log_scale: Tensor, family: str = "gaussian"
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Same values as :func:`mixture_log_cdfs`, computed in probability space where that is exact.

    .. math:: \log F(x) = \log \sum_k w_k \Phi(z_k), \quad \log S(x) = \log \sum_k w_k \Phi(-z_k), \quad
        \log f(x) = \log \sum_k \frac{w_k}{s_k} \phi(z_k)

    Sums of positive terms keep full relative precision until they underflow, and are several times
    cheaper than log-space sums (no ``log_ndtr``, no ``logsumexp``); the few elements where ``F``,
    ``S`` or ``f`` underflow (far tails) are recomputed on the log scale by :func:`mixture_log_cdfs`.
    Differentiable, and never NaN in the gradient (the underflowed branch is masked before the log).

    Example:
        >>> z = torch.zeros(1, 2, dtype=torch.float64)
        >>> x = torch.tensor([-50.0, 0.0, 50.0], dtype=torch.float64)
        >>> all(torch.allclose(a, b) for a, b in zip(mixture_log_terms(x, z, z, z), mixture_log_cdfs(x, z, z, z)))
        True
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    return _log_terms(x, torch.exp(log_w), loc, torch.exp(-log_scale), log_w, log_scale, family)


def _log_terms(
    x: Tensor, w: Tensor, loc: Tensor, inv_scale: Tensor, log_w: Tensor, log_scale: Tensor, family: str
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`mixture_log_terms` with the weights and inverse scales precomputed (the solver's inner loop)."""
    z = (x.unsqueeze(-1) - loc) * inv_scale
    if family == "gaussian":
        half = z * (1 / math.sqrt(2))
        # One erfc of |z|: the smaller tail is exact, the larger one is 1 - tail (no cancellation there).
        tail = 0.5 * torch.special.erfc(half.abs())
        lower = half < 0
        cdf, sf = torch.where(lower, tail, 1 - tail), torch.where(lower, 1 - tail, tail)
        pdf = torch.exp(-half * half) * (1 / math.sqrt(2 * math.pi))
    else:
        cdf, sf = torch.sigmoid(z), torch.sigmoid(-z)
        pdf = cdf * sf
    sums = ((w * cdf).sum(-1), (w * sf).sum(-1), (w * inv_scale * pdf).sum(-1))
    tiny = 1e-280 if x.dtype == torch.float64 else 1e-30
    bad = (sums[0] < tiny) | (sums[1] < tiny) | (sums[2] < tiny)
    out = tuple(torch.log(torch.where(bad, torch.ones_like(v), v)) for v in sums)
    if torch.compiler.is_compiling():  # no data-dependent branch in a graph: the log-scale values everywhere
        exact = mixture_log_cdfs(x, log_w, loc, log_scale, family)
        return tuple(torch.where(bad, e, o) for o, e in zip(out, exact))  # type: ignore[return-value]
    if bool(bad.any()):
        shape = bad.shape + loc.shape[-1:]
        exact = mixture_log_cdfs(
            x.expand(bad.shape)[bad],
            log_w.expand(shape)[bad],
            loc.expand(shape)[bad],
            log_scale.expand(shape)[bad],
            family,
        )
        out = tuple(o.masked_scatter(bad, e) for o, e in zip(out, exact))
    return out  # type: ignore[return-value]


def _slope(log_cdf: Tensor, log_sf: Tensor, log_pdf: Tensor) -> Tensor:
    """d/dx of logit F(x) = f/F + f/S."""
    return torch.exp(log_pdf - log_cdf) + torch.exp(log_pdf - log_sf)


def _quantile(
    target_logit: Tensor,
    log_w: Tensor,
    loc: Tensor,
    log_scale: Tensor,
    family: str,
    tol: Optional[float] = None,
    max_iter: int = 100,
) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
    """The mixture quantile and ``(log F, log S, log f)`` at it (see :func:`mixture_quantile`)."""
    # Only infinite targets are clamped (see mixture_quantile); every finite logit is solved exactly.
    bound = _logit_bound(target_logit.dtype)
    t = target_logit.clamp(-bound, bound)
    with torch.no_grad():
        td = t.detach().unsqueeze(-1)
        if family == "gaussian":
            std_lo, std_hi = _std_normal_logit_quantile_bracket(td)
        else:
            std_lo = std_hi = td  # the standard logistic quantile of sigmoid(t) is t itself
        scale = torch.exp(log_scale.detach())
        q_lo, q_hi = loc.detach() + scale * std_lo, loc.detach() + scale * std_hi
        # The mixture quantile lies between the smallest and the largest component quantile.
        lo, hi = q_lo.min(-1).values, q_hi.max(-1).values
        q = 0.5 * (q_lo + q_hi)
        pad = 1e-3 * (hi - lo) + 1e-6 * (1 + lo.abs() + hi.abs())
        k = loc.shape[-1]
        lw, ls = log_w.detach(), log_scale.detach()
        flat = [p.expand(lo.shape + (k,)).reshape(-1, k) for p in (lw.exp(), loc.detach(), (-ls).exp(), lw, ls)]

        def solver_func(params: list[Tensor]) -> Callable[[Tensor, Optional[Tensor]], tuple[Tensor, Tensor]]:
            def func(x: Tensor, index: Optional[Tensor]) -> tuple[Tensor, Tensor]:
                terms = _log_terms(x, *(params if index is None else [p[index] for p in params]), family)
                return terms[0] - terms[1], _slope(*terms)

            return func

        # Start from the weight-averaged component quantiles (inside the bracket).
        x0 = (torch.exp(lw) * q).sum(-1)
        td = t.detach()
        if td.dtype == torch.float64 and not torch.compiler.is_compiling():
            # Warm start in float32 (about twice as fast per element), where its range allows; float64
            # then needs about two Newton steps from there, with the same exact bracket as a safeguard.
            ok = td.abs() < 1e30  # representable in float32 (the solver is exact on the logit scale)
            x32 = monotone_solve(
                solver_func([p.float() for p in flat]),
                td.float(),
                (lo - pad).float(),
                (hi + pad).float(),
                1e-5,
                max_iter,
                x0.float(),
            )
            x0 = torch.where(ok & torch.isfinite(x32), x32.double(), x0)
            # From a float32 root, one accepted Newton step of <= 1e-6 leaves an error of order 1e-12
            # (quadratic convergence), and the differentiable step below squares it again.
            if tol is None:
                tol = 1e-6
        root = monotone_solve(solver_func(flat), td, lo - pad, hi + pad, tol, max_iter, x0)
    # One differentiable Newton step at the root: the value barely moves, the gradient is the implicit
    # one (with respect to the target and the mixture parameters).
    terms = mixture_log_terms(root, log_w, loc, log_scale, family)
    x = root - (terms[0] - terms[1] - t) / _slope(*terms)
    if torch.is_grad_enabled():
        terms = mixture_log_terms(x, log_w, loc, log_scale, family)  # log-det differentiable through x too
    return x, terms


def mixture_quantile(
    target_logit: Tensor,
    log_w: Tensor,
    loc: Tensor,
    log_scale: Tensor,
    family: str = "gaussian",
    tol: Optional[float] = None,
    max_iter: int = 100,
) -> Tensor:
    r"""Solves ``logit F(x) = target_logit`` for ``x`` (the mixture's quantile), differentiably.

    The bracket is exact: the mixture quantile lies between the smallest and largest component
    quantile, ``\min_k q_k(u) \le F^{-1}(u) \le \max_k q_k(u)`` (for Gaussian components with
    ``|target_logit|`` beyond where ``sigmoid`` underflows, the component quantiles are bracketed by
    Mills-ratio bounds instead). The root is found by :func:`monotone_solve` on the logit scale
    (accurate in both tails, for every finite target a flow produces: no clamp at +-80 / +-700, where
    ``sigmoid`` underflows); one differentiable Newton step at the root then gives gradients with respect
    to the target and the mixture parameters (implicit function theorem). The result satisfies
    ``|x - x_hat| < 1e-6 (1 + |x|)`` in float64 and ``1e-4 (1 + |x|)`` in float32, far tails included,
    within the fixed iteration cap.

    Numerically unreachable inputs give the best finite answer, never NaN: a target beyond
    ``+-sqrt(finfo.max) / 4`` (an infinite one, say) is clamped to it, and the layers map a latent
    ``u`` of exactly 0 or 1 to its nearest float inside ``(0, 1)`` first. A NaN target stays NaN.

    Example:
        >>> z = torch.zeros(1, 1, dtype=torch.float64)
        >>> t = torch.tensor([-30.0, 0.0, 30.0], dtype=torch.float64)
        >>> x = mixture_quantile(t, z, z, z)
        >>> torch.allclose(mixture_log_cdfs(x, z, z, z)[0] - mixture_log_cdfs(x, z, z, z)[1], t)
        True
    """
    return _quantile(target_logit, log_w, loc, log_scale, family, tol, max_iter)[0]


def _log_det(terms: tuple[Tensor, Tensor, Tensor], to_real: bool) -> Tensor:
    """Forward log|dx/dlatent| from ``(log F, log S, log f)``."""
    log_cdf, log_sf, log_pdf = terms
    return log_cdf + log_sf - log_pdf if to_real else -log_pdf


def _latent_from_data(
    x: Tensor, log_w: Tensor, loc: Tensor, log_scale: Tensor, family: str, to_real: bool
) -> tuple[Tensor, Tensor]:
    """``(latent, forward log|dx/dlatent|)`` elementwise."""
    terms = mixture_log_terms(x, log_w, loc, log_scale, family)
    latent = terms[0] - terms[1] if to_real else torch.exp(terms[0])
    return latent, _log_det(terms, to_real)


def _target_logit(latent: Tensor, to_real: bool) -> Tensor:
    """The logit of the latent CDF value; ``u`` of exactly 0 or 1 becomes its nearest interior float."""
    if to_real:
        return latent
    one, zero = torch.ones((), dtype=latent.dtype), torch.zeros((), dtype=latent.dtype)
    u = latent.clamp(torch.nextafter(zero, one).item(), torch.nextafter(one, zero).item())
    return torch.log(u) - torch.log1p(-u)


def _check_family(family: str, num_components: int) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if num_components < 1:
        raise ValueError(f"num_components must be >= 1, got {num_components}")


#: :class:`MixtureCDF` stores its free parameters divided by this, so one Adam step (about ``lr`` in stored
#: units) moves the weights, locations and scales this many times as far. Free parameters see one gradient
#: per step, unlike a conditioner's output, which every input weight moves: under a plain Adam loop
#: (lr 1e-3, 2,000 steps) the 1-D ``ar_flow`` stopped 0.029-0.037 nats short of ``gamma_mix``'s entropy
#: (paired, 3 seeds), 0.003-0.004 with the factor 5 (benchmarks/RESULTS.md, issue 15).
FREE_PARAM_STEP = 5.0


class MixtureCDF(FlowTransform):
    r"""Elementwise mixture-CDF transform: each entry's latent is the CDF of its own K-component mixture.

    .. math::
        u_d = F_d(x_d) = \sum_k w_{dk}\, \Phi\!\left(\frac{x_d - \mu_{dk}}{s_{dk}}\right), \qquad
        \log\left|\det \frac{\partial x}{\partial u}\right| = -\sum_d \log f_d(x_d)

    Forward (latent ``u`` in ``(0, 1)^D`` to data) is the quantile function, solved by
    :func:`mixture_quantile` to ``|x - \hat x| < 10^{-6}`` in float64 for every input, tails included;
    inverse (data to latent) is the closed-form CDF. With ``to_real=True`` the latent is
    ``logit(u)`` (use a logistic base), so the layer stacks with other layers. The parameters ``raw``
    (``(D, 3K)``: logits, locations, raw scales) are stored divided by :data:`FREE_PARAM_STEP` (5), so a
    plain Adam loop moves them that much faster.

    Args:
        dim: vector size ``D`` (event_dim is 1: the log-det is summed over the vector).
        num_components: mixture size ``K``.
        family: ``"gaussian"`` or ``"logistic"`` components.
        to_real: latent on the logit scale instead of ``(0, 1)``.

    References:
        Ho, Chen, Srinivas, Duan, Abbeel, "Flow++", arXiv:1902.00275 (mixture-CDF couplings);
        Chen, Ho, Jain, ..., "Mixture-CDF flows" as in the Berkeley CS294-158 deep unsupervised
        learning course; Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and
        Inference", arXiv:1912.02762.

    Example:
        >>> t = MixtureCDF(2, num_components=3).double()
        >>> u = torch.tensor([[1e-12, 0.5]], dtype=torch.float64)
        >>> torch.allclose(t.inv(t(u)), u)
        True
    """

    def __init__(self, dim: int, num_components: int = 4, family: str = "gaussian", to_real: bool = False) -> None:
        super().__init__(event_dim=1)
        _check_family(family, num_components)
        self.dim, self.num_components, self.family, self.to_real = dim, num_components, family, to_real
        if not to_real:
            self.domain = constraints.independent(constraints.unit_interval, 1)
        grid = torch.linspace(-2.0, 2.0, num_components) if num_components > 1 else torch.zeros(1)
        zeros = torch.zeros(dim, num_components)
        self.raw = nn.Parameter(torch.cat([zeros, grid.expand(dim, num_components), zeros], -1) / FREE_PARAM_STEP)

    def _mixture(self) -> tuple[Tensor, Tensor, Tensor]:
        return _params(self.raw * FREE_PARAM_STEP)

    def forward_and_log_det(self, u: Tensor) -> tuple[Tensor, Tensor]:
        log_w, loc, log_scale = self._mixture()
        x, terms = _quantile(_target_logit(u, self.to_real), log_w, loc, log_scale, self.family)
        return x, _log_det(terms, self.to_real).sum(-1)

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u, log_det = _latent_from_data(x, *self._mixture(), self.family, self.to_real)
        return u, log_det.sum(-1)


class MixtureCDFAutoregressive(FlowTransform):
    r"""Autoregressive mixture-CDF flow: a MADE emits each dimension's mixture from the dimensions before it.

    .. math::
        u_d = F(x_d \mid x_{<d}) = \sum_k w_k(x_{<d})\, \Phi\!\left(\frac{x_d - \mu_k(x_{<d})}{s_k(x_{<d})}\right),
        \qquad \log p(x) = \sum_d \log f(x_d \mid x_{<d}) \text{ (uniform latent)}

    Data to latent (``inverse``, the density direction) is one parallel MADE pass; latent to data
    (``forward``, sampling) is ``D`` passes, each solving one coordinate's quantile with
    :func:`mixture_quantile`. The first dimension's mixture depends on nothing (the MADE's bias).
    The latent is ``Uniform(0, 1)^D`` (use :class:`~pyro_flowzoo.StandardUniform`); with
    ``to_real=True`` it is ``logit(u)`` under a logistic base, so layers stack.

    Args:
        dim: vector size ``D >= 2``.
        num_components: mixture size ``K`` per dimension.
        hidden_dims: MADE hidden sizes (each >= D).
        family: ``"gaussian"`` or ``"logistic"``.
        to_real: logit latent instead of ``(0, 1)``.
        reverse: condition each entry on the entries after it (``x_{>d}``; the Jacobian is upper
            triangular), so alternating layers need no permutation between them.

    References:
        Germain et al., "MADE", arXiv:1502.03509; Papamakarios, Pavlakou, Murray, "Masked Autoregressive
        Flow for Density Estimation", arXiv:1705.07057 (MADE-MoG); Ho et al., "Flow++", arXiv:1902.00275.

    Example:
        >>> t = MixtureCDFAutoregressive(2, num_components=3, hidden_dims=(8,)).double()
        >>> u = torch.rand(4, 2, dtype=torch.float64)
        >>> torch.allclose(t.inv(t(u)), u)
        True
    """

    def __init__(
        self,
        dim: int,
        num_components: int = 8,
        hidden_dims: Optional[Sequence[int]] = None,
        family: str = "gaussian",
        to_real: bool = False,
        reverse: bool = False,
    ) -> None:
        super().__init__(event_dim=1)
        _check_family(family, num_components)
        self.dim, self.num_components, self.family, self.to_real = dim, num_components, family, to_real
        self.reverse = reverse
        if not to_real:
            self.domain = constraints.independent(constraints.unit_interval, 1)
        self.made = MADE(dim, 3 * num_components, hidden_dims, reverse=reverse)
        with torch.no_grad():  # spread the initial components so they are not all alike
            grid = torch.linspace(-2.0, 2.0, num_components) if num_components > 1 else torch.zeros(1)
            self.made.output_bias[:, num_components : 2 * num_components] = grid

    def _mixture(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return _params(self.made(x))

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u, log_det = _latent_from_data(x, *self._mixture(x), self.family, self.to_real)
        return u, log_det.sum(-1)

    def forward_and_log_det(self, u: Tensor) -> tuple[Tensor, Tensor]:
        return mixture_ar_sample(self.made, u, self.made.order, self.family, self.to_real, first_row=True)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_components={self.num_components}, family={self.family!r}, "
            f"to_real={self.to_real}, reverse={self.reverse}"
        )


def mixture_ar_sample(
    conditioner: Callable[[Tensor], Tensor],
    u: Tensor,
    order: Sequence[int],
    family: str,
    to_real: bool,
    first_row: bool = False,
) -> tuple[Tensor, Tensor]:
    """The sampling direction of an autoregressive mixture-CDF flow: ``D`` conditioner passes and quantile solves.

    ``conditioner(x)`` gives the raw mixture parameters ``(..., D, 3K)``; entries not yet solved are
    placeholders its output ``d`` ignores. ``first_row``: the first solved dimension depends on nothing, so
    one row of input serves the whole batch (not for conditioners that also read a batched context).
    Returns ``(x, log|det dx/du|)``.
    """
    target = _target_logit(u, to_real)
    x = torch.zeros_like(u)
    log_det = u.new_zeros(u.shape[:-1])
    for i, d in enumerate(order):
        net_in = u.new_zeros((1,) * (u.dim() - 1) + u.shape[-1:]) if first_row and i == 0 else x
        log_w, loc, log_scale = _params(conditioner(net_in)[..., d, :])
        x_d, terms = _quantile(target[..., d], log_w, loc, log_scale, family)
        x = torch.cat([x[..., :d], x_d.unsqueeze(-1), x[..., d + 1 :]], -1)
        log_det = log_det + _log_det(terms, to_real)
    return x, log_det
