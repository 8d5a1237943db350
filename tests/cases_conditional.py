"""Battery cases for the conditional axis: the conditional twins of every vector family, the data-side
standardization, and every conditional builder (vectors and images, embeddings, standardization)."""

import torch
from registry import FlowCase, TransformCase

from pyro_flowzoo.transforms import (
    ConditionalMaskedAffineAutoregressive,
    ConditionalMixtureCDFAutoregressive,
    ConditionalNeuralSplineAutoregressive,
    ConditionalNeuralSplineCoupling,
    ConditionalPixelCNNMixtureCDF,
    ConditionalPlanar,
    ConditionalRadial,
    Standardization,
    half_mask,
)


def _unit(event_shape):
    return lambda batch_shape: 0.02 + 0.96 * torch.rand(batch_shape + event_shape, dtype=torch.float64)


def _wide(event_shape, scale=3.0):
    return lambda batch_shape: scale * torch.randn(batch_shape + event_shape, dtype=torch.float64)


def _standardization() -> Standardization:
    t = Standardization((3,))
    t.set_statistics(torch.tensor([[1.0, -2.0, 0.0], [3.0, 4.0, 0.5], [2.0, 0.0, 0.1]]))
    return t


TRANSFORMS = [
    TransformCase(
        "ConditionalMaskedAffineAutoregressive",
        lambda: ConditionalMaskedAffineAutoregressive(3, 2, hidden_dims=(8, 8)),
        (3,),
        context_shape=(2,),
        autoregressive=True,
    ),
    TransformCase(
        "ConditionalMaskedAffineAutoregressive-reversed",
        lambda: ConditionalMaskedAffineAutoregressive(4, 1, hidden_dims=(8,), reverse=True),
        (4,),
        context_shape=(1,),
        autoregressive="reversed",
    ),
    TransformCase(
        "ConditionalNeuralSplineAutoregressive",
        lambda: ConditionalNeuralSplineAutoregressive(3, 2, num_bins=4, hidden_dims=(8,), bound=2.0),
        (3,),
        context_shape=(2,),
        sample_x=_wide((3,)),
        autoregressive=True,
    ),
    TransformCase(
        "ConditionalNeuralSplineAutoregressive-reversed",
        lambda: ConditionalNeuralSplineAutoregressive(2, 3, num_bins=4, hidden_dims=(8,), reverse=True),
        (2,),
        context_shape=(3,),
        sample_x=_wide((2,)),
        autoregressive="reversed",
    ),
    TransformCase(
        "ConditionalMixtureCDFAutoregressive",
        lambda: ConditionalMixtureCDFAutoregressive(3, 2, num_components=3, hidden_dims=(8,)),
        (3,),
        context_shape=(2,),
        sample_x=_unit((3,)),
        autoregressive=True,
    ),
    TransformCase(
        "ConditionalMixtureCDFAutoregressive-real-reversed",
        lambda: ConditionalMixtureCDFAutoregressive(2, 1, 2, (8,), family="logistic", to_real=True, reverse=True),
        (2,),
        context_shape=(1,),
        autoregressive="reversed",
    ),
    TransformCase(
        "ConditionalNeuralSplineCoupling",
        lambda: ConditionalNeuralSplineCoupling(half_mask(3), 2, num_bins=4, hidden_dims=(8,), bound=2.0),
        (3,),
        context_shape=(2,),
        sample_x=_wide((3,)),
        perturb=0.5,
    ),
    TransformCase(
        "ConditionalPlanar", lambda: ConditionalPlanar(3, 2, hidden_dims=(8,)), (3,), context_shape=(2,), perturb=0.5
    ),
    TransformCase(
        "ConditionalPlanar-1d", lambda: ConditionalPlanar(1, 2, hidden_dims=(8,)), (1,), context_shape=(2,), perturb=0.5
    ),
    TransformCase(
        "ConditionalRadial", lambda: ConditionalRadial(2, 3, hidden_dims=(8,)), (2,), context_shape=(3,), perturb=0.5
    ),
    TransformCase(
        "ConditionalPixelCNNMixtureCDF",
        lambda: ConditionalPixelCNNMixtureCDF((1, 3, 3), 2, num_components=3, hidden_channels=4, num_blocks=1),
        (1, 3, 3),
        context_shape=(2,),
        sample_x=_unit((1, 3, 3)),
        autoregressive=True,
    ),
    TransformCase(
        "ConditionalPixelCNNMixtureCDF-rgb-real",
        lambda: ConditionalPixelCNNMixtureCDF((2, 2, 2), 3, 2, 4, 1, family="gaussian", to_real=True),
        (2, 2, 2),
        context_shape=(3,),
    ),
    TransformCase("Standardization", _standardization, (3,)),
]


