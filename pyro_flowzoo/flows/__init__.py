"""Flow builders and the ``FLOWS`` registry (name -> ``builder(event_shape, **hparams) -> Flow``).

Each family module registers its builders with ``@register(name)`` when imported here.
"""

from . import autoregressive, image, vector  # noqa: F401  (importing registers the builders)
from .registry import FLOWS, build, check_event_shape, register

__all__ = ["FLOWS", "build", "register", "check_event_shape"]
