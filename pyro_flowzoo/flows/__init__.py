"""Flow builders and the ``FLOWS`` registry (name -> ``builder(event_shape, **hparams) -> Flow``)."""

from . import vector  # noqa: F401  (registers nice, realnvp)
from .registry import FLOWS, build, register

__all__ = ["FLOWS", "build", "register"]
