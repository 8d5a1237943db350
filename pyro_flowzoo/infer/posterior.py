"""``FlowPosterior``: a transformed distribution that scores its own samples without inverting."""

from __future__ import annotations

from typing import Optional, Sequence

import pyro.distributions as dist
import torch
from pyro.distributions.util import sum_rightmost
from torch import Tensor
from torch.distributions import Transform

from ..transforms.compose import push_forward

__all__ = ["FlowPosterior"]


class FlowPosterior(dist.TransformedDistribution):
    r"""A Pyro ``TransformedDistribution`` whose ``rsample`` also computes the sample's log-density.

    .. math::
        x = T_K \circ \dots \circ T_1(z), \quad z \sim p_Z, \qquad
        \log q(x) = \log p_Z(z) - \sum_k \log\left|\det \frac{\partial T_k}{\partial z_{k-1}}\right|

    A guide samples ``x`` and the ELBO then scores the same tensor (``Trace_ELBO`` calls
    ``log_prob(x)``). Pyro's ``TransformedDistribution`` would run every inverse to do that, which is
    a second pass for coupling layers, ``D`` sequential passes for inverse-autoregressive layers and
    a root solve for planar/radial layers. This subclass remembers ``(x, log q(x))`` from the last
    ``rsample`` by tensor identity and returns it when exactly that tensor is scored; any other value
    goes through the inverses as usual (so ``log_prob`` is always exact). The distribution is meant
    to be made fresh on every guide call (as :class:`~pyro_flowzoo.infer.AutoFlowGuide` does), so
    a remembered value never outlives the parameters it was computed with.

    Args:
        base_dist: the base distribution (``event_shape`` of the latent).
        transforms: transforms from latent to sample; ``pyro_flowzoo`` transforms run their
            one-pass ``forward_and_log_det``, others ``t(x)`` and ``t.log_abs_det_jacobian``.

    References:
        Rezende, Mohamed, "Variational Inference with Normalizing Flows", arXiv:1505.05770.

    Example:
        >>> from torch.distributions import AffineTransform
        >>> base = dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1)
        >>> q = FlowPosterior(base, [AffineTransform(torch.ones(2), 2 * torch.ones(2), event_dim=1)])
        >>> x = q.rsample((3,))
        >>> torch.allclose(q.log_prob(x), q.log_prob(x.clone()))
        True
    """

    def __init__(
        self,
        base_dist: dist.TorchDistribution,
        transforms: Sequence[Transform] | Transform,
        validate_args: Optional[bool] = None,
    ) -> None:
        super().__init__(base_dist, transforms, validate_args=validate_args)
        self._memo: Optional[tuple[Tensor, Tensor]] = None

    def rsample_and_log_prob(self, sample_shape: Sequence[int] = ()) -> tuple[Tensor, Tensor]:
        """Reparametrised samples and their log-density, in one pass through the transforms."""
        sample_shape = torch.Size(sample_shape)
        z = self.base_dist.rsample(sample_shape)
        batch_dims = len(sample_shape + self.base_dist.batch_shape)
        x, log_det = push_forward(self.transforms, z, batch_dims)
        log_pz = self.base_dist.log_prob(z)
        log_q = sum_rightmost(log_pz, log_pz.dim() - batch_dims) - log_det
        self._memo = (x, log_q)
        return x, log_q

    def rsample(self, sample_shape: Sequence[int] = ()) -> Tensor:
        return self.rsample_and_log_prob(sample_shape)[0]

    def log_prob(self, value: Tensor) -> Tensor:
        if self._memo is not None and self._memo[0] is value:
            return self._memo[1]
        return super().log_prob(value)

    def clear_cache(self) -> None:
        """Forgets the remembered ``(sample, log_prob)`` pair."""
        self._memo = None

    def expand(self, batch_shape: Sequence[int], _instance: Optional[FlowPosterior] = None) -> FlowPosterior:
        new = self._get_checked_instance(FlowPosterior, _instance)
        new = super().expand(batch_shape, _instance=new)
        new._memo = None
        return new
