"""The ``FLOWS`` registry: builder name -> ``builder(event_shape, **hparams) -> Flow``."""

from __future__ import annotations

import functools
import inspect
from typing import Callable, Sequence

from ..flow import Flow

__all__ = ["FLOWS", "register", "build", "check_event_shape"]

FLOWS: dict[str, Callable[..., Flow]] = {}


def register(name: str) -> Callable[[Callable[..., Flow]], Callable[..., Flow]]:
    """Adds a builder to ``FLOWS``; the flow it returns remembers ``builder`` and ``hparams``."""

    def decorate(fn: Callable[..., Flow]) -> Callable[..., Flow]:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def builder(event_shape: Sequence[int], **hparams) -> Flow:
            unknown = set(hparams) - set(signature.parameters)
            if unknown and not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
                raise TypeError(
                    f"{name}: unknown hyper-parameter(s) {sorted(unknown)}; "
                    f"accepted: {[p for p in signature.parameters if p != 'event_shape']}"
                )
            event_shape = check_event_shape(event_shape)
            flow = fn(event_shape, **hparams)
            flow.builder = name
            flow.hparams = {"event_shape": list(event_shape), **hparams}
            return flow

        if name in FLOWS:
            raise ValueError(f"a flow named {name!r} is registered already")
        FLOWS[name] = builder
        return builder

    return decorate


def check_event_shape(event_shape: Sequence[int]) -> tuple[int, ...]:
    """Turns ``event_shape`` into a tuple of positive ints, or raises ValueError."""
    if isinstance(event_shape, int):
        event_shape = (event_shape,)
    try:
        shape = tuple(int(s) for s in event_shape)
    except TypeError:
        raise ValueError(f"event_shape must be a tuple of ints, got {event_shape!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"event_shape must be a non-empty tuple of positive ints, got {shape}")
    return shape


def build(name: str, event_shape: Sequence[int], **hparams) -> Flow:
    """Builds the flow registered as ``name``; unknown names raise a ValueError listing the choices."""
    if name not in FLOWS:
        raise ValueError(f"unknown flow {name!r}; choose one of: {', '.join(sorted(FLOWS))}")
    return FLOWS[name](event_shape, **hparams)
