r"""Rational-quadratic neural spline flows (autoregressive and coupling), with identity or linear tails.

A monotone rational-quadratic spline maps ``[-B, B]`` onto itself through ``K`` bins whose widths,
heights and inner-knot derivatives come from a conditioner. Outside ``[-B, B]`` it is either the identity
with log-det 0 (``tails="identity"``: the boundary derivatives are pinned to 1, so the map is C^1), or
linear with the learned boundary derivatives as slopes (``tails="linear"``: ``K + 1`` derivatives, the
two end ones also the slopes of the tails, so the map is C^1 and the tails can widen or narrow the data
that lies outside the interval).

Pyro's helper ``pyro.distributions.transforms.spline._monotonic_rational_spline`` computes the same
spline, but evaluates the formula on out-of-interval inputs before overwriting them (NaN there can leak
into gradients), asserts a non-negative discriminant in the inverse (rounding can break that in
float32), and pins the boundary slopes at 0.999 rather than 1 (a kink where the identity tails start).
:func:`rational_quadratic_spline` clamps the inputs into the interval before any arithmetic,
selects the identity outside with ``torch.where`` (zero gradient, never NaN), clamps the
discriminant at 0, and pins the boundary slopes at exactly 1 (C^1 into the tails).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..nn.made import MADE
from ..nn.mlp import MLP
from .base import FixedMask, FlowTransform, one_of
from .coupling import bound_input

__all__ = [
    "NeuralSplineAutoregressive",
    "NeuralSplineCoupling",
    "rational_quadratic_spline",
    "spline_params",
    "initial_bin_logits",
    "TAILS",
    "KNOTS",
]

#: The tail kinds of :func:`rational_quadratic_spline`.
TAILS = ("identity", "linear")

#: Where a fresh spline layer puts its knots (:func:`initial_bin_logits`).
KNOTS = ("uniform", "centered")

MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3
# softplus(x + _DERIV_SHIFT) + MIN_DERIVATIVE = 1 at x = 0: a zero conditioner output is the identity.
_DERIV_SHIFT = math.log(math.expm1(1 - MIN_DERIVATIVE))


def _knots(raw: Tensor, bound: float) -> Tensor:
    """The ``K + 1`` knot positions on ``[-B, B]``, end points exact (pads: their backward is a view)."""
    num_bins = raw.shape[-1]
    sizes = MIN_BIN + (1 - MIN_BIN * num_bins) * torch.softmax(raw, -1)
    inner = torch.cumsum(sizes[..., :-1], -1) * (2 * bound) - bound
    return F.pad(F.pad(inner, (1, 0), value=-bound), (0, 1), value=bound)


def initial_bin_logits(num_bins: int, bound: float, knots: str = "uniform") -> Tensor:
    r"""Raw bin logits that place a fresh spline's knots; width and height logits both take them.

    With equal widths and heights and unit knot derivatives the spline is the identity wherever its knots
    sit, so the choice only sets where a new layer has resolution:

    - ``"uniform"``: ``K`` equal bins on ``[-B, B]`` (zero logits).
    - ``"centered"``: equal-mass bins of the half-and-half mixture of ``U(-B, B)`` and ``N(0, 1)`` truncated
      to ``[-B, B]``: for standardized data (the data-side ``FirstBatchNorm``) the bins are finest where the
      mass is (8 bins on ``[-5, 5]``: edges at 0, +-0.52, +-1.18, +-2.55, +-5 instead of every 1.25), and the
      outer bins still reach ``[-B, B]``. Measured for the 2-D builders (RESULTS.md, issue 15): thin rings and
      spirals gain (``nsf_ar`` on ``rings`` +0.387 -> +0.269, ``2spirals`` +0.147 -> +0.091, worst of 3
      seeds), smooth sets lose a
      little, and from ``D = 4`` on it costs (``sas6`` +0.026 -> +0.036), so only the 2-D ``nsf_ar`` and
      ``nsf_coupling`` use it by default.

    Returns a ``(K,)`` tensor ``r`` with ``MIN_BIN + (1 - K MIN_BIN) softmax(r)`` the chosen bin fractions.

    Example:
        >>> initial_bin_logits(4, 5.0).tolist()
        [0.0, 0.0, 0.0, 0.0]
        >>> w = initial_bin_logits(8, 5.0, "centered").softmax(-1)
        >>> bool(w[3] < w[2] < w[1] < w[0]), round(float(w.sum()), 6)
        (True, 1.0)
    """
    if one_of("knots", knots, KNOTS) == "uniform":
        return torch.zeros(num_bins)
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    lo = normal.cdf(torch.tensor(-bound, dtype=torch.float64))
    mass = 1 - 2 * lo

    def cdf(x: Tensor) -> Tensor:
        return 0.5 * (x + bound) / (2 * bound) + 0.5 * (normal.cdf(x) - lo) / mass

    # Bisection for the inner edges (the mixture CDF is increasing; 60 halvings reach float64 resolution).
    targets = torch.arange(1, num_bins, dtype=torch.float64) / num_bins
    a, b = torch.full_like(targets, -bound), torch.full_like(targets, bound)
    for _ in range(60):
        mid = (a + b) / 2
        below = cdf(mid) < targets
        a, b = torch.where(below, mid, a), torch.where(below, b, mid)
    edges = torch.cat([targets.new_tensor([-bound]), (a + b) / 2, targets.new_tensor([bound])])
    fractions = (edges[1:] - edges[:-1]) / (2 * bound)
    # softmax(r) = (fraction - MIN_BIN) / (1 - K MIN_BIN); an outer bin narrower than 2 MIN_BIN (many bins on a
    # wide interval) is widened to 2 MIN_BIN and the rest renormalised, so the logits stay finite.
    shares = (fractions - MIN_BIN).clamp_min(MIN_BIN)
    return (shares / shares.sum()).log().to(torch.get_default_dtype())


def _place_knots(bias: Tensor, num_bins: int, bound: float, knots: str) -> None:
    """Writes :func:`initial_bin_logits` into the width and height slots of a ``(..., 3K +- 1)`` output bias."""
    logits = initial_bin_logits(num_bins, bound, knots)
    with torch.no_grad():
        bias[..., :num_bins] += logits.to(bias)
        bias[..., num_bins : 2 * num_bins] += logits.to(bias)


def rational_quadratic_spline(
    inputs: Tensor,
    raw_widths: Tensor,
    raw_heights: Tensor,
    raw_derivatives: Tensor,
    inverse: bool = False,
    bound: float = 5.0,
) -> tuple[Tensor, Tensor]:
    r"""Monotone rational-quadratic spline on ``[-B, B]``, identity or linear outside; returns ``(y, log|dy/dx|)``.

    .. math::
        y = y_k + \frac{h_k\,(\delta_k \theta^2 + d_k \theta(1-\theta))}{\delta_k + (d_k + d_{k+1} - 2\delta_k)
        \theta(1-\theta)}, \qquad \theta = \frac{x - x_k}{w_k}, \quad \delta_k = \frac{h_k}{w_k};
        \qquad y = \pm B + d_{0|K}\,(x \mp B) \ \text{outside}

    The tails follow from the number of derivatives given: ``K - 1`` (inner knots only) pins the
    boundary derivatives ``d_0 = d_K = 1`` and the map is the identity outside, with log-det 0; ``K + 1``
    learns ``d_0`` and ``d_K`` too, and the map is linear outside with those slopes (log-det
    ``log d_0`` below, ``log d_K`` above). Either way it is C^1, monotone and maps the outside onto the outside.

    Args:
        inputs: values, shape ``(...)``.
        raw_widths, raw_heights: unnormalised bin sizes ``(..., K)`` (softmax, each at least 1e-3 of the range).
        raw_derivatives: unnormalised knot derivatives (softplus; 0 gives slope 1), ``(..., K - 1)`` for
            identity tails or ``(..., K + 1)`` for linear tails.
        inverse: evaluate the inverse spline (the log-det returned is then ``log|dx/dy|``).
        bound: ``B``, the end of the interval the bins cover.

    References:
        Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", arXiv:1906.04032.

    Example:
        >>> x = torch.tensor([-100.0, 0.3, 100.0])
        >>> y, ld = rational_quadratic_spline(x, torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 3))
        >>> y[0].item(), y[2].item(), ld[0].item()
        (-100.0, 100.0, 0.0)
        >>> torch.allclose(rational_quadratic_spline(y, *(torch.zeros(3, k) for k in (4, 4, 3)))[0], y)
        True
        >>> slopes = torch.full((3, 5), -3.0)  # linear tails, slope 0.083 at both ends
        >>> y, ld = rational_quadratic_spline(x, torch.zeros(3, 4), torch.zeros(3, 4), slopes)
        >>> round(y[2].item(), 2), round(ld[2].exp().item(), 4)
        (12.88, 0.083)
    """
    num_bins = raw_widths.shape[-1]
    num_derivatives = raw_derivatives.shape[-1]
    if num_derivatives not in (num_bins - 1, num_bins + 1):
        raise ValueError(
            f"rational_quadratic_spline needs K - 1 (identity tails) or K + 1 (linear tails) derivatives for "
            f"K = {num_bins} bins, got {num_derivatives}"
        )
    linear_tails = num_derivatives == num_bins + 1
    xs, ys = _knots(raw_widths, bound), _knots(raw_heights, bound)
    derivatives = MIN_DERIVATIVE + F.softplus(raw_derivatives + _DERIV_SHIFT)
    if not linear_tails:
        derivatives = F.pad(derivatives, (1, 1), value=1.0)

    inside = (inputs >= -bound) & (inputs <= bound)
    v = inputs.clamp(-bound, bound)
    out, log_det = _spline_inside(v, _gather_bin(v, xs, ys, derivatives, inverse), inverse)
    if not linear_tails:
        return torch.where(inside, out, inputs), torch.where(inside, log_det, torch.zeros_like(log_det))
    tail, tail_log_det = _linear_tails(inputs, derivatives, bound, inverse)
    return torch.where(inside, out, tail), torch.where(inside, log_det, tail_log_det)


def _gather_bin(v: Tensor, xs: Tensor, ys: Tensor, derivatives: Tensor, inverse: bool) -> tuple[Tensor, ...]:
    """``(x_k, x_{k+1}, y_k, y_{k+1}, d_k, d_{k+1})`` of the bin holding each value ``v`` (inside ``[-B, B]``)."""
    knots = ys if inverse else xs
    # Bin index: how many inner knots lie at or below the value (0 .. K-1).
    index = (v.unsqueeze(-1) >= knots[..., 1:-1]).sum(-1, keepdim=True)
    # One gather of both ends of the bin from one table (its backward: one scatter, no zero-filled slices).
    table = torch.stack(torch.broadcast_tensors(xs, ys, derivatives), -2)  # (..., 3, K + 1)
    shape = torch.broadcast_shapes(v.shape, table.shape[:-2]) + (3, 2)
    ends = torch.cat([index, index + 1], -1).unsqueeze(-2).expand(shape)
    picked = table.expand(shape[:-1] + table.shape[-1:]).gather(-1, ends)
    return picked.flatten(-2).unbind(-1)


def _spline_inside(v: Tensor, ends: tuple[Tensor, ...], inverse: bool) -> tuple[Tensor, Tensor]:
    """The rational-quadratic map of ``v`` within its bin (or its inverse) and the log-det of that direction."""
    x_k, x_k1, y_k, y_k1, d_k, d_k1 = ends
    w_k, h_k = x_k1 - x_k, y_k1 - y_k
    delta = h_k / w_k
    curvature = d_k + d_k1 - 2 * delta
    if inverse:
        dy = v - y_k
        a = dy * curvature + h_k * (delta - d_k)
        b = h_k * d_k - dy * curvature
        c = -delta * dy
        disc = (b * b - 4 * a * c).clamp(min=0)
        theta = ((2 * c) / (-b - torch.sqrt(disc))).clamp(0, 1)
    else:
        theta = ((v - x_k) / w_k).clamp(0, 1)
    tt = theta * (1 - theta)
    denominator = delta + curvature * tt
    out = theta * w_k + x_k if inverse else y_k + h_k * (delta * theta * theta + d_k * tt) / denominator
    log_det = (
        2 * torch.log(delta)
        + torch.log(d_k1 * theta * theta + 2 * delta * tt + d_k * (1 - theta) ** 2)
        - 2 * torch.log(denominator)
    )
    return out, -log_det if inverse else log_det


def _linear_tails(inputs: Tensor, derivatives: Tensor, bound: float, inverse: bool) -> tuple[Tensor, Tensor]:
    """The linear map outside ``[-B, B]`` with the end slopes ``d_0`` (below) and ``d_K`` (above), and its log-det."""
    below = inputs < 0  # only read outside the interval, where it tells which tail
    slope = torch.where(below, derivatives[..., 0], derivatives[..., -1])
    edge = torch.where(below, -bound, bound)
    if inverse:
        return edge + (inputs - edge) / slope, -torch.log(slope)
    return edge + (inputs - edge) * slope, torch.log(slope)


def spline_params(num_bins: int, tails: str = "identity") -> int:
    """How many raw parameters one spline of ``K`` bins takes: ``3K - 1`` (identity tails) or ``3K + 1`` (linear).

    Example:
        >>> spline_params(8), spline_params(8, "linear")
        (23, 25)
    """
    one_of("tails", tails, TAILS)
    return 3 * num_bins + (1 if tails == "linear" else -1)


def _split(raw: Tensor, num_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Widths, heights, derivatives of a raw ``(..., 3K - 1)`` or ``(..., 3K + 1)`` parameter vector."""
    # backward: one cat
    widths, heights, derivatives = raw.split([num_bins, num_bins, raw.shape[-1] - 2 * num_bins], -1)
    return widths, heights, derivatives


