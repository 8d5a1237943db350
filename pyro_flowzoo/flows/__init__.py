"""Flow builders and the one ``FLOWS`` registry (name -> ``builder(event_shape, context_shape=None, **hparams)``).

Each family module registers its builders with ``@register(name, shapes=..., conditional=...)`` when
imported here; ``FLOW_INFO`` holds what each builder takes and :func:`builders` lists them by kind.
"""

from . import autoregressive, image, vector  # noqa: F401  (importing registers the builders)
from .registry import (
    FLOW_INFO,
    FLOWS,
    ConditionalFlow,
    FlowInfo,
    build,
    builders,
    check_event_shape,
    fit_standardization,
    register,
    register_alias,
)

__all__ = [
    "FLOWS",
    "FLOW_INFO",
    "FlowInfo",
    "ConditionalFlow",
    "build",
    "builders",
    "register",
    "register_alias",
    "check_event_shape",
    "fit_standardization",
]
