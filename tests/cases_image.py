"""Battery cases for image transforms (event_dim 3, shapes 1x4x4 to 3x8x8) and the image builders."""

import torch
from registry import FlowCase, TransformCase

from pyro_flowzoo.nn import GlowNet, ResNet, ZeroConv2d
from pyro_flowzoo.transforms import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    BatchNorm,
    ConditionalAdditiveCoupling,
    ConditionalAffineCoupling,
    ConditionalElementwiseAffine,
    ConditionalFactorOut,
    ElementwiseAffine,
    FactorOut,
    Inverse,
    InvertibleConv1x1,
    Logit,
    Reshape,
    Squeeze,
    Unsqueeze,
    channel_mask,
    checkerboard_mask,
)


def initialized_actnorm(channels: int, shape=(4, 4)) -> ActNorm:
    t = ActNorm(channels, event_dim=1 + len(shape))
    t.initialize(2.0 + 3.0 * torch.randn(16, channels, *shape))
    return t


def eval_batch_norm(channels: int) -> BatchNorm:
    t = BatchNorm(channels)
    with torch.no_grad():
        t.running_mean.normal_()
        t.running_var.uniform_(0.5, 2.0)
    return t.eval()


def unit_interval(shape):
    return lambda batch: 0.02 + 0.96 * torch.rand(batch + shape, dtype=torch.float64)


def glow_factor_out() -> FactorOut:
    inner = [InvertibleConv1x1(2), AffineCoupling(channel_mask((2, 2, 2)), GlowNet(1, 2, 8), split_channels=True)]
    return FactorOut(4, inner, ZeroConv2d(2, 4))


def nested_factor_out() -> FactorOut:
    # A deeper scale inside: un-squeeze (latent side) ... squeeze back, shape preserved.
    deeper = [Squeeze(), AffineCoupling(checkerboard_mask((8, 1, 1)), ResNet(8, 16, 8, 1), (8, 1, 1)), Unsqueeze()]
    return FactorOut(4, deeper)


