"""Normalisation-style elementwise affine transforms (NICE's scaling; ActNorm and batch norm follow)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .base import FlowTransform, sum_rightmost

__all__ = ["Scaling"]


class Scaling(FlowTransform):
    r"""NICE's learned diagonal scaling layer.

    .. math:: y = \exp(s) \odot x, \qquad \log|\det| = \textstyle\sum_i s_i

    Args:
        event_shape: the shape of ``s`` (the event shape, e.g. ``(D,)``).

    References:
        Dinh, Krueger, Bengio, "NICE: Non-linear Independent Components Estimation", arXiv:1410.8516.

    Example:
        >>> t = Scaling((3,))
        >>> t(torch.ones(3))
        tensor([1., 1., 1.], grad_fn=<MulBackward0>)
    """

    def __init__(self, event_shape: Sequence[int]) -> None:
        super().__init__(event_dim=len(event_shape))
        self.log_scale = nn.Parameter(torch.zeros(tuple(event_shape)))

    def _log_det(self, like: Tensor) -> Tensor:
        batch = like.shape[: like.dim() - self.event_dim]
        return sum_rightmost(self.log_scale, self.event_dim).expand(batch)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x * torch.exp(self.log_scale), self._log_det(x)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y * torch.exp(-self.log_scale), self._log_det(y)
