"""Elementwise transforms for image pipelines: ``Logit(alpha)``, learned (conditional) affine priors, dequantization."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor, nn
from torch.distributions import constraints
from torch.nn import functional as F

from .base import ConditionalFlowTransform, FlowTransform, sum_rightmost

__all__ = ["Logit", "ElementwiseAffine", "ConditionalElementwiseAffine", "dequantize", "uniform_dequantize"]


def dequantize(
    levels: Tensor,
    n_levels: int = 256,
    generator: Optional[torch.Generator] = None,
    dtype: Optional[torch.dtype] = None,
    validate: bool = True,
) -> Tensor:
    r"""Uniform dequantization of integer levels ``k`` in ``{0, ..., n_levels - 1}`` to ``[0, 1]``.

    .. math:: x = \frac{k + u}{n_{\text{levels}}}, \qquad u \sim \mathcal{U}(0, 1)^D

    A density ``p`` on ``[0, 1]^D`` fitted to such ``x`` gives the discrete model
    ``P(k) >= exp(E_u log p(x)) / n_levels^D``: report :func:`pyro_flowzoo.bits_per_dim` with this
    number of levels (what :func:`pyro_flowzoo.fit` calls ``n_bins``).

    Args:
        levels: integer-valued tensor (any dtype) with entries in ``[0, n_levels - 1]``.
        n_levels: number of levels (256 for 8-bit images, 17 for scikit-learn's digits).
        generator: optional random generator for the noise.
        dtype: dtype of the result (default: the data's if floating, else torch's default dtype).
        validate: check that the data are integers in range (three host syncs; training loops that
            checked their data once pass False).

    References:
        Theis, van den Oord, Bethge, "A note on the evaluation of generative models", arXiv:1511.01844.

    Example:
        >>> x = dequantize(torch.tensor([0, 255]), 256)
        >>> bool((x[0] < 1 / 256) & (x[1] >= 255 / 256))
        True
    """
    if n_levels < 2:
        raise ValueError(f"n_levels must be >= 2, got {n_levels}")
    values = levels.double() if not levels.is_floating_point() else levels
    if (
        validate
        and values.numel()
        and (bool((values != values.round()).any()) or values.min() < 0 or values.max() > n_levels - 1)
    ):
        raise ValueError(
            f"dequantize expects integers in [0, {n_levels - 1}], got values in "
            f"[{values.min().item()}, {values.max().item()}]"
        )
    out_dtype = dtype or (levels.dtype if levels.is_floating_point() else torch.get_default_dtype())
    noise = torch.rand(levels.shape, generator=generator, dtype=out_dtype, device=levels.device)
    return (levels.to(out_dtype) + noise) / n_levels


uniform_dequantize = dequantize  # the transforms-side name of the same function


class Logit(FlowTransform):
    r"""RealNVP's logit preprocessing of ``[0, 1]`` data, as a bijection with its log-determinant.

    .. math::
        y = \mathrm{logit}(\alpha + (1 - 2\alpha) x), \qquad
        \log\left|\frac{dy}{dx}\right| = \log(1 - 2\alpha) - \log p - \log(1 - p), \quad p = \alpha + (1 - 2\alpha) x

    Image flows put ``Inverse(Logit(alpha))`` at their data-side end, so ``flow.log_prob(x)`` is the
    density of ``x`` and :func:`pyro_flowzoo.bits_per_dim` applies to it directly. For ``alpha > 0`` the
    map is onto the reals from the slightly wider interval ``(-alpha / (1 - 2 alpha), (1 - alpha) / (1 - 2
    alpha))``, so the flow puts a little mass outside ``[0, 1]^D`` (its samples may fall just outside;
    clamp them for display) and bits/dim computed on ``[0, 1]`` data are an upper bound, as in the
    RealNVP and Glow papers. The log-det of the inverse uses ``softplus`` (no ``log(0)`` for saturated
    sigmoids). Inputs outside the domain raise a ValueError instead of producing NaN/inf (set
    ``validate = False`` to skip the check, e.g. under torch.compile).

    Args:
        alpha: margin keeping ``p`` away from 0 and 1 (0.05 in RealNVP); ``0 <= alpha < 0.5``.
        event_dim: 3 for images, 1 for vectors.

    References:
        Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", arXiv:1605.08803.

    Example:
        >>> t = Logit(0.05)
        >>> t(torch.tensor([[[0.5]]]))
        tensor([[[0.]]])
    """

    def __init__(self, alpha: float = 0.05, event_dim: int = 3) -> None:
        if not 0.0 <= alpha < 0.5:
            raise ValueError(f"Logit needs 0 <= alpha < 0.5, got {alpha}")
        super().__init__(event_dim=event_dim)
        self.alpha = float(alpha)
        # The map is a bijection from (lo, hi) ⊇ [0, 1] onto the reals (equality when alpha = 0).
        self.lo, self.hi = -alpha / (1 - 2 * alpha), (1 - alpha) / (1 - 2 * alpha)
        self.domain = constraints.independent(constraints.interval(self.lo, self.hi), event_dim)
        self.validate = True

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        p = self.alpha + (1 - 2 * self.alpha) * x
        if self.validate and not torch.compiler.is_compiling() and bool(((p <= 0) | (p >= 1)).any()):
            raise ValueError(
                f"Logit({self.alpha}) expects data in [0, 1] (defined on ({self.lo:.4g}, {self.hi:.4g})), "
                f"got values in [{x.min().item():.4g}, {x.max().item():.4g}]"
            )
        y = torch.log(p) - torch.log1p(-p)
        log_det = math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)
        return y, sum_rightmost(log_det, self.event_dim)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha)
        log_det = math.log(1 - 2 * self.alpha) + F.softplus(-y) + F.softplus(y)
        return x, sum_rightmost(log_det, self.event_dim)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class ElementwiseAffine(FlowTransform):
    r"""A learned elementwise affine map, zero-initialised (the identity): Glow's learned top prior.

    .. math:: y = x \odot e^{s} + m, \qquad \log|\det| = \textstyle\sum s

    At the latent end of a flow with a ``N(0, I)`` base it turns the base into ``N(m, e^{2s})`` while
    the base itself stays standard (so temperature sampling scales every latent alike).

    Args:
        shape: shape of ``m`` and ``s`` (the event shape, or ``(C, 1, 1)`` for per-channel values).
        event_dim: number of event dimensions (default ``len(shape)``).

    References:
        Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", arXiv:1807.03039.

    Example:
        >>> ElementwiseAffine((2, 1, 1))(torch.ones(2, 3, 3)).sum().item()
        18.0
    """

    def __init__(self, shape: Sequence[int], event_dim: Optional[int] = None) -> None:
        super().__init__(event_dim=len(shape) if event_dim is None else event_dim)
        self.loc = nn.Parameter(torch.zeros(tuple(shape)))
        self.log_scale = nn.Parameter(torch.zeros(tuple(shape)))

    def _log_det(self, like: Tensor) -> Tensor:
        event = like.shape[like.dim() - self.event_dim :]
        batch = like.shape[: like.dim() - self.event_dim]
        return sum_rightmost(self.log_scale.expand(event), self.event_dim).expand(batch)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x * torch.exp(self.log_scale) + self.loc, self._log_det(x)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return (y - self.loc) * torch.exp(-self.log_scale), self._log_det(y)


class ConditionalElementwiseAffine(ConditionalFlowTransform):
    r"""Conditional Glow's learned top prior: an elementwise affine map whose per-channel part depends on a context.

    .. math::
        y = x \odot e^{s(c)} + m(c), \qquad (m(c), s(c)) = (m_0, s_0) + \mathrm{reshape}(A c + b),
        \qquad \log|\det| = \textstyle\sum s(c)

    ``m_0, s_0`` have the event shape; the context term (zero-initialised) is per channel for images
    (as in Glow's class-conditional prior) and per entry for vectors.

    Args:
        event_shape: the event shape ``(C, H, W)`` or ``(D,)``.
        context_shape: shape of one context (flattened for the linear map), e.g. ``(num_classes,)``.

    References:
        Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", arXiv:1807.03039.

    Example:
        >>> t = ConditionalElementwiseAffine((2, 4, 4), (10,))
        >>> t.condition(torch.eye(10)[:3])(torch.zeros(3, 2, 4, 4)).shape
        torch.Size([3, 2, 4, 4])
    """

    def __init__(self, event_shape: Sequence[int], context_shape: Sequence[int]) -> None:
        super().__init__(event_dim=len(event_shape), context_shape=tuple(context_shape))
        self.event_shape = torch.Size(event_shape)
        self.loc = nn.Parameter(torch.zeros(self.event_shape))
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))
        self._term_shape = (self.event_shape[0],) + (1,) * (len(event_shape) - 1)
        self.context_proj = nn.Linear(math.prod(context_shape), 2 * self.event_shape[0])
        nn.init.zeros_(self.context_proj.weight)
        nn.init.zeros_(self.context_proj.bias)

    def _params(self, context: Tensor) -> tuple[Tensor, Tensor]:
        n = len(self.context_shape)
        batch = context.shape[: context.dim() - n]
        h = self.context_proj(context.reshape(batch + (-1,)))
        shift, log_scale = h.reshape(batch + (2,) + self._term_shape).unbind(-1 - len(self._term_shape))
        return self.loc + shift, self.log_scale + log_scale

    def forward_and_log_det(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        loc, log_scale = self._params(context)
        y = x * torch.exp(log_scale) + loc
        return y, sum_rightmost(log_scale.expand(y.shape), self.event_dim)

    def inverse_and_log_det(self, y: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        loc, log_scale = self._params(context)
        x = (y - loc) * torch.exp(-log_scale)
        return x, sum_rightmost(log_scale.expand(x.shape), self.event_dim)
