"""Battery cases for the autoregressive family: mixture-CDF, MAF, neural splines, planar/radial, PixelCNN."""

import torch
from registry import FlowCase, TransformCase

from pyro_flowzoo.transforms import (
    ElementwiseSpline,
    MaskedAffineAutoregressive,
    MixtureCDF,
    MixtureCDFAutoregressive,
    NeuralSplineAutoregressive,
    NeuralSplineCoupling,
    PixelCNNMixtureCDF,
    Planar,
    Radial,
    half_mask,
)


def _unit(event_shape):
    """Latent values in (0, 1), away from the exact ends."""
    return lambda batch_shape: 0.02 + 0.96 * torch.rand(batch_shape + event_shape, dtype=torch.float64)


def _wide(event_shape, scale=3.0):
    """Normal draws wide enough that some fall outside a spline's interval (the identity tails)."""
    return lambda batch_shape: scale * torch.randn(batch_shape + event_shape, dtype=torch.float64)


TRANSFORMS = [
    TransformCase("ElementwiseSpline", lambda: ElementwiseSpline(2, num_bins=4, bound=2.0), (2,), sample_x=_wide((2,))),
    TransformCase("MixtureCDF", lambda: MixtureCDF(3, num_components=4), (3,), sample_x=_unit((3,))),
    TransformCase("MixtureCDF-logistic-real", lambda: MixtureCDF(2, 3, family="logistic", to_real=True), (2,)),
    TransformCase(
        "MixtureCDFAutoregressive",
        lambda: MixtureCDFAutoregressive(3, 4, hidden_dims=(8, 8)),
        (3,),
        sample_x=_unit((3,)),
        autoregressive=True,
    ),
    TransformCase(
        "MixtureCDFAutoregressive-real",
        lambda: MixtureCDFAutoregressive(2, 3, hidden_dims=(8,), family="logistic", to_real=True),
        (2,),
        autoregressive=True,
    ),
    TransformCase(
        "MixtureCDFAutoregressive-reversed",
        lambda: MixtureCDFAutoregressive(3, 2, hidden_dims=(8,), to_real=True, reverse=True),
        (3,),
        autoregressive="reversed",
    ),
    TransformCase(
        "NeuralSplineAutoregressive-reversed",
        lambda: NeuralSplineAutoregressive(3, num_bins=4, hidden_dims=(8,), bound=2.0, reverse=True),
        (3,),
        sample_x=_wide((3,)),
        autoregressive="reversed",
    ),
    TransformCase(
        "MaskedAffineAutoregressive",
        lambda: MaskedAffineAutoregressive(4, hidden_dims=(8, 8)),
        (4,),
        autoregressive=True,
    ),
    TransformCase(
        "MaskedAffineAutoregressive-reversed",
        lambda: MaskedAffineAutoregressive(4, hidden_dims=(8, 8), reverse=True),
        (4,),
        autoregressive="reversed",
    ),
    TransformCase(
        "MaskedAffineAutoregressive-input-bound",
        lambda: MaskedAffineAutoregressive(4, hidden_dims=(8, 8), reverse=True, input_bound=1.0),
        (4,),
        autoregressive="reversed",
    ),
    TransformCase(
        "NeuralSplineAutoregressive",
        lambda: NeuralSplineAutoregressive(3, num_bins=4, hidden_dims=(8,), bound=2.0),
        (3,),
        sample_x=_wide((3,)),
        autoregressive=True,
    ),
    TransformCase(
        "NeuralSplineCoupling",
        lambda: NeuralSplineCoupling(half_mask(3), 4, (8,), bound=2.0),
        (3,),
        sample_x=_wide((3,)),
        perturb=0.5,
    ),
    TransformCase(
        "PixelCNNMixtureCDF",
        lambda: PixelCNNMixtureCDF((1, 3, 3), num_components=3, hidden_channels=4, num_blocks=1),
        (1, 3, 3),
        sample_x=_unit((1, 3, 3)),
        autoregressive=True,
    ),
    TransformCase(
        "PixelCNNMixtureCDF-rgb-real",
        lambda: PixelCNNMixtureCDF((2, 2, 2), 2, hidden_channels=4, num_blocks=1, family="gaussian", to_real=True),
        (2, 2, 2),
    ),
    TransformCase("Planar", lambda: Planar(3), (3,), perturb=0.5),
    TransformCase("Planar-1d", lambda: Planar(1), (1,), perturb=0.5),
    TransformCase("Radial", lambda: Radial(2), (2,), perturb=0.5),
]

FLOWS = [
    FlowCase("ar_flow", (2,), {"num_components": 3, "hidden_dims": (8,)}),
    FlowCase("ar_flow", (3,), {"num_layers": 2, "num_components": 3, "hidden_dims": (8,)}, id="ar_flow-3-real"),
    FlowCase("maf", (2,), {"num_layers": 2, "hidden_dims": (8,)}),
    FlowCase("nsf_ar", (1,), {"num_layers": 2, "num_bins": 4}, id="nsf_ar-1", perturb=0.3),
    FlowCase(
        "nsf_coupling",
        (1,),
        {"num_layers": 1, "num_bins": 4, "support": (0.0, 5.0)},
        id="nsf_coupling-1-interval",
        sample_x=lambda b: 0.1 + 4.8 * torch.rand(b + (1,)),
        grid=(5.0, 8001),
        perturb=0.3,
    ),
    FlowCase(
        "ar_flow",
        (1,),
        {"num_components": 3, "support": (0.0, 1.0)},
        id="ar_flow-1-interval",
        sample_x=lambda b: 0.05 + 0.9 * torch.rand(b + (1,)),
        grid=(1.0, 4001),
    ),
    FlowCase("maf", (4,), {"num_layers": 2, "hidden_dims": (8,)}),
    FlowCase("nsf_ar", (2,), {"num_layers": 2, "hidden_dims": (8,), "num_bins": 4}),
    FlowCase("nsf_ar", (3,), {"num_layers": 1, "hidden_dims": (8,), "num_bins": 4, "bound": 2.0}),
    FlowCase("nsf_coupling", (2,), {"num_layers": 2, "hidden_dims": (8,), "num_bins": 4}, perturb=0.3),
    FlowCase("nsf_coupling", (5,), {"num_layers": 2, "hidden_dims": (8,), "num_bins": 4}, perturb=0.3),
    FlowCase(
        "pixelcnn_flow",
        (1, 4, 4),
        {"num_components": 2, "hidden_channels": 4, "num_blocks": 1},
        sample_x=lambda b: torch.rand(b + (1, 4, 4), dtype=torch.float64),
    ),
    FlowCase("planar", (2,), {"num_layers": 3}),
    FlowCase("planar", (1,), {"num_layers": 2}),
    FlowCase("radial", (2,), {"num_layers": 3}),
    FlowCase("radial", (3,), {"num_layers": 2}),
]
