r"""Elementwise rational-quadratic spline with free parameters: the spline flow of 1-D data (no conditioner)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import FlowTransform
from .spline import _place_knots, _split, rational_quadratic_spline, spline_params

__all__ = ["ElementwiseSpline"]


class ElementwiseSpline(FlowTransform):
    r"""One monotone rational-quadratic spline per entry, parameters learned directly (identity or linear tails).

    .. math:: z_d = \mathrm{RQS}_d(x_d), \qquad
        \log\left|\det \frac{\partial x}{\partial z}\right| = -\sum_d \log \mathrm{RQS}_d'(x_d)

    What ``nsf_ar`` / ``nsf_coupling`` are for ``D = 1``, where there is nothing to condition on. Zero
    parameters (the initial value) give the identity; outside ``[-bound, bound]`` the map is the
    identity (``tails="identity"``) or linear with a learned slope per end (``tails="linear"``; see
    :func:`~pyro_flowzoo.transforms.rational_quadratic_spline`).

    Args:
        dim: vector size ``D``.
        num_bins: spline bins ``K``.
        bound: spline interval ``[-B, B]``.
        tails: ``"identity"`` or ``"linear"`` outside ``[-B, B]``.
        knots: where the initial knots sit, ``"uniform"`` or ``"centered"``
            (:func:`~pyro_flowzoo.transforms.spline.initial_bin_logits`); either way the start is the identity.

    References:
        Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", arXiv:1906.04032.

    Example:
        >>> t = ElementwiseSpline(1, num_bins=4)
        >>> x = torch.tensor([[0.3], [-7.0]])
        >>> torch.allclose(t(x), x)
        True
    """

    def __init__(
        self, dim: int, num_bins: int = 8, bound: float = 5.0, tails: str = "identity", knots: str = "uniform"
    ) -> None:
        super().__init__(event_dim=1)
        self.dim, self.num_bins, self.bound, self.tails, self.knots = dim, num_bins, bound, tails, knots
        # One tensor, (D, 3K - 1) or (D, 3K + 1): widths, heights, derivatives side by side, split by ``_split``
        # (one optimizer state instead of three: a guide's marginal splines are stepped every SVI step).
        self.raw = nn.Parameter(torch.zeros(dim, spline_params(num_bins, tails)))
        _place_knots(self.raw, num_bins, bound, knots)

    sign = 1  # increasing

    def _spline(self, v: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        widths, heights, derivatives = _split(self.raw, self.num_bins)
        out, log_det = rational_quadratic_spline(v, widths, heights, derivatives, inverse=inverse, bound=self.bound)
        return out, log_det.sum(-1)

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z, log_det = self._spline(x, inverse=False)
        return z, -log_det

    def forward_and_log_det(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self._spline(z, inverse=True)

    def extra_repr(self) -> str:
        sizes = f"dim={self.dim}, num_bins={self.num_bins}, bound={self.bound}"
        return f"{sizes}, tails={self.tails}, knots={self.knots}"
