"""Conditioner networks (they never import transforms)."""

from .mlp import MLP

__all__ = ["MLP"]
