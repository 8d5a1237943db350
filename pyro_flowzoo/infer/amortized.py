"""Amortized guides: conditional flows as encoders ``x -> q(z | x)`` (e.g. VAE encoders)."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import ConditionalAffineAutoregressive
from pyro.nn import ConditionalAutoRegressiveNN
from torch import Tensor, nn

from ..flow import Flow, StandardNormal
from ..nn import MLP
from ..transforms import ConditionalAdditiveCoupling, ConditionalAffineCoupling, alternating_masks
from .posterior import FlowPosterior

__all__ = [
    "conditional_realnvp",
    "conditional_nice",
    "conditional_iaf",
    "CONDITIONAL_FLOWS",
    "FlowEncoder",
]


class _BroadcastingARN(ConditionalAutoRegressiveNN):
    """Pyro's ``ConditionalAutoRegressiveNN`` that broadcasts input and context batch shapes both ways."""

    def forward(self, inputs: Tensor, context: Tensor) -> Any:
        batch = torch.broadcast_shapes(inputs.shape[:-1], context.shape[:-1])
        return super().forward(inputs.expand(batch + inputs.shape[-1:]), context.expand(batch + context.shape[-1:]))


class _ConditionalIAFLayer(ConditionalAffineAutoregressive):
    """Pyro's ``ConditionalAffineAutoregressive`` with the shape methods ``Flow`` reads."""

    def forward_shape(self, shape: torch.Size) -> torch.Size:
        return shape

    def inverse_shape(self, shape: torch.Size) -> torch.Size:
        return shape


def _check_dims(name: str, dim: int, context_features: int, min_dim: int = 2) -> None:
    if dim < min_dim:
        raise ValueError(f"{name} needs a latent of dimension >= {min_dim}, got {dim}")
    if context_features < 1:
        raise ValueError(f"{name} needs context_features >= 1, got {context_features}")


def conditional_realnvp(dim: int, context_features: int, num_layers: int = 4,
                        hidden_dims: Sequence[int] = (64, 64), mask: str = "half") -> Flow:
    r"""A conditional RealNVP on vectors: affine couplings whose networks also read a context.

    .. math::
        y_{\bar m} = \exp(s(x_m, c)) \odot x_{\bar m} + t(x_m, c),
        \qquad \log|\det J| = \textstyle\sum s(x_m, c)

    Masks alternate between layers, so every coordinate is transformed.

    Args:
        dim: latent dimension ``D >= 2``.
        context_features: size of the context vector ``c``.
        num_layers: number of couplings.
        hidden_dims: hidden sizes of each coupling's MLP.
        mask: ``"half"`` or ``"even_odd"``.

    References:
        Dinh et al., arXiv:1605.08803; Winkler et al., "Learning Likelihoods with Conditional
        Normalizing Flows", arXiv:1912.00042.

    Example:
        >>> flow = conditional_realnvp(2, 3, num_layers=2, hidden_dims=(8,))
        >>> flow.condition(torch.randn(5, 3)).rsample().shape
        torch.Size([5, 2])
    """
    _check_dims("conditional_realnvp", dim, context_features)
    transforms = [
        ConditionalAffineCoupling(m, MLP(dim, 2 * dim, hidden_dims, context_features=context_features),
                                  (context_features,))
        for m in alternating_masks(dim, num_layers, mask)
    ]
    return Flow(StandardNormal((dim,)), transforms, context_shape=(context_features,))


def conditional_nice(dim: int, context_features: int, num_layers: int = 4,
                     hidden_dims: Sequence[int] = (64, 64), mask: str = "half") -> Flow:
    r"""A conditional NICE on vectors: volume-preserving additive couplings reading a context.

    .. math:: y_{\bar m} = x_{\bar m} + t(x_m, c), \qquad \log|\det J| = 0

    References:
        Dinh, Krueger, Bengio, "NICE: Non-linear Independent Components Estimation", arXiv:1410.8516.

    Example:
        >>> flow = conditional_nice(3, 2, num_layers=2, hidden_dims=(8,))
        >>> flow.log_prob(torch.zeros(4, 3), context=torch.zeros(4, 2)).shape
        torch.Size([4])
    """
    _check_dims("conditional_nice", dim, context_features)
    transforms = [
        ConditionalAdditiveCoupling(m, MLP(dim, dim, hidden_dims, context_features=context_features),
                                    (context_features,))
        for m in alternating_masks(dim, num_layers, mask)
    ]
    return Flow(StandardNormal((dim,)), transforms, context_shape=(context_features,))


