"""Amortized guides: conditional flows as encoders ``x -> q(z | x)`` (e.g. VAE encoders).

The flow is any conditional vector builder of the one registry, built with
``build(name, (latent_dim,), context_shape=(context_features,))``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import pyro.distributions as dist
import torch  # noqa: F401  (doctests)
from torch import Tensor, nn

from ..flows import build, builders
from ..nn import MLP
from ..transforms.normalization import ActNorm
from .posterior import FlowPosterior

__all__ = ["FlowEncoder", "ENCODER_DEFAULTS", "ENCODER_ALIASES"]

#: Encoder names that are a registry builder used the other way round: ``iaf`` is ``maf`` whose
#: density direction (one parallel MADE pass) draws the guide's samples (inverse autoregressive flow).
ENCODER_ALIASES: dict[str, tuple[str, bool]] = {"iaf": ("maf", True)}

#: Hyper-parameters an encoder's flow gets unless given: the flow's latent is the encoder's Gaussian, so
#: mixture-CDF layers work on the real line (logit latent), and couplings start with 4 layers.
ENCODER_DEFAULTS: dict[str, dict[str, Any]] = {
    "ar_flow": {"to_real": True},
    "realnvp": {"num_layers": 4, "hidden_dims": (64, 64)},
    "nice": {"hidden_dims": (64, 64)},
}


class FlowEncoder(nn.Module):
    r"""An amortized posterior ``q(z | x)``: a diagonal Gaussian followed by a conditional flow.

    An MLP maps ``x`` to a location, a scale and a context vector ``h``; the posterior sample is

    .. math::
        z_0 = \mu(x) + \sigma(x) \odot \varepsilon, \quad \varepsilon \sim N(0, I), \qquad
        z = T(z_0; h(x)), \qquad
        \log q(z \mid x) = \log N(z_0; \mu, \sigma^2) - \log|\det J_T(z_0; h)|

    ``flow=None`` gives the plain Gaussian encoder of a VAE. With ``inverse=True`` (or ``flow="iaf"``)
    the flow's transforms are used inverted, so a MAF becomes an IAF: sampling, what a guide does
    most, is then the flow's one-pass density direction. Calling the encoder returns a
    :class:`~pyro_flowzoo.infer.FlowPosterior` (a Pyro distribution with batch shape ``x.shape[:-1]``
    and event shape ``(latent_dim,)``), for ``pyro.sample("z", encoder(x))`` inside a guide.
    Register the encoder with ``pyro.module`` in the guide.

    Args:
        in_features: size of ``x``.
        latent_dim: size of ``z``.
        hidden_dims: hidden sizes of the encoder MLP.
        flow: a conditional vector builder in ``FLOWS`` (``builders("vector", conditional=True)``), ``"iaf"``,
            or None.
        context_features: size of ``h``.
        flow_kwargs: hyper-parameters of the conditional flow (e.g. ``num_layers``, ``hidden_dims``),
            merged over :data:`ENCODER_DEFAULTS`.
        inverse: use the flow's transforms inverted (latent to sample through the density direction).

    References:
        Kingma, Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114; Rezende, Mohamed,
        arXiv:1505.05770; Kingma et al., arXiv:1606.04934.

    Example:
        >>> encoder = FlowEncoder(6, 2, hidden_dims=(16,), flow_kwargs={"num_layers": 2, "hidden_dims": (8,)})
        >>> q = encoder(torch.randn(5, 6))
        >>> q.batch_shape, q.event_shape
        (torch.Size([5]), torch.Size([2]))
    """

    def __init__(
        self,
        in_features: int,
        latent_dim: int,
        hidden_dims: Sequence[int] = (256,),
        flow: Optional[str] = "realnvp",
        context_features: int = 32,
        flow_kwargs: Optional[dict[str, Any]] = None,
        inverse: bool = False,
    ) -> None:
        super().__init__()
        flow_kwargs = dict(flow_kwargs or {})
        choices = (*builders("vector", conditional=True), *ENCODER_ALIASES)
        if flow is not None and flow not in choices:
            raise ValueError(f"unknown conditional flow {flow!r}; choose one of: {', '.join(choices)} or None")
        if flow is None and flow_kwargs:
            raise ValueError(f"flow=None takes no flow hyper-parameters; got {sorted(flow_kwargs)}")
        if flow in ENCODER_ALIASES:
            flow, inverse = ENCODER_ALIASES[flow]
        self.inverse = inverse
        self.latent_dim = latent_dim
        self.context_features = context_features if flow is not None else 0
        self.net = MLP(in_features, 2 * latent_dim + self.context_features, hidden_dims, zero_init=False)
        self.flow = (
            None
            if flow is None
            else build(
                flow,
                (latent_dim,),
                context_shape=(context_features,),
                **{**ENCODER_DEFAULTS.get(flow, {}), **flow_kwargs},
            )
        )
        for module in [] if self.flow is None else self.flow.modules():
            if isinstance(module, ActNorm):  # no data-dependent init from the encoder's own first samples
                module.set_identity()

    def forward(self, x: Tensor) -> FlowPosterior:
        out = self.net(x)
        loc, raw_scale, context = out.split([self.latent_dim, self.latent_dim, self.context_features], -1)
        scale = nn.functional.softplus(raw_scale) + 1e-5
        base = dist.Normal(loc, scale).to_event(1)
        if self.flow is None:
            return FlowPosterior(base, [])
        transforms = list(self.flow.condition(context).transforms)
        if self.inverse:
            transforms = [t.inv for t in reversed(transforms)]
        return FlowPosterior(base, transforms)
