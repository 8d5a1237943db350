"""Masked autoregressive flow (MAF): affine autoregressive in the density direction.

Pyro's ``AffineAutoregressive`` is IAF-direction (parallel sampling, sequential density), and its
sequential inverse builds ``torch.zeros`` without dtype, so it fails in float64. This is the MAF
direction: data to latent is one parallel MADE pass, latent to data (sampling) is ``D`` passes, and
every tensor follows the input's dtype and device.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ..nn.made import MADE
from .base import FlowTransform

__all__ = ["MaskedAffineAutoregressive"]


class MaskedAffineAutoregressive(FlowTransform):
    r"""MAF layer: ``x_d = z_d \exp(s_d(x_{<d})) + m_d(x_{<d})`` with a MADE conditioner.

    .. math::
        z_d = (x_d - m_d(x_{<d}))\, e^{-s_d(x_{<d})}, \qquad
        \log\left|\det \frac{\partial x}{\partial z}\right| = \sum_d s_d(x_{<d}),
        \qquad s = s_{\max} \tanh(\tilde s / s_{\max})

    The log-scale is softly bounded by ``max_log_scale`` so one outlier cannot blow up a layer.

    Args:
        dim: vector size ``D >= 2``.
        hidden_dims: MADE hidden sizes (each >= D).
        max_log_scale: bound on ``|s|``.

    References:
        Papamakarios, Pavlakou, Murray, "Masked Autoregressive Flow for Density Estimation",
        arXiv:1705.07057.

    Example:
        >>> t = MaskedAffineAutoregressive(3, hidden_dims=(16,)).double()
        >>> z = torch.randn(4, 3, dtype=torch.float64)
        >>> torch.allclose(t.inv(t(z)), z)
        True
    """

    def __init__(self, dim: int, hidden_dims: Optional[Sequence[int]] = None, max_log_scale: float = 3.0) -> None:
        super().__init__(event_dim=1)
        self.dim = dim
        self.max_log_scale = max_log_scale
        self.made = MADE(dim, 2, hidden_dims)

    def _shift_log_scale(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.made(x)
        shift, raw = out[..., 0], out[..., 1]
        return shift, self.max_log_scale * torch.tanh(raw / self.max_log_scale)

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shift, log_scale = self._shift_log_scale(x)
        return (x - shift) * torch.exp(-log_scale), log_scale.sum(-1)

    def forward_and_log_det(self, z: Tensor) -> tuple[Tensor, Tensor]:
        columns: list[Tensor] = []
        log_det = z.new_zeros(z.shape[:-1])
        for d in range(self.dim):
            x = torch.cat(columns + [z.new_zeros(z.shape[:-1] + (self.dim - d,))], -1)
            shift, log_scale = self._shift_log_scale(x)
            columns.append((z[..., d] * torch.exp(log_scale[..., d]) + shift[..., d]).unsqueeze(-1))
            log_det = log_det + log_scale[..., d]
        return torch.cat(columns, -1), log_det
