"""The one ``FLOWS`` registry: name -> ``builder(event_shape, context_shape=None, **hparams) -> Flow``.

Every builder takes ``context_shape=None``; given a shape it returns a conditional flow
(``log_prob(x, context=c)``, ``sample(n, context=c)``, ``flow.dist.condition(c)``). ``FLOW_INFO``
holds each builder's metadata: which event shapes it takes and which of them have a conditional
version. The registry's wrapper adds to every builder:

- ``embedding=``: any ``nn.Module`` mapping the raw context ``(..., *context_shape)`` to features
  ``(..., K)``, trained with the flow (default: :func:`~pyro_flowzoo.nn.default_embedding`);
- ``standardize=``: ``"context"``, ``"data"`` or ``"both"``: fixed standardizations whose statistics
  :func:`fit_standardization` sets from training data (the data's log-det is part of the density).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import torch
from pyro.distributions.conditional import ConditionalDistribution
from torch import Tensor, nn

from ..flow import Flow
from ..nn.embedding import Standardize, default_embedding
from ..transforms.standardize import Standardization

__all__ = [
    "FLOWS",
    "FLOW_INFO",
    "FlowInfo",
    "ConditionalFlow",
    "register",
    "register_alias",
    "build",
    "builders",
    "check_event_shape",
    "fit_standardization",
]

FLOWS: dict[str, Callable[..., Flow]] = {}

KINDS = ("vector", "image")
STANDARDIZE = ("context", "data", "both")


@dataclass(frozen=True)
class FlowInfo:
    """What a registered builder takes.

    Attributes:
        name: the registry name.
        shapes: the event-shape kinds it builds for: ``"vector"`` ``(D,)`` and/or ``"image"`` ``(C, H, W)``.
        conditional: the kinds for which ``context_shape=`` gives a conditional flow.
        min_dim: the smallest ``D`` for vectors.
        alias_of: the builder this name stands for, with its own defaults (None for a builder).
        default_context_shape: the context an alias builds with unless told otherwise (``cglow``: ``(10,)``).
    """

    name: str
    shapes: tuple[str, ...]
    conditional: tuple[str, ...]
    min_dim: int = 2
    alias_of: Optional[str] = None
    default_context_shape: Optional[tuple[int, ...]] = None

    def kind(self, event_shape: Sequence[int]) -> Optional[str]:
        """``"vector"``, ``"image"`` or None for a shape this builder does not take."""
        shape = tuple(event_shape)
        if len(shape) == 1 and "vector" in self.shapes and shape[0] >= self.min_dim:
            return "vector"
        if len(shape) == 3 and "image" in self.shapes:
            return "image"
        return None

    def accepts(self, event_shape: Sequence[int], conditional: bool = False) -> bool:
        """Whether ``event_shape`` (with a context when ``conditional``) is buildable."""
        kind = self.kind(event_shape)
        return kind is not None and (not conditional or kind in self.conditional)


FLOW_INFO: dict[str, FlowInfo] = {}


class _ConditionalFlowDistribution(ConditionalDistribution):
    """``flow.dist`` of a conditional flow: ``.condition(c)`` is :meth:`Flow.condition` (checks, embedding)."""

    def __init__(self, flow: ConditionalFlow) -> None:
        self.flow = flow

    def condition(self, context: Tensor):
        return self.flow.condition(context)


class ConditionalFlow(Flow):
    r"""A conditional :class:`~pyro_flowzoo.Flow` whose context may pass through an embedding network first.

    .. math:: \log p(x \mid c) = \log p_Z(T^{-1}(x; e(c))) - \log|\det J_T(z; e(c))|

    ``embedding`` (an ``nn.Module``, None for the identity) maps the raw context of shape
    ``(..., *context_shape)`` to the features ``(..., K)`` every conditional transform reads; it is a
    submodule, so it trains and saves with the flow. The context's batch shape broadcasts against the
    data's (``log_prob`` of ``x: (5, D)`` under ``c: (3, 1, K)`` has shape ``(3, 5)``).

    Example:
        >>> flow = build("maf", (2,), context_shape=(3,), num_layers=2, hidden_dims=(8,))
        >>> flow.log_prob(torch.zeros(5, 2), context=torch.zeros(3, 1, 3)).shape
        torch.Size([3, 5])
    """

    def __init__(
        self,
        base: nn.Module,
        transforms: Sequence[Any],
        context_shape: Sequence[int],
        embedding: Optional[nn.Module] = None,
    ) -> None:
        super().__init__(base, transforms, context_shape=context_shape)
        self.embedding = embedding

    def _check_context(self, context: Optional[Tensor]) -> None:
        if context is None:
            raise ValueError(
                f"this flow is conditional: pass context= of shape (..., {', '.join(map(str, self.context_shape))})"
            )
        super()._check_context(context)

    def embed(self, context: Tensor) -> Tensor:
        """The features the transforms read (the context itself without an embedding)."""
        return context if self.embedding is None else self.embedding(context)

    def _parts(self, context: Optional[Tensor]) -> list:
        return super()._parts(None if context is None else self.embed(context))

    def _broadcast(self, x: Tensor, context: Optional[Tensor], event_shape: torch.Size) -> Tensor:
        if (
            context is None
            or not isinstance(x, Tensor)
            or x.dim() < len(event_shape)
            or x.shape[x.dim() - len(event_shape) :] != event_shape
            or self.context_shape is None
            or context.shape[context.dim() - len(self.context_shape) :] != self.context_shape
        ):
            return x  # the checks downstream give the one-line error
        batch = torch.broadcast_shapes(
            x.shape[: x.dim() - len(event_shape)], context.shape[: context.dim() - len(self.context_shape)]
        )
        return x.expand(batch + event_shape)

    def to_latent(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return super().to_latent(self._broadcast(x, context, self.event_shape), context)

    def from_latent(self, z: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return super().from_latent(self._broadcast(z, context, torch.Size(self.base.event_shape)), context)

    @property
    def dist(self) -> ConditionalDistribution:
        """A Pyro conditional distribution: ``flow.dist.condition(c)`` is the distribution of data given ``c``."""
        self.clear_cache()
        return _ConditionalFlowDistribution(self)


def check_event_shape(event_shape: Union[int, Sequence[int]], what: str = "event_shape") -> tuple[int, ...]:
    """Turns ``event_shape`` into a tuple of positive ints, or raises ValueError."""
    if isinstance(event_shape, int):
        event_shape = (event_shape,)
    try:
        shape = tuple(int(s) for s in event_shape)
    except TypeError:
        raise ValueError(f"{what} must be a tuple of ints, got {event_shape!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"{what} must be a non-empty tuple of positive ints, got {shape}")
    return shape


def _describe(info: FlowInfo) -> str:
    parts = [f"vectors (D,) with D >= {info.min_dim}" if k == "vector" else "images (C, H, W)" for k in info.shapes]
    return " or ".join(parts)


def _embedding(name: str, context_shape: tuple[int, ...], embedding: Any) -> tuple[Optional[nn.Module], int, Any]:
    """``(module or None, number of features, what hparams record)`` for the ``embedding=`` argument."""
    if embedding is None or embedding == "default":
        module, features = default_embedding(context_shape)
        return module, features, None
    if isinstance(embedding, str) and embedding.startswith("module:"):
        raise ValueError(
            f"{name}: the embedding was a user nn.Module ({embedding[7:]}); build the flow with "
            "embedding=<that module> and load the checkpoint's state_dict into it"
        )
    if not isinstance(embedding, nn.Module):
        raise TypeError(f"{name}: embedding must be an nn.Module or None, got {type(embedding).__name__}")
    with torch.no_grad():
        param = next(iter(embedding.parameters()), None)
        probe = torch.zeros((2,) + context_shape, dtype=param.dtype if param is not None else None)
        try:
            out = embedding(probe)
        except Exception as e:  # report the user's module failing on the declared shape in one line
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ValueError(
                f"{name}: embedding failed on a context of shape (2, {', '.join(map(str, context_shape))})"
                f": {first[:160]}"
            ) from None
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 2:
        got = tuple(out.shape[1:]) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"{name}: embedding must map (..., {', '.join(map(str, context_shape))}) to (..., K); "
            f"got trailing shape {got}"
        )
    return embedding, int(out.shape[1]), f"module:{type(embedding).__name__}"


def _build_unconditional(
    fn: Callable[..., Flow],
    name: str,
    event_shape: tuple[int, ...],
    embedding: Any,
    standardize: Optional[str],
    hparams: dict[str, Any],
) -> Flow:
    """``fn``'s flow without a context (``standardize="data"``: with a data-side standardization)."""
    if embedding is not None:
        raise ValueError(f"{name}: embedding= needs context_shape= (the flow is unconditional)")
    if standardize in ("context", "both"):
        raise ValueError(f"{name}: standardize={standardize!r} needs context_shape=")
    flow = fn(event_shape, context_shape=None, **hparams)
    if standardize == "data":
        flow = _rewrap(flow, None, None, Standardization(flow.event_shape))
    return flow


