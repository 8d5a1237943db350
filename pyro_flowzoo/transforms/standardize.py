r"""A fixed elementwise standardization of the data, as the data-side end of a flow."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .base import FlowTransform

__all__ = ["Standardization"]


class Standardization(FlowTransform):
    r"""``x = \mu + \sigma \odot y`` with ``\mu, \sigma`` buffers set from training data (identity until set).

    .. math:: \log\left|\det \frac{\partial x}{\partial y}\right| = \textstyle\sum_i \log \sigma_i

    At the data side of a flow, ``log_prob(x)`` scores the standardized data and adds the log-det, so
    it stays the density of ``x`` itself. Not trained: set the statistics with :meth:`set_statistics`
    (or :func:`pyro_flowzoo.flows.fit_standardization`); they are saved in the ``state_dict``.

    Args:
        event_shape: the data's event shape.

    Example:
        >>> t = Standardization((2,))
        >>> t.set_statistics(torch.tensor([[0.0, 10.0], [2.0, 30.0]]))
        >>> t.inv(torch.tensor([1.0, 20.0])).tolist()
        [0.0, 0.0]
    """

    def __init__(self, event_shape: Sequence[int]) -> None:
        super().__init__(event_dim=len(event_shape))
        self.event_shape = torch.Size(event_shape)
        self.register_buffer("loc", torch.zeros(self.event_shape))
        self.register_buffer("scale", torch.ones(self.event_shape))

    @torch.no_grad()
    def set_statistics(self, values: Tensor, min_scale: float = 1e-6) -> None:
        """Mean and standard deviation over every batch dimension of ``values``."""
        flat = values.reshape((-1,) + self.event_shape).to(self.loc)
        self.loc.copy_(flat.mean(0))
        self.scale.copy_(flat.std(0).clamp(min=min_scale) if flat.shape[0] > 1 else torch.ones_like(self.scale))

    def _log_det(self, like: Tensor) -> Tensor:
        return self.scale.log().sum().expand(like.shape[: like.dim() - len(self.event_shape)])

    def forward_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.loc + self.scale * y, self._log_det(y)

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return (x - self.loc) / self.scale, self._log_det(x)

    def extra_repr(self) -> str:
        return f"event_shape={tuple(self.event_shape)}"
