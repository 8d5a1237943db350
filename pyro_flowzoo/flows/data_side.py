"""Data-side end of vector density flows: a standardization fitted from the first batch, and the support.

Measured (issue 15, ``benchmarks/density.py``, plain Adam loop with no data-dependent init call): without a
standardization, ``nsf_ar`` on the skewed heavy-tailed 6-D set missed the entropy by 3.6 nats/dim (the
data's heavy coordinates lie mostly outside the spline interval, where the map is the identity); with an
ActNorm at the data side, initialised from the first batch the flow scores, by 0.06.
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
