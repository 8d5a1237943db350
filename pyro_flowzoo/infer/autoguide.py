"""``AutoFlowGuide``: a Pyro autoguide whose posterior over the unconstrained latents is a zoo flow."""

from __future__ import annotations

import copy
import math
import warnings
from functools import partial
from typing import Any, Callable, Optional, Sequence, Union

import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.distributions.transforms import LowerCholeskyAffine
from pyro.infer.autoguide import AutoContinuous
from pyro.infer.autoguide.initialization import init_to_median
from pyro.nn import PyroParam
from torch import Tensor, nn
from torch.distributions import AffineTransform, Transform, biject_to

from ..flow import Flow
from ..flows.registry import FLOWS, builders
from ..flows.vector import small_hidden
from ..nn.made import MADE
from ..transforms.base import _FlowTransformMixin
from ..transforms.conditional import ConditionalMixtureCDFAutoregressive
from ..transforms.elementwise_spline import ElementwiseSpline
from ..transforms.mixture_cdf import MixtureCDFAutoregressive
from ..transforms.normalization import ActNorm
from ..transforms.planar_radial import Planar, Radial
from ..transforms.spline import NeuralSplineAutoregressive, _place_knots
from .posterior import FlowPosterior

__all__ = ["AutoFlowGuide", "VECTOR_BUILDERS", "GUIDE_DEFAULTS", "INVERTED_BY_DEFAULT", "prefix_layers"]

#: The vector builders an :class:`AutoFlowGuide` takes: read from the registry's metadata (``builders("vector")``).
VECTOR_BUILDERS: tuple[str, ...] = builders("vector")


def prefix_layers(dim: int) -> int:
    """Coupling layers of a guide with prefix masks: ``min(3, D - 1)`` (prefixes 1, ceil(D/3), ceil(2D/3)).

    One coupling for ``D = 2`` (more couplings with the same mask only add noise to a banana's fit),
    three for ``D >= 4`` (funnel6: worst of 5 seeds 0.053 with three, 0.097 with two; RESULTS.md).

    Example:
        >>> [prefix_layers(d) for d in (2, 3, 6, 31)]
        [1, 2, 3, 3]
    """
    return max(1, min(3, dim - 1))


#: Hyper-parameters passed to a builder unless the caller overrides them: sizes for VI (the guide runs on
#: every step, so it is kept small), support R^D (``ar_flow``), logistic mixture components (a mixture of
#: identical standard logistics is the identity on the logit scale). ``hidden_dims``, where a builder takes
#: it, defaults to two layers of ``max(32, 2 D)`` units. A callable value is called with ``D``.
GUIDE_DEFAULTS: dict[str, dict[str, Any]] = {
    # mask_anchor="latent": the alternating masks these guides were measured with (issue 14)
    "nice": {"num_layers": 4, "mask_anchor": "latent"},
    # A triangular map in the model's order (prefix masks: global latents, which a model samples first,
    # scale and shift the local ones after them), log-scales with a range of +-5 from the start (a funnel's
    # scale spans e^{+-4.5}); input_bound=None: a bound would stop a banana's shift x_1^2 from growing in the
    # tails. Measured against the alternating 4-coupling guide in RESULTS.md (issue 14). shift_side="data" (and
    # maf's): the density builders' "latent" shift (D >= 3) was worse as a guide (10 seeds, worst: banana 0.074
    # against 0.047, funnel6 0.184 against 0.076; RESULTS.md, eighth session).
    "realnvp": {
        "num_layers": prefix_layers,
        "mask": "prefix",
        "input_bound": None,
        "log_scale_bound": 5.0,
        "shift_side": "data",
    },
    # One autoregressive layer in the model's order, used forward (not as an IAF) so that the path-derivative
    # score applies: banana 0.020 and funnel6 0.145 (worst of 5 seeds) against 0.262 and 0.313 (3 seeds) with
    # three inverted layers; nsf_ar 0.055 and 0.568 against 0.276 and 0.726 (RESULTS.md, issue 14). Sampling
    # then costs D conditioner passes (logistic regression, D = 31: maf 3.5x AutoIAFNormal's step time).
    "maf": {"num_layers": 1, "max_log_scale": 5.0, "input_bound": None, "shift_side": "data"},
    # Uniform knots: the density builders' centered ones for D = 2 (issue 15) were not measured as guides.
    "nsf_ar": {"num_layers": 1, "num_bins": 8, "input_bound": None, "knots": "uniform", "affine_layer": False},
    # Spline couplings as the realnvp guide: prefix masks, a triangular map in the model's order.
    # affine_layer=False (both splines): the density builders' affine layer (D >= 3) was not tried as a guide.
    "nsf_coupling": {
        "num_layers": prefix_layers,
        "mask": "prefix",
        "num_bins": 8,
        "knots": "uniform",
        "affine_layer": False,
    },
    "ar_flow": {"num_layers": 2, "num_components": 4, "family": "logistic", "to_real": True},
    "planar": {"num_layers": 8},
    "radial": {"num_layers": 8},
}

#: Builders whose latent-to-data pass is sequential (``D`` passes, or a root solve per entry).
SEQUENTIAL_SAMPLERS: frozenset[str] = frozenset({"maf", "nsf_ar", "ar_flow"})

