"""Masked autoregressive flow (MAF): affine autoregressive in the density direction.

Pyro's ``AffineAutoregressive`` is IAF-direction (parallel sampling, sequential density), and its
sequential inverse builds ``torch.zeros`` without dtype, so it fails in float64. This is the MAF
direction: data to latent is one parallel MADE pass, latent to data (sampling) is ``D`` passes, and
every tensor follows the input's dtype and device.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from ..nn.made import MADE
from .base import FlowTransform, ShiftSide, one_of, shift_and_scale
from .coupling import SQUASHES, bound_input

__all__ = ["MaskedAffineAutoregressive"]


def maf_sample(
    z: Tensor, order: Sequence[int], shift_neg_log_scale: Callable[[Tensor], tuple[Tensor, Tensor]], shift_side: str
) -> tuple[Tensor, Tensor]:
    """A MAF layer's sampling direction: one MADE pass per entry, in ``order``; returns ``(x, log_det)``."""
    x = torch.zeros_like(z)
    log_det = z.new_zeros(z.shape[:-1])
    for d in order:
        shift, neg_log_scale = shift_neg_log_scale(x)
        factor = torch.exp(-neg_log_scale[..., d : d + 1])
        column = shift_and_scale(z[..., d : d + 1], shift[..., d : d + 1], factor, False, shift_side)
        x = torch.cat([x[..., :d], column, x[..., d + 1 :]], -1)
        log_det = log_det - neg_log_scale[..., d]
    return x, log_det


class MaskedAffineAutoregressive(ShiftSide, FlowTransform):
    r"""MAF layer: ``x_d = z_d \exp(s_d(x_{<d})) + m_d(x_{<d})`` with a MADE conditioner.

    .. math::
        z_d = (x_d - m_d(x_{<d}))\, e^{-s_d(x_{<d})}, \qquad
        \log\left|\det \frac{\partial x}{\partial z}\right| = \sum_d s_d(x_{<d}),
        \qquad s = s_{\max} \tanh(\tilde s / s_{\max})

    The log-scale is softly bounded by ``max_log_scale`` so one outlier cannot blow up a layer. With
    ``input_bound = c`` the MADE reads :math:`c \tanh(x / c)` instead of ``x`` (:func:`bound_input`), so
    ``m`` and ``s`` level off beyond the data rather than grow linearly with it: a stack of layers then
    cannot compound slopes on a test point far outside the training data.
    ``reverse=True`` conditions on ``x_{>d}`` instead (the Jacobian is upper triangular): alternating
    layers need no permutation between them.

    Args:
        dim: vector size ``D >= 2``.
        hidden_dims: MADE hidden sizes (each >= D).
        max_log_scale: bound on ``|s|``.
        reverse: condition each entry on the entries after it.
        input_bound: the bound ``c`` of the MADE's input (``None``: unbounded).
        input_squash: ``"tanh"`` (bounded by ``c``) or ``"asinh"`` (logarithmic beyond ``c``); see
            :func:`~pyro_flowzoo.transforms.coupling.bound_input`.
        shift_side: ``"data"`` as above, or ``"latent"``: ``z_d = x_d e^{-s_d} - m_d`` (the shift in latent
            units, zuko's form; sampling ``x_d = (z_d + m_d) e^{s_d}``). The same family of maps, trained
            differently (``maf``'s default for unconditional ``D >= 3``: benchmarks/RESULTS.md).
        shift_bound: ``b``: the shift is :math:`b \tanh(m_d / b)` in both directions (``None``: ``m_d``), as in
            :class:`~pyro_flowzoo.transforms.AffineCoupling`.

    References:
        Papamakarios, Pavlakou, Murray, "Masked Autoregressive Flow for Density Estimation",
        arXiv:1705.07057.

    Example:
        >>> t = MaskedAffineAutoregressive(3, hidden_dims=(16,)).double()
        >>> z = torch.randn(4, 3, dtype=torch.float64)
        >>> torch.allclose(t.inv(t(z)), z)
        True
    """

    def __init__(
        self,
        dim: int,
        hidden_dims: Optional[Sequence[int]] = None,
        max_log_scale: float = 3.0,
        reverse: bool = False,
        input_bound: Optional[float] = None,
        input_squash: str = "tanh",
        shift_side: str = "data",
        shift_bound: Optional[float] = None,
    ) -> None:
        super().__init__(event_dim=1)
        self._init_shift_side(shift_side, shift_bound)
        if not max_log_scale > 0:
            raise ValueError(f"MaskedAffineAutoregressive needs max_log_scale > 0, got {max_log_scale}")
        if input_bound is not None and not input_bound > 0:
            raise ValueError(f"MaskedAffineAutoregressive needs input_bound > 0 (or None), got {input_bound}")
        self.input_bound, self.input_squash = input_bound, one_of("input_squash", input_squash, SQUASHES)
        self.dim = dim
        self.max_log_scale = max_log_scale
        self.reverse = reverse
        self.made = MADE(dim, 2, hidden_dims, reverse=reverse, params_first=True)

    def _shift_neg_log_scale(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shift, raw = self.made(bound_input(x, self.input_bound, self.input_squash)).unbind(
            -2
        )  # contiguous rows; one backward node (stack), no zero-filled selects
        # -s = s_max tanh(-raw / s_max); the scaling also makes raw contiguous before tanh (faster on CPU).
        return self._bound_shift(shift), torch.tanh(raw * (-1.0 / self.max_log_scale)) * self.max_log_scale

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shift, neg_log_scale = self._shift_neg_log_scale(x)
        return shift_and_scale(x, shift, torch.exp(neg_log_scale), True, self.shift_side), -neg_log_scale.sum(-1)

    def forward_and_log_det(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return maf_sample(z, self.made.order, self._shift_neg_log_scale, self.shift_side)

    def extra_repr(self) -> str:
        bounds = f"max_log_scale={self.max_log_scale}, input_bound={self.input_bound}, input_squash={self.input_squash}"
        sides = f"shift_side={self.shift_side}, shift_bound={self.shift_bound}"
        return f"dim={self.dim}, {bounds}, reverse={self.reverse}, {sides}"
