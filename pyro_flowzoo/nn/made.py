"""MADE conditioners: Pyro's ``AutoRegressiveNN`` in the identity or reversed order, output ``(D, P)`` or ``(P, D)``,
optionally conditioned on a context that enters every hidden layer."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from pyro.nn import AutoRegressiveNN
from pyro.nn.auto_reg_nn import create_mask
from torch import Tensor, nn

__all__ = ["MADE", "default_made_hidden"]


def default_made_hidden(dim: int, width: int = 64, depth: int = 2) -> tuple[int, ...]:
    """Hidden sizes for a MADE over ``dim`` inputs: ``depth`` layers of ``max(width, 2 * dim)`` units.

    Example:
        >>> default_made_hidden(2), default_made_hidden(100, depth=1)
        ((64, 64), (200,))
    """
    return (max(width, 2 * dim),) * depth


class MADE(nn.Module):
    r"""A masked autoencoder: output ``i`` depends only on inputs ``x_{<i}`` (or ``x_{>i}`` when reversed).

    .. math:: h_i(x) = f_i(x_1, \dots, x_{i-1}), \qquad i = 1, \dots, D

    With ``context_features = K > 0`` the network is conditional: every hidden layer ``l`` adds an
    unmasked projection of the context, ``a_l = M_l \odot W_l\, a_{l-1} + b_l + V_l c``, so each output
    depends on the whole context while the autoregressive structure is kept (Pyro's
    ``ConditionalAutoRegressiveNN`` feeds the context to the first layer only). The masks are then
    those of Pyro's conditional MADE: hidden units of degree 0 see no input, only the context, and feed
    the first variable in the order, whose parameters would otherwise be constants blind to the context.

    Wraps :class:`pyro.nn.AutoRegressiveNN`. Added here: the order is the identity or its reverse (so
    the autoregressive Jacobian is lower or upper triangular in the natural order; a reversed MADE
    replaces a flip between layers), the output is laid out ``(..., D, num_params)`` and contiguous
    (each dimension's parameters side by side: the last layer's rows are stored in that order, so no
    transpose reaches the spline or mixture maths), or ``(..., num_params, D)`` with ``params_first``;
    the last layer starts small (``init_scale``) so a fresh flow is close to its initial parameters, and a
    hidden size smaller than ``D`` raises a ValueError naming both numbers. The context broadcasts
    against the input's batch shape.

    Args:
        input_dim: the number of inputs ``D`` (at least 2; a single variable needs no MADE).
        num_params: the number of parameters emitted per input dimension.
        hidden_dims: hidden layer sizes, each at least ``D``.
        skip_connections: add a masked linear skip from the inputs to the outputs.
        init_scale: multiplies the last layer's initial weights (0 makes it start constant).
        reverse: output ``i`` depends on ``x_{>i}`` instead of ``x_{<i}``.
        params_first: lay the output out ``(..., num_params, D)`` instead.
        context_features: size ``K`` of a context vector read by every hidden layer (0: unconditional).

    References:
        Germain, Gregor, Murray, Larochelle, "MADE: Masked Autoencoder for Distribution Estimation",
        arXiv:1502.03509.

    Example:
        >>> net = MADE(3, num_params=2, hidden_dims=(16,))
        >>> net(torch.randn(5, 3)).shape
        torch.Size([5, 3, 2])
        >>> conditional = MADE(3, num_params=2, hidden_dims=(16,), context_features=4)
        >>> conditional(torch.randn(5, 3), torch.randn(4)).shape
        torch.Size([5, 3, 2])
    """

    def __init__(
        self,
        input_dim: int,
        num_params: int,
        hidden_dims: Optional[Sequence[int]] = None,
        skip_connections: bool = False,
        init_scale: float = 0.1,
        reverse: bool = False,
        params_first: bool = False,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        if input_dim < 2:
            raise ValueError(f"MADE needs input_dim >= 2, got {input_dim}")
        hidden_dims = tuple(default_made_hidden(input_dim) if hidden_dims is None else hidden_dims)
        if not hidden_dims or min(hidden_dims) < input_dim:
            raise ValueError(f"MADE hidden sizes must be at least input_dim={input_dim}; got hidden_dims={hidden_dims}")
        self.input_dim = input_dim
        self.num_params = num_params
        self.reverse = reverse
        self.context_features = context_features
        self.hidden_dims = hidden_dims
        # One projection for all hidden layers (split per layer): one matmul instead of one per layer.
        self.context_proj = nn.Linear(context_features, sum(hidden_dims), bias=False) if context_features else None
        order = torch.arange(input_dim)
        self.arn = AutoRegressiveNN(
            input_dim,
            list(hidden_dims),
            param_dims=[num_params],
            permutation=order.flip(0) if reverse else order,
            skip_connections=skip_connections,
        )
        if context_features:
            self._use_context_masks()
        self.output_shape = (num_params, input_dim) if params_first else (input_dim, num_params)
        # Pyro orders the output rows (param, dim); unless params_first they are stored (dim, param).
        self._rows = (
            None
            if params_first or num_params == 1
            else torch.arange(num_params * input_dim).view(num_params, input_dim).t().reshape(-1)
        )
        with torch.no_grad():
            last = self.arn.layers[-1]
            last.weight.mul_(init_scale)
            last.bias.zero_()
            if self._rows is not None:
                for layer in self._output_layers():
                    layer.weight.copy_(layer.weight[self._rows])
                    if layer.bias is not None:
                        layer.bias.copy_(layer.bias[self._rows])
                    layer.mask.copy_(layer.mask[self._rows])

    @torch.no_grad()
    def _use_context_masks(self) -> None:
        """Pyro's conditional MADE masks (one context column, dropped: the context enters by projection)."""
        arn = self.arn
        masks, mask_skip = create_mask(self.input_dim, 1, list(self.hidden_dims), arn.permutation, self.num_params)
        masks[0], mask_skip = masks[0][:, 1:], mask_skip[:, 1:]
        for layer, mask in zip(arn.layers, masks):
            layer.mask.copy_(mask)
        if arn.skip_layer is not None:
            arn.skip_layer.mask.copy_(mask_skip)
        arn.masks, arn.mask_skip = masks, mask_skip

    def _output_layers(self) -> list[nn.Module]:
        return [self.arn.layers[-1]] + ([self.arn.skip_layer] if self.arn.skip_layer is not None else [])

    @property
    def order(self) -> range:
        """The order in which a sequential inverse can solve the dimensions (each needs only those before it)."""
        return range(self.input_dim - 1, -1, -1) if self.reverse else range(self.input_dim)

    @property
    def output_bias(self) -> Tensor:
        """The last layer's bias viewed in the output layout (to initialise particular parameters)."""
        return self.arn.layers[-1].bias.view(self.output_shape)

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        arn = self.arn
        if self.context_proj is None:
            if context is not None:
                raise ValueError("this MADE has context_features=0: it takes no context")
            h = x
            for layer in arn.layers[:-1]:
                h = arn.f(layer(h))
        else:
            if context is None:
                raise ValueError(f"this MADE has context_features={self.context_features}: pass a context")
            per_layer = self.context_proj(context).split(self.hidden_dims, -1)
            h = x
            for layer, c in zip(arn.layers[:-1], per_layer):
                h = arn.f(layer(h) + c)
        h = arn.layers[-1](h)
        if arn.skip_layer is not None:
            h = h + arn.skip_layer(x)
        return h.unflatten(-1, self.output_shape)
