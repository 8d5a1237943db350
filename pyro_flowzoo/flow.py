"""``Flow``: a base distribution (held in buffers) plus an ordered list of transforms (latent -> data)."""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Union

import pyro.distributions as dist
import torch
from pyro.distributions.conditional import (
    ConditionalDistribution,
    ConditionalTransform,
    ConditionalTransformedDistribution,
)
from pyro.distributions.util import sum_rightmost
from torch import Tensor, nn
from torch.distributions import Transform

from .transforms.base import _FlowTransformMixin, finite_positive
from .transforms.compose import pull_back, push_forward

__all__ = ["Flow", "BaseDistribution", "StandardNormal", "StandardStudentT", "StandardLogistic", "StandardUniform"]

Shape = Union[torch.Size, Sequence[int]]


class BaseDistribution(nn.Module):
    """A fixed base distribution whose parameters are buffers, so ``.to()``/``.double()`` move them.

    Subclasses give :meth:`dist`; ``temperature`` scales the spread (the standard deviation for
    location-scale families).
    """

    def __init__(self, event_shape: Shape) -> None:
        super().__init__()
        self.event_shape = torch.Size(event_shape)
        self.register_buffer("loc", torch.zeros(self.event_shape))
        self.register_buffer("scale", torch.ones(self.event_shape))

    def dist(self, temperature: float = 1.0) -> dist.TorchDistribution:
        raise NotImplementedError

    def log_prob(self, z: Tensor) -> Tensor:
        return self.dist().log_prob(z)

    def sample(self, sample_shape: Union[int, Shape] = (), temperature: float = 1.0) -> Tensor:
        """Reparametrised draws of shape ``sample_shape + event_shape``."""
        shape = torch.Size((sample_shape,) if isinstance(sample_shape, int) else sample_shape)
        if type(self)._standard is BaseDistribution._standard:
            return self.dist(temperature).rsample(shape)
        # location-scale families draw directly, without a distribution object (so this compiles)
        return self.loc + self.scale * temperature * self._standard(shape + self.event_shape)

    def _standard(self, shape: torch.Size) -> Tensor:
        """Draws of the family's standard member (location 0, scale 1), where a subclass gives them."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"event_shape={tuple(self.event_shape)}"

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        # a Student-t base keeps ``df``, the other bases have no such key: name the mismatch, not a missing key
        saved, mine = prefix + "df" in state_dict, "df" in self._buffers
        if saved != mine and any(k.startswith(prefix) for k in state_dict):
            args[-1].append(  # error_msgs
                f"{prefix}df: the saved flow has a Student-t base, this one a {type(self).__name__} (build it with "
                "base_df=<the saved df>)"
                if saved
                else f"{prefix}df: the saved flow has no Student-t base, this one has (build it with base_df=False; "
                "2-D realnvp and maf saved under defaults version 5 or before had a normal base)"
            )
            return
        super()._load_from_state_dict(state_dict, prefix, *args)


class StandardNormal(BaseDistribution):
    """Standard normal base, ``N(0, I)``; ``temperature`` T samples ``N(0, T^2 I)``."""

    def dist(self, temperature: float = 1.0) -> dist.TorchDistribution:
        return dist.Normal(self.loc, self.scale * temperature).to_event(len(self.event_shape))

    def _standard(self, shape: torch.Size) -> Tensor:
        return torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)

    def log_prob(self, z: Tensor) -> Tensor:
        # Same value as Normal(0, 1).log_prob summed, without Pyro's per-call validation overhead.
        d = self.event_shape.numel()
        return -0.5 * sum_rightmost(z.pow(2), len(self.event_shape)) - 0.5 * d * math.log(2 * math.pi)


class StandardStudentT(BaseDistribution):
    r"""Standard Student-t base with ``df`` degrees of freedom, independent entries; ``temperature`` T scales it.

    Per entry :math:`\log p(z) = c_\nu - \frac{\nu + 1}{2} \log(1 + z^2 / \nu)`: a point that the flow sends
    far into the base's tail costs a logarithm of its distance rather than its square, so a few test points
    at the training data's edge cannot dominate a mean log-likelihood (the base of 2-D ``realnvp`` and ``maf``;
    RESULTS.md, issue 15). ``df`` is a buffer, saved with the flow.

    Example:
        >>> base = StandardStudentT((2,), df=5.0)
        >>> round(base.log_prob(torch.zeros(2)).item(), 4)  # 2 log(Gamma(3) / (Gamma(2.5) sqrt(5 pi)))
        -1.9372
    """

    def __init__(self, event_shape: Shape, df: float = 10.0) -> None:
        super().__init__(event_shape)
        if not finite_positive(df):
            raise ValueError(f"StandardStudentT needs a finite df > 0, got {df!r}")
        self.register_buffer("df", torch.tensor(float(df)))  # loads with the flow: a saved df wins

    def dist(self, temperature: float = 1.0) -> dist.TorchDistribution:
        return dist.StudentT(self.df.expand(self.event_shape), self.loc, self.scale * temperature).to_event(
            len(self.event_shape)
        )

    def _standard(self, shape: torch.Size) -> Tensor:
        # t = n / sqrt(chi2_df / df), chi2_df = 2 Gamma(df / 2): plain ops, so sampling compiles (fullgraph)
        half_df = (self.df * 0.5).expand(shape)
        chi2 = 2.0 * torch._standard_gamma(half_df)
        return torch.randn(shape, dtype=self.df.dtype, device=self.df.device) * torch.rsqrt(chi2 / self.df)

    def log_prob(self, z: Tensor) -> Tensor:
        df = self.df.to(z.dtype)
        const = torch.lgamma((df + 1) / 2) - torch.lgamma(df / 2) - 0.5 * torch.log(df * math.pi)
        per_entry = const - (df + 1) / 2 * torch.log1p(z.pow(2) / df)
        return sum_rightmost(per_entry, len(self.event_shape))

    def extra_repr(self) -> str:
        return f"event_shape={tuple(self.event_shape)}, df={'?' if self.df.is_meta else float(self.df)}"


class StandardLogistic(BaseDistribution):
    """Standard logistic base (NICE): density ``exp(-z) / (1 + exp(-z))^2`` per entry."""

    def dist(self, temperature: float = 1.0) -> dist.TorchDistribution:
        return dist.Logistic(self.loc, self.scale * temperature).to_event(len(self.event_shape))

    def _standard(self, shape: torch.Size) -> Tensor:
        u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
        tiny = torch.finfo(u.dtype).tiny
        return torch.logit(u.clamp(tiny, 1 - torch.finfo(u.dtype).eps))  # the logistic quantile, finite

    def log_prob(self, z: Tensor) -> Tensor:
        return sum_rightmost(-z - 2 * nn.functional.softplus(-z), len(self.event_shape))


class StandardUniform(BaseDistribution):
    """Uniform base on the unit cube ``(0, 1)^D`` (mixture-CDF autoregressive flows)."""

    def dist(self, temperature: float = 1.0) -> dist.TorchDistribution:
        if temperature != 1.0:
            raise ValueError("a uniform base has no temperature; use temperature=1.0")
        return dist.Uniform(self.loc, self.scale).to_event(len(self.event_shape))

    def sample(self, sample_shape: Union[int, Shape] = (), temperature: float = 1.0) -> Tensor:
        if temperature != 1.0:
            raise ValueError("a uniform base has no temperature; use temperature=1.0")
        shape = torch.Size((sample_shape,) if isinstance(sample_shape, int) else sample_shape) + self.event_shape
        return self.loc + (self.scale - self.loc) * torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)

    def log_prob(self, z: Tensor) -> Tensor:
        outside = sum_rightmost(((z < 0) | (z > 1)).to(z.dtype), len(self.event_shape)) > 0
        return torch.where(outside, -math.inf, 0.0).to(z.dtype)


TransformLike = Union[Transform, ConditionalTransform]


class _ContextBatchedBase(ConditionalDistribution):
    """The base expanded to the context's batch shape, so ``flow.dist.condition(c).sample(s)`` has shape
    ``s + c_batch + event_shape`` like :meth:`Flow.sample` (a bare base would not broadcast with ``c``)."""

    def __init__(self, base_dist: dist.TorchDistribution, context_dims: int) -> None:
        self.base_dist = base_dist
        self.context_dims = context_dims

    def condition(self, context: Tensor) -> dist.TorchDistribution:
        return self.base_dist.expand(context.shape[: context.dim() - self.context_dims])


class Flow(nn.Module):
    r"""A normalizing flow ``x = T_K(... T_1(z))`` with ``z`` from a base distribution.

    .. math:: \log p(x) = \log p_Z(T^{-1}(x)) - \sum_k \log|\det J_{T_k}|

    ``transforms`` run from latent to data, as in Pyro's ``TransformedDistribution``; conditional
    transforms (``ConditionalTransformModule``) get the ``context`` passed to ``log_prob``/``sample``.
    ``flow.dist`` is a fresh Pyro distribution for use in models and guides; ``flow.log_prob`` is the
    same density computed without Pyro's caches (safe to call on the same tensor every step).

    Args:
        base: the base distribution (e.g. :class:`StandardNormal`).
        transforms: transforms from latent to data.
        context_shape: shape of one context for conditional flows (None: unconditional).

    Example:
        >>> from pyro_flowzoo.transforms import Scaling
        >>> flow = Flow(StandardNormal((2,)), [Scaling((2,))])
        >>> flow.log_prob(torch.zeros(5, 2)).shape
        torch.Size([5])
        >>> flow.sample(36).shape, flow.sample((4, 3)).shape
        (torch.Size([36, 2]), torch.Size([4, 3, 2]))
    """

    def __init__(
        self, base: BaseDistribution, transforms: Sequence[TransformLike], context_shape: Optional[Shape] = None
    ) -> None:
        super().__init__()
        self.base = base
        self.transforms = nn.ModuleList([t for t in transforms if isinstance(t, nn.Module)])
        # The ordered list (plain torch transforms included); deepcopy and pickle keep identities.
        self._transforms = list(transforms)
        self.context_shape = None if context_shape is None else torch.Size(context_shape)
        self.is_conditional = any(isinstance(t, ConditionalTransform) for t in transforms)
        if self.is_conditional and self.context_shape is None:
            raise ValueError("a flow with conditional transforms needs context_shape")
        shape = torch.Size(base.event_shape)
        for t in self._transforms:
            shape = torch.Size(t.forward_shape(shape))
        self.event_shape = shape
        self.validate = True
        self.builder: Optional[str] = None
        self.hparams: dict[str, Any] = {}

    # -- helpers ------------------------------------------------------------------------------
    def _parts(self, context: Optional[Tensor]) -> list[Transform]:
        parts = []
        for t in self._transforms:
            if isinstance(t, ConditionalTransform):
                if context is None:
                    raise ValueError("this flow is conditional: pass context=")
                t = t.condition(context)
            parts.append(t)
        return parts

    def clear_cache(self) -> None:
        """Forgets every transform's cached pair (Pyro's cache and ours)."""
        for t in self.transforms.modules():
            if isinstance(t, _FlowTransformMixin):
                t._memo.clear()
            if isinstance(t, Transform) and getattr(t, "_cache_size", 0) == 1:
                t._cached_x_y = None, None

    def _check_context(self, context: Optional[Tensor]) -> None:
        if context is None:
            if self.is_conditional:
                raise ValueError(f"this flow is conditional: pass context= of shape (..., {tuple(self.context_shape)})")
            return
        if self.context_shape is None:
            raise ValueError("this flow is not conditional: do not pass context=")
        n = len(self.context_shape)
        if context.shape[context.dim() - n :] != self.context_shape:
            raise ValueError(
                f"expected context of shape (..., {', '.join(map(str, self.context_shape))}), "
                f"got {tuple(context.shape)}"
            )

    def _check_data(self, x: Tensor) -> None:
        n = len(self.event_shape)
        if not isinstance(x, Tensor):
            raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() < n or x.shape[x.dim() - n :] != self.event_shape:
            raise ValueError(
                f"expected data of shape (..., {', '.join(map(str, self.event_shape))}), got {tuple(x.shape)}"
            )
        if self.validate and not torch.compiler.is_compiling() and not bool(torch.isfinite(x).all()):
            raise ValueError("data passed to log_prob contain NaN or inf")

    # -- density ------------------------------------------------------------------------------
    def to_latent(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Maps data to the latent: returns ``(z, sum of log|det dT/dz|)``, batch-shaped."""
        self._check_data(x)
        self._check_context(context)
        return pull_back(self._parts(context), x, x.dim() - len(self.event_shape))

    def log_prob(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        """Exact log-density of ``x`` (shape ``x.shape[:-len(event_shape)]``)."""
        z, log_det = self.to_latent(x, context)
        return self.base.log_prob(z) - log_det

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        """Same as :meth:`log_prob` (so DistributedDataParallel can wrap a flow)."""
        return self.log_prob(x, context)

    # -- sampling -----------------------------------------------------------------------------
    def _sample_shape(self, sample_shape: Union[int, Shape], context: Optional[Tensor]) -> torch.Size:
        shape = torch.Size((sample_shape,) if isinstance(sample_shape, int) else sample_shape)
        if context is not None:
            shape = shape + context.shape[: context.dim() - len(self.context_shape)]
        return shape

    def from_latent(self, z: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Maps latent to data: returns ``(x, sum of log|det dT/dz|)``."""
        self._check_context(context)
        return push_forward(self._parts(context), z, z.dim() - len(self.base.event_shape))

    def rsample_and_log_prob(
        self, sample_shape: Union[int, Shape] = (), temperature: float = 1.0, context: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor]:
        """Reparametrised samples with their log-density (under the untempered flow)."""
        self._check_context(context)
        z = self.base.sample(self._sample_shape(sample_shape, context), temperature)
        x, log_det = self.from_latent(z, context)
        return x, self.base.log_prob(z) - log_det

    def rsample(
        self, sample_shape: Union[int, Shape] = (), temperature: float = 1.0, context: Optional[Tensor] = None
    ) -> Tensor:
        """Reparametrised samples of shape ``sample_shape (+ context batch) + event_shape``.

        ``sample_shape`` is a shape or an int: ``rsample(36)`` is ``rsample((36,))``.
        """
        self._check_context(context)
        z = self.base.sample(self._sample_shape(sample_shape, context), temperature)
        return self.from_latent(z, context)[0]

    @torch.no_grad()
    def sample(
        self, sample_shape: Union[int, Shape] = (), temperature: float = 1.0, context: Optional[Tensor] = None
    ) -> Tensor:
        """Samples (no gradient); ``temperature`` scales the base's standard deviation."""
        return self.rsample(sample_shape, temperature, context)

    # -- Pyro distributions -------------------------------------------------------------------
    @property
    def dist(self) -> Union[dist.TransformedDistribution, ConditionalTransformedDistribution]:
        """A fresh Pyro distribution over data (conditional flows: one with ``.condition(context)``)."""
        self.clear_cache()
        parts = list(self._transforms)
        if self.is_conditional:
            return ConditionalTransformedDistribution(
                _ContextBatchedBase(self.base.dist(), len(self.context_shape)), parts
            )
        return dist.TransformedDistribution(self.base.dist(), parts)

    def condition(self, context: Tensor) -> dist.TransformedDistribution:
        """The Pyro distribution of data given ``context``."""
        self._check_context(context)
        self.clear_cache()
        base = self.base.dist().expand(context.shape[: context.dim() - len(self.context_shape)])
        return dist.TransformedDistribution(base, self._parts(context))

    @property
    def device(self) -> torch.device:
        """Where the flow's parameters and buffers live (CPU for a flow with none)."""
        return self._first_float().device

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the flow's parameters and buffers (torch's default for a flow with none)."""
        return self._first_float().dtype

    def _first_float(self) -> Tensor:
        for t in (*self.parameters(), *self.buffers()):
            if t.is_floating_point():
                return t
        return torch.empty((), dtype=torch.get_default_dtype())

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
