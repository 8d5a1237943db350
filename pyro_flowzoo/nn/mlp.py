"""Multi-layer perceptron conditioners."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """A fully connected network ``in_features -> hidden_dims -> out_features``.

    The last layer starts at zero (``zero_init=True``) so a coupling built on it starts as the
    identity. An optional ``context_features`` input is concatenated to the first layer's input.

    Example:
        >>> net = MLP(2, 4, hidden_dims=(8, 8))
        >>> net(torch.zeros(5, 2)).shape
        torch.Size([5, 4])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_dims: Sequence[int] = (64, 64),
        activation: type[nn.Module] = nn.ReLU,
        zero_init: bool = True,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        dims = [in_features + context_features, *hidden_dims]
        layers: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(d_in, d_out), activation()]
        last = nn.Linear(dims[-1], out_features)
        if zero_init:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)
        self.context_features = context_features

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        if self.context_features:
            if context is None:
                raise ValueError("this MLP was built with context_features > 0: pass a context")
            shape = torch.broadcast_shapes(x.shape[:-1], context.shape[:-1])
            x = torch.cat([x.expand(shape + x.shape[-1:]), context.expand(shape + context.shape[-1:])], -1)
        return self.net(x)
