"""Battery cases for the foundation: couplings, scaling, permutations, NICE and RealNVP on vectors."""

import torch
from registry import FlowCase, TransformCase

from pyro_flowzoo.nn import MLP
from pyro_flowzoo.transforms import (
    AdditiveCoupling,
    AffineCoupling,
    ConditionalAdditiveCoupling,
    ConditionalAffineCoupling,
    FirstBatchNorm,
    Interval,
    Permute,
    Positive,
    Reverse,
    Scaling,
    even_odd_mask,
    half_mask,
    prefix_mask,
)


def _initialized_first_batch_norm(dim: int) -> FirstBatchNorm:
    t = FirstBatchNorm(dim)
    x = 2.0 + 3.0 * torch.randn(16, dim)
    x[0, 0] = -float("inf")  # ignored by the statistics
    t.initialize(x)
    return t


TRANSFORMS = [
    TransformCase("Positive", lambda: Positive((2,)), (2,)),
    TransformCase("FirstBatchNorm", lambda: _initialized_first_batch_norm(3), (3,)),
    TransformCase("Interval", lambda: Interval(-1.0, 3.0, (2,)), (2,)),
    TransformCase("AdditiveCoupling", lambda: AdditiveCoupling(even_odd_mask(3), MLP(3, 3, (8,))), (3,)),
    TransformCase("AffineCoupling", lambda: AffineCoupling(half_mask(4), MLP(4, 8, (8,))), (4,)),
    TransformCase("AffineCoupling-odd", lambda: AffineCoupling(even_odd_mask(3, False), MLP(3, 6, (8,))), (3,)),
    TransformCase(
        "ConditionalAffineCoupling",
        lambda: ConditionalAffineCoupling(half_mask(3), MLP(3, 6, (8,), context_features=2), (2,)),
        (3,),
        context_shape=(2,),
    ),
    TransformCase(
        "ConditionalAdditiveCoupling",
        lambda: ConditionalAdditiveCoupling(half_mask(2, False), MLP(2, 2, (8,), context_features=2), (2,)),
        (2,),
        context_shape=(2,),
    ),
    TransformCase(
        "AffineCoupling-split", lambda: AffineCoupling(half_mask(5, False), MLP(3, 4, (8,)), split_channels=True), (5,)
    ),
    TransformCase(
        "AffineCoupling-split-even-odd",
        lambda: AffineCoupling(even_odd_mask(5), MLP(3, 4, (8,)), split_channels=True),
        (5,),
    ),
    TransformCase(
        "AffineCoupling-split-input-bound",
        lambda: AffineCoupling(even_odd_mask(5), MLP(3, 4, (8,)), split_channels=True, input_bound=1.0),
        (5,),
    ),
    TransformCase(
        "AffineCoupling-input-bound", lambda: AffineCoupling(half_mask(4), MLP(4, 8, (8,)), input_bound=0.5), (4,)
    ),
    TransformCase(
        "AffineCoupling-prefix-log-scale-bound",
        lambda: AffineCoupling(prefix_mask(4, 1), MLP(1, 6, (8,)), split_channels=True, log_scale_bound=5.0),
        (4,),
        autoregressive=True,  # keeps a prefix, changes the rest given it: lower triangular
        perturb=0.5,
    ),
    TransformCase(
        "ConditionalAffineCoupling-log-scale-bound",
        lambda: ConditionalAffineCoupling(half_mask(3), MLP(3, 6, (8,), context_features=2), (2,), log_scale_bound=3.0),
        (3,),
        context_shape=(2,),
    ),
    TransformCase(
        "AdditiveCoupling-split", lambda: AdditiveCoupling(half_mask(4), MLP(2, 2, (8,)), split_channels=True), (4,)
    ),
    TransformCase(
        "ConditionalAffineCoupling-split",
        lambda: ConditionalAffineCoupling(half_mask(3), MLP(1, 4, (8,), context_features=2), (2,), split_channels=True),
        (3,),
        context_shape=(2,),
    ),
    TransformCase("Scaling", lambda: Scaling((3,)), (3,)),
    TransformCase("Permute", lambda: Permute(torch.tensor([2, 0, 3, 1])), (4,)),
    TransformCase("Reverse", lambda: Reverse(3), (3,)),
]

FLOWS = [
    FlowCase("nice", (2,), {"hidden_dims": (8, 8)}),
    FlowCase("nice", (5,), {"hidden_dims": (8,), "mask": "half"}),
    FlowCase("realnvp", (2,), {"num_layers": 4, "hidden_dims": (8, 8)}),
    FlowCase(
        "realnvp",
        (3,),
        {"num_layers": 2, "hidden_dims": (8,), "support": "positive"},
        id="realnvp-3-positive",
        sample_x=lambda b: torch.rand(b + (3,)) * 3 + 0.1,
    ),
    FlowCase("realnvp", (5,), {"num_layers": 3, "hidden_dims": (8,), "mask": "even_odd"}),
    FlowCase("realnvp", (4,), {"num_layers": 3, "hidden_dims": (8,), "mask": "prefix"}, id="realnvp-4-prefix"),
]