#: Sequential samplers that a guide uses inverted by default (``invert=None``), so that the parallel pass
#: samples: ``ar_flow``, whose sampling pass solves for a root per entry. ``maf`` and ``nsf_ar`` run forward:
#: sampling costs ``D`` conditioner passes, and in exchange the parallel data-to-latent pass gives the
#: path-derivative score, which fitted far better (``invert=True`` gives the inverse autoregressive flow of
#: Kingma et al. at one pass per layer).
INVERTED_BY_DEFAULT: frozenset[str] = frozenset({"ar_flow"})

_LAPLACE_MAX_DIM = 200  # a dense Hessian and Cholesky above that would dominate the set-up
_INIT_PARTICLES = 64  # draws that score each candidate initial Gaussian (common random numbers)
_MARGINAL_BINS, _MARGINAL_BOUND = 8, 5.0  # the base-side splines: the base's N(0, 1) lies within +-5

FlowSpec = Union[str, Callable[[tuple[int, ...]], Flow], None]


def _is_real_vector(support: constraints.Constraint) -> bool:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.real


def planar_identity_u(w: Tensor) -> Tensor:
    """The planar ``u`` that makes ``\\hat u = 0`` (the identity) for a given ``w``: ``u = c w`` with
    ``softplus(c |w|^2) = 1``, since ``\\hat u = u + (softplus(w^T u) - 1 - w^T u) w / |w|^2``."""
    return w * (math.log(math.expm1(1.0)) / w.pow(2).sum(-1, keepdim=True).clamp(min=1e-12))


@torch.no_grad()
def start_at_identity(flow: Flow) -> Flow:
    """Sets every layer of ``flow`` to the identity map (mixture-CDF layers: within about 0.01 of it).

    MADE conditioners get a zero output layer (MAF: zero shift and log-scale; splines: equal widths and
    heights at the layer's ``knots`` and unit derivatives; mixture CDFs: equal weights, unit scales and
    locations spread by +-0.1 only, which keeps the components apart so their gradients differ); planar
    layers get ``\\hat u = 0``; radial layers ``\\beta = 0``; a data-side ``ActNorm`` is marked initialised at
    the identity (the guide's affine layer standardises instead). Couplings built on a zero-initialised MLP
    are the identity already.

    Example:
        >>> from pyro_flowzoo import FLOWS
        >>> flow = start_at_identity(FLOWS["planar"]((3,), num_layers=2))
        >>> z = torch.randn(4, 3)
        >>> torch.allclose(flow.from_latent(z)[0], z, atol=1e-6)
        True
    """
    for module in flow.modules():
        if isinstance(module, MADE):
            for layer in module._output_layers():
                layer.weight.zero_()
                if layer.bias is not None:
                    layer.bias.zero_()
        elif isinstance(module, Planar):
            # u_hat = u + (softplus(w.u) - 1 - w.u) w / |w|^2 vanishes for u = c w with softplus(c |w|^2) = 1.
            module.u.copy_(planar_identity_u(module.w))
        elif isinstance(module, Radial):
            module.raw_beta.copy_(module.raw_alpha)  # beta = softplus(raw_beta) - softplus(raw_alpha) = 0
        elif isinstance(module, ActNorm):
            # A data-side standardisation would initialise itself from the guide's first samples; the
            # guide's own affine layer does that job, so it starts (and stays marked) initialised at 0.
            module.set_identity()
    for module in flow.modules():
        if isinstance(module, (MixtureCDFAutoregressive, ConditionalMixtureCDFAutoregressive)):
            k = module.num_components
            module.made.output_bias[:, k : 2 * k] = torch.linspace(-0.1, 0.1, k) if k > 1 else 0.0
        elif isinstance(module, NeuralSplineAutoregressive):  # its knots, which the zeroed bias held
            _place_knots(module.made.output_bias, module.num_bins, module.bound, module.knots)
    return flow


class _Inverted(_FlowTransformMixin, Transform):
    """A zoo layer run backwards: the guide samples through the layer's parallel (data-to-latent) pass."""

    def __init__(self, layer: _FlowTransformMixin) -> None:
        super().__init__(cache_size=0)
        self._setup(layer.domain.event_dim)
        self.layer = layer

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, log_det = self.layer.inverse_and_log_det(x)
        return y, -log_det

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x, log_det = self.layer.forward_and_log_det(y)
        return x, -log_det


class _SpikeGuard:
    """Scales down a step's gradient at the guide's sample when its norm is far above the earlier steps'.

    Keeps a running mean ``m`` of the gradient norms (decay 0.99, each step counted after its own clip).
    A step whose norm exceeds ``factor * m`` is scaled to ``factor * m``. The first step sets ``m`` and is
    never scaled.
    """

    def __init__(self, factor: float, decay: float = 0.99) -> None:
        self.factor, self.decay = float(factor), float(decay)
        self.mean: Optional[Tensor] = None

    def __call__(self, grad: Tensor) -> Tensor:
        norm = grad.norm()
        if self.mean is None:
            self.mean = norm.detach()
            return grad
        mean = self.mean.to(norm)
        limit = self.factor * mean
        grad = grad * (limit / norm.clamp(min=torch.finfo(norm.dtype).tiny)).clamp(max=1.0)
        self.mean = self.decay * mean + (1 - self.decay) * torch.minimum(norm, limit)
        return grad


