"""RealNVP's convolutional ResNet conditioner, with weight normalisation."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["WNConv2d", "ResNet"]


class WNConv2d(nn.Module):
    r"""A 2-D convolution with weight normalisation, :math:`W = g \, v / \lVert v \rVert`.

    Written out (rather than ``torch.nn.utils.parametrizations.weight_norm``) because parametrized
    modules are dynamically created classes that ``pickle`` cannot serialise, and the older
    ``weight_norm`` hook is deprecated.

    .. math:: W_{o} = g_o \, \frac{v_o}{\lVert v_o \rVert_2}, \qquad y = W * x + b

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd kernel size (same padding).
        zero_init: start with ``g = 0`` and ``b = 0`` so the layer outputs zeros.

    References:
        Salimans, Kingma, "Weight Normalization", arXiv:1602.07868.

    Example:
        >>> WNConv2d(2, 4, 3)(torch.zeros(1, 2, 5, 5)).shape
        torch.Size([1, 4, 5, 5])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, zero_init: bool = False) -> None:
        super().__init__()
        v = torch.empty(out_channels, in_channels, kernel_size, kernel_size)
        nn.init.kaiming_normal_(v, nonlinearity="relu")
        self.v = nn.Parameter(v)
        g = torch.zeros(out_channels) if zero_init else v.flatten(1).norm(dim=1)
        self.g = nn.Parameter(g)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.padding = kernel_size // 2

    def weight(self) -> Tensor:
        norm = self.v.flatten(1).norm(dim=1).clamp_min(1e-12)
        return self.v * (self.g / norm).view(-1, 1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight(), self.bias, padding=self.padding)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = WNConv2d(channels, channels, 3)
        self.conv2 = WNConv2d(channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class ResNet(nn.Module):
    r"""RealNVP's coupling network: weight-normalised residual blocks of 3x3 convolutions.

    ``conv3x3 -> num_blocks x [relu, conv3x3, relu, conv3x3, + skip] -> relu -> conv3x3 (zero init)``.
    Batch normalisation inside the conditioner (as in the paper) is left out on purpose: it would make
    the coupling depend on the other images of the batch, so a training-mode flow would not be a
    per-image bijection. An optional context vector is projected and added to the hidden features.

    .. math:: h_0 = W_{in} * x + A c, \quad h_{k+1} = h_k + W_{k,2} * \mathrm{relu}(W_{k,1} * \mathrm{relu}(h_k))

    Args:
        in_channels: input channels.
        out_channels: output channels (``2 C`` for an affine coupling: shift then raw log-scale).
        hidden_channels: width of the residual blocks.
        num_blocks: number of residual blocks.
        context_features: size of a flat context vector (0: unconditional).

    References:
        Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", arXiv:1605.08803;
        He et al., "Deep Residual Learning", arXiv:1512.03385.

    Example:
        >>> net = ResNet(1, 2, hidden_channels=8, num_blocks=1)
        >>> net(torch.randn(3, 1, 4, 4)).abs().max().item()  # zero-initialised output layer
        0.0
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hidden_channels: int = 64,
        num_blocks: int = 4,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        self.conv_in = WNConv2d(in_channels, hidden_channels, 3)
        self.blocks = nn.Sequential(*[_ResidualBlock(hidden_channels) for _ in range(num_blocks)])
        self.conv_out = WNConv2d(hidden_channels, out_channels, 3, zero_init=True)
        self.context_features = context_features
        self.context_proj = nn.Linear(context_features, hidden_channels) if context_features else None

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        h = self.conv_in(x)
        if self.context_proj is not None:
            if context is None:
                raise ValueError("this ResNet was built with context_features > 0: pass a context")
            h = h + self.context_proj(context.reshape(context.shape[0], -1))[..., None, None]
        return self.conv_out(F.relu(self.blocks(h)))
