"""pyro_flowzoo: the family of normalizing flows as Pyro transforms."""

from . import nn, transforms
from .flow import BaseDistribution, Flow, StandardLogistic, StandardNormal, StandardUniform
from .flows import FLOWS, build

__version__ = "0.1.0"

__all__ = [
    "Flow",
    "BaseDistribution",
    "StandardNormal",
    "StandardLogistic",
    "StandardUniform",
    "FLOWS",
    "build",
    "nn",
    "transforms",
]