def _build_conditional(
    fn: Callable[..., Flow],
    info: FlowInfo,
    kind: str,
    event_shape: tuple[int, ...],
    context_shape: Sequence[int],
    embedding: Any,
    standardize: Optional[str],
    hparams: dict[str, Any],
) -> tuple[Flow, dict[str, Any]]:
    """``fn``'s conditional flow behind the embedding (and standardizations); also what the checkpoint records."""
    name = info.name
    raw = check_event_shape(context_shape, "context_shape")
    if kind not in info.conditional:
        with_context = [n for n, i in FLOW_INFO.items() if kind in i.conditional]
        raise ValueError(
            f"{name} on {kind}s has no conditional version; conditional {kind} flows: {', '.join(sorted(with_context))}"
        )
    module, features, spec = _embedding(name, raw, embedding)
    if standardize in ("context", "both"):
        module = nn.Sequential(Standardize(raw), module) if module is not None else Standardize(raw)
    flow = fn(event_shape, context_shape=(features,), **hparams)
    data = Standardization(flow.event_shape) if standardize in ("data", "both") else None
    recorded: dict[str, Any] = {"context_shape": list(raw)}
    if spec is not None:
        recorded["embedding"] = spec
    return _rewrap(flow, raw, module, data), recorded


def register(
    name: str, shapes: Sequence[str] = ("vector",), conditional: Optional[Sequence[str]] = None, min_dim: int = 2
) -> Callable[[Callable[..., Flow]], Callable[..., Flow]]:
    """Adds a builder to ``FLOWS`` with its metadata; the flow it returns remembers ``builder`` and ``hparams``.

    The decorated function is called as ``fn(event_shape, context_shape=(K,) or None, **hparams)``:
    ``K`` is the number of context features its transforms read (after the embedding).

    Args:
        name: the registry name.
        shapes: the event-shape kinds the builder takes (``"vector"``, ``"image"``).
        conditional: the kinds with a conditional version (default: all of ``shapes``).
        min_dim: the smallest vector size.
    """
    shapes = tuple(shapes)
    conditional = shapes if conditional is None else tuple(conditional)
    if not set(shapes) <= set(KINDS) or not set(conditional) <= set(shapes):
        raise ValueError(f"register({name!r}): shapes must be among {KINDS} and conditional among the shapes")
    info = FlowInfo(name, shapes, conditional, min_dim)

    def decorate(fn: Callable[..., Flow]) -> Callable[..., Flow]:
        signature = inspect.signature(fn)
        accepted = [p for p in signature.parameters if p not in ("event_shape", "context_shape")]

        @functools.wraps(fn)
        def builder(
            event_shape: Sequence[int],
            context_shape: Optional[Sequence[int]] = None,
            embedding: Any = None,
            standardize: Optional[str] = None,
            **hparams,
        ) -> Flow:
            unknown = set(hparams) - set(accepted)
            if unknown and not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
                raise TypeError(f"{name}: unknown hyper-parameter(s) {sorted(unknown)}; accepted: {accepted}")
            event_shape = check_event_shape(event_shape)
            kind = info.kind(event_shape)
            if kind is None:  # the builder's own message names what it supports
                fn(event_shape, context_shape=None, **hparams)
                raise ValueError(f"{name} supports {_describe(info)}; got event_shape {event_shape}")
            if standardize not in (None, *STANDARDIZE):
                raise ValueError(f"{name}: standardize must be one of {STANDARDIZE} or None, got {standardize!r}")
            recorded: dict[str, Any] = {"event_shape": list(event_shape)}
            if context_shape is None:
                flow = _build_unconditional(fn, name, event_shape, embedding, standardize, hparams)
            else:
                flow, extra = _build_conditional(
                    fn, info, kind, event_shape, context_shape, embedding, standardize, hparams
                )
                recorded.update(extra)
            if standardize is not None:
                recorded["standardize"] = standardize
            flow.builder = name
            flow.hparams = {**recorded, **hparams}
            return flow

        if name in FLOWS:
            raise ValueError(f"a flow named {name!r} is registered already")
        # The signature shows the builder's own hyper-parameters; the context keywords belong to the registry
        # (FLOW_INFO says which builders take them), so tools that read signatures see no context to fill.
        builder.__signature__ = signature.replace(
            parameters=[p for p in signature.parameters.values() if p.name != "context_shape"]
        )
        FLOWS[name] = builder
        FLOW_INFO[name] = info
        builder.info = info
        return builder

    return decorate


