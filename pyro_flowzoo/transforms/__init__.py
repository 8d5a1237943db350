"""Every pyro_flowzoo transform: each a Pyro ``TransformModule`` (or ``ConditionalTransformModule``)."""

from .base import ConditionalFlowTransform, ConditionedTransform, FlowTransform
from .coupling import (
    AdditiveCoupling,
    AffineCoupling,
    ConditionalAdditiveCoupling,
    ConditionalAffineCoupling,
    alternating_masks,
    even_odd_mask,
    half_mask,
)
from .normalization import Scaling
from .permute import Permute, Reverse

__all__ = [
    "FlowTransform",
    "ConditionalFlowTransform",
    "ConditionedTransform",
    "AdditiveCoupling",
    "AffineCoupling",
    "ConditionalAdditiveCoupling",
    "ConditionalAffineCoupling",
    "alternating_masks",
    "even_odd_mask",
    "half_mask",
    "Scaling",
    "Permute",
    "Reverse",
]