TRANSFORMS = [
    TransformCase(
        "AffineCoupling-checkerboard-1x4x4",
        lambda: AffineCoupling(checkerboard_mask((1, 4, 4)), ResNet(1, 2, 8, 1), (1, 1, 1)),
        (1, 4, 4),
    ),
    TransformCase(
        "AffineCoupling-checkerboard-3x8x8",
        lambda: AffineCoupling(checkerboard_mask((3, 8, 8), 1), ResNet(3, 6, 8, 1), (3, 1, 1)),
        (3, 8, 8),
    ),
    TransformCase(
        "AffineCoupling-channel-masked",
        lambda: AffineCoupling(channel_mask((4, 4, 4), False), ResNet(4, 8, 8, 1), (4, 1, 1)),
        (4, 4, 4),
    ),
    TransformCase(
        "AffineCoupling-channel-split",
        lambda: AffineCoupling(channel_mask((4, 4, 4)), GlowNet(2, 4, 8), split_channels=True),
        (4, 4, 4),
    ),
    TransformCase(
        "AffineCoupling-channel-split-second",
        lambda: AffineCoupling(channel_mask((3, 4, 4), False), GlowNet(2, 2, 8), split_channels=True),
        (3, 4, 4),
    ),
    TransformCase(
        "AffineCoupling-channel-split-general",
        lambda: AffineCoupling(
            torch.tensor([True, False, True, False])[:, None, None].expand(4, 2, 2),
            GlowNet(2, 4, 8),
            split_channels=True,
        ),
        (4, 2, 2),
    ),
    TransformCase(
        "AdditiveCoupling-checkerboard",
        lambda: AdditiveCoupling(checkerboard_mask((2, 4, 4)), ResNet(2, 2, 8, 1)),
        (2, 4, 4),
    ),
    TransformCase(
        "AdditiveCoupling-channel-split",
        lambda: AdditiveCoupling(channel_mask((4, 4, 4)), GlowNet(2, 2, 8), split_channels=True),
        (4, 4, 4),
    ),
    TransformCase(
        "ConditionalAffineCoupling-image-split",
        lambda: ConditionalAffineCoupling(
            channel_mask((4, 4, 4)), GlowNet(2, 4, 8, context_features=3), (3,), split_channels=True
        ),
        (4, 4, 4),
        context_shape=(3,),
    ),
    TransformCase(
        "ConditionalAffineCoupling-image-checkerboard",
        lambda: ConditionalAffineCoupling(
            checkerboard_mask((1, 4, 4)), ResNet(1, 2, 8, 1, context_features=2), (2,), (1, 1, 1)
        ),
        (1, 4, 4),
        context_shape=(2,),
    ),
    TransformCase(
        "ConditionalAdditiveCoupling-image-split",
        lambda: ConditionalAdditiveCoupling(
            channel_mask((2, 4, 4)), GlowNet(1, 1, 8, context_features=3), (3,), split_channels=True
        ),
        (2, 4, 4),
        context_shape=(3,),
    ),
    TransformCase("ActNorm", lambda: initialized_actnorm(3), (3, 4, 4)),
    TransformCase("ActNorm-vector", lambda: initialized_actnorm(3, ()), (3,)),
    TransformCase("BatchNorm-eval", lambda: eval_batch_norm(2), (2, 4, 4)),
    TransformCase("InvertibleConv1x1-lu", lambda: InvertibleConv1x1(3), (3, 4, 4)),
    TransformCase("InvertibleConv1x1-plain", lambda: InvertibleConv1x1(4, lu=False), (4, 2, 2)),
    TransformCase("Squeeze", lambda: Squeeze(), (2, 4, 4)),
    TransformCase("Unsqueeze", lambda: Unsqueeze(), (8, 2, 2)),
    TransformCase("Reshape", lambda: Reshape((2, 4, 4), (32,)), (2, 4, 4)),
    TransformCase("Inverse-Squeeze", lambda: Inverse(Squeeze()), (4, 2, 2)),
    TransformCase("Inverse-Logit", lambda: Inverse(Logit(0.05)), (1, 4, 4)),
    TransformCase("Logit", lambda: Logit(0.05), (1, 4, 4), sample_x=unit_interval((1, 4, 4))),
    TransformCase("Logit-alpha0", lambda: Logit(0.0, event_dim=1), (3,), sample_x=unit_interval((3,))),
    TransformCase("ElementwiseAffine", lambda: ElementwiseAffine((2, 4, 4)), (2, 4, 4)),
    TransformCase(
        "ConditionalElementwiseAffine",
        lambda: ConditionalElementwiseAffine((2, 4, 4), (3,)),
        (2, 4, 4),
        context_shape=(3,),
    ),
    TransformCase("FactorOut-glow-prior", glow_factor_out, (4, 2, 2)),
    TransformCase("FactorOut-nested-scale", nested_factor_out, (4, 2, 2)),
    TransformCase(
        "ConditionalFactorOut",
        lambda: ConditionalFactorOut(
            4,
            [
                initialized_actnorm(2, (2, 2)),
                ConditionalAffineCoupling(
                    channel_mask((2, 2, 2)), GlowNet(1, 2, 8, context_features=3), (3,), split_channels=True
                ),
            ],
            (3,),
            ZeroConv2d(2, 4, context_features=3),
        ),
        (4, 2, 2),
        context_shape=(3,),
    ),
]

_unit = unit_interval

FLOWS = [
    FlowCase("realnvp", (1, 4, 4), {"num_scales": 2, "num_blocks": 1, "hidden_channels": 8}, sample_x=_unit((1, 4, 4))),
    FlowCase(
        "realnvp",
        (3, 8, 8),
        {"num_scales": 2, "num_blocks": 1, "hidden_channels": 4, "logit_alpha": None},
        id="realnvp-3x8x8-nologit",
    ),
    FlowCase("glow", (1, 4, 4), {"levels": 2, "steps": 2, "hidden_channels": 8}, sample_x=_unit((1, 4, 4))),
    FlowCase(
        "glow",
        (2, 4, 4),
        {"levels": 1, "steps": 2, "hidden_channels": 8, "coupling": "additive", "lu": False},
        sample_x=_unit((2, 4, 4)),
        id="glow-2x4x4-additive-plain",
    ),
    FlowCase(
        "cglow",
        (1, 4, 4),
        {"context_shape": (3,), "levels": 2, "steps": 1, "hidden_channels": 8},
        context_shape=(3,),
        sample_x=_unit((1, 4, 4)),
    ),
    FlowCase("nice", (1, 4, 4), {"hidden_dim": 8, "num_hidden_layers": 2}, sample_x=_unit((1, 4, 4)), id="nice-1x4x4"),
    FlowCase(
        "nice",
        (2, 2, 2),
        {"hidden_dim": 8, "num_hidden_layers": 1, "logit_alpha": 0.05},
        sample_x=_unit((2, 2, 2)),
        id="nice-2x2x2-logit",
    ),
]
