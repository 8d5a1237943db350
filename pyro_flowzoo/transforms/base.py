"""Base classes shared by every pyro_flowzoo transform.

Pyro's transforms compute the log-determinant either from a cache (which goes stale when the same
data tensor is scored on every optimizer step) or by recomputing the whole pass. Ours compute the
pair ``(output, log_det)`` in one pass and remember the last pair by identity only, so
``log_abs_det_jacobian`` is exact whether or not the pair came from the last call, and nothing is
reused across calls with different tensors.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import torch
from pyro.distributions.conditional import ConditionalTransformModule
from pyro.distributions.torch_transform import TransformModule
from torch import Tensor
from torch.distributions import Transform, constraints

__all__ = [
    "FlowTransform",
    "ConditionalFlowTransform",
    "ConditionedTransform",
    "sum_rightmost",
    "one_of",
    "SHIFT_SIDES",
    "shift_and_scale",
]


def one_of(name: str, value: str, allowed: tuple[str, ...]) -> str:
    """Returns ``value`` if it is one of ``allowed``, else raises a one-line ValueError naming ``name``.

    Example:
        >>> one_of("tails", "linear", ("identity", "linear"))
        'linear'
    """
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


class FixedMask:
    """Mixin for coupling layers whose ``mask`` buffer fixes their layout: a state dict with another mask is refused.

    The layer derives from its mask which entries its net reads and where they go, and for contiguous masks
    it chooses slices once, at construction: weights saved with another mask would load without complaint
    and compute something else. ``load_state_dict`` raises instead (a checkpoint turns it into a
    ``CheckpointError``); the mask is left as it was, so a second try is refused too.
    """

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        saved, mask = state_dict.get(prefix + "mask"), getattr(self, "mask", None)
        if (
            isinstance(saved, Tensor)
            and isinstance(mask, Tensor)
            and saved.shape == mask.shape
            and not (saved.is_meta or mask.is_meta)
            and not torch.equal(saved.detach().to("cpu", torch.bool), mask.detach().to("cpu", torch.bool))
        ):
            args[-1].append(  # error_msgs; this layer's own tensors are left as they are
                f"{prefix}mask: the saved layer keeps other entries than this one (built with other masks; flows "
                'saved under defaults version 2 or before: mask_anchor="latent")'
            )
            return
        super()._load_from_state_dict(state_dict, prefix, *args)


def finite_positive(value: object) -> bool:
    """Whether ``value`` is a real number in ``(0, inf)`` (not a bool): the check of every such option.

    Example:
        >>> [finite_positive(v) for v in (1.5, 0, float("inf"), True, "2")]
        [True, False, False, False, False]
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 < value < math.inf


#: Where an affine layer adds its shift, seen in the density direction (data ``y`` -> latent ``x``): ``"data"``,
#: ``x = (y - t) e^{-s}`` (RealNVP's and MAF's papers), or ``"latent"``, ``x = y e^{-s} - t`` (zuko's).
SHIFT_SIDES = ("data", "latent")


def shift_and_scale(value: Tensor, shift: Tensor, factor: Tensor, to_latent: bool, shift_side: str) -> Tensor:
    """An affine layer's map on the side of :data:`SHIFT_SIDES` given: ``factor`` is ``e^{-s}`` towards the
    latent side (``to_latent=True``), ``e^{s}`` towards the data side.

    Example:
        >>> v, t, f = torch.tensor([3.0]), torch.tensor([1.0]), torch.tensor([2.0])
        >>> [shift_and_scale(v, t, f, True, side).item() for side in SHIFT_SIDES]
        [4.0, 5.0]
    """
    if to_latent:
        return (value - shift) * factor if shift_side == "data" else value * factor - shift
    return value * factor + shift if shift_side == "data" else (value + shift) * factor


