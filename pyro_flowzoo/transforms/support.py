r"""The data-side end of a vector flow: a standardization set from the first batch, and bijections onto a support.

:class:`FirstBatchNorm` is ActNorm for vectors whose initialisation ignores non-finite entries (a
point off the support, ``-inf`` after :class:`Positive`'s inverse, must not make every statistic NaN).
:class:`Positive` maps onto ``(0, inf)``, :class:`Interval` onto ``(low, high)``.

A flow on ``R^D`` followed by one of these has its samples inside the support and a density that
includes the map's log-determinant, so ``log_prob`` is the density of the bounded data itself.
Unlike ``torch.distributions.ExpTransform`` / ``SigmoidTransform`` (which compute ``log|J|`` from
the pair and can return ``inf`` where ``sigmoid`` rounds to 1), these compute the log-det from the
unbounded side in one pass and clamp samples strictly inside the interval.

Example:
    >>> t = support_transform((0.0, 1.0), (1,))
    >>> x = t(torch.tensor([[-50.0], [0.0], [50.0]]))
    >>> bool(((x > 0) & (x < 1)).all())
    True
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import constraints

from .base import FlowTransform, sum_rightmost
from .normalization import ActNorm

__all__ = ["FirstBatchNorm", "Positive", "Interval", "support_transform"]

Support = Union[None, str, Sequence[float]]


class FirstBatchNorm(ActNorm):
    r"""Per-entry affine map of vectors, set from the first batch it scores: :math:`x = y \odot e^{s} + b`.

    ActNorm (``event_dim=1``): the first ``inverse`` in training mode (the first ``log_prob`` of a
    training loop) sets ``b`` and ``s`` to the batch's per-entry mean and log standard deviation, then
    both train as parameters. Added here: only the finite entries of that batch count (an entry with
    no finite value keeps ``b = 0, s = 0``), so a point off the support cannot poison the statistics.

    .. math:: \log\left|\det \frac{\partial x}{\partial y}\right| = \textstyle\sum_i s_i

    Args:
        dim: vector size ``D``.

    References:
        Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", arXiv:1807.03039.

    Example:
        >>> t = FirstBatchNorm(2)
        >>> z, _ = t.inverse_and_log_det(torch.tensor([[1.0, 10.0], [3.0, -float("inf")], [5.0, 30.0]]))
        >>> t.loc.tolist()
        [3.0, 20.0]
    """

    def __init__(self, dim: int) -> None:
        super().__init__(dim, event_dim=1)

    def _init_values(self, y: Tensor) -> tuple[Tensor, Tensor]:
        flat = y.to(self.loc.dtype).reshape(-1, self.num_channels)
        finite = torch.isfinite(flat)
        count = finite.sum(0)
        values = torch.where(finite, flat, 0.0)
        mean = values.sum(0) / count.clamp(min=1)
        var = torch.where(finite, (values - mean) ** 2, 0.0).sum(0) / count.clamp(min=1)
        usable = count > 1
        return torch.where(usable, mean, 0.0), torch.where(usable, torch.log(var.sqrt() + 1e-6), 0.0)


class Positive(FlowTransform):
    r"""``x = \exp(y)`` onto ``(0, \infty)``: :math:`\log|\det \partial x / \partial y| = \sum_i y_i`.

    Args:
        event_shape: the data's event shape.

    Example:
        >>> t = Positive((2,))
        >>> y = torch.tensor([0.5, -3.0], dtype=torch.float64)
        >>> t.inv(t(y)).tolist()
        [0.5, -3.0]
    """

    def __init__(self, event_shape: Sequence[int] = (1,)) -> None:
        super().__init__(event_dim=len(event_shape))
        self.codomain = constraints.independent(constraints.positive, len(event_shape))

    sign = 1  # increasing

    def forward_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        # the smallest normal number keeps exp(-large) from rounding to 0, the edge of the support
        return torch.exp(y).clamp(min=torch.finfo(y.dtype).tiny), sum_rightmost(y, self.event_dim)

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = torch.log(x.clamp(min=0))  # -inf off the support: the base gives it density 0
        # off the support the log-det is set to 0, so log p = -inf there (not -inf - (-inf) = NaN)
        return y, sum_rightmost(torch.where(torch.isfinite(y), y, 0.0), self.event_dim)


class Interval(FlowTransform):
    r"""``x = low + (high - low)\,\sigma(y)`` onto ``(low, high)``.

    .. math:: \log\left|\det \frac{\partial x}{\partial y}\right| = \sum_i \log(h - l) + \log\sigma(y_i)
        + \log\sigma(-y_i)

    Args:
        low, high: the interval's ends (``low < high``).
        event_shape: the data's event shape.

    Example:
        >>> t = Interval(-1.0, 3.0, (1,))
        >>> t(torch.zeros(1)).tolist()
        [1.0]
    """

    def __init__(self, low: float, high: float, event_shape: Sequence[int] = (1,)) -> None:
        super().__init__(event_dim=len(event_shape))
        low, high = float(low), float(high)
        if not low < high:
            raise ValueError(f"Interval needs low < high, got ({low}, {high})")
        self.low, self.high = low, high
        self.codomain = constraints.independent(constraints.interval(low, high), len(event_shape))

    sign = 1  # increasing

    def _log_det(self, y: Tensor) -> Tensor:
        elementwise = math.log(self.high - self.low) + F.logsigmoid(y) + F.logsigmoid(-y)
        # off the support (y = +-inf) the log-det is set to 0, so log p = -inf there, never NaN
        return sum_rightmost(torch.where(torch.isfinite(y), elementwise, 0.0), self.event_dim)

    def forward_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        # sigmoid (and the affine map after it) round onto the ends for large |y|: stay strictly inside
        x = self.low + (self.high - self.low) * torch.sigmoid(y)
        low, high = y.new_tensor(self.low), y.new_tensor(self.high)
        x = torch.minimum(torch.maximum(x, torch.nextafter(low, high)), torch.nextafter(high, low))
        return x, self._log_det(y)

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u = (x - self.low) / (self.high - self.low)
        y = torch.log(u.clamp(min=0)) - torch.log1p(-u.clamp(max=1))  # -+inf off the support, never NaN
        return y, self._log_det(y)

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"


def support_transform(support: Support, event_shape: Sequence[int]) -> FlowTransform | None:
    """The bijection onto ``support``: ``"positive"`` -> :class:`Positive`, ``(low, high)`` -> :class:`Interval`.

    ``None`` or ``"real"`` gives None (no transform). Anything else raises a ValueError.

    Example:
        >>> type(support_transform("positive", (3,))).__name__
        'Positive'
    """
    if support is None or support == "real":
        return None
    if support == "positive":
        return Positive(event_shape)
    if not isinstance(support, str):
        try:
            low, high = (float(v) for v in support)
        except (TypeError, ValueError):
            pass
        else:
            return Interval(low, high, event_shape)
    raise ValueError(f'support must be None, "real", "positive" or (low, high); got {support!r}')
