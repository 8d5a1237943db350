"""Fixed permutations of the last dimension, stored as buffers so they move with ``.to()``."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .base import FlowTransform

__all__ = ["Permute", "Reverse"]


class Permute(FlowTransform):
    r"""Permutes the entries of a vector event: ``y = x[..., permutation]``, ``log|det| = 0``.

    Unlike Pyro's ``Permute``, the permutation (and its inverse) are registered buffers, so they
    follow the module across devices and into ``state_dict``.

    Args:
        permutation: a permutation of ``range(D)`` (a random one is drawn if only ``dim`` is given).
        dim: the vector dimension ``D``, used when ``permutation`` is None.

    Example:
        >>> t = Permute(torch.tensor([2, 0, 1]))
        >>> t(torch.tensor([10., 11., 12.]))
        tensor([12., 10., 11.])
    """

    def __init__(self, permutation: Optional[Tensor] = None, dim: Optional[int] = None) -> None:
        super().__init__(event_dim=1)
        if permutation is None:
            if dim is None:
                raise ValueError("Permute needs a permutation or a dim")
            permutation = torch.randperm(dim)
        permutation = torch.as_tensor(permutation, dtype=torch.long)
        if not torch.equal(permutation.sort().values, torch.arange(len(permutation))):
            raise ValueError(f"expected a permutation of range({len(permutation)}), got {permutation.tolist()}")
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.index_select(-1, self.permutation), x.new_zeros(x.shape[:-1])

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y.index_select(-1, self.inverse_permutation), y.new_zeros(y.shape[:-1])


class Reverse(Permute):
    """Reverses the order of a vector's entries.

    Example:
        >>> Reverse(3)(torch.tensor([1., 2., 3.]))
        tensor([3., 2., 1.])
    """

    def __init__(self, dim: int) -> None:
        super().__init__(torch.arange(dim - 1, -1, -1))

    # A flip is cheaper than a gather, forward and backward.
    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.flip(-1), x.new_zeros(x.shape[:-1])

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y.flip(-1), y.new_zeros(y.shape[:-1])