def _rewrap(
    flow: Flow, context_shape: Optional[tuple[int, ...]], embedding: Optional[nn.Module], data_side: Optional[nn.Module]
) -> Flow:
    """The same base and transforms (same state_dict keys), conditional and/or with a data-side standardization."""
    transforms = list(flow._transforms) + ([data_side] if data_side is not None else [])
    if context_shape is None:
        return Flow(flow.base, transforms)
    return ConditionalFlow(flow.base, transforms, context_shape, embedding)


def register_alias(alias: str, target: str, **defaults: Any) -> Callable[..., Flow]:
    """Registers ``alias`` as ``target`` with other defaults (e.g. ``cglow`` = ``glow`` with a context)."""
    target_builder, info = FLOWS[target], FLOW_INFO[target]

    @functools.wraps(target_builder)
    def builder(event_shape: Sequence[int], **hparams) -> Flow:
        given = {k: v for k, v in hparams.items() if v is not None or k not in defaults}  # build() passes None
        flow = target_builder(event_shape, **{**defaults, **given})
        flow.builder = alias
        return flow

    if alias in FLOWS:
        raise ValueError(f"a flow named {alias!r} is registered already")
    signature = inspect.signature(target_builder)
    extra = [
        inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
        for k, v in defaults.items()
        if k not in signature.parameters
    ]
    params = [p.replace(default=defaults[p.name]) if p.name in defaults else p for p in signature.parameters.values()]
    head = [p for p in params if p.kind is not p.VAR_KEYWORD]
    builder.__signature__ = signature.replace(parameters=head + extra + [p for p in params if p not in head])
    FLOWS[alias] = builder
    context = defaults.get("context_shape")
    FLOW_INFO[alias] = FlowInfo(
        alias,
        info.shapes,
        info.conditional,
        info.min_dim,
        alias_of=target,
        default_context_shape=None if context is None else tuple(context),
    )
    builder.info = FLOW_INFO[alias]
    return builder


