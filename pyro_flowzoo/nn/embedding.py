"""Context embeddings: networks that map a raw context (a vector, an image, ...) to the feature vector
a conditional flow's transforms read, and a fixed standardization from training statistics."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from .mlp import MLP

__all__ = ["Standardize", "FlattenContext", "default_embedding", "DEFAULT_EMBEDDING_THRESHOLD"]

#: A raw context with more entries than this gets an MLP embedding by default (else it is only flattened).
DEFAULT_EMBEDDING_THRESHOLD = 64


class Standardize(nn.Module):
    r"""``(c - \mu) / \sigma`` over the trailing ``shape``, with ``\mu, \sigma`` buffers (identity until set).

    Set the statistics from training data with :meth:`set_statistics` (or
    :func:`pyro_flowzoo.flows.fit_standardization`); they are saved in the ``state_dict``.

    Example:
        >>> s = Standardize((2,))
        >>> s.set_statistics(torch.tensor([[0.0, 10.0], [2.0, 30.0]]))
        >>> s(torch.tensor([1.0, 20.0])).tolist()
        [0.0, 0.0]
    """

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = torch.Size(shape)
        self.register_buffer("loc", torch.zeros(self.shape))
        self.register_buffer("scale", torch.ones(self.shape))

    @torch.no_grad()
    def set_statistics(self, values: Tensor, min_scale: float = 1e-6) -> None:
        """Mean and standard deviation over every batch dimension of ``values`` (shape ``(..., *shape)``)."""
        flat = values.reshape((-1,) + self.shape).to(self.loc)
        self.loc.copy_(flat.mean(0))
        self.scale.copy_(flat.std(0).clamp(min=min_scale) if flat.shape[0] > 1 else torch.ones_like(self.scale))

    def forward(self, context: Tensor) -> Tensor:
        return (context - self.loc) / self.scale

    def extra_repr(self) -> str:
        return f"shape={tuple(self.shape)}"


class FlattenContext(nn.Module):
    """Flattens the trailing ``shape`` of a context into one feature dimension (no parameters).

    Example:
        >>> FlattenContext((2, 3))(torch.zeros(4, 2, 3)).shape
        torch.Size([4, 6])
    """

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = torch.Size(shape)

    def forward(self, context: Tensor) -> Tensor:
        return context.reshape(context.shape[: context.dim() - len(self.shape)] + (-1,))


def default_embedding(
    context_shape: Sequence[int], features: int = 32, hidden_dims: Sequence[int] = (128,)
) -> tuple[nn.Module | None, int]:
    """The embedding a builder uses when none is given, and the number of features it emits.

    A vector context of at most :data:`DEFAULT_EMBEDDING_THRESHOLD` entries is used as it is (None);
    a small multi-dimensional one is flattened; a larger one is flattened and mapped by an MLP to
    ``features`` entries (trained with the flow).

    Example:
        >>> default_embedding((3,))
        (None, 3)
        >>> type(default_embedding((1, 28, 28))[0]).__name__, default_embedding((1, 28, 28))[1]
        ('Sequential', 32)
    """
    shape = torch.Size(context_shape)
    size = math.prod(shape)
    if size <= DEFAULT_EMBEDDING_THRESHOLD:
        return (None if len(shape) == 1 else FlattenContext(shape)), size
    net = MLP(size, features, hidden_dims, zero_init=False)
    return (nn.Sequential(FlattenContext(shape), net) if len(shape) > 1 else net), features
