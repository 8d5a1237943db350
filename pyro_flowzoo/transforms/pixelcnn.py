r"""PixelCNN autoregressive mixture-CDF flow on images ``(C, H, W)``.

Data to latent (the density direction) is one parallel PixelCNN pass; latent to data (sampling)
goes pixel by pixel, channel by channel (``C H W`` passes), each solving one quantile with
:func:`~pyro_flowzoo.transforms.mixture_cdf.mixture_quantile`. Images are expected continuous:
dequantize discrete or binary images and scale them to ``[0, 1]`` first (``x = (k + U) / n_bins``),
which training needs to be stable.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor
from torch.distributions import constraints

from ..nn.pixelcnn import PixelCNN
from .base import FlowTransform
from .coupling import run_net
from .mixture_cdf import _check_family, _latent_from_data, _log_det, _params, _quantile, _target_logit

__all__ = ["PixelCNNMixtureCDF"]


class PixelCNNMixtureCDF(FlowTransform):
    r"""Autoregressive mixture-CDF flow over pixels: a PixelCNN emits each value's mixture from earlier ones.

    .. math::
        u_{c,i,j} = F\big(x_{c,i,j} \mid x_{\prec (i,j,c)}\big), \qquad
        \log p(x) = \sum_{c,i,j} \log f\big(x_{c,i,j} \mid x_{\prec (i,j,c)}\big) \text{ (uniform latent)}

    Order: raster over pixels, and over channels within a pixel (``R`` before ``G`` before ``B``). For a
    single channel the Jacobian is lower triangular in the flattened ``(C, H, W)`` order; for several
    it is lower triangular in the ``(H, W, C)`` order. With ``to_real=True`` the latent is ``logit(u)``.

    Args:
        event_shape: ``(C, H, W)``.
        num_components: mixture size ``K`` per value.
        hidden_channels, num_blocks, kernel_size, first_kernel: the PixelCNN's size.
        family: ``"gaussian"`` or ``"logistic"`` components.
        to_real: logit latent instead of ``(0, 1)``.

    References:
        van den Oord et al., "Pixel Recurrent Neural Networks", arXiv:1601.06759; Salimans et al.,
        "PixelCNN++", arXiv:1701.05517 (mixtures of logistics); Ho et al., "Flow++", arXiv:1902.00275.

    Example:
        >>> t = PixelCNNMixtureCDF((1, 3, 3), num_components=2, hidden_channels=4, num_blocks=1).double()
        >>> u = torch.rand(2, 1, 3, 3, dtype=torch.float64)
        >>> torch.allclose(t.inv(t(u)), u)
        True
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        num_components: int = 4,
        hidden_channels: int = 64,
        num_blocks: int = 4,
        kernel_size: int = 3,
        family: str = "logistic",
        to_real: bool = False,
        first_kernel: int = 7,
    ) -> None:
        super().__init__(event_dim=3)
        if len(event_shape) != 3:
            raise ValueError(f"PixelCNNMixtureCDF needs event_shape (C, H, W), got {tuple(event_shape)}")
        _check_family(family, num_components)
        self.event_shape = tuple(int(s) for s in event_shape)
        self.num_components, self.family, self.to_real = num_components, family, to_real
        if not to_real:
            self.domain = constraints.independent(constraints.unit_interval, 3)
        self.net = PixelCNN(
            self.event_shape[0], 3 * num_components, hidden_channels, num_blocks, kernel_size, first_kernel
        )
        with torch.no_grad():  # spread the initial components over [0, 1], the scaled image range
            grid = torch.linspace(0.1, 0.9, num_components) if num_components > 1 else torch.full((1,), 0.5)
            bias = self.net.out.bias.view(self.event_shape[0], 3 * num_components)
            bias[:, num_components : 2 * num_components] = grid
            bias[:, 2 * num_components :] = -2.0  # initial scales about 0.12

    def _mixture(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return _params(run_net(self.net, x, 3))

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u, log_det = _latent_from_data(x, *self._mixture(x), self.family, self.to_real)
        return u, log_det.reshape(log_det.shape[:-3] + (-1,)).sum(-1)

    def forward_and_log_det(self, u: Tensor) -> tuple[Tensor, Tensor]:
        channels, height, width = self.event_shape
        batch = u.shape[:-3]
        target = _target_logit(u, self.to_real)
        values: list[Tensor] = []  # in (H, W, C) raster order
        log_det = u.new_zeros(batch)
        total = channels * height * width
        reach = self.net.reach
        for i in range(height):
            for j in range(width):
                for c in range(channels):
                    # Not-yet-sampled values are placeholders the masks hide from this output.
                    flat = torch.stack(values + [u.new_zeros(batch)] * (total - len(values)), -1)
                    x = flat.reshape(batch + (height, width, channels)).movedim(-1, -3)
                    # The output at (i, j) sees rows i - reach .. i and columns j +- reach only, and the
                    # rows below are zero placeholders, exactly what the crop's zero padding supplies:
                    # the crop gives the same values for a fraction of the cost.
                    r0, c0 = max(0, i - reach), max(0, j - reach)
                    crop = x[..., r0 : i + 1, c0 : j + reach + 1]
                    log_w, loc, log_scale = (p[..., c, i - r0, j - c0, :] for p in self._mixture(crop))
                    x_cij, terms = _quantile(target[..., c, i, j], log_w, loc, log_scale, self.family)
                    values.append(x_cij)
                    log_det = log_det + _log_det(terms, self.to_real)
        x = torch.stack(values, -1).reshape(batch + (height, width, channels)).movedim(-1, -3)
        return x, log_det
