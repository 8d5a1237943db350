"""Glow's coupling network: conv3x3 -> ReLU -> conv1x1 -> ReLU -> zero-initialised conv3x3."""

from __future__ import annotations

from typing import Optional

import torch  # noqa: F401  (doctests)
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["GlowNet", "ZeroConv2d"]


class ZeroConv2d(nn.Module):
    r"""A zero-initialised 3x3 convolution (Glow's ``Conv2dZeros``), optionally adding a context term.

    .. math:: y = W * x + b + A c, \qquad W = 0,\ b = 0,\ A = 0 \text{ at initialisation}

    Glow's extra ``exp(3 * logs)`` output scale is left out: the transforms bound their log-scales.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        context_features: size of a flat context vector (0: none).

    References:
        Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", arXiv:1807.03039.

    Example:
        >>> ZeroConv2d(2, 4)(torch.randn(1, 2, 3, 3)).abs().sum().item()
        0.0
    """

    def __init__(self, in_channels: int, out_channels: int, context_features: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.context_features = context_features
        self.context_proj = nn.Linear(context_features, out_channels) if context_features else None
        if self.context_proj is not None:
            nn.init.zeros_(self.context_proj.weight)
            nn.init.zeros_(self.context_proj.bias)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        out = self.conv(x)
        if self.context_proj is not None:
            if context is None:
                raise ValueError("this ZeroConv2d was built with context_features > 0: pass a context")
            out = out + self.context_proj(context.reshape(context.shape[0], -1))[..., None, None]
        return out


class GlowNet(nn.Module):
    r"""Glow's affine-coupling network ``NN()``.

    ``conv3x3(in -> hidden) -> ReLU -> conv1x1(hidden -> hidden) -> ReLU -> conv3x3(hidden -> out)``,
    the last layer zero-initialised so every coupling starts as the identity. Glow's ActNorm inside
    the network is replaced by the convolution biases (a conditioner does not need to be invertible,
    and nets never import transforms). A context vector (conditional Glow) is projected and added
    after the first convolution.

    .. math:: \mathrm{NN}(x, c) = W_3 * \mathrm{relu}(W_2 \mathrm{relu}(W_1 * x + b_1 + A c) + b_2) + b_3

    Args:
        in_channels: input channels.
        out_channels: output channels.
        hidden_channels: hidden width (512 in the paper).
        context_features: size of a flat context vector (0: unconditional).

    References:
        Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", arXiv:1807.03039.

    Example:
        >>> GlowNet(2, 4, hidden_channels=8)(torch.randn(3, 2, 4, 4)).shape
        torch.Size([3, 4, 4, 4])
    """

    def __init__(
        self, in_channels: int, out_channels: int, hidden_channels: int = 512, context_features: int = 0
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_channels, hidden_channels, 1)
        self.conv3 = ZeroConv2d(hidden_channels, out_channels)
        self.context_features = context_features
        self.context_proj = nn.Linear(context_features, hidden_channels) if context_features else None

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        h = self.conv1(x)
        if self.context_proj is not None:
            if context is None:
                raise ValueError("this GlowNet was built with context_features > 0: pass a context")
            h = h + self.context_proj(context.reshape(context.shape[0], -1)).to(h.dtype)[..., None, None]
        return self.conv3(F.relu(self.conv2(F.relu(h))))
