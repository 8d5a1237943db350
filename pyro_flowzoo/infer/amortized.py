"""Amortized guides: conditional flows as encoders ``x -> q(z | x)`` (e.g. VAE encoders).

The flow is any conditional vector builder of the one registry, built with
``build(name, (latent_dim,), context_shape=(context_features,))``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import pyro.distributions as dist
import torch
from torch import Tensor, nn
from torch.distributions import AffineTransform

from ..flow import Flow
from ..flows import build, builders
from ..nn import MLP
from ..transforms.conditional import ConditionalPlanar, ConditionalRadial
from .autoguide import planar_identity_u, start_at_identity
from .posterior import FlowPosterior

__all__ = ["FlowEncoder", "ENCODER_DEFAULTS", "ENCODER_ALIASES", "encoder_flows", "start_encoder_at_identity"]

#: Encoder names that are a registry builder used the other way round: ``iaf`` is ``maf`` whose
#: density direction (one parallel MADE pass) draws the guide's samples (inverse autoregressive flow).
ENCODER_ALIASES: dict[str, tuple[str, bool]] = {"iaf": ("maf", True)}


def _hidden(latent_dim: int) -> tuple[int]:
    return (max(64, 2 * latent_dim),)


#: Hyper-parameters an encoder's flow gets unless given (a callable value is called with ``latent_dim``).
#: Every size is set here rather than left to the builder, whose defaults are chosen for density
#: estimation and change with it. An encoder runs on every SVI step, so it is small: one hidden layer of
#: ``max(64, 2 D)`` units, 4 coupling or 2 autoregressive layers, 8 planar or radial layers (they are
#: cheap: ``2 D + 1`` or ``D + 2`` numbers per layer from a hypernetwork of the context). ``ar_flow`` uses
#: logistic mixtures on the real line (a mixture of identical standard logistics is the identity on the
#: logit scale, so the layer can start there). Measured under the plain loop of ``examples/vi_vae.py``
#: in ``benchmarks/vae.py`` (RESULTS.md, issue 14 item 5): 150 epochs, 5 seeds, no failure or NaN for any
#: family; median test-ELBO gain over the Gaussian encoder of the same seed from 0.04 (nice) to 0.43 (nsf_ar)
#: nats/image, at 1.6x (iaf) to 5.9x (ar_flow) its time per step. The couplings keep the masks measured
#: there (``mask_anchor="latent"``; the builders anchor at the data side since, and a VAE's latents have no order),
#: and realnvp and maf their shift on the data side (``shift_side="data"``; the builders' ``D >= 3`` default
#: is ``"latent"`` since, not measured here); the splines have no affine layer in front (``affine_layer=False``).
ENCODER_DEFAULTS: dict[str, dict[str, Any]] = {
    "realnvp": {"num_layers": 4, "hidden_dims": _hidden, "mask": "half", "mask_anchor": "latent", "shift_side": "data"},
    "nice": {"num_layers": 4, "hidden_dims": _hidden, "mask": "even_odd", "mask_anchor": "latent"},
    "maf": {"num_layers": 2, "hidden_dims": _hidden, "max_log_scale": 3.0, "shift_side": "data"},
    "nsf_ar": {"num_layers": 2, "hidden_dims": _hidden, "num_bins": 8, "bound": 5.0, "affine_layer": False},
    "nsf_coupling": {
        "num_layers": 4,
        "hidden_dims": _hidden,
        "num_bins": 8,
        "bound": 5.0,
        "mask": "half",
        "mask_anchor": "latent",
        "affine_layer": False,
    },
    "ar_flow": {"num_layers": 2, "hidden_dims": _hidden, "num_components": 4, "family": "logistic", "to_real": True},
    "planar": {"num_layers": 8, "hidden_dims": (32,)},
    "radial": {"num_layers": 8, "hidden_dims": (32,)},
}


def encoder_flows() -> tuple[str, ...]:
    """Every flow name :class:`FlowEncoder` takes: the conditional vector builders and the aliases.

    Example:
        >>> "iaf" in encoder_flows() and "realnvp" in encoder_flows()
        True
    """
    return (*builders("vector", conditional=True), *ENCODER_ALIASES)


@torch.no_grad()
def start_encoder_at_identity(flow: Flow) -> Flow:
    """Sets every layer of a conditional flow to the identity map for every context.

    :func:`~pyro_flowzoo.infer.autoguide.start_at_identity` (MADE outputs zero, ActNorm marked
    initialised, mixture-CDF components within ``+-0.1`` of 0: the identity for logistic mixtures, to
    about 0.01) plus what only conditional layers need: planar and radial hypernetworks get a zero last
    layer whose bias gives ``\\hat u = 0`` and ``\\beta = 0``. Couplings start at the identity
    already (zero last layers). A fresh encoder is then exactly its Gaussian.

    Example:
        >>> flow = start_encoder_at_identity(build("planar", (3,), context_shape=(2,), num_layers=2))
        >>> z = torch.randn(4, 3)
        >>> torch.allclose(flow.condition(torch.randn(4, 2)).transforms[0](z), z)
        True
    """
    start_at_identity(flow)
    for module in flow.modules():
        if isinstance(module, ConditionalPlanar):
            last = module.hypernet.net[-1]
            last.weight.zero_()
            u, w, _ = last.bias.split([module.dim, module.dim, 1])
            u.copy_(planar_identity_u(w))
        elif isinstance(module, ConditionalRadial):
            last = module.hypernet.net[-1]
            last.weight.zero_()
            last.bias[module.dim + 1] = last.bias[module.dim]  # beta = softplus(raw_beta) - softplus(raw_alpha)
    return flow


class FlowEncoder(nn.Module):
    r"""An amortized posterior ``q(z | x)``: a diagonal Gaussian and a conditional flow.

    An MLP maps ``x`` to a location ``\mu``, a scale ``\sigma`` and a context vector ``h``; the flow
    ``T`` follows the Gaussian (``affine_position="latent"``, the default, as in Rezende and Mohamed's
    and Kingma et al.'s encoders):

    .. math::
        z_0 = \mu(x) + \sigma(x) \odot \varepsilon, \quad \varepsilon \sim N(0, I), \qquad
        z = T(z_0; h(x)), \qquad
        \log q(z \mid x) = \log N(z_0; \mu, \sigma^2) - \log|\det J_T(z_0; h)|

    ``affine_position="data"`` puts the Gaussian's affine map last instead, ``z = \mu + \sigma \odot
    T(\varepsilon; h)``, so the flow works in standardised coordinates (as ``AutoFlowGuide`` does). On the
    VAE of ``examples/vi_vae.py`` (``benchmarks/vae.py --epochs 40 --seeds 3``, both positions) that gave a
    lower or level median test ELBO for every family: by 0.62 nats/image for radial, 0.26 planar, 0.15 iaf,
    0.09 nsf_ar, 0.08 nsf_coupling, 0.04 maf, 0.03 realnvp, 0.01 ar_flow and nice (RESULTS.md, issue 14,
    item 5).

    The flow starts at the identity (:func:`start_encoder_at_identity`), so a fresh encoder is its
    Gaussian. ``flow=None`` gives the plain Gaussian encoder of a VAE (what Pyro users write with
    ``dist.Normal(loc, scale).to_event(1)``). With ``inverse=True`` (or ``flow="iaf"``) the flow's
    transforms are used inverted, so a MAF becomes an IAF: sampling, what a guide does most, is then the
    flow's one-pass density direction. Calling the encoder returns a
    :class:`~pyro_flowzoo.infer.FlowPosterior` (a Pyro distribution with batch shape ``x.shape[:-1]`` and
    event shape ``(latent_dim,)``) that scores its own samples without inverting, for
    ``pyro.sample("z", encoder(x))`` inside a guide. Register the encoder with ``pyro.module`` in the guide.

    Args:
        in_features: size of ``x``.
        latent_dim: size of ``z``.
        hidden_dims: hidden sizes of the encoder MLP.
        flow: a conditional vector builder in ``FLOWS`` (``builders("vector", conditional=True)``), ``"iaf"``
            (see :func:`encoder_flows`), or None.
        context_features: size of ``h``.
        flow_kwargs: hyper-parameters of the conditional flow (e.g. ``num_layers``, ``hidden_dims``),
            merged over :data:`ENCODER_DEFAULTS`.
        inverse: use the flow's transforms inverted (latent to sample through the density direction).
        affine_position: ``"latent"`` (the flow after the Gaussian) or ``"data"`` (the Gaussian's affine map
            after the flow).

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
        affine_position: str = "latent",
    ) -> None:
        super().__init__()
        flow_kwargs = dict(flow_kwargs or {})
        if flow is not None and flow not in encoder_flows():
            raise ValueError(f"unknown conditional flow {flow!r}; choose one of: {', '.join(encoder_flows())} or None")
        if flow is None and flow_kwargs:
            raise ValueError(f"flow=None takes no flow hyper-parameters; got {sorted(flow_kwargs)}")
        if affine_position not in ("data", "latent"):
            raise ValueError(f"affine_position must be 'data' or 'latent', got {affine_position!r}")
        if flow in ENCODER_ALIASES:
            flow, inverse = ENCODER_ALIASES[flow]
        self.inverse = inverse
        self.affine_position = affine_position
        self.latent_dim = latent_dim
        self.context_features = context_features if flow is not None else 0
        self.net = MLP(in_features, 2 * latent_dim + self.context_features, hidden_dims, zero_init=False)
        self.flow: Optional[Flow] = None
        if flow is not None:
            defaults: dict[str, Union[Any, Callable[[int], Any]]] = ENCODER_DEFAULTS.get(flow, {})
            hparams = {k: v(latent_dim) if callable(v) else v for k, v in defaults.items()}
            self.flow = build(flow, (latent_dim,), context_shape=(context_features,), **{**hparams, **flow_kwargs})
            start_encoder_at_identity(self.flow)

    def forward(self, x: Tensor) -> FlowPosterior:
        out = self.net(x)
        loc, raw_scale, context = out.split([self.latent_dim, self.latent_dim, self.context_features], -1)
        scale = nn.functional.softplus(raw_scale) + 1e-5
        if self.flow is None:
            return FlowPosterior(dist.Normal(loc, scale).to_event(1), [])
        transforms = list(self.flow.condition(context).transforms)
        if self.inverse:
            transforms = [t.inv for t in reversed(transforms)]
        if self.affine_position == "latent":
            return FlowPosterior(dist.Normal(loc, scale).to_event(1), transforms)
        base = dist.Normal(torch.zeros_like(loc), torch.ones_like(scale)).to_event(1)
        return FlowPosterior(base, [*transforms, AffineTransform(loc, scale, event_dim=1)])