class NeuralSplineAutoregressive(FlowTransform):
    r"""Autoregressive rational-quadratic spline flow (NSF-AR) in the density direction.

    .. math:: z_d = \mathrm{RQS}(x_d;\ \theta_d(x_{<d})), \qquad
        \log\left|\det \frac{\partial x}{\partial z}\right| = -\sum_d \log \mathrm{RQS}'(x_d)

    Data to latent is one parallel MADE pass; latent to data (sampling) inverts one coordinate per
    pass (``D`` passes). Pyro's ``SplineAutoregressive`` is the IAF direction; this one is the
    density-estimation direction and uses :func:`rational_quadratic_spline` (identity tails, no NaN).

    Args:
        dim: vector size ``D >= 2``.
        num_bins: spline bins ``K``.
        hidden_dims: MADE hidden sizes (each >= D).
        bound: spline interval ``[-B, B]``.
        reverse: condition each entry on the entries after it (``x_{>d}``; the Jacobian is upper
            triangular), so alternating layers need no permutation between them.
        tails: ``"identity"`` outside ``[-B, B]``, or ``"linear"`` with conditioned end slopes
            (see :func:`rational_quadratic_spline`).
        input_bound: the MADE reads ``c tanh(x / c)`` (:func:`~pyro_flowzoo.transforms.coupling.bound_input`)
            instead of ``x``, so the spline parameters level off beyond the data (``None``: ``x`` itself).
        knots: where the fresh layer's knots sit, ``"uniform"`` or ``"centered"`` (:func:`initial_bin_logits`).

    References:
        Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", arXiv:1906.04032.

    Example:
        >>> t = NeuralSplineAutoregressive(2, num_bins=4, hidden_dims=(8,)).double()
        >>> z = 3 * torch.randn(5, 2, dtype=torch.float64)
        >>> torch.allclose(t.inv(t(z)), z)
        True
    """

    def __init__(
        self,
        dim: int,
        num_bins: int = 8,
        hidden_dims: Optional[Sequence[int]] = None,
        bound: float = 5.0,
        reverse: bool = False,
        tails: str = "identity",
        input_bound: Optional[float] = None,
        knots: str = "uniform",
    ) -> None:
        super().__init__(event_dim=1)
        if input_bound is not None and not input_bound > 0:
            raise ValueError(f"NeuralSplineAutoregressive needs input_bound > 0 (or None), got {input_bound}")
        self.dim, self.num_bins, self.bound, self.reverse, self.tails = dim, num_bins, bound, reverse, tails
        self.input_bound, self.knots = input_bound, knots
        self.made = MADE(dim, spline_params(num_bins, tails), hidden_dims, reverse=reverse)
        _place_knots(self.made.output_bias, num_bins, bound, knots)

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raw = self.made(bound_input(x, self.input_bound))
        z, log_det = rational_quadratic_spline(x, *_split(raw, self.num_bins), bound=self.bound)
        return z, -log_det.sum(-1)

    def forward_and_log_det(self, z: Tensor) -> tuple[Tensor, Tensor]:
        def conditioner(x: Tensor) -> Tensor:
            return self.made(bound_input(x, self.input_bound))

        return spline_ar_sample(conditioner, z, self.made.order, self.num_bins, self.bound)

    def extra_repr(self) -> str:
        sizes = f"dim={self.dim}, num_bins={self.num_bins}, bound={self.bound}, knots={self.knots}"
        return f"{sizes}, reverse={self.reverse}, tails={self.tails}, input_bound={self.input_bound}"


