"""``AutoFlowGuide``: a Pyro autoguide whose posterior over the unconstrained latents is a zoo flow."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.distributions.transforms import LowerCholeskyAffine
from pyro.infer.autoguide import AutoContinuous
from pyro.infer.autoguide.initialization import init_to_median
from pyro.nn import PyroParam
from torch import Tensor, nn
from torch.distributions import AffineTransform, biject_to

from ..flow import Flow
from ..flows.registry import FLOWS
from .posterior import FlowPosterior

__all__ = ["AutoFlowGuide", "VECTOR_BUILDERS", "GUIDE_DEFAULTS"]

#: The vector builders an :class:`AutoFlowGuide` is meant to take (those registered can be used).
VECTOR_BUILDERS: tuple[str, ...] = ("nice", "realnvp", "maf", "nsf_ar", "nsf_coupling", "ar_flow", "planar", "radial")

#: Hyper-parameters passed to a builder unless the caller overrides them (a guide needs support R^D).
GUIDE_DEFAULTS: dict[str, dict[str, Any]] = {"ar_flow": {"to_real": True}}

FlowSpec = Union[str, Callable[[tuple[int, ...]], Flow], None]


def _is_real_vector(support: constraints.Constraint) -> bool:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.real


class AutoFlowGuide(AutoContinuous):
    r"""An autoguide whose posterior over the model's unconstrained latent vector is a zoo flow.

    All latent sites are mapped to the unconstrained space (``biject_to(support).inv``) and packed
    into one vector of size ``D`` (:class:`~pyro.infer.autoguide.AutoContinuous` does that
    bookkeeping). The posterior over that vector is a flow ``T`` from :data:`~pyro_flowzoo.FLOWS`
    followed by a learned affine layer:

    .. math::
        \zeta = \mu + \sigma \odot T(z), \qquad z \sim p_Z, \qquad
        \log q(\zeta) = \log p_Z(z) - \log|\det J_T(z)| - \sum_i \log \sigma_i

    With ``affine="tril"`` the last layer is ``mu + diag(sigma) L T(z)`` with ``L`` unit lower
    triangular (the parametrisation of ``AutoMultivariateNormal``), so the guide contains every
    Gaussian and the flow only has to model what is not Gaussian. Flows that cannot make linear
    correlations themselves (radial layers are rotation-symmetric about their centres) need it.

    Builders start as (or near) the identity, and ``mu`` starts at ``init_loc_fn``'s point and
    ``sigma`` at ``init_scale``, so the guide begins as a narrow Gaussian where the posterior is
    (as :class:`~pyro.infer.autoguide.AutoNormal` does) while the flow's networks see standardised
    inputs. The affine layer sits on the data side for that reason.

    Compared with Pyro's ``AutoNormalizingFlow(model, partial(iterated, n, affine_coupling))``:
    Pyro's coupling keeps the first ``D // 2`` coordinates fixed and iterating it without a
    permutation never transforms them, so those coordinates stay exactly ``N(0, 1)`` whatever the
    posterior is (and there is no location/scale layer). Every coupling builder here alternates its
    masks, and the affine layer moves every coordinate.

    The guide's distribution is a :class:`~pyro_flowzoo.infer.FlowPosterior`: it scores its own
    samples from the forward pass, so ``Trace_ELBO`` never runs an inverse (planar and radial layers
    have no closed-form inverse; MAF's inverse is its slow direction). ``median()`` and
    ``quantiles()`` are computed from ``num_summary_samples`` posterior samples per coordinate.

    Args:
        model: a Pyro model with continuous latent sites.
        flow: a builder name in ``FLOWS`` (a vector builder, see :data:`VECTOR_BUILDERS`), a callable
            ``event_shape -> Flow``, or ``None`` for the affine layer alone (a diagonal Normal guide).
        init_loc_fn: per-site initialisation (see Pyro's autoguide initialisation functions).
        init_scale: initial ``sigma`` of the affine layer.
        affine: ``"diag"`` (location and scale per coordinate) or ``"tril"`` (a full lower
            triangular scale, ``D (D + 1) / 2`` parameters).
        num_summary_samples: samples used by :meth:`median` and :meth:`quantiles`.
        **builder_kwargs: hyper-parameters for the builder (merged over :data:`GUIDE_DEFAULTS`).

    Raises:
        ValueError: an unknown builder, or a builder that cannot build a flow on ``(D,)`` (coupling
            flows need ``D >= 2``; for a single latent scalar use ``flow=None``, ``AutoNormal``,
            or a builder that accepts ``D = 1``).

    References:
        Rezende, Mohamed, "Variational Inference with Normalizing Flows", arXiv:1505.05770;
        Kucukelbir et al., "Automatic Differentiation Variational Inference", arXiv:1603.00788.

    Example:
        >>> import pyro
        >>> def model():
        ...     a = pyro.sample("a", dist.Normal(0.0, 1.0))
        ...     pyro.sample("b", dist.Normal(a, 1.0).expand([2]).to_event(1))
        >>> guide = AutoFlowGuide(model, "realnvp", num_layers=2, hidden_dims=(8,))
        >>> sorted(guide())
        ['a', 'b']
        >>> guide.latent_dim
        3
    """

    def __init__(self, model: Callable, flow: FlowSpec = "realnvp", *, init_loc_fn: Callable = init_to_median,
                 init_scale: float = 0.1, affine: str = "diag", num_summary_samples: int = 1000,
                 **builder_kwargs: Any) -> None:
        if isinstance(flow, str):
            if flow not in FLOWS:
                raise ValueError(f"unknown flow {flow!r}; choose one of: {', '.join(sorted(FLOWS))}")
        elif flow is not None and not callable(flow):
            raise ValueError(f"flow must be a builder name, a callable event_shape -> Flow, or None; got {flow!r}")
        if flow is None and builder_kwargs:
            raise ValueError(f"flow=None takes no builder hyper-parameters; got {sorted(builder_kwargs)}")
        if not (isinstance(init_scale, float) and init_scale > 0):
            raise ValueError(f"expected init_scale > 0 (a float), got {init_scale!r}")
        if affine not in ("diag", "tril"):
            raise ValueError(f"affine must be 'diag' or 'tril', got {affine!r}")
        if num_summary_samples < 2:
            raise ValueError(f"expected num_summary_samples >= 2, got {num_summary_samples}")
        self._flow_spec = flow
        self._builder_kwargs = dict(builder_kwargs)
        self._init_scale = init_scale
        self.affine = affine
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
                flow = FLOWS[spec]((dim,), **{**GUIDE_DEFAULTS.get(spec, {}), **self._builder_kwargs})
            else:
                flow = spec((dim,))
        except ValueError as e:
            hint = (" For a model with one latent scalar use flow=None (the affine layer alone) or a builder "
                    "that accepts D = 1.") if dim == 1 else ""
            raise ValueError(f"AutoFlowGuide: flow {name!r} cannot be built for the model's {dim}-dimensional "
                             f"unconstrained latent: {e}.{hint}") from e
        if not isinstance(flow, Flow):
            raise ValueError(f"AutoFlowGuide: flow {name!r} must give a pyro_flowzoo.Flow, got {type(flow).__name__}")
        if flow.is_conditional or tuple(flow.event_shape) != (dim,):
            raise ValueError(f"AutoFlowGuide: expected an unconditional flow on ({dim},), got event_shape "
                             f"{tuple(flow.event_shape)}{' (conditional)' if flow.is_conditional else ''}")
        if not _is_real_vector(flow.dist.support):
            raise ValueError(f"AutoFlowGuide: flow {name!r} has support {flow.dist.support}, expected R^{dim} "
                             "(for ar_flow pass to_real=True)")
        return flow

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        super()._setup_prototype(*args, **kwargs)
        loc = self._init_loc()
        self.loc = nn.Parameter(loc)
        self.scale = PyroParam(torch.full_like(loc, self._init_scale), constraints.softplus_positive)
        if self.affine == "tril":
            self.scale_tril = PyroParam(torch.eye(loc.numel(), dtype=loc.dtype, device=loc.device),
                                        constraints.unit_lower_cholesky)
        flow = self._build_flow(self.latent_dim)
        # Registered as a submodule: reading self.flow inside the guide calls pyro.module on it.
        self.flow = None if flow is None else flow.to(loc)

    # -- the posterior ------------------------------------------------------------------------
    def get_posterior(self, *args: Any, **kwargs: Any) -> FlowPosterior:
        """The posterior over the packed unconstrained latent vector (a Pyro distribution on R^D)."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        if self.affine == "tril":
            affine = LowerCholeskyAffine(self.loc, self.scale[..., None] * self.scale_tril)
        else:
            affine = AffineTransform(self.loc, self.scale, event_dim=1)
        flow = self.flow
        if flow is None:
            base = dist.Normal(torch.zeros_like(self.loc), torch.ones_like(self.loc)).to_event(1)
            return FlowPosterior(base, [affine])
        flow_dist = flow.dist
        return FlowPosterior(flow_dist.base_dist, [*flow_dist.transforms, affine])

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