class _FiniteGradient(torch.autograd.Function):
    """Identity whose backward zeroes non-finite entries of the incoming gradient, then applies the spike guard."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, spikes: Optional[_SpikeGuard]) -> Tensor:
        ctx.spikes = spikes
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        return (grad if ctx.spikes is None else ctx.spikes(grad)), None


class _GradientGuard(Transform):
    r"""The identity, except on the gradient that reaches the guide's sample from the ELBO.

    - **Non-finite entries are zeroed.** If the model's log-density is not finite at one particle (an
      overflowing ``exp`` in the model, or a scale that underflows to 0), that particle's gradient through
      the sample would be NaN, and one Adam step would turn every guide parameter into NaN. With the guard,
      that particle only loses its pathwise term on that step; the parameters stay finite and the loop goes on.
    - **Spikes are scaled down** (``spikes``, a :class:`_SpikeGuard`). A rare draw where the guide and the
      model disagree most (deep in a funnel's neck) can give a gradient tens of times the usual one. Adam then
      carries that one direction for about ten steps, and the fit jumps away and takes hundreds of steps to
      come back.
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, spikes: Optional[_SpikeGuard] = None) -> None:
        super().__init__()
        self.spikes = spikes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _GradientGuard)

    def _call(self, x: Tensor) -> Tensor:
        return _FiniteGradient.apply(x, self.spikes) if x.requires_grad else x

    def _inverse(self, y: Tensor) -> Tensor:
        return y

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return x.new_zeros(x.shape[:-1])


class _Chain(Transform):
    """The guide's base-to-latent map as one transform (what :meth:`AutoFlowGuide.get_transform` returns).

    The forward pass computes the log-determinant alongside and remembers the last pair by identity, so
    ``NeuTraReparam``'s ``transform(z)`` then ``log_abs_det_jacobian(z, x)`` is one pass, not two.
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, parts: Sequence[Transform]) -> None:
        super().__init__(cache_size=0)
        self.parts = list(parts)
        self._pair: tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]] = (None, None, None)

    def __eq__(self, other: object) -> bool:
        return self is other

    def _forward_and_log_det(self, z: Tensor) -> tuple[Tensor, Tensor]:
        total = z.new_zeros(z.shape[:-1])
        for t in self.parts:
            if isinstance(t, _FlowTransformMixin):
                x, log_det = t.forward_and_log_det(z)
            else:
                x = t(z)
                log_det = t.log_abs_det_jacobian(z, x)
            if log_det.dim() > total.dim():
                log_det = log_det.reshape(log_det.shape[: total.dim()] + (-1,)).sum(-1)
            total = total + log_det
            z = x
        return z, total

    def _call(self, z: Tensor) -> Tensor:
        x, log_det = self._forward_and_log_det(z)
        self._pair = (z, x, log_det)
        return x

    def _inverse(self, x: Tensor) -> Tensor:
        for t in reversed(self.parts):
            x = t.inverse_and_log_det(x)[0] if isinstance(t, _FlowTransformMixin) else t.inv(x)
        return x

    def log_abs_det_jacobian(self, z: Tensor, x: Tensor) -> Tensor:
        z0, x0, log_det = self._pair
        if z0 is z and x0 is x:
            return log_det
        return self._forward_and_log_det(z)[1]


class _FlowInverse(nn.Module):
    """The guide's layers run data to latent.

    ``part="flow"`` runs the flow's layers, ``part="marginals"`` the base-side splines.
    """

    def __init__(self, flow: Optional[Flow], marginals: Optional[ElementwiseSpline]) -> None:
        super().__init__()
        self.flow = flow
        self.marginals = marginals

    def forward(self, y: Tensor, part: str) -> tuple[Tensor, Tensor]:
        total = y.new_zeros(y.shape[:-1])
        if part == "flow":
            layers = [] if self.flow is None else list(reversed(self.flow._transforms))
        else:
            layers = [] if self.marginals is None else [self.marginals]
        for t in layers:
            y, log_det = t.inverse_and_log_det(y)
            if log_det.dim() > total.dim():
                log_det = log_det.reshape(log_det.shape[: total.dim()] + (-1,)).sum(-1)
            total = total + log_det
        return y, total


class _DetachedTwin:
    """A :class:`_FlowInverse` whose parameters are held constant: a structural copy of the guide's layers.

    The copy's parameters are detached views of the guide's own (the same storage, so every optimizer step
    shows through at no cost) and its buffers are the guide's. :meth:`current` rebuilds it when a parameter
    or buffer has been replaced (a dtype or device move, a reloaded parameter store), so it never scores with
    stale values. Cheaper than :func:`torch.func.functional_call`, which swaps every parameter in and out on
    each call.
    """

    def __init__(self, layers: _FlowInverse) -> None:
        self._layers = layers
        # Where each parameter and buffer lives, read afresh on every check (a replaced tensor shows).
        self._slots = [
            (table, name)
            for module in layers.modules()
            for table in (module._parameters, module._buffers)
            for name in table
        ]
        self._key: Optional[tuple] = None
        self._twin: Optional[_FlowInverse] = None

    def current(self) -> _FlowInverse:
        """The copy, rebuilt first if any parameter or buffer of the guide's layers is no longer the one it views."""
        tensors = [table[name] for table, name in self._slots]
        key = tuple((t.data_ptr(), t.shape, t.dtype, t.device) for t in tensors if t is not None)
        if key != self._key or self._twin is None:
            memo: dict[int, Any] = {id(b): b for b in self._layers.buffers()}
            memo.update({id(p): p.detach() for p in self._layers.parameters()})
            self._twin = copy.deepcopy(self._layers, memo)
            self._key = key
        return self._twin