class ShiftSide:
    r"""Mixin for affine layers with a ``shift_side`` (:data:`SHIFT_SIDES`) and an optional ``shift_bound``.

    Both sides give the same family of maps, but the same weights compute another density on the other side.
    A ``"latent"`` layer keeps a marker buffer ``latent_shift``; a state dict with keys of the layer but without
    it (any saved before the option existed) is a ``"data"`` layer's. ``shift_bound = b`` makes the shift
    :math:`b \tanh(t / b)` (:meth:`_bound_shift`, both directions, so the layer stays an exact bijection) and is
    kept as a buffer ``shift_bound_value``; a state dict without it is an unbounded layer's. ``load_state_dict``
    raises on a mismatch of either (a checkpoint turns it into a ``CheckpointError``). As for any refused load
    in torch, the layer's sub-modules (its network) may have been loaded before the error: reload or rebuild
    the flow after one.
    """

    shift_side = "data"
    shift_bound: Optional[float] = None

    def _init_shift_side(self, shift_side: str, shift_bound: Optional[float] = None) -> None:
        self.shift_side = one_of("shift_side", shift_side, SHIFT_SIDES)
        if shift_side == "latent":
            self.register_buffer("latent_shift", torch.ones(()))  # type: ignore[attr-defined]
        if shift_bound is not None:
            if not finite_positive(shift_bound):
                raise ValueError(f"shift_bound must be a finite number > 0 (or None: unbounded), got {shift_bound!r}")
            self.shift_bound = float(shift_bound)
            self.register_buffer("shift_bound_value", torch.tensor(self.shift_bound))  # type: ignore[attr-defined]

    def _bound_shift(self, shift: Tensor) -> Tensor:
        b = self.shift_bound
        return shift if b is None else torch.tanh(shift * (1.0 / b)) * b

    def _load_from_state_dict(self, state_dict, prefix, *args) -> None:
        # a partial state dict (strict=False) without this layer's keys says nothing about its options
        if any(k.startswith(prefix) for k in state_dict):
            saved = "latent" if prefix + "latent_shift" in state_dict else "data"
            bound = state_dict.get(prefix + "shift_bound_value")
            if isinstance(bound, Tensor) and not bound.is_meta:
                bound = float(bound)  # a buffer, float32 or float64: compared to a relative 1e-6 below
            elif bound is not None:  # a meta tensor: bounded, of a value that cannot be read
                bound = self.shift_bound if self.shift_bound is not None else math.nan
            if saved != self.shift_side:
                args[-1].append(  # error_msgs
                    f"{prefix}latent_shift: the saved layer adds its shift on the {saved} side, this one on the "
                    f'{self.shift_side} side (flows saved under defaults version 3 or before: shift_side="data")'
                )
                return
            if (bound is None) != (self.shift_bound is None) or (
                bound is not None and not math.isclose(bound, self.shift_bound, rel_tol=1e-6)
            ):

                def said(b: Optional[float]) -> str:
                    return "is unbounded" if b is None else f"bounds its shift by {b}"

                args[-1].append(
                    f"{prefix}shift_bound_value: the saved layer {said(bound)}, this one {said(self.shift_bound)} "
                    "(build it with the saved shift_bound)"
                )
                return
        super()._load_from_state_dict(state_dict, prefix, *args)  # type: ignore[misc]


def sum_rightmost(value: Tensor, dim: int) -> Tensor:
    """Sums the ``dim`` rightmost dimensions of ``value``."""
    return value.reshape(value.shape[: value.dim() - dim] + (-1,)).sum(-1) if dim > 0 else value


class _PairMemo:
    """Remembers the last ``(x, y, log_det)`` by tensor identity (never by value)."""

    __slots__ = ("x", "y", "log_det")

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.x: Optional[Tensor] = None
        self.y: Optional[Tensor] = None
        self.log_det: Optional[Tensor] = None

    def store(self, x: Tensor, y: Tensor, log_det: Tensor) -> None:
        self.x, self.y, self.log_det = x, y, log_det

    def lookup(self, x: Tensor, y: Tensor) -> Optional[Tensor]:
        if self.x is x and self.y is y:
            return self.log_det
        return None