def spline_ar_sample(
    conditioner: Callable[[Tensor], Tensor], z: Tensor, order: Sequence[int], num_bins: int, bound: float
) -> tuple[Tensor, Tensor]:
    """The sampling direction of an autoregressive spline flow: ``D`` conditioner passes in ``order``.

    ``conditioner(x)`` gives the raw spline parameters ``(..., D, 3K - 1)``; entries not yet solved are
    placeholders its output ``d`` ignores. Returns ``(x, log|det dx/dz|)``.
    """
    x = torch.zeros_like(z)
    log_det = z.new_zeros(z.shape[:-1])
    for d in order:
        raw = conditioner(x)[..., d, :]
        x_d, ld = rational_quadratic_spline(z[..., d], *_split(raw, num_bins), inverse=True, bound=bound)
        x = torch.cat([x[..., :d], x_d.unsqueeze(-1), x[..., d + 1 :]], -1)
        log_det = log_det + ld
    return x, log_det


class NeuralSplineCoupling(FixedMask, FlowTransform):
    r"""Coupling rational-quadratic spline flow (NSF-C): masked entries condition splines on the others.

    .. math:: z_m = x_m, \qquad z_{\bar m} = \mathrm{RQS}(x_{\bar m};\ \theta(x_m))

    Both directions are one parallel pass. The MLP's last layer starts at zero, so a fresh layer is
    the identity (uniform bins, unit inner derivatives).

    Args:
        mask: boolean vector; True entries pass through and condition the others.
        num_bins: spline bins ``K``.
        hidden_dims: MLP hidden sizes.
        bound: spline interval ``[-B, B]``.
        tails: ``"identity"`` outside ``[-B, B]``, or ``"linear"`` with conditioned end slopes.
        input_bound: the MLP reads ``c tanh(x_m / c)`` of the kept entries (``None``: ``x_m`` itself).
        knots: where the fresh layer's knots sit, ``"uniform"`` or ``"centered"`` (:func:`initial_bin_logits`).

    References:
        Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", arXiv:1906.04032.

    Example:
        >>> from pyro_flowzoo.transforms import half_mask
        >>> t = NeuralSplineCoupling(half_mask(3), num_bins=4, hidden_dims=(8,))
        >>> x = torch.randn(2, 3)
        >>> torch.allclose(t(x), x)
        True
    """

    def __init__(
        self,
        mask: Tensor,
        num_bins: int = 8,
        hidden_dims: Sequence[int] = (64, 64),
        bound: float = 5.0,
        tails: str = "identity",
        input_bound: Optional[float] = None,
        knots: str = "uniform",
    ) -> None:
        super().__init__(event_dim=1)
        if input_bound is not None and not input_bound > 0:
            raise ValueError(f"NeuralSplineCoupling needs input_bound > 0 (or None), got {input_bound}")
        self.input_bound, self.knots = input_bound, knots
        if mask.dim() != 1:
            raise ValueError(f"NeuralSplineCoupling needs a vector mask, got shape {tuple(mask.shape)}")
        self.dim, self.num_bins, self.bound, self.tails = mask.shape[0], num_bins, bound, tails
        self._num_params = spline_params(num_bins, tails)
        keep = mask.bool()
        if keep.all() or not keep.any():
            raise ValueError("NeuralSplineCoupling needs a mask keeping some but not all entries")
        self.register_buffer("mask", keep.clone())
        keep_idx, change_idx = keep.nonzero().flatten(), (~keep).nonzero().flatten()
        self.register_buffer("keep_idx", keep_idx)
        self.register_buffer("change_idx", change_idx)
        self.register_buffer("merge_idx", torch.argsort(torch.cat([keep_idx, change_idx])))
        self._n_keep = len(keep_idx)
        self._keep_first = bool(torch.equal(keep_idx, torch.arange(self._n_keep)))
        # The net sees only the kept entries and parametrises splines for the changed ones only.
        self.net = MLP(self._n_keep, len(change_idx) * self._num_params, hidden_dims)
        _place_knots(self.net.net[-1].bias.view(len(change_idx), self._num_params), num_bins, bound, knots)

    def _spline(self, v: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        if self._keep_first:
            kept, change = v[..., : self._n_keep], v[..., self._n_keep :]
        else:
            kept, change = v.index_select(-1, self.keep_idx), v.index_select(-1, self.change_idx)
        raw = self.net(bound_input(kept, self.input_bound))
        raw = raw.reshape(raw.shape[:-1] + (change.shape[-1], self._num_params))
        out, log_det = rational_quadratic_spline(change, *_split(raw, self.num_bins), inverse=inverse, bound=self.bound)
        merged = torch.cat([kept, out], -1)
        if not self._keep_first:
            merged = merged.index_select(-1, self.merge_idx)
        return merged, log_det.sum(-1)

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z, log_det = self._spline(x, inverse=False)
        return z, -log_det

    def forward_and_log_det(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self._spline(z, inverse=True)
