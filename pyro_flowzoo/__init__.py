"""pyro_flowzoo: the family of normalizing flows as Pyro transforms."""

from . import data, flows, infer, metrics, nn, train, transforms
from .flow import BaseDistribution, Flow, StandardLogistic, StandardNormal, StandardStudentT, StandardUniform
from .flows import FLOWS, build
from .metrics import bits_per_dim, nats_per_dim
from .train import evaluate_nll, fit

__version__ = "0.1.0"

__all__ = [
    "Flow",
    "BaseDistribution",
    "StandardNormal",
    "StandardStudentT",
    "StandardLogistic",
    "StandardUniform",
    "FLOWS",
    "build",
    "bits_per_dim",
    "nats_per_dim",
    "fit",
    "evaluate_nll",
    "data",
    "flows",
    "infer",
    "metrics",
    "nn",
    "train",
    "transforms",
]
