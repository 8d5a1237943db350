"""Data-side end of vector density flows: a standardization fitted from the first batch, and the support.

Why a standardization: a spline flow is the identity outside its interval, so data coordinates on a scale
far from it (heavy tails, large offsets) are barely modelled; ``benchmarks/density.py`` measures the gap to the
true entropy with and without it, under a plain Adam loop.
"""

from __future__ import annotations

from typing import Sequence, Union

from torch import nn

from ..transforms.support import FirstBatchNorm, support_transform

__all__ = ["data_side", "Support"]

Support = Union[None, str, Sequence[float]]


def data_side(event_shape: Sequence[int], support: Support = None) -> list[nn.Module]:
    """The last layers (latent -> data order) of a vector flow: a ``FirstBatchNorm`` then the ``support`` bijection.

    The FirstBatchNorm (an ActNorm) sets its shift and scale from the first batch scored in training mode (the first
    ``log_prob`` of a plain training loop, or ``fit``'s init batch), so the layers before it see data of
    zero mean and unit variance per entry, whatever the data's scale; it stays trainable after that.
    ``support="positive"`` ends the flow with ``exp``, ``(low, high)`` with a scaled sigmoid (each with its
    log-det), so samples stay inside the support and the standardization acts on the unbounded side.

    Example:
        >>> [type(t).__name__ for t in data_side((2,), support=(0.0, 1.0))]
        ['FirstBatchNorm', 'Interval']
    """
    layers: list[nn.Module] = [FirstBatchNorm(int(event_shape[0]))]
    bijection = support_transform(support, event_shape)
    if bijection is not None:
        layers.append(bijection)
    return layers
