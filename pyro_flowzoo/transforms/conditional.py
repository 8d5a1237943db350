r"""Conditional twins of the autoregressive, spline-coupling, planar and radial transforms.

Each class is a Pyro ``ConditionalTransformModule`` (through
:class:`~pyro_flowzoo.transforms.ConditionalFlowTransform`): ``t.condition(context)`` is a transform
with the same maths as its unconditional twin, the conditioner reading the context as well. The
context is a feature vector ``(..., K)`` whose batch dimensions broadcast against the input's.

- MADE-based layers (MAF, NSF-AR, mixture-CDF AR) use a context-aware
  :class:`~pyro_flowzoo.nn.MADE`: the context enters every hidden layer, the autoregressive masks are
  untouched, and the data-to-latent (density) direction stays one parallel pass.
- The spline coupling's MLP reads the kept entries and the context.
- Planar and radial flows take their parameters from a hypernetwork of the context; the
  invertibility constraints (``w^\top \hat u > -1``; ``\alpha > 0``, ``\beta > -\alpha``) are applied
  to each context's parameters, and the inverses are exact (as in
  :mod:`pyro_flowzoo.transforms.planar_radial`).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import constraints

from ..nn.made import MADE
from ..nn.mlp import MLP
from .autoregressive import maf_sample
from .base import ConditionalFlowTransform, ConditionedTransform, FixedMask, ShiftSide, shift_and_scale
from .mixture_cdf import _check_family, _latent_from_data, _params, mixture_ar_sample
from .planar_radial import planar_u_hat, solve_planar
from .spline import _split, rational_quadratic_spline, spline_ar_sample

__all__ = [
    "ConditionalMaskedAffineAutoregressive",
    "ConditionalNeuralSplineAutoregressive",
    "ConditionalMixtureCDFAutoregressive",
    "ConditionalNeuralSplineCoupling",
    "ConditionalPlanar",
    "ConditionalRadial",
]


def _broadcast(v: Tensor, context: Tensor) -> Tensor:
    """``v`` expanded to the batch shape it shares with ``context`` (a view)."""
    batch = torch.broadcast_shapes(v.shape[:-1], context.shape[:-1])
    return v.expand(batch + v.shape[-1:])


def _check_features(name: str, context_features: int) -> None:
    if context_features < 1:
        raise ValueError(f"{name} needs context_features >= 1, got {context_features}")


class ConditionalMaskedAffineAutoregressive(ShiftSide, ConditionalFlowTransform):
    r"""Conditional MAF layer: ``x_d = z_d \exp(s_d(x_{<d}, c)) + m_d(x_{<d}, c)``.

    .. math::
        z_d = (x_d - m_d(x_{<d}, c))\, e^{-s_d(x_{<d}, c)}, \qquad
        \log\left|\det \frac{\partial x}{\partial z}\right| = \sum_d s_d(x_{<d}, c)

    The conditional twin of :class:`~pyro_flowzoo.transforms.MaskedAffineAutoregressive` (same bounded
    log-scale, same orders); scoring data is one MADE pass, sampling ``D`` passes.

    Args:
        dim: vector size ``D >= 2``.
        context_features: size ``K`` of the context vector.
        hidden_dims: MADE hidden sizes (each >= D).
        max_log_scale: bound on ``|s|``.
        reverse: condition each entry on the entries after it.
        shift_side: ``"data"`` as above or ``"latent"`` (``z_d = x_d e^{-s_d} - m_d``), as in the unconditional layer.
        shift_bound: ``b``: the shift is :math:`b \tanh(m_d / b)` (``None``: ``m_d``), as in the unconditional layer.

    References:
        Papamakarios, Pavlakou, Murray, "Masked Autoregressive Flow for Density Estimation", arXiv:1705.07057.

    Example:
        >>> t = ConditionalMaskedAffineAutoregressive(3, 2, hidden_dims=(16,)).double()
        >>> c, z = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
        >>> torch.allclose(t.condition(c).inv(t.condition(c)(z)), z)
        True
    """

    def __init__(
        self,
        dim: int,
        context_features: int,
        hidden_dims: Optional[Sequence[int]] = None,
        max_log_scale: float = 3.0,
        reverse: bool = False,
        shift_side: str = "data",
        shift_bound: Optional[float] = None,
    ) -> None:
        super().__init__(event_dim=1, context_shape=(context_features,))
        self._init_shift_side(shift_side, shift_bound)
        _check_features("ConditionalMaskedAffineAutoregressive", context_features)
        if not max_log_scale > 0:
            raise ValueError(f"ConditionalMaskedAffineAutoregressive needs max_log_scale > 0, got {max_log_scale}")
        self.dim, self.max_log_scale, self.reverse = dim, max_log_scale, reverse
        self.made = MADE(dim, 2, hidden_dims, reverse=reverse, params_first=True, context_features=context_features)

    def _shift_neg_log_scale(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        shift, raw = self.made(x, context).unbind(-2)
        return self._bound_shift(shift), torch.tanh(raw * (-1.0 / self.max_log_scale)) * self.max_log_scale

    def inverse_and_log_det(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        shift, neg_log_scale = self._shift_neg_log_scale(x, context)
        return shift_and_scale(x, shift, torch.exp(neg_log_scale), True, self.shift_side), -neg_log_scale.sum(-1)

    def forward_and_log_det(self, z: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        z = _broadcast(z, context)
        return maf_sample(z, self.made.order, lambda x: self._shift_neg_log_scale(x, context), self.shift_side)

    def extra_repr(self) -> str:
        sides = f"shift_side={self.shift_side}, shift_bound={self.shift_bound}"
        return f"dim={self.dim}, context={self.context_shape}, reverse={self.reverse}, {sides}"


class ConditionalNeuralSplineAutoregressive(ConditionalFlowTransform):
    r"""Conditional autoregressive rational-quadratic spline flow (NSF-AR), density direction parallel.

    .. math:: z_d = \mathrm{RQS}(x_d;\ \theta_d(x_{<d}, c))

    The conditional twin of :class:`~pyro_flowzoo.transforms.NeuralSplineAutoregressive` (identity tails
    outside ``[-B, B]``).

    Args:
        dim: vector size ``D >= 2``.
        context_features: size ``K`` of the context vector.
        num_bins: spline bins.
        hidden_dims: MADE hidden sizes (each >= D).
        bound: spline interval ``[-B, B]``.
        reverse: condition each entry on the entries after it.

    References:
        Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", arXiv:1906.04032.

    Example:
        >>> t = ConditionalNeuralSplineAutoregressive(2, 3, num_bins=4, hidden_dims=(8,)).double()
        >>> c, z = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
        >>> torch.allclose(t.condition(c).inv(t.condition(c)(z)), z)
        True
    """

    def __init__(
        self,
        dim: int,
        context_features: int,
        num_bins: int = 8,
        hidden_dims: Optional[Sequence[int]] = None,
        bound: float = 5.0,
        reverse: bool = False,
    ) -> None:
        super().__init__(event_dim=1, context_shape=(context_features,))
        _check_features("ConditionalNeuralSplineAutoregressive", context_features)
        self.dim, self.num_bins, self.bound, self.reverse = dim, num_bins, bound, reverse
        self.made = MADE(dim, 3 * num_bins - 1, hidden_dims, reverse=reverse, context_features=context_features)

    def inverse_and_log_det(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        x = _broadcast(x, context)
        z, log_det = rational_quadratic_spline(x, *_split(self.made(x, context), self.num_bins), bound=self.bound)
        return z, -log_det.sum(-1)

    def forward_and_log_det(self, z: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        z = _broadcast(z, context)
        return spline_ar_sample(lambda x: self.made(x, context), z, self.made.order, self.num_bins, self.bound)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, context={self.context_shape}, num_bins={self.num_bins}, reverse={self.reverse}"


class ConditionalMixtureCDFAutoregressive(ConditionalFlowTransform):
    r"""Conditional autoregressive mixture-CDF flow: each dimension's mixture from ``x_{<d}`` and the context.

    .. math:: u_d = F(x_d \mid x_{<d}, c) = \sum_k w_k(x_{<d}, c)\,
        \Phi\!\left(\frac{x_d - \mu_k(x_{<d}, c)}{s_k(x_{<d}, c)}\right)

    The conditional twin of :class:`~pyro_flowzoo.transforms.MixtureCDFAutoregressive`: the density
    direction is the closed-form CDF (one MADE pass), sampling solves one quantile per dimension.

    Args:
        dim: vector size ``D >= 2``.
        context_features: size ``K`` of the context vector.
        num_components: mixture size per dimension.
        hidden_dims: MADE hidden sizes (each >= D).
        family: ``"gaussian"`` or ``"logistic"``.
        to_real: logit latent instead of ``(0, 1)``.
        reverse: condition each entry on the entries after it.

    References:
        Germain et al., "MADE", arXiv:1502.03509; Ho et al., "Flow++", arXiv:1902.00275.

    Example:
        >>> t = ConditionalMixtureCDFAutoregressive(2, 1, num_components=3, hidden_dims=(8,)).double()
        >>> c, u = torch.randn(4, 1, dtype=torch.float64), torch.rand(4, 2, dtype=torch.float64)
        >>> torch.allclose(t.condition(c).inv(t.condition(c)(u)), u)
        True
    """

    def __init__(
        self,
        dim: int,
        context_features: int,
        num_components: int = 8,
        hidden_dims: Optional[Sequence[int]] = None,
        family: str = "gaussian",
        to_real: bool = False,
        reverse: bool = False,
    ) -> None:
        super().__init__(event_dim=1, context_shape=(context_features,))
        _check_features("ConditionalMixtureCDFAutoregressive", context_features)
        _check_family(family, num_components)
        self.dim, self.num_components, self.family, self.to_real = dim, num_components, family, to_real
        self.reverse = reverse
        self.made = MADE(dim, 3 * num_components, hidden_dims, reverse=reverse, context_features=context_features)
        with torch.no_grad():  # spread the initial components so they are not all alike
            grid = torch.linspace(-2.0, 2.0, num_components) if num_components > 1 else torch.zeros(1)
            self.made.output_bias[:, num_components : 2 * num_components] = grid

    def condition(self, context: Tensor) -> ConditionedTransform:
        t = ConditionedTransform(self, context)
        if not self.to_real:
            t.domain = constraints.independent(constraints.unit_interval, 1)
        return t

    def inverse_and_log_det(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        x = _broadcast(x, context)
        u, log_det = _latent_from_data(x, *_params(self.made(x, context)), self.family, self.to_real)
        return u, log_det.sum(-1)

    def forward_and_log_det(self, u: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        u = _broadcast(u, context)
        return mixture_ar_sample(lambda x: self.made(x, context), u, self.made.order, self.family, self.to_real)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, context={self.context_shape}, num_components={self.num_components}, "
            f"family={self.family!r}, to_real={self.to_real}, reverse={self.reverse}"
        )


class ConditionalNeuralSplineCoupling(FixedMask, ConditionalFlowTransform):
    r"""Conditional coupling spline flow: the kept entries and the context parametrise the other entries' splines.

    .. math:: z_m = x_m, \qquad z_{\bar m} = \mathrm{RQS}(x_{\bar m};\ \theta(x_m, c))

    The conditional twin of :class:`~pyro_flowzoo.transforms.NeuralSplineCoupling`; the MLP's last
    layer starts at zero, so a fresh layer is the identity for every context.

    Args:
        mask: boolean vector; True entries pass through and condition the others.
        context_features: size ``K`` of the context vector.
        num_bins: spline bins.
        hidden_dims: MLP hidden sizes.
        bound: spline interval ``[-B, B]``.

    References:
        Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", arXiv:1906.04032.

    Example:
        >>> from pyro_flowzoo.transforms import half_mask
        >>> t = ConditionalNeuralSplineCoupling(half_mask(3), 2, num_bins=4, hidden_dims=(8,))
        >>> x = torch.randn(2, 3)
        >>> torch.allclose(t.condition(torch.randn(2))(x), x)
        True
    """

    def __init__(
        self,
        mask: Tensor,
        context_features: int,
        num_bins: int = 8,
        hidden_dims: Sequence[int] = (64, 64),
        bound: float = 5.0,
    ) -> None:
        super().__init__(event_dim=1, context_shape=(context_features,))
        _check_features("ConditionalNeuralSplineCoupling", context_features)
        keep = mask.bool()
        if mask.dim() != 1 or keep.all() or not keep.any():
            raise ValueError("ConditionalNeuralSplineCoupling needs a vector mask keeping some but not all entries")
        self.dim, self.num_bins, self.bound = mask.shape[0], num_bins, bound
        self.register_buffer("mask", keep.clone())
        keep_idx, change_idx = keep.nonzero().flatten(), (~keep).nonzero().flatten()
        self.register_buffer("keep_idx", keep_idx)
        self.register_buffer("change_idx", change_idx)
        self.register_buffer("merge_idx", torch.argsort(torch.cat([keep_idx, change_idx])))
        self.net = MLP(
            len(keep_idx), len(change_idx) * (3 * num_bins - 1), hidden_dims, context_features=context_features
        )

    def _spline(self, v: Tensor, context: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        v = _broadcast(v, context)
        kept, change = v.index_select(-1, self.keep_idx), v.index_select(-1, self.change_idx)
        raw = self.net(kept, context)
        raw = raw.reshape(raw.shape[:-1] + (change.shape[-1], 3 * self.num_bins - 1))
        out, log_det = rational_quadratic_spline(change, *_split(raw, self.num_bins), inverse=inverse, bound=self.bound)
        return torch.cat([kept, out], -1).index_select(-1, self.merge_idx), log_det.sum(-1)

    def inverse_and_log_det(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        z, log_det = self._spline(x, context, inverse=False)
        return z, -log_det

    def forward_and_log_det(self, z: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        return self._spline(z, context, inverse=True)


def _hypernet(context_features: int, out_features: int, hidden_dims: Sequence[int], bias: Tensor) -> MLP:
    """An MLP from the context to raw parameters, starting at ``bias`` (small last-layer weights)."""
    net = MLP(context_features, out_features, hidden_dims, activation=nn.Tanh, zero_init=False)
    last = net.net[-1]
    with torch.no_grad():
        last.weight.mul_(0.1)
        last.bias.copy_(bias)
    return net


class ConditionalPlanar(ConditionalFlowTransform):
    r"""Conditional planar flow ``y = x + \hat u(c) \tanh(w(c)^\top x + b(c))`` with an exact inverse.

    .. math::
        (u, w, b) = g(c), \quad \hat u = u + \left(m(w^\top u) - w^\top u\right) \frac{w}{\|w\|^2},
        \quad m(a) = -1 + \mathrm{softplus}(a)

    A hypernetwork ``g`` (an MLP) gives each context its own parameters; the constraint
    ``w^\top \hat u > -1`` holds for every context, so each conditioned map is invertible. The inverse
    solves the monotone scalar equation along ``w`` (as :class:`~pyro_flowzoo.transforms.Planar`).

    Args:
        dim: vector size ``D >= 1``.
        context_features: size ``K`` of the context vector.
        hidden_dims: hypernetwork hidden sizes.

    References:
        Rezende, Mohamed, "Variational Inference with Normalizing Flows", arXiv:1505.05770.

    Example:
        >>> t = ConditionalPlanar(3, 2, hidden_dims=(8,)).double()
        >>> c, y = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
        >>> torch.allclose(t.condition(c)(t.condition(c).inv(y)), y)
        True
    """

    def __init__(self, dim: int, context_features: int, hidden_dims: Sequence[int] = (32,)) -> None:
        super().__init__(event_dim=1, context_shape=(context_features,))
        _check_features("ConditionalPlanar", context_features)
        if dim < 1:
            raise ValueError(f"ConditionalPlanar needs dim >= 1, got {dim}")
        self.dim = dim
        bound = 1 / math.sqrt(dim)
        start = torch.cat([torch.empty(2 * dim).uniform_(-bound, bound), torch.zeros(1)])
        self.hypernet = _hypernet(context_features, 2 * dim + 1, hidden_dims, start)

    def _params(self, context: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        u, w, b = self.hypernet(context).split([self.dim, self.dim, 1], -1)
        u_hat = planar_u_hat(u, w)
        return u_hat, w, b.squeeze(-1), (w * u_hat).sum(-1)

    def forward_and_log_det(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        u_hat, w, b, wu_hat = self._params(context)
        h = torch.tanh((x * w).sum(-1) + b)
        return x + h.unsqueeze(-1) * u_hat, torch.log1p(wu_hat * (1 - h * h))

    def inverse_and_log_det(self, y: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        u_hat, w, b, wu_hat = self._params(context)
        h = torch.tanh(solve_planar((y * w).sum(-1) + b, wu_hat))
        return y - h.unsqueeze(-1) * u_hat, torch.log1p(wu_hat * (1 - h * h))


class ConditionalRadial(ConditionalFlowTransform):
    r"""Conditional radial flow ``y = x + \beta(c) (x - x_0(c)) / (\alpha(c) + r)`` with an exact inverse.

    .. math::
        (x_0, \tilde\alpha, \tilde\beta) = g(c), \quad \alpha = \mathrm{softplus}(\tilde\alpha), \quad
        \beta = -\alpha + \mathrm{softplus}(\tilde\beta)

    so ``\alpha > 0`` and ``\beta > -\alpha`` (invertible) for every context. The inverse solves the
    quadratic in ``r = |x - x_0|`` in closed form, as :class:`~pyro_flowzoo.transforms.Radial`.

    Args:
        dim: vector size ``D >= 1``.
        context_features: size ``K`` of the context vector.
        hidden_dims: hypernetwork hidden sizes.

    References:
        Rezende, Mohamed, "Variational Inference with Normalizing Flows", arXiv:1505.05770.

    Example:
        >>> t = ConditionalRadial(2, 1, hidden_dims=(8,)).double()
        >>> c, y = torch.randn(4, 1, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
        >>> torch.allclose(t.condition(c)(t.condition(c).inv(y)), y)
        True
    """

    def __init__(self, dim: int, context_features: int, hidden_dims: Sequence[int] = (32,)) -> None:
        super().__init__(event_dim=1, context_shape=(context_features,))
        _check_features("ConditionalRadial", context_features)
        if dim < 1:
            raise ValueError(f"ConditionalRadial needs dim >= 1, got {dim}")
        self.dim = dim
        bound = 1 / math.sqrt(dim)
        start = torch.empty(dim + 2).uniform_(-bound, bound)
        self.hypernet = _hypernet(context_features, dim + 2, hidden_dims, start)

    def _params(self, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x0, raw_alpha, raw_beta = self.hypernet(context).split([self.dim, 1, 1], -1)
        alpha = F.softplus(raw_alpha.squeeze(-1))
        return x0, alpha, -alpha + F.softplus(raw_beta.squeeze(-1))

    def _log_det(self, r: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        h = 1 / (alpha + r)
        return (self.dim - 1) * torch.log1p(beta * h) + torch.log1p(beta * alpha * h * h)

    def forward_and_log_det(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        x0, alpha, beta = self._params(context)
        diff = x - x0
        r = diff.norm(dim=-1)
        return x + (beta / (alpha + r)).unsqueeze(-1) * diff, self._log_det(r, alpha, beta)

    def inverse_and_log_det(self, y: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        x0, alpha, beta = self._params(context)
        diff = y - x0
        rho = diff.norm(dim=-1)
        b = alpha + beta - rho
        root = torch.sqrt(b * b + 4 * rho * alpha)
        r = torch.where(b > 0, 2 * rho * alpha / (b + root), (root - b) / 2)
        return x0 + diff / (1 + beta / (alpha + r)).unsqueeze(-1), self._log_det(r, alpha, beta)