class _PathDerivativePosterior(FlowPosterior):
    """A :class:`FlowPosterior` whose own samples are scored with the parameters held constant.

    The value is ``log q(x)``; only the gradient differs: it flows through the sample ``x`` alone (the
    "sticking the landing" estimator), which drops a term of zero mean, so the ELBO gradient stays
    unbiased and is exactly zero for every draw once ``q`` equals the posterior.
    """

    _score: Callable[[Tensor], Tensor]

    def rsample_and_log_prob(self, sample_shape: Sequence[int] = ()) -> tuple[Tensor, Tensor]:
        x, log_q = super().rsample_and_log_prob(sample_shape)
        # Not under JitTrace_ELBO: a trace would capture the detached views as constants (the full gradient is used).
        if torch.is_grad_enabled() and x.requires_grad and not torch.jit.is_tracing():
            log_q = self._score(x)
            self._memo = (x, log_q)
        return x, log_q

    def expand(self, batch_shape: Sequence[int], _instance: Optional[FlowPosterior] = None) -> FlowPosterior:
        new = super().expand(batch_shape, _instance)
        new._score = self._score
        return new


class AutoFlowGuide(AutoContinuous):
    r"""An autoguide whose posterior over the model's unconstrained latent vector is a zoo flow.

    All latent sites are mapped to the unconstrained space (``biject_to(support).inv``) and packed
    into one vector of size ``D`` (:class:`~pyro.infer.autoguide.AutoContinuous` does that
    bookkeeping). The posterior over that vector is a flow ``T`` from :data:`~pyro_flowzoo.FLOWS`
    applied to a learned Gaussian, elementwise splines ``S`` at the base (the flow's layers are used, its own
    base distribution is not: the guide's base is always ``N(0, I)``):

    .. math::
        \zeta = T(\mu + \mathrm{diag}(\sigma) L\, S(z)), \qquad z \sim N(0, I), \qquad
        \log q(\zeta) = \log N(z; 0, I) - \log|\det J_{T}| - \log|\det J_{S}(z)| - \sum_i \log \sigma_i

    with ``L`` unit lower triangular (``affine="tril"``, the default: the parametrisation of
    ``AutoMultivariateNormal``), so the guide contains every Gaussian and the flow only has to model
    what is not Gaussian; ``affine="diag"`` drops ``L``. ``affine_position="data"`` applies the affine
    layer after the flow instead, ``\zeta = \mu + \mathrm{diag}(\sigma) L\, T(S(z))``.

    Defaults made for VI (measured in ``benchmarks/vi.py``, worst of 5 seeds under a plain SVI loop):

    - **architecture** (the default ``flow="realnvp"``): ``min(3, D - 1)`` affine couplings with prefix
      masks, a triangular map in the model's order: each latent is shifted and scaled given the ones the
      model samples before it (a hierarchical model's global scale sets its locals' width, as in Neal's
      funnel), and never given later ones; log-scales span ``+-5`` from the start. The marginal splines
      ``S`` (``marginals=None``: on for builder names; 8 bins on ``[-5, 5]``, identity outside) shape each
      coordinate's marginal, which a triangular map keeps Gaussian for the first one (a bimodal
      posterior). Alternating masks with more layers fitted worse under a fixed-step Adam loop: every
      extra layer adds gradient noise.
    - **initialisation**: the flow starts at the identity (:func:`start_at_identity`), so the guide
      starts as the Gaussian of the affine layer. With ``init_scale=None`` that Gaussian is chosen
      among a Laplace approximation (the mode of the unconstrained log joint, found by L-BFGS from
      ``init_loc_fn``'s point, and the inverse Hessian there, for ``D <= 200``) and ``N(init, s^2 I)``
      for ``s`` in 0.1 and 1, by the ELBO of each on 64 common draws; the Laplace start makes a
      Gaussian posterior nearly exact at step 0, and the check keeps it from being used where the mode
      is a poor summary (Neal's funnel, whose mode sits in the neck). A float ``init_scale`` skips that
      and starts at ``N(init, init_scale^2 I)``.
    - **sizes** (:data:`GUIDE_DEFAULTS`): few layers of ``max(32, 2 D)`` hidden units;
    - **gradient estimator** (``path_derivative=None``: on where the flow's data-to-latent pass is one
      parallel pass, i.e. not inverted and not planar): the guide's own samples are scored with its parameters held
      constant, so the gradient reaches ``log q`` only through the sample (Roeder et al.'s "sticking the
      landing"); unbiased, and zero for every draw once ``q`` is the posterior, so a guide that can be
      exact (a Gaussian posterior) stays there instead of drifting with the ELBO noise. It costs one
      data-to-latent pass per step;
    - **direction**: ``ar_flow``, whose sampling pass solves for a root per entry, is used with its
      layers inverted (``invert=None``, :data:`INVERTED_BY_DEFAULT`), so sampling and scoring are one
      parallel pass per layer; ``maf`` and ``nsf_ar`` (one layer in the model's order) run forward, so
      their sample costs ``D`` conditioner passes and the path-derivative score applies;
    - **stability**: log-scales are bounded in every affine layer of the zoo (tanh), spline bins and
      derivatives have floors, and a non-finite gradient reaching the sample (the model's density
      overflowing at one particle) is zeroed before it reaches any parameter, so an infinite or NaN
      ELBO on one step leaves the parameters finite;
    - **gradient spikes** (``spike_guard=3.0``): a step whose gradient at the sample exceeds 3 times the
      running mean of the earlier steps' norms is scaled down to that. One rare draw then cannot throw the
      fit off for hundreds of steps. Fixed-step Adam, 10 seeds (worst / median): banana 0.086 / 0.016 without
      the guard, 0.047 / 0.013 with it; 6-D funnel 0.129 / 0.055 without, 0.076 / 0.033 with it (RESULTS.md).

    The guide's distribution is a :class:`~pyro_flowzoo.infer.FlowPosterior`: it scores its own
    samples from the forward pass, so ``Trace_ELBO`` never runs an inverse. ``median()`` and
    ``quantiles()`` are computed from ``num_summary_samples`` posterior samples per coordinate.
    :meth:`get_base_dist` and :meth:`get_transform` make it usable with ``NeuTraReparam``.

    Args:
        model: a Pyro model with continuous latent sites.
        flow: a builder name in ``FLOWS`` (a vector builder, see :data:`VECTOR_BUILDERS`), a callable
            ``event_shape -> Flow``, or ``None`` for the affine layer alone (a Gaussian guide).
        init_loc_fn: per-site initialisation (see Pyro's autoguide initialisation functions).
        init_scale: initial ``sigma`` of the affine layer, or None for the automatic start above.
        affine: ``"tril"`` (a full lower triangular scale, ``D (D + 1) / 2`` parameters) or ``"diag"``.
        invert: use the builder's layers inverted (None: for :data:`INVERTED_BY_DEFAULT` only).
        path_derivative: the path-derivative gradient above (None: where it is one parallel pass).
        affine_position: ``"latent"`` (the default) puts the affine layer before the flow
            (``T(mu + sigma L S(z))``: the couplings read and change the latents in the model's units),
            ``"data"`` after it (``mu + sigma L T(S(z))``: the flow works in standardised coordinates). With
            ``"data"`` a funnel's guide can lock into a narrow ``v`` (the couplings read the standardised
            ``v``, so widening it means moving ``sigma_v`` and every coupling's slope together): 6-D funnel,
            worst of 5 seeds, 0.285 nats against 0.087 (RESULTS.md).
        marginals: put the elementwise splines ``S`` at the base side (None: for builder names only).
        spike_guard: scale a step's gradient at the sample down to this multiple of the running mean norm
            (None: no guard). The running mean is kept on the guide, from its first step.
        num_summary_samples: samples used by :meth:`median` and :meth:`quantiles`.
        **builder_kwargs: hyper-parameters for the builder (merged over :data:`GUIDE_DEFAULTS`).

    Raises:
        ValueError: an unknown builder, or a builder that cannot build a flow on ``(D,)`` (coupling
            flows need ``D >= 2``; for a single latent scalar use ``flow=None``, ``AutoNormal``,
            or a builder that accepts ``D = 1``).

    References:
        Rezende, Mohamed, "Variational Inference with Normalizing Flows", arXiv:1505.05770;
        Kingma et al., "Improving Variational Inference with Inverse Autoregressive Flow", arXiv:1606.04934;
        Kucukelbir et al., "Automatic Differentiation Variational Inference", arXiv:1603.00788;
        Hoffman et al., "NeuTra-lizing Bad Geometry in HMC with Neural Transport", arXiv:1903.03704;
        Roeder, Wu, Duvenaud, "Sticking the Landing", arXiv:1703.09194.

    Example:
        >>> import pyro
        >>> pyro.clear_param_store()  # autoguides keep their parameters in Pyro's global store
        >>> def model():
        ...     a = pyro.sample("a", dist.Normal(0.0, 1.0))
        ...     pyro.sample("b", dist.Normal(a, 1.0).expand([2]).to_event(1))
        >>> guide = AutoFlowGuide(model, "realnvp", num_layers=2, hidden_dims=(8,))
        >>> sorted(guide())
        ['a', 'b']
        >>> guide.latent_dim
        3
    """

    def __init__(
        self,
        model: Callable,
        flow: FlowSpec = "realnvp",
        *,
        init_loc_fn: Callable = init_to_median,
        init_scale: Optional[float] = None,
        affine: str = "tril",
        invert: Optional[bool] = None,
        affine_position: str = "latent",
        path_derivative: Optional[bool] = None,
        marginals: Optional[bool] = None,
        spike_guard: Optional[float] = 3.0,
        num_summary_samples: int = 1000,
        **builder_kwargs: Any,
    ) -> None:
        if isinstance(flow, str):
            if flow not in FLOWS:
                raise ValueError(f"unknown flow {flow!r}; choose one of: {', '.join(sorted(FLOWS))}")
        elif flow is not None and not callable(flow):
            raise ValueError(f"flow must be a builder name, a callable event_shape -> Flow, or None; got {flow!r}")
        if flow is None and builder_kwargs:
            raise ValueError(f"flow=None takes no builder hyper-parameters; got {sorted(builder_kwargs)}")
        if init_scale is not None and not (isinstance(init_scale, float) and init_scale > 0):
            raise ValueError(f"expected init_scale > 0 (a float) or None, got {init_scale!r}")
        if affine not in ("diag", "tril"):
            raise ValueError(f"affine must be 'diag' or 'tril', got {affine!r}")
        if num_summary_samples < 2:
            raise ValueError(f"expected num_summary_samples >= 2, got {num_summary_samples}")
        if affine_position not in ("data", "latent"):
            raise ValueError(f"affine_position must be 'data' or 'latent', got {affine_position!r}")
        if spike_guard is not None and not (isinstance(spike_guard, (int, float)) and spike_guard > 1):
            raise ValueError(
                f"expected spike_guard > 1 (a multiple of the mean gradient norm) or None; got {spike_guard!r}"
            )
        self.__dict__["_spikes"] = None if spike_guard is None else _SpikeGuard(spike_guard)
        self.affine_position = affine_position
        self._path_derivative = path_derivative
        # Elementwise splines at the base side: on by default for builder names (not for a callable's own flow).
        self.use_marginals = isinstance(flow, str) if marginals is None else bool(marginals)
        if self.use_marginals and flow is None:
            raise ValueError("marginals=True needs a flow (flow=None is the affine layer alone)")
        self._flow_spec = flow
        self._builder_kwargs = dict(builder_kwargs)
        self._init_scale = init_scale
        self.affine = affine
        self.invert = (isinstance(flow, str) and flow in INVERTED_BY_DEFAULT) if invert is None else bool(invert)
        self.num_summary_samples = int(num_summary_samples)
        super().__init__(model, init_loc_fn=init_loc_fn)

    # -- construction -------------------------------------------------------------------------
    def _build_flow(self, dim: int) -> Optional[Flow]:
        spec = self._flow_spec
        if spec is None:
            return None
        name = spec if isinstance(spec, str) else getattr(spec, "__name__", repr(spec))
        try:
            if isinstance(spec, str):
                defaults = {k: v(dim) if callable(v) else v for k, v in GUIDE_DEFAULTS.get(spec, {}).items()}
                hparams = {**defaults, **self._builder_kwargs}
                if "hidden_dims" not in hparams and spec not in ("planar", "radial"):
                    hparams["hidden_dims"] = small_hidden(dim)
                flow = FLOWS[spec]((dim,), **hparams)
            else:
                flow = spec((dim,))
        except ValueError as e:
            hint = (
                (
                    " For a model with one latent scalar use flow=None (the affine layer alone) or a builder "
                    "that accepts D = 1."
                )
                if dim == 1
                else ""
            )
            raise ValueError(
                f"AutoFlowGuide: flow {name!r} cannot be built for the model's {dim}-dimensional "
                f"unconstrained latent: {e}.{hint}"
            ) from e
        if not isinstance(flow, Flow):
            raise ValueError(f"AutoFlowGuide: flow {name!r} must give a pyro_flowzoo.Flow, got {type(flow).__name__}")
        if flow.is_conditional or tuple(flow.event_shape) != (dim,):
            raise ValueError(
                f"AutoFlowGuide: expected an unconditional flow on ({dim},), got event_shape "
                f"{tuple(flow.event_shape)}{' (conditional)' if flow.is_conditional else ''}"
            )
        if not _is_real_vector(flow.dist.support):
            raise ValueError(
                f"AutoFlowGuide: flow {name!r} has support {flow.dist.support}, expected R^{dim} "
                "(for ar_flow pass to_real=True)"
            )
        if self.invert and not all(isinstance(t, _FlowTransformMixin) for t in flow._transforms):
            raise ValueError(f"AutoFlowGuide: invert=True needs pyro_flowzoo transforms; {name!r} has others")
        if isinstance(spec, str):
            start_at_identity(flow)
        return flow

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        super()._setup_prototype(*args, **kwargs)
        flow = self._build_flow(self.latent_dim)  # first: a flow that cannot be built fails before any fitting
        loc = self._init_loc().detach()
        if self._init_scale is None:
            loc, tril = self._initial_gaussian(loc, args, kwargs)
        else:
            tril = torch.diag(torch.full_like(loc, self._init_scale))
        if self.affine == "tril":
            scale = tril.diagonal()
            unit_tril = tril / scale[:, None]
        else:
            scale, unit_tril = tril.pow(2).sum(-1).sqrt(), None
        self.loc = nn.Parameter(loc.clone())
        self.scale = PyroParam(scale.clone(), constraints.softplus_positive)
        if unit_tril is not None:
            self.scale_tril = PyroParam(unit_tril.clone(), constraints.unit_lower_cholesky)
        # Registered as submodules: reading self.flow inside the guide calls pyro.module on it.
        self.flow = None if flow is None else flow.to(loc)
        marginals = ElementwiseSpline(self.latent_dim, _MARGINAL_BINS, _MARGINAL_BOUND) if self.use_marginals else None
        self.marginals = None if marginals is None else marginals.to(loc)
        # Path derivatives need the data-to-latent pass: one parallel pass unless the layers are inverted.
        # Planar layers invert by a root solve per step: too dear for a default.
        cheap = not self.invert and self._flow_spec != "planar"
        use = cheap if self._path_derivative is None else self._path_derivative
        if use and self.invert:
            raise ValueError("path_derivative=True needs invert=False (the data-to-latent pass of the layers)")
        twin = None if not use or flow is None else _DetachedTwin(_FlowInverse(flow, marginals))
        self.__dict__["_inverse_twin"] = twin
        self.__dict__["_use_path_derivative"] = use

    # -- the initial Gaussian -----------------------------------------------------------------
    def _log_joint(self, latent: Tensor, args: tuple, kwargs: dict) -> Tensor:
        """The model's log joint density of one packed unconstrained latent (Jacobians included)."""
        values, log_det = {}, latent.new_zeros(())
        for site, unconstrained in self._unpack_latent(latent):
            transform = biject_to(site["fn"].support)
            value = transform(unconstrained)
            values[site["name"]] = value
            log_det = log_det + transform.log_abs_det_jacobian(unconstrained, value).sum()
        with poutine.block():  # invisible to the SVI trace (and its particle plate) this may run inside
            trace = poutine.trace(poutine.condition(self.model, values)).get_trace(*args, **kwargs)
        with warnings.catch_warnings():
            # Candidates far from the mass (a scale driven to 0 by the mode search) can score NaN: the
            # callers check finiteness and drop them, so Pyro's NaN warning would only be noise.
            warnings.filterwarnings("ignore", message="Encountered NaN", category=UserWarning)
            return trace.log_prob_sum() + log_det

    def _laplace(self, loc: Tensor, args: tuple, kwargs: dict) -> Optional[tuple[Tensor, Tensor]]:
        """Mode and Cholesky factor of the inverse Hessian there, or None if either is not usable."""

        def neg_log_joint(u: Tensor) -> Tensor:
            return -self._log_joint(u, args, kwargs)

        u = loc.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([u], lr=1.0, max_iter=100, tolerance_change=1e-7, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            value = neg_log_joint(u)
            value.backward()
            return value

        try:
            opt.step(closure)
            mode = u.detach()
            hessian = torch.autograd.functional.hessian(neg_log_joint, mode)
        except (ValueError, RuntimeError):  # a distribution refusing a parameter far from the start
            return None
        if not (bool(torch.isfinite(mode).all()) and bool(torch.isfinite(hessian).all())):
            return None
        chol_precision, info = torch.linalg.cholesky_ex(0.5 * (hessian + hessian.T))
        if int(info) != 0:
            return None
        covariance = torch.cholesky_inverse(chol_precision)
        tril, info = torch.linalg.cholesky_ex(covariance)
        if int(info) != 0 or not bool(torch.isfinite(tril).all()):
            return None
        return mode, tril

    def _initial_gaussian(self, loc: Tensor, args: tuple, kwargs: dict) -> tuple[Tensor, Tensor]:
        """The best of the candidate starting Gaussians ``(mean, scale_tril)`` by a common-draws ELBO."""
        dim = loc.numel()
        candidates = [(loc, torch.diag(torch.full_like(loc, s))) for s in (0.1, 1.0)]
        with torch.enable_grad():
            laplace = self._laplace(loc, args, kwargs) if dim <= _LAPLACE_MAX_DIM else None
        if laplace is not None:
            candidates.insert(0, laplace)
        eps = torch.randn(_INIT_PARTICLES, dim, dtype=loc.dtype, device=loc.device)
        best, best_elbo = candidates[-1], -math.inf
        with torch.no_grad():
            for mean, tril in candidates:
                z = mean + eps @ tril.T
                log_q = dist.MultivariateNormal(mean, scale_tril=tril).log_prob(z)
                try:
                    log_p = torch.stack([self._log_joint(zs, args, kwargs) for zs in z])
                except (ValueError, RuntimeError):
                    continue
                elbo = (log_p - log_q).mean().item()
                if math.isfinite(elbo) and elbo > best_elbo:
                    best, best_elbo = (mean, tril), elbo
        return best

    # -- the posterior ------------------------------------------------------------------------
    def _affine(
        self, loc: Optional[Tensor] = None, scale: Optional[Tensor] = None, tril: Optional[Tensor] = None
    ) -> Transform:
        loc = self.loc if loc is None else loc
        scale = self.scale if scale is None else scale
        if self.affine == "tril":
            return LowerCholeskyAffine(loc, scale[..., None] * self.scale_tril if tril is None else tril)
        return AffineTransform(loc, scale, event_dim=1)

    def _flow_parts(self, flow: Optional[Flow], marginals: Optional[ElementwiseSpline]) -> list[Transform]:
        """The layers from the base to the affine layer: the marginal splines, then the flow's."""
        if flow is None:
            return []
        parts = flow._transforms
        parts = [_Inverted(t) for t in reversed(parts)] if self.invert else list(parts)
        return parts if marginals is None else [marginals, *parts]

    def get_base_dist(self) -> dist.TorchDistribution:
        """The base distribution ``N(0, I_D)`` of :meth:`get_transform` (for ``NeuTraReparam``)."""
        zeros = torch.zeros_like(self.loc)
        return dist.Normal(zeros, torch.ones_like(zeros)).to_event(1)

    def get_transform(self, *args: Any, **kwargs: Any) -> Transform:
        """The map from :meth:`get_base_dist` to the packed unconstrained latent (flow, then affine layer)."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        return _Chain(self._parts())

    def get_posterior(self, *args: Any, **kwargs: Any) -> FlowPosterior:
        """The posterior over the packed unconstrained latent vector (a Pyro distribution on R^D)."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        loc, scale = self.loc, self.scale
        tril = scale[..., None] * self.scale_tril if self.affine == "tril" else None
        # One read each: each read of a submodule of a PyroModule registers its parameters again.
        flow, marginals = self.flow, self.marginals
        parts = self._arrange(self._flow_parts(flow, marginals), self._affine(loc, scale, tril), marginals)
        if not self._use_path_derivative:
            return FlowPosterior(self.get_base_dist(), [*parts, _GradientGuard(self._spikes)])
        q = _PathDerivativePosterior(self.get_base_dist(), [*parts, _GradientGuard(self._spikes)])
        q._score = partial(
            self._score_detached,
            loc.detach(),
            scale.detach(),
            None if tril is None else tril.detach(),
            None if self._inverse_twin is None else self._inverse_twin.current(),
        )
        return q

    def _score_detached(
        self, loc: Tensor, scale: Tensor, tril: Optional[Tensor], layers: Optional[_FlowInverse], x: Tensor
    ) -> Tensor:
        """``log q(x)`` with every guide parameter held constant (gradients reach only ``x``)."""

        def affine_inverse(x: Tensor) -> tuple[Tensor, Tensor]:
            diff = x - loc
            if tril is None:
                return diff / scale, scale.log().sum()
            y = torch.linalg.solve_triangular(tril, diff.unsqueeze(-1), upper=False).squeeze(-1)
            return y, tril.diagonal().log().sum()

        def layers_inverse(y: Tensor, part: str) -> tuple[Tensor, Tensor]:
            if layers is None:
                return y, y.new_zeros(())
            return layers(y, part)

        first, second = (affine_inverse, partial(layers_inverse, part="flow"))
        if self.affine_position == "latent":
            first, second = second, first
        y, log_det_1 = first(x)
        y, log_det_2 = second(y)
        y, log_det_3 = layers_inverse(y, "marginals")
        log_det = log_det_1 + log_det_2 + log_det_3
        return -0.5 * y.pow(2).sum(-1) - 0.5 * y.shape[-1] * math.log(2 * math.pi) - log_det

    def _arrange(
        self, flow_parts: list[Transform], affine: Transform, marginals: Optional[ElementwiseSpline]
    ) -> list[Transform]:
        """Base to data: the marginal splines, then the flow and the affine layer in ``affine_position``'s order."""
        flow_parts = [t for t in flow_parts if t is not marginals]
        head = [] if marginals is None else [marginals]
        return [*head, *flow_parts, affine] if self.affine_position == "data" else [*head, affine, *flow_parts]

    def _parts(self) -> list[Transform]:
        flow, marginals = self.flow, self.marginals
        return self._arrange(self._flow_parts(flow, marginals), self._affine(), marginals)

    # -- summaries by sampling ----------------------------------------------------------------
    def _constrain(self, latent: Tensor) -> dict[str, Tensor]:
        return {site["name"]: biject_to(site["fn"].support)(value) for site, value in self._unpack_latent(latent)}

    @torch.no_grad()
    def latent_samples(self, num_samples: int, *args: Any, **kwargs: Any) -> Tensor:
        """``num_samples`` draws of the packed unconstrained latent vector, shape ``(num_samples, D)``."""
        return self.get_posterior(*args, **kwargs).sample((num_samples,))

    @torch.no_grad()
    def median(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:
        """Per-coordinate posterior medians from ``num_summary_samples`` draws, in constrained space."""
        latent = self.latent_samples(self.num_summary_samples, *args, **kwargs).median(0).values
        return self._constrain(latent)

    @torch.no_grad()
    def quantiles(self, quantiles: Union[Sequence[float], Tensor], *args: Any, **kwargs: Any) -> dict[str, Tensor]:
        """Per-coordinate posterior quantiles from ``num_summary_samples`` draws (leading dim: quantile)."""
        samples = self.latent_samples(self.num_summary_samples, *args, **kwargs)
        q = torch.as_tensor(quantiles, dtype=samples.dtype, device=samples.device)
        if q.dim() != 1 or bool(((q < 0) | (q > 1)).any()):
            raise ValueError(f"expected a 1-D list of quantiles in [0, 1], got {quantiles!r}")
        latents = torch.quantile(samples, q, dim=0)
        result: dict[str, list[Tensor]] = {}
        for latent in latents:
            for name, value in self._constrain(latent).items():
                result.setdefault(name, []).append(value)
        return {k: torch.stack(v) for k, v in result.items()}