def builders(shape: Optional[str] = None, conditional: bool = False, aliases: bool = False) -> tuple[str, ...]:
    """Registered names that take ``shape`` (``"vector"``/``"image"``, None: any), with a context if ``conditional``.

    Example:
        >>> "maf" in builders("vector", conditional=True), "pixelcnn_flow" in builders("image", conditional=True)
        (True, True)
    """
    out = []
    for name, info in FLOW_INFO.items():
        if info.alias_of is not None and not aliases:
            continue
        kinds = info.conditional if conditional else info.shapes
        if shape is None and kinds or shape in kinds:
            out.append(name)
    return tuple(sorted(out))


def build(name: str, event_shape: Sequence[int], context_shape: Optional[Sequence[int]] = None, **hparams) -> Flow:
    """Builds the flow registered as ``name``; unknown names raise a ValueError listing the choices.

    Example:
        >>> flow = build("nsf_ar", (2,), context_shape=(3,), num_layers=1, hidden_dims=(8,), num_bins=4)
        >>> flow.sample((4,), context=torch.zeros(3)).shape, flow.sample((4,), context=torch.zeros(5, 3)).shape
        (torch.Size([4, 2]), torch.Size([4, 5, 2]))
    """
    flow_info(name)
    return FLOWS[name](event_shape, context_shape=context_shape, **hparams)


def flow_info(name: str) -> FlowInfo:
    """The :class:`FlowInfo` of ``name``; the one place an unknown name raises (a ValueError listing the choices).

    Example:
        >>> flow_info("cglow").alias_of, flow_info("cglow").default_context_shape
        ('glow', (10,))
    """
    if name not in FLOWS:
        raise ValueError(f"unknown flow {name!r}; choose one of: {', '.join(sorted(FLOWS))}")
    return FLOW_INFO[name]


@torch.no_grad()
def fit_standardization(flow: Flow, x: Optional[Tensor] = None, context: Optional[Tensor] = None) -> Flow:
    """Sets a flow's standardization statistics (``standardize=`` at build time) from training data.

    ``x`` sets the data-side :class:`~pyro_flowzoo.transforms.Standardization`, ``context`` the
    context's :class:`~pyro_flowzoo.nn.Standardize`; each needs the flow to have been built with it.

    Example:
        >>> flow = build("maf", (2,), context_shape=(1,), standardize="both", num_layers=1, hidden_dims=(8,))
        >>> x, c = 10 + 3 * torch.randn(500, 2), 5 * torch.randn(500, 1)
        >>> _ = fit_standardization(flow, x, c)
        >>> round(flow.transforms[-1].loc.mean().item())
        10
    """
    for values, kind, what in ((x, Standardization, "data"), (context, Standardize, "context")):
        if values is None:
            continue
        found = [m for m in flow.modules() if isinstance(m, kind)]
        if not found:
            raise ValueError(f"this flow has no {what} standardization: build it with standardize={what!r} or 'both'")
        for m in found:
            m.set_statistics(values)
    return flow