class _FlowTransformMixin:
    """The pair-computing protocol shared by plain and conditioned transforms."""

    bijective = True

    def _setup(self, event_dim: int, codomain_event_dim: Optional[int] = None) -> None:
        self.domain = constraints.independent(constraints.real, event_dim)
        self.codomain = constraints.independent(
            constraints.real, event_dim if codomain_event_dim is None else codomain_event_dim
        )
        self.__dict__["_memo"] = _PairMemo()

    # -- to implement -------------------------------------------------------------------------
    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Returns ``(y, log|dy/dx|)``; the log-det has shape ``x.shape[:-event_dim]``."""
        raise NotImplementedError

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Returns ``(x, log|dy/dx|)`` with ``x = T^{-1}(y)`` (the *forward* log-det at ``x``)."""
        raise NotImplementedError

    # -- torch.distributions.Transform protocol ----------------------------------------------
    def _call(self, x: Tensor) -> Tensor:
        y, log_det = self.forward_and_log_det(x)
        self._memo.store(x, y, log_det)
        return y

    def _inverse(self, y: Tensor) -> Tensor:
        x, log_det = self.inverse_and_log_det(y)
        self._memo.store(x, y, log_det)
        return x

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        log_det = self._memo.lookup(x, y)
        if log_det is None:
            _, log_det = self.forward_and_log_det(x)
        return log_det

    def clear_cache(self) -> None:
        """Forgets the remembered pair (and Pyro's cache, where one is used)."""
        self._memo.clear()
        if getattr(self, "_cache_size", 0) == 1:
            self._cached_x_y = None, None

    def __getstate__(self) -> dict:
        state = Transform.__getstate__(self)
        state["_memo"] = _PairMemo()
        if "_cached_x_y" in state:
            state["_cached_x_y"] = None, None
        return state


class FlowTransform(_FlowTransformMixin, TransformModule):
    """A Pyro ``TransformModule`` that computes its output and log-determinant in one pass.

    Subclasses implement :meth:`forward_and_log_det` and :meth:`inverse_and_log_det`; the
    ``torch.distributions.Transform`` methods (``_call``, ``_inverse``, ``log_abs_det_jacobian``)
    follow from them. ``event_dim`` is 1 for vectors and 3 for ``(C, H, W)`` images.

    Args:
        event_dim: number of rightmost dimensions the transform acts on jointly.
        cache_size: Pyro's cache size (0 by default: the pair memo already avoids recomputation,
            and a cache would go stale when the same tensor is scored after a parameter update).
    """

    def __init__(self, event_dim: int = 1, cache_size: int = 0, codomain_event_dim: Optional[int] = None) -> None:
        super().__init__(cache_size=cache_size)
        self._setup(event_dim, codomain_event_dim)

    def with_cache(self, cache_size: int = 1) -> FlowTransform:
        if cache_size == self._cache_size:
            return self
        raise NotImplementedError("pyro_flowzoo transforms remember their last pair already; use cache_size=0")


class ConditionedTransform(_FlowTransformMixin, Transform):
    """A conditional transform bound to one context (what ``.condition(context)`` returns)."""

    def __init__(self, parent: ConditionalFlowTransform, context: Tensor) -> None:
        super().__init__(cache_size=0)
        self._setup(parent.event_dim, parent.codomain_event_dim)
        self.parent = parent
        self.context = context

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.parent.forward_and_log_det(x, self.context)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.parent.inverse_and_log_det(y, self.context)

    def forward_shape(self, shape):
        return self.parent.forward_shape(shape)

    def inverse_shape(self, shape):
        return self.parent.inverse_shape(shape)


class ConditionalFlowTransform(ConditionalTransformModule):
    """A Pyro ``ConditionalTransformModule`` whose ``condition(context)`` is a :class:`FlowTransform`.

    Subclasses implement ``forward_and_log_det(x, context)`` and ``inverse_and_log_det(y, context)``;
    the context's batch dimensions broadcast against the input's batch dimensions.
    """

    bijective = True

    def __init__(
        self, event_dim: int = 1, context_shape: tuple[int, ...] = (), codomain_event_dim: Optional[int] = None
    ) -> None:
        super().__init__()
        self.event_dim = event_dim
        self.codomain_event_dim = event_dim if codomain_event_dim is None else codomain_event_dim
        self.context_shape = tuple(context_shape)

    def condition(self, context: Tensor) -> ConditionedTransform:
        return ConditionedTransform(self, context)

    def forward_and_log_det(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse_and_log_det(self, y: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def forward_shape(self, shape):
        return shape

    def inverse_shape(self, shape):
        return shape