def _case(builder, event_shape, context_shape, id_suffix="", **kwargs):
    """A conditional builder case: the context shape goes to the builder and to the battery."""
    tag = "x".join(map(str, context_shape))
    return FlowCase(
        builder,
        event_shape,
        {"context_shape": context_shape, **kwargs},
        context_shape=context_shape,
        id=f"{builder}-{'x'.join(map(str, event_shape))}-ctx{tag}{id_suffix}",
    )


_IMG = lambda b: torch.rand(b + (1, 4, 4), dtype=torch.float64)  # noqa: E731

FLOWS = [
    _case("maf", (2,), (3,), num_layers=2, hidden_dims=(8,)),
    _case("maf", (4,), (1,), num_layers=3, hidden_dims=(8,)),
    _case("nsf_ar", (2,), (2,), num_layers=2, hidden_dims=(8,), num_bins=4),
    _case("nsf_coupling", (3,), (2,), num_layers=2, hidden_dims=(8,), num_bins=4),
    _case("nsf_coupling", (2,), (2, 3), "-flattened", num_layers=2, hidden_dims=(8,), num_bins=4),
    _case("ar_flow", (2,), (2,), num_components=3, hidden_dims=(8,)),
    _case("ar_flow", (3,), (1,), "-real", num_layers=2, num_components=3, hidden_dims=(8,)),
    _case("realnvp", (2,), (3,), num_layers=4, hidden_dims=(8,)),
    _case("realnvp", (3,), (70,), "-mlp-embedding", num_layers=2, hidden_dims=(8,)),
    _case("nice", (2,), (2,), hidden_dims=(8,)),
    _case("planar", (2,), (2,), num_layers=3, hidden_dims=(8,)),
    _case("planar", (1,), (3,), num_layers=2, hidden_dims=(8,)),
    _case("radial", (2,), (2,), num_layers=3, hidden_dims=(8,)),
    _case("maf", (2,), (2,), "-standardized", standardize="both", num_layers=2, hidden_dims=(8,)),
    FlowCase(
        "realnvp",
        (1, 4, 4),
        {"context_shape": (3,), "num_scales": 2, "num_blocks": 1, "hidden_channels": 8},
        context_shape=(3,),
        sample_x=_IMG,
        id="realnvp-1x4x4-ctx3",
    ),
    FlowCase(
        "glow",
        (1, 4, 4),
        {"context_shape": (3,), "levels": 1, "steps": 2, "hidden_channels": 8},
        context_shape=(3,),
        sample_x=_IMG,
        id="glow-1x4x4-ctx3",
    ),
    FlowCase(
        "pixelcnn_flow",
        (1, 3, 3),
        {"context_shape": (3,), "num_components": 2, "hidden_channels": 4, "num_blocks": 1},
        context_shape=(3,),
        sample_x=lambda b: torch.rand(b + (1, 3, 3), dtype=torch.float64),
        id="pixelcnn_flow-1x3x3-ctx3",
    ),
    FlowCase(
        "nice",
        (1, 2, 2),
        {"context_shape": (2,), "hidden_dim": 8, "num_hidden_layers": 1},
        context_shape=(2,),
        sample_x=lambda b: torch.rand(b + (1, 2, 2), dtype=torch.float64),
        id="nice-1x2x2-ctx2",
    ),
]
