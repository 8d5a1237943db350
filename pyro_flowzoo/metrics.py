"""Density metrics: nats per dimension and bits per dimension with the discretization correction."""

from __future__ import annotations

import math
from typing import Optional, Sequence, TypeVar, Union

import torch
from torch import Tensor

__all__ = ["nats_per_dim", "bits_per_dim", "nats_to_bits"]


_Number = TypeVar("_Number", float, Tensor)


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
    return nats_to_bits(nats_per_dim(log_prob, event_shape), n_bins)


def nats_to_bits(nats_per_dim: _Number, n_bins: Optional[int] = None) -> _Number:
    r"""Converts nats per dimension to bits per dimension (a float or a tensor).

    With ``n_bins``, ``nats_per_dim`` is the negative log-density of dequantized data on ``[0, 1]^D`` and the
    result includes the discretization correction (see :func:`bits_per_dim`):

    .. math:: \text{bits/dim} = \frac{\text{nats/dim} + \log n_{\text{bins}}}{\log 2}

    Without ``n_bins`` it is the plain change of unit, ``nats/dim / log 2``.

    Example:
        >>> nats_to_bits(0.0, n_bins=256)  # uniform on [0, 1]^D: 8 bits per 256-level pixel
        8.0
        >>> round(nats_to_bits(math.log(2)), 6)
        1.0
    """
    if n_bins is not None:
        nats_per_dim = nats_per_dim + math.log(n_bins)
    return nats_per_dim / math.log(2)