def conditional_iaf(dim: int, context_features: int, num_layers: int = 2,
                    hidden_dims: Sequence[int] = (64, 64)) -> Flow:
    r"""A conditional inverse autoregressive flow (IAF) built from Pyro's ``ConditionalAffineAutoregressive``.

    .. math::
        y_i = \mu_i(x_{<i}, c) + \sigma_i(x_{<i}, c)\, x_i, \qquad
        \log|\det J| = \textstyle\sum_i \log \sigma_i

    Sampling (latent to data) is one parallel pass, which is what a guide needs; scoring an
    arbitrary value is ``D`` sequential passes, but a :class:`~pyro_flowzoo.infer.FlowPosterior`
    scores its own samples without inverting. Added to Pyro's transform: the autoregressive
    network's output layer starts at zero (the flow starts as the identity) and the variable order
    is reversed between layers (Pyro draws a random order per layer).

    References:
        Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow", arXiv:1606.04934.

    Example:
        >>> flow = conditional_iaf(3, 2, hidden_dims=(8,))
        >>> context = torch.randn(4, 2)
        >>> x = flow.condition(context).rsample()
        >>> flow.log_prob(x, context=context).shape
        torch.Size([4])
    """
    _check_dims("conditional_iaf", dim, context_features, min_dim=1)
    transforms = []
    for i in range(num_layers):
        order = torch.arange(dim) if i % 2 == 0 else torch.arange(dim - 1, -1, -1)
        arn = _BroadcastingARN(dim, context_features, list(hidden_dims), param_dims=[1, 1], permutation=order)
        nn.init.zeros_(arn.layers[-1].weight)
        nn.init.zeros_(arn.layers[-1].bias)
        transforms.append(_ConditionalIAFLayer(arn))
    return Flow(StandardNormal((dim,)), transforms, context_shape=(context_features,))


#: Conditional flow constructors by name: ``(dim, context_features, **hparams) -> Flow``.
CONDITIONAL_FLOWS: dict[str, Callable[..., Flow]] = {
    "realnvp": conditional_realnvp,
    "nice": conditional_nice,
    "iaf": conditional_iaf,
}


class FlowEncoder(nn.Module):
    r"""An amortized posterior ``q(z | x)``: a diagonal Gaussian followed by a conditional flow.

    An MLP maps ``x`` to a location, a scale and a context vector ``h``; the posterior sample is

    .. math::
        z_0 = \mu(x) + \sigma(x) \odot \varepsilon, \quad \varepsilon \sim N(0, I), \qquad
        z = T(z_0; h(x)), \qquad
        \log q(z \mid x) = \log N(z_0; \mu, \sigma^2) - \log|\det J_T(z_0; h)|

    ``flow=None`` gives the plain Gaussian encoder of a VAE. Calling the encoder returns a
    :class:`~pyro_flowzoo.infer.FlowPosterior` (a Pyro distribution with batch shape ``x.shape[:-1]``
    and event shape ``(latent_dim,)``), for ``pyro.sample("z", encoder(x))`` inside a guide.
    Register the encoder with ``pyro.module`` in the guide.

    Args:
        in_features: size of ``x``.
        latent_dim: size of ``z``.
        hidden_dims: hidden sizes of the encoder MLP.
        flow: a key of :data:`CONDITIONAL_FLOWS` or None.
        context_features: size of ``h``.
        flow_kwargs: hyper-parameters of the conditional flow (e.g. ``num_layers``, ``hidden_dims``).

    References:
        Kingma, Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114; Rezende, Mohamed,
        arXiv:1505.05770; Kingma et al., arXiv:1606.04934.

    Example:
        >>> encoder = FlowEncoder(6, 2, hidden_dims=(16,), flow_kwargs={"num_layers": 2, "hidden_dims": (8,)})
        >>> q = encoder(torch.randn(5, 6))
        >>> q.batch_shape, q.event_shape
        (torch.Size([5]), torch.Size([2]))
    """

    def __init__(self, in_features: int, latent_dim: int, hidden_dims: Sequence[int] = (256,),
                 flow: Optional[str] = "realnvp", context_features: int = 32,
                 flow_kwargs: Optional[dict[str, Any]] = None) -> None:
        super().__init__()
        flow_kwargs = dict(flow_kwargs or {})
        if flow is not None and flow not in CONDITIONAL_FLOWS:
            raise ValueError(
                f"unknown conditional flow {flow!r}; choose one of: {', '.join(CONDITIONAL_FLOWS)} or None"
            )
        if flow is None and flow_kwargs:
            raise ValueError(f"flow=None takes no flow hyper-parameters; got {sorted(flow_kwargs)}")
        self.latent_dim = latent_dim
        self.context_features = context_features if flow is not None else 0
        self.net = MLP(in_features, 2 * latent_dim + self.context_features, hidden_dims, zero_init=False)
        self.flow = None if flow is None else CONDITIONAL_FLOWS[flow](latent_dim, context_features, **flow_kwargs)

    def forward(self, x: Tensor) -> FlowPosterior:
        out = self.net(x)
        loc, raw_scale, context = out.split([self.latent_dim, self.latent_dim, self.context_features], -1)
        scale = nn.functional.softplus(raw_scale) + 1e-5
        base = dist.Normal(loc, scale).to_event(1)
        if self.flow is None:
            return FlowPosterior(base, [])
        return FlowPosterior(base, list(self.flow.condition(context).transforms))
