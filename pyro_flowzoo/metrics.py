"""Density metrics: nats per dimension and bits per dimension with the discretization correction."""

from __future__ import annotations

import math
from typing import Sequence, Union

import torch
from torch import Tensor

__all__ = ["nats_per_dim", "bits_per_dim"]


def _num_dims(event_shape: Union[Sequence[int], torch.Size]) -> int:
    return int(math.prod(event_shape))


def nats_per_dim(log_prob: Tensor, event_shape: Union[Sequence[int], torch.Size]) -> Tensor:
    r"""Negative log-likelihood per dimension, :math:`-\log p(x) / D`.

    Example:
        >>> nats_per_dim(torch.tensor([-4.0]), (2,))
        tensor([2.])
    """
    return -log_prob / _num_dims(event_shape)


def bits_per_dim(log_prob: Tensor, event_shape: Union[Sequence[int], torch.Size], n_bins: int = 256) -> Tensor:
    r"""Bits per dimension of discrete data from the density of its dequantized version on ``[0, 1]^D``.

    With integer data ``k`` in ``{0, ..., n_bins - 1}`` mapped to ``x = (k + u) / n_bins`` (``u`` uniform
    dequantization noise), the discrete likelihood satisfies
    ``log P(k) >= E_u[log p(x)] - D log(n_bins)``, so

    .. math:: \text{bits/dim} = \frac{-\log p(x) + D \log n_{\text{bins}}}{D \log 2}

    which is the figure the RealNVP and Glow papers report.

    References:
        Theis, van den Oord, Bethge, "A note on the evaluation of generative models", arXiv:1511.01844.

    Example:
        >>> bits_per_dim(torch.tensor([0.0]), (1, 2, 2), n_bins=256)  # uniform on [0, 1]^4 -> 8 bits
        tensor([8.])
    """
    d = _num_dims(event_shape)
    return (-log_prob + d * math.log(n_bins)) / (d * math.log(2))
