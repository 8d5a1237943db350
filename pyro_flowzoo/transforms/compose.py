"""The push-forward and pull-back loops through a list of transforms, with the summed log-determinant.

One loop for :class:`~pyro_flowzoo.Flow` and :class:`~pyro_flowzoo.infer.FlowPosterior`:
``pyro_flowzoo`` transforms run their one-pass ``forward_and_log_det`` / ``inverse_and_log_det``,
other torch transforms ``t(x)``/``t.inv(y)`` and ``t.log_abs_det_jacobian``.
"""

from __future__ import annotations

from typing import Sequence

from pyro.distributions.util import sum_rightmost
from torch import Tensor
from torch.distributions import Transform

from .base import _FlowTransformMixin

__all__ = ["push_forward", "pull_back"]


def _accumulate(total: Tensor, log_det: Tensor, batch_dims: int) -> Tensor:
    return total + sum_rightmost(log_det, max(0, log_det.dim() - batch_dims))


def _batched(total: Tensor, x: Tensor, batch_dims: int) -> Tensor:
    return total.expand(x.shape[:batch_dims]) if total.dim() < batch_dims else total


def push_forward(transforms: Sequence[Transform], z: Tensor, batch_dims: int) -> tuple[Tensor, Tensor]:
    r"""``x = T_K(...T_1(z))`` and :math:`\sum_k \log|\det J_{T_k}|`, of shape ``z.shape[:batch_dims]``.

    Example:
        >>> import torch
        >>> from torch.distributions import AffineTransform
        >>> x, ld = push_forward([AffineTransform(0.0, 2.0, event_dim=1)], torch.ones(3, 2), 1)
        >>> x[0].tolist(), [round(v, 4) for v in ld.tolist()]
        ([2.0, 2.0], [1.3863, 1.3863, 1.3863])
    """
    total = z.new_zeros(())
    for t in transforms:
        if isinstance(t, _FlowTransformMixin):
            z, log_det = t.forward_and_log_det(z)
        else:
            x = t(z)
            log_det = t.log_abs_det_jacobian(z, x)
            z = x
        total = _accumulate(total, log_det, batch_dims)
    return z, _batched(total, z, batch_dims)


def pull_back(transforms: Sequence[Transform], x: Tensor, batch_dims: int) -> tuple[Tensor, Tensor]:
    r"""``z = T_1^{-1}(...T_K^{-1}(x))`` and :math:`\sum_k \log|\det J_{T_k}|` at the pre-images.

    Plain torch transforms with a one-entry cache forget the pair afterwards, so that calling this
    on the same tensor every training step never reuses a stale inverse.
    """
    total = x.new_zeros(())
    for t in reversed(transforms):
        if isinstance(t, _FlowTransformMixin):
            x, log_det = t.inverse_and_log_det(x)
        else:
            y = x
            x = t.inv(y)
            log_det = t.log_abs_det_jacobian(x, y)
            if getattr(t, "_cache_size", 0) == 1:
                t._cached_x_y = None, None
        total = _accumulate(total, log_det, batch_dims)
    return x, _batched(total, x, batch_dims)
