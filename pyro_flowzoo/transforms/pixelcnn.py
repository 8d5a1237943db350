r"""PixelCNN autoregressive mixture-CDF flow on images ``(C, H, W)``.

Data to latent (the density direction) is one parallel PixelCNN pass; latent to data (sampling)
goes pixel by pixel, channel by channel (``C H W`` passes), each solving one quantile with
:func:`~pyro_flowzoo.transforms.mixture_cdf.mixture_quantile`. Images are expected continuous:
dequantize discrete or binary images and scale them to ``[0, 1]`` first (``x = (k + U) / n_bins``),
which training needs to be stable.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor
from torch.distributions import constraints

from ..nn.pixelcnn import PixelCNN
from .base import ConditionalFlowTransform, ConditionedTransform, FlowTransform
from .coupling import run_net
from .mixture_cdf import _check_family, _latent_from_data, _log_det, _params, _quantile, _target_logit

__all__ = ["PixelCNNMixtureCDF", "ConditionalPixelCNNMixtureCDF"]


def _check_image(name: str, event_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(event_shape) != 3:
        raise ValueError(f"{name} needs event_shape (C, H, W), got {tuple(event_shape)}")
    return tuple(int(s) for s in event_shape)


def _pixelcnn(
    event_shape: tuple[int, int, int],
    num_components: int,
    hidden_channels: int,
    num_blocks: int,
    kernel_size: int,
    first_kernel: int,
    context_features: int = 0,
) -> PixelCNN:
    """The conditioner, its initial components spread over ``[0, 1]`` (the scaled image range)."""
    net = PixelCNN(
        event_shape[0], 3 * num_components, hidden_channels, num_blocks, kernel_size, first_kernel, context_features
    )
    with torch.no_grad():
        grid = torch.linspace(0.1, 0.9, num_components) if num_components > 1 else torch.full((1,), 0.5)
        bias = net.out.bias.view(event_shape[0], 3 * num_components)
        bias[:, num_components : 2 * num_components] = grid
        bias[:, 2 * num_components :] = -2.0  # initial scales about 0.12
    return net


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
        self.event_shape = _check_image("PixelCNNMixtureCDF", event_shape)
        _check_family(family, num_components)
        self.num_components, self.family, self.to_real = num_components, family, to_real
        if not to_real:
            self.domain = constraints.independent(constraints.unit_interval, 3)
        self.net = _pixelcnn(self.event_shape, num_components, hidden_channels, num_blocks, kernel_size, first_kernel)

    def _mixture(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return _params(run_net(self.net, x, 3))

    def inverse_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        u, log_det = _latent_from_data(x, *self._mixture(x), self.family, self.to_real)
        return u, log_det.reshape(log_det.shape[:-3] + (-1,)).sum(-1)

    def forward_and_log_det(self, u: Tensor) -> tuple[Tensor, Tensor]:
        return pixel_sample(self._mixture, u, self.net.reach, self.family, self.to_real)


def pixel_sample(
    mixture: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]], u: Tensor, reach: int, family: str, to_real: bool
) -> tuple[Tensor, Tensor]:
    """Latent -> image, one value at a time in ``(H, W, C)`` raster order, and the log-det of that map.

    ``mixture(x)`` gives the per-value mixture parameters of a (cropped) image; ``reach`` is how far the
    PixelCNN sees (rows up, columns either way). Shared by the unconditional and conditional flows.
    """
    channels, height, width = u.shape[-3:]
    batch = u.shape[:-3]
    target = _target_logit(u, to_real)
    values: list[Tensor] = []  # in (H, W, C) raster order
    log_det = u.new_zeros(batch)
    total = channels * height * width
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                # Not-yet-sampled values are placeholders the masks hide from this output.
                flat = torch.stack(values + [u.new_zeros(batch)] * (total - len(values)), -1)
                x = flat.reshape(batch + (height, width, channels)).movedim(-1, -3)
                # The output at (i, j) sees rows i - reach .. i and columns j +- reach only, and the rows
                # below are zero placeholders, exactly what the crop's zero padding supplies: the crop
                # gives the same values for a fraction of the cost.
                r0, c0 = max(0, i - reach), max(0, j - reach)
                crop = x[..., r0 : i + 1, c0 : j + reach + 1]
                log_w, loc, log_scale = (p[..., c, i - r0, j - c0, :] for p in mixture(crop))
                x_cij, terms = _quantile(target[..., c, i, j], log_w, loc, log_scale, family)
                values.append(x_cij)
                log_det = log_det + _log_det(terms, to_real)
    x = torch.stack(values, -1).reshape(batch + (height, width, channels)).movedim(-1, -3)
    return x, log_det


class ConditionalPixelCNNMixtureCDF(ConditionalFlowTransform):
    r"""Class- or feature-conditional :class:`PixelCNNMixtureCDF`: every value's mixture also reads a context.

    .. math:: u_{c,i,j} = F\big(x_{c,i,j} \mid x_{\prec (i,j,c)}, y\big)

    The context ``y`` (``(..., K)``, batch dimensions broadcasting against the image's) enters every
    residual block of the PixelCNN as a per-channel bias (:class:`~pyro_flowzoo.nn.PixelCNN`), so the
    density direction stays one parallel pass and sampling ``C H W`` passes.

    Args:
        event_shape: ``(C, H, W)``.
        context_features: size ``K`` of the context vector.
        num_components, hidden_channels, num_blocks, kernel_size, family, to_real, first_kernel: as in
            :class:`PixelCNNMixtureCDF`.

    References:
        van den Oord et al., "Conditional Image Generation with PixelCNN Decoders", arXiv:1606.05328.

    Example:
        >>> t = ConditionalPixelCNNMixtureCDF((1, 3, 3), 2, num_components=2, hidden_channels=4, num_blocks=1)
        >>> t = t.double()
        >>> y, u = torch.randn(2, 2, dtype=torch.float64), torch.rand(2, 1, 3, 3, dtype=torch.float64)
        >>> torch.allclose(t.condition(y).inv(t.condition(y)(u)), u)
        True
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        context_features: int,
        num_components: int = 4,
        hidden_channels: int = 64,
        num_blocks: int = 4,
        kernel_size: int = 3,
        family: str = "logistic",
        to_real: bool = False,
        first_kernel: int = 7,
    ) -> None:
        super().__init__(event_dim=3, context_shape=(context_features,))
        if context_features < 1:
            raise ValueError(f"ConditionalPixelCNNMixtureCDF needs context_features >= 1, got {context_features}")
        self.event_shape = _check_image("ConditionalPixelCNNMixtureCDF", event_shape)
        _check_family(family, num_components)
        self.num_components, self.family, self.to_real = num_components, family, to_real
        self.net = _pixelcnn(
            self.event_shape, num_components, hidden_channels, num_blocks, kernel_size, first_kernel, context_features
        )

    def condition(self, context: Tensor) -> ConditionedTransform:
        t = ConditionedTransform(self, context)
        if not self.to_real:
            t.domain = constraints.independent(constraints.unit_interval, 3)
        return t

    def _mixture(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return _params(run_net(self.net, x, 3, context))

    def inverse_and_log_det(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        u, log_det = _latent_from_data(x, *self._mixture(x, context), self.family, self.to_real)
        return u, log_det.reshape(log_det.shape[:-3] + (-1,)).sum(-1)

    def forward_and_log_det(self, u: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        batch = torch.broadcast_shapes(u.shape[:-3], context.shape[:-1])
        u, context = u.expand(batch + u.shape[-3:]), context.expand(batch + context.shape[-1:])
        return pixel_sample(lambda x: self._mixture(x, context), u, self.net.reach, self.family, self.to_real)
