"""PixelCNN conditioners: masked convolutions (type A, then type B) in raster order over pixels and channels."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MaskedConv2d", "PixelCNN"]


def _groups(num_channels: int, data_channels: int) -> Tensor:
    """The data channel each of ``num_channels`` belongs to (contiguous blocks)."""
    return torch.arange(num_channels) * data_channels // num_channels


class MaskedConv2d(nn.Conv2d):
    r"""A convolution that sees only earlier pixels (raster order) and, at its own pixel, earlier channels.

    .. math:: W_{o,i,a,b} = 0 \text{ unless } (a, b) \prec (c, c) \text{ or } \big((a, b) = (c, c)
        \text{ and } g(i) < g(o) \text{ (type A) or } g(i) \le g(o) \text{ (type B)}\big)

    where ``(c, c)`` is the kernel centre, ``\prec`` is raster order, and ``g`` maps a feature channel to
    the data channel it belongs to (channels are split into ``data_channels`` contiguous groups). The
    first layer is type A (the output at a pixel and channel never sees that value), later ones type B.

    Args:
        in_channels, out_channels: feature channels (multiples of ``data_channels``).
        kernel_size: odd kernel size.
        mask_type: ``"A"`` or ``"B"``.
        data_channels: the image's channels ``C``.

    References:
        van den Oord, Kalchbrenner, Kavukcuoglu, "Pixel Recurrent Neural Networks", arXiv:1601.06759.

    Example:
        >>> conv = MaskedConv2d(1, 4, 3, "A", data_channels=1)
        >>> conv.mask[0, 0].tolist()
        [[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, mask_type: str, data_channels: int = 1
    ) -> None:
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        for n in (in_channels, out_channels):
            if n % data_channels:
                raise ValueError(f"channel counts must be multiples of data_channels={data_channels}, got {n}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        c = kernel_size // 2
        mask = torch.zeros(out_channels, in_channels, kernel_size, kernel_size)
        mask[:, :, :c, :] = 1
        mask[:, :, c, :c] = 1
        g_out = _groups(out_channels, data_channels)[:, None]
        g_in = _groups(in_channels, data_channels)[None, :]
        mask[:, :, c, c] = (g_in < g_out if mask_type == "A" else g_in <= g_out).float()
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int, data_channels: int) -> None:
        super().__init__()
        self.conv1 = MaskedConv2d(channels, channels, 1, "B", data_channels)
        self.conv2 = MaskedConv2d(channels, channels, kernel_size, "B", data_channels)
        self.conv3 = MaskedConv2d(channels, channels, 1, "B", data_channels)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.relu(x))
        h = self.conv2(F.relu(h))
        return x + self.conv3(F.relu(h))


class PixelCNN(nn.Module):
    r"""A PixelCNN emitting ``num_params`` values per pixel and channel: ``(N, C, H, W) -> (N, C, H, W, P)``.

    .. math:: h_{c,i,j} = f_{c,i,j}\big(x_{c',i',j'} : (i', j', c') \prec (i, j, c),\ y\big)

    A type-A masked convolution (``first_kernel`` wide), ``num_blocks`` residual blocks of type-B
    masked convolutions, and a type-B 1x1 output layer whose weights start small. With
    ``context_features = K > 0``, ``forward(x, y)`` reads a context ``y`` of shape ``(N, K)``: a linear
    map of ``y`` adds a per-channel bias to every residual block's input and to the output layer's input
    (the conditional PixelCNN of van den Oord et al. 2016); a bias that is constant over the image changes no
    mask, so the outputs stay autoregressive in ``x``.

    Args:
        data_channels: the image's channels ``C``.
        num_params: values per pixel and channel.
        hidden_channels: feature channels (rounded up to a multiple of ``C``).
        num_blocks: residual blocks.
        kernel_size: kernel of the blocks' masked convolutions.
        first_kernel: kernel of the type-A input layer.
        context_features: size ``K`` of the context vector (0: unconditional).

    References:
        van den Oord, Kalchbrenner, Kavukcuoglu, "Pixel Recurrent Neural Networks", arXiv:1601.06759;
        van den Oord et al., "Conditional Image Generation with PixelCNN Decoders", arXiv:1606.05328.

    Example:
        >>> net = PixelCNN(2, num_params=3, hidden_channels=8, num_blocks=1)
        >>> net(torch.zeros(5, 2, 4, 4)).shape
        torch.Size([5, 2, 4, 4, 3])
        >>> PixelCNN(1, 3, 8, 1, context_features=10)(torch.zeros(5, 1, 4, 4), torch.zeros(5, 10)).shape
        torch.Size([5, 1, 4, 4, 3])
    """

    def __init__(
        self,
        data_channels: int,
        num_params: int,
        hidden_channels: int = 64,
        num_blocks: int = 4,
        kernel_size: int = 3,
        first_kernel: int = 7,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        if context_features < 0:
            raise ValueError(f"context_features must be >= 0, got {context_features}")
        hidden = -(-hidden_channels // data_channels) * data_channels
        self.data_channels, self.num_params = data_channels, num_params
        self.hidden_channels, self.context_features = hidden, context_features
        # How far (in rows up, and columns either way) an output can see: every layer adds k // 2.
        self.reach = first_kernel // 2 + num_blocks * (kernel_size // 2)
        self.first = MaskedConv2d(data_channels, hidden, first_kernel, "A", data_channels)
        self.blocks = nn.ModuleList(_ResidualBlock(hidden, kernel_size, data_channels) for _ in range(num_blocks))
        self.out = MaskedConv2d(hidden, data_channels * num_params, 1, "B", data_channels)
        # One bias per feature channel for each block's input and for the output layer's input.
        self.context_bias = nn.Linear(context_features, hidden * (1 + num_blocks)) if context_features else None
        with torch.no_grad():
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        if (context is None) != (self.context_bias is None):
            raise ValueError(
                f"this PixelCNN takes {'a context' if self.context_bias is not None else 'no context'} "
                f"(context_features={self.context_features})"
            )
        biases: list[Optional[Tensor]] = [None] * (1 + len(self.blocks))
        if self.context_bias is not None:
            biases = list(self.context_bias(context)[..., None, None].split(self.hidden_channels, dim=1))
        h = self.first(x)
        for block, bias in zip(self.blocks, biases):
            h = block(h if bias is None else h + bias)
        if biases[-1] is not None:
            h = h + biases[-1]
        h = self.out(F.relu(h))
        n, _, height, width = h.shape
        # Output channel o belongs to data channel o // P (contiguous groups), parameter o % P.
        return h.reshape(n, self.data_channels, self.num_params, height, width).permute(0, 1, 3, 4, 2)
