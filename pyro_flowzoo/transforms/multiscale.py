"""Multi-scale factor-out (RealNVP, Glow): an inner flow on half the channels, the other half passed through.

``TransformedDistribution`` cannot drop dimensions, so "factoring out" is a shape-preserving transform:
the kept half of the channels goes through an inner list of transforms (the deeper scales), the
factored-out half goes straight to the latent, optionally through Glow's learned prior expressed as an
affine map conditioned on the kept half. The base stays ``N(0, I)`` over every latent dimension, so
temperature sampling scales all scales alike.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .base import ConditionalFlowTransform, FlowTransform, sum_rightmost
from .coupling import run_net

__all__ = ["FactorOut", "ConditionalFactorOut"]


class _FactorOutMixin:
    inner: nn.ModuleList
    prior_net: Optional[nn.Module]

    def _init_factor_out(
        self, num_channels: int, inner: Sequence[nn.Module], prior_net: Optional[nn.Module], allow_conditional: bool
    ) -> None:
        if num_channels < 2:
            raise ValueError(f"FactorOut needs at least 2 channels, got {num_channels}")
        for t in inner:
            ok = isinstance(t, FlowTransform) or (allow_conditional and isinstance(t, ConditionalFlowTransform))
            if not ok:
                kind = "FlowTransform or ConditionalFlowTransform" if allow_conditional else "FlowTransform"
                raise ValueError(f"FactorOut's inner transforms must be pyro_flowzoo {kind}s, got {type(t).__name__}")
        self.num_channels = num_channels
        self.num_kept = num_channels // 2
        self.inner = nn.ModuleList(inner)
        self.prior_net = prior_net
        if prior_net is not None:
            n_out = num_channels - self.num_kept
            self.prior_scale = nn.Parameter(torch.ones(n_out, 1, 1))
            self.prior_scale_shift = nn.Parameter(torch.zeros(n_out, 1, 1))

    def _run(self, t: nn.Module, x: Tensor, context: Optional[Tensor], inverse: bool) -> tuple[Tensor, Tensor]:
        if isinstance(t, ConditionalFlowTransform):
            return t.inverse_and_log_det(x, context) if inverse else t.forward_and_log_det(x, context)
        return t.inverse_and_log_det(x) if inverse else t.forward_and_log_det(x)

    def _prior(self, kept: Tensor, context: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        n_ctx = len(getattr(self, "context_shape", ())) or 1
        h = run_net(self.prior_net, kept, 3, context, n_ctx).to(kept.dtype)
        shift, raw = h.chunk(2, dim=-3)
        # Bounded like the couplings' log-scales: no overflow from one outlier image.
        return shift, self.prior_scale * torch.tanh(raw) + self.prior_scale_shift

    def _check(self, x: Tensor) -> None:
        if x.dim() < 3 or x.shape[-3] != self.num_channels:
            raise ValueError(f"FactorOut expected inputs (..., {self.num_channels}, H, W), got {tuple(x.shape)}")

    @staticmethod
    def _join(kept: Tensor, out: Tensor, log_det: Tensor) -> tuple[Tensor, Tensor]:
        batch = torch.broadcast_shapes(kept.shape[:-3], out.shape[:-3], log_det.shape)
        y = torch.cat([kept.expand(batch + kept.shape[-3:]), out.expand(batch + out.shape[-3:])], dim=-3)
        return y, log_det.expand(batch)

    def _forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        self._check(x)
        kept, out = x[..., : self.num_kept, :, :], x[..., self.num_kept :, :, :]
        shape = kept.shape[-3:]
        log_det = x.new_zeros(())
        for t in self.inner:
            kept, ld = self._run(t, kept, context, inverse=False)
            log_det = log_det + ld
        if kept.shape[-3:] != shape:
            raise ValueError(
                f"FactorOut's inner transforms must keep the shape {tuple(shape)}, got {tuple(kept.shape[-3:])}"
            )
        if self.prior_net is not None:
            shift, log_scale = self._prior(kept, context)
            out = out * torch.exp(log_scale) + shift
            log_det = log_det + sum_rightmost(log_scale, 3)
        return self._join(kept, out, log_det)

    def _inverse_pair(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        self._check(y)
        kept, out = y[..., : self.num_kept, :, :], y[..., self.num_kept :, :, :]
        log_det = y.new_zeros(())
        if self.prior_net is not None:
            shift, log_scale = self._prior(kept, context)
            out = (out - shift) * torch.exp(-log_scale)
            log_det = log_det + sum_rightmost(log_scale, 3)
        shape = kept.shape[-3:]
        for t in reversed(self.inner):
            kept, ld = self._run(t, kept, context, inverse=True)
            log_det = log_det + ld
        if kept.shape[-3:] != shape:
            raise ValueError(
                f"FactorOut's inner transforms must keep the shape {tuple(shape)}, got {tuple(kept.shape[-3:])}"
            )
        return self._join(kept, out, log_det)


class FactorOut(_FactorOutMixin, FlowTransform):
    r"""Multi-scale factor-out: ``inner`` transforms act on the first ``C // 2`` channels, the rest pass through.

    With ``x = (x_k, x_o)`` split along channels (latent side) and ``y`` the data side:

    .. math::
        y_k = F(x_k), \qquad y_o = x_o \odot e^{s(y_k)} + m(y_k), \qquad
        \log|\det| = \log|\det J_F(x_k)| + \textstyle\sum s(y_k)

    where ``F`` is the composition of ``inner`` (latent -> data order, shape-preserving: end a deeper
    scale with an un-squeeze) and ``(m, s)`` is Glow's learned prior for the factored-out half,
    ``prior_net(y_k)`` split into shift and raw log-scale (``s = a tanh(raw) + b``), or the identity
    when ``prior_net`` is None (RealNVP). Read from the data side: the kept half is processed further,
    the other half is standardised by a Gaussian conditioned on the kept half and sent to the latent.

    Args:
        num_channels: channels ``C`` of the input.
        inner: transforms on ``(C // 2, H, W)``, latent -> data order.
        prior_net: None, or a net ``(C // 2, H, W) -> (2 (C - C // 2), H, W)`` (zero-initialised last layer).

    References:
        Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", arXiv:1605.08803;
        Kingma, Dhariwal, "Glow", arXiv:1807.03039.

    Example:
        >>> from pyro_flowzoo.transforms import ActNorm
        >>> t = FactorOut(4, [ActNorm(2)])
        >>> t(torch.randn(3, 4, 2, 2)).shape
        torch.Size([3, 4, 2, 2])
    """

    def __init__(
        self, num_channels: int, inner: Sequence[FlowTransform] = (), prior_net: Optional[nn.Module] = None
    ) -> None:
        super().__init__(event_dim=3)
        self._init_factor_out(num_channels, inner, prior_net, allow_conditional=False)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._forward(x)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._inverse_pair(y)


class ConditionalFactorOut(_FactorOutMixin, ConditionalFlowTransform):
    r""":class:`FactorOut` whose inner transforms and prior may take a context (conditional Glow).

    .. math:: y_k = F(x_k; c), \qquad y_o = x_o \odot e^{s(y_k, c)} + m(y_k, c)

    Args:
        num_channels: channels ``C`` of the input.
        inner: plain or conditional transforms on ``(C // 2, H, W)``, latent -> data order.
        context_shape: shape of one context.
        prior_net: None, or a net ``(kept, context) -> (2 (C - C // 2), H, W)``.

    References:
        Kingma, Dhariwal, "Glow", arXiv:1807.03039; Winkler et al., "Learning Likelihoods with
        Conditional Normalizing Flows", arXiv:1912.00042.

    Example:
        >>> from pyro_flowzoo.nn import ZeroConv2d
        >>> t = ConditionalFactorOut(4, [], (3,), ZeroConv2d(2, 4, context_features=3))
        >>> t.condition(torch.randn(5, 3))(torch.randn(4, 2, 2)).shape
        torch.Size([5, 4, 2, 2])
    """

    def __init__(
        self,
        num_channels: int,
        inner: Sequence[nn.Module],
        context_shape: Sequence[int],
        prior_net: Optional[nn.Module] = None,
    ) -> None:
        super().__init__(event_dim=3, context_shape=tuple(context_shape))
        self._init_factor_out(num_channels, inner, prior_net, allow_conditional=True)

    def forward_and_log_det(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        return self._forward(x, context)

    def inverse_and_log_det(self, y: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        return self._inverse_pair(y, context)
