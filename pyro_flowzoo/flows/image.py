"""Image flows on ``(C, H, W)``: RealNVP's multi-scale architecture, Glow, NICE on images; each conditional
with ``context_shape=(K,)`` (e.g. a one-hot class label), the context read by every coupling network
(and by Glow's priors).

Every image builder ends (data side) with ``Inverse(Logit(logit_alpha))`` unless ``logit_alpha=None``:
``flow.log_prob(x)`` is then the density of ``x`` in ``[0, 1]^D`` (dequantized pixels scaled to the
unit cube, see :func:`pyro_flowzoo.transforms.uniform_dequantize`) and
:func:`pyro_flowzoo.bits_per_dim` applies to it directly (an upper bound: with ``alpha > 0`` a little
mass lies just outside the cube, where samples may fall; clamp them to ``[0, 1]`` for display). The latent
(base ``N(0, I)``) has the data's shape: factored-out halves are kept in place by
:class:`~pyro_flowzoo.transforms.FactorOut`, so ``temperature`` scales every scale's latent alike.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch  # noqa: F401  (doctests)
from torch import nn

from ..flow import Flow, StandardLogistic, StandardNormal
from ..nn import MLP, GlowNet, ResNet, ZeroConv2d
from ..transforms import (
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
    Scaling,
    Squeeze,
    alternating_masks,
    channel_mask,
    checkerboard_mask,
)
from .registry import register, register_alias
from .vector import context_features

__all__ = ["realnvp_image", "nice_image", "glow", "cglow", "image_shape"]


def image_shape(name: str, event_shape: Sequence[int], halvings: int = 0, what: str = "") -> tuple[int, int, int]:
    """Checks an image shape ``(C, H, W)`` whose H and W can be halved ``halvings`` times; else ValueError."""
    if len(event_shape) != 3:
        raise ValueError(f"{name} expects an image shape (C, H, W), got {tuple(event_shape)}")
    c, h, w = event_shape
    f = 2**halvings
    if h % f or w % f:
        raise ValueError(
            f"{name}: H and W must be divisible by 2^{what or halvings} = {f}, got event_shape "
            f"{tuple(event_shape)}; lower {what or 'the number of scales'} or pad the images"
        )
    return c, h, w


def _flow(
    data_to_latent: list[nn.Module],
    base,
    logit_alpha: Optional[float],
    event_dim: int = 3,
    context_shape: Optional[Sequence[int]] = None,
) -> Flow:
    """Builds a Flow from transforms listed from the data side (each used through its inverse there)."""
    if logit_alpha is not None:
        data_to_latent = [Inverse(Logit(logit_alpha, event_dim=event_dim)), *data_to_latent]
    return Flow(base, list(reversed(data_to_latent)), context_shape=context_shape)


# -- RealNVP -------------------------------------------------------------------------------------
def _realnvp_scale(
    shape: tuple[int, int, int],
    scale: int,
    num_scales: int,
    num_blocks: int,
    hidden_channels: int,
    batch_norm: bool,
    k: int = 0,
) -> list[nn.Module]:
    c, h, w = shape

    def checker(parity: int) -> list[nn.Module]:
        net = ResNet(c, 2 * c, hidden_channels, num_blocks, context_features=k)
        mask = checkerboard_mask(shape, parity)
        t = (
            AffineCoupling(mask, net, scale_shape=(c, 1, 1))
            if not k
            else ConditionalAffineCoupling(mask, net, (k,), scale_shape=(c, 1, 1))
        )
        return [t, BatchNorm(c)] if batch_norm else [t]

    if scale == num_scales - 1:
        return [t for i in range(4) for t in checker(i % 2)]
    out: list[nn.Module] = [t for i in range(3) for t in checker(i % 2)]
    out.append(Inverse(Squeeze()))
    sq = (4 * c, h // 2, w // 2)
    for i in range(3):
        net = ResNet(2 * c, 4 * c, hidden_channels, num_blocks, context_features=k)
        mask = channel_mask(sq, i % 2 == 0)
        out.append(
            AffineCoupling(mask, net, split_channels=True)
            if not k
            else ConditionalAffineCoupling(mask, net, (k,), split_channels=True)
        )
        if batch_norm:
            out.append(BatchNorm(4 * c))
    inner = _realnvp_scale((2 * c, h // 2, w // 2), scale + 1, num_scales, num_blocks, hidden_channels, batch_norm, k)
    out.append(
        FactorOut(4 * c, list(reversed(inner))) if not k else ConditionalFactorOut(4 * c, list(reversed(inner)), (k,))
    )
    out.append(Squeeze())  # data -> latent: un-squeeze, so the scale keeps its input's shape
    return out


def realnvp_image(
    event_shape: tuple[int, ...],
    num_scales: int = 3,
    num_blocks: int = 4,
    hidden_channels: int = 64,
    logit_alpha: Optional[float] = 0.05,
    batch_norm: bool = False,
    context_shape: Optional[tuple[int, ...]] = None,
) -> Flow:
    r"""RealNVP's multi-scale architecture on images (``realnvp`` dispatches here for ``(C, H, W)`` shapes).

    Per scale (data -> latent): 3 checkerboard affine couplings, squeeze, 3 channel-wise couplings,
    factor out half the channels; the last scale: 4 checkerboard couplings. Couplings use
    weight-normalised ResNets and tanh-bounded per-channel log-scales; the data side starts with the
    logit of ``alpha + (1 - 2 alpha) x``.

    .. math:: \log p(x) = \log \mathcal{N}(f(x); 0, I) + \log|\det J_f(x)|

    Args:
        event_shape: ``(C, H, W)``; H and W divisible by ``2^(num_scales - 1)``.
        num_scales: number of scales (the paper: 2 to 4 depending on resolution).
        num_blocks: residual blocks per coupling network (the paper: 8 on CIFAR-10).
        hidden_channels: ResNet width (the paper: 64).
        logit_alpha: the logit margin (None: model unbounded data, no logit).
        batch_norm: a :class:`BatchNorm` after every coupling (the paper); off by default because a
            training-mode batch norm makes the map depend on the batch.
        context_shape: ``(K,)`` for a class-conditional flow: every coupling's ResNet adds a projection
            of the context to its hidden features.

    References:
        Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", arXiv:1605.08803.

    Example:
        >>> flow = realnvp_image((1, 4, 4), num_scales=2, num_blocks=1, hidden_channels=8)
        >>> flow.sample((2,)).shape
        torch.Size([2, 1, 4, 4])
    """
    if num_scales < 1:
        raise ValueError(f"realnvp: num_scales must be >= 1, got {num_scales}")
    shape = image_shape("realnvp", event_shape, num_scales - 1, "(num_scales - 1)")
    dl = _realnvp_scale(shape, 0, num_scales, num_blocks, hidden_channels, batch_norm, context_features(context_shape))
    return _flow(dl, StandardNormal(shape), logit_alpha, context_shape=context_shape)


# -- Glow ----------------------------------------------------------------------------------------
def _glow_level(
    shape: tuple[int, int, int],
    level: int,
    levels: int,
    steps: int,
    hidden: int,
    coupling: str,
    lu: bool,
    context_shape: Optional[tuple[int, ...]],
) -> list[nn.Module]:
    c, h, w = shape
    sq = (4 * c, h // 2, w // 2)
    n = sq[0] // 2
    k = math.prod(context_shape) if context_shape is not None else 0
    out: list[nn.Module] = [Inverse(Squeeze())]
    for _ in range(steps):
        out += [ActNorm(sq[0]), InvertibleConv1x1(sq[0], lu=lu)]
        mask = channel_mask(sq, True)
        width = 2 * (sq[0] - n) if coupling == "affine" else sq[0] - n
        net = GlowNet(n, width, hidden, context_features=k)
        if context_shape is None:
            t = (
                AffineCoupling(mask, net, split_channels=True)
                if coupling == "affine"
                else AdditiveCoupling(mask, net, split_channels=True)
            )
        else:
            t = (
                ConditionalAffineCoupling(mask, net, context_shape, split_channels=True)
                if coupling == "affine"
                else ConditionalAdditiveCoupling(mask, net, context_shape, split_channels=True)
            )
        out.append(t)
    if level < levels - 1:
        inner = list(
            reversed(_glow_level((n, sq[1], sq[2]), level + 1, levels, steps, hidden, coupling, lu, context_shape))
        )
        prior = ZeroConv2d(n, 2 * (sq[0] - n), context_features=k)
        out.append(
            FactorOut(sq[0], inner, prior)
            if context_shape is None
            else ConditionalFactorOut(sq[0], inner, context_shape, prior)
        )
    else:  # Glow's learned top prior, as an affine map of a standard normal latent
        out.append(ElementwiseAffine(sq) if context_shape is None else ConditionalElementwiseAffine(sq, context_shape))
    out.append(Squeeze())  # data -> latent: un-squeeze back to this level's input shape
    return out


def _glow(
    name: str,
    event_shape: tuple[int, ...],
    levels: int,
    steps: int,
    hidden_channels: int,
    coupling: str,
    lu: bool,
    logit_alpha: Optional[float],
    context_shape: Optional[tuple[int, ...]],
) -> Flow:
    if coupling not in ("affine", "additive"):
        raise ValueError(f"{name}: coupling must be 'affine' or 'additive', got {coupling!r}")
    if levels < 1 or steps < 1:
        raise ValueError(f"{name}: levels and steps must be >= 1, got levels={levels}, steps={steps}")
    shape = image_shape(name, event_shape, levels, "levels")
    dl = _glow_level(shape, 0, levels, steps, hidden_channels, coupling, lu, context_shape)
    return _flow(dl, StandardNormal(shape), logit_alpha, context_shape=context_shape)


@register("glow", shapes=("image",))
def glow(
    event_shape: tuple[int, ...],
    levels: int = 3,
    steps: int = 8,
    hidden_channels: int = 256,
    coupling: str = "affine",
    lu: bool = True,
    logit_alpha: Optional[float] = 0.05,
    context_shape: Optional[tuple[int, ...]] = None,
) -> Flow:
    r"""Glow: ``levels`` x (squeeze, ``steps`` x [ActNorm, invertible 1x1 conv, coupling], split with learned prior).

    Couplings use Glow's conv3x3 -> conv1x1 -> zero-init conv3x3 network on half of the channels, with
    tanh-bounded per-channel log-scales (affine) or shifts only (additive). The factored-out halves get
    Glow's learned Gaussian prior conditioned on the kept half, and the top latent a learned per-position
    mean and scale, both written as affine maps of the ``N(0, I)`` base.

    With ``context_shape=(K,)`` (a one-hot class label or a feature vector) this is conditional Glow:
    the context is projected and added to each coupling network's first hidden layer and to every
    prior; use ``flow.log_prob(x, context=c)`` and ``flow.sample(shape, context=c)``. ``cglow`` is this
    builder with ``context_shape=(10,)`` by default.

    .. math::
        z = f_{L} \circ \dots \circ f_1(\mathrm{logit}(\alpha + (1 - 2\alpha) x)), \quad
        \log p(x) = \log \mathcal{N}(z) + \log|\det J|

    Args:
        event_shape: ``(C, H, W)``; H and W divisible by ``2^levels``.
        levels: L (the paper: 3 on CIFAR-10).
        steps: K steps of flow per level (the paper: 32).
        hidden_channels: coupling network width (the paper: 512).
        coupling: ``"affine"`` or ``"additive"``.
        lu: LU-parametrised 1x1 convolutions (else a plain matrix with ``slogdet``).
        logit_alpha: the logit margin (None: no logit, the flow models unbounded data).
        context_shape: shape of one context for conditional Glow (None: unconditional).

    References:
        Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", arXiv:1807.03039;
        Winkler et al., "Learning Likelihoods with Conditional Normalizing Flows", arXiv:1912.00042.

    Example:
        >>> flow = glow((1, 4, 4), levels=2, steps=1, hidden_channels=8)
        >>> flow.log_prob(torch.rand(3, 1, 4, 4)).shape
        torch.Size([3])
        >>> flow = glow((1, 4, 4), context_shape=(3,), levels=1, steps=1, hidden_channels=8)
        >>> flow.sample((2,), context=torch.eye(3)).shape
        torch.Size([2, 3, 1, 4, 4])
    """
    return _glow(
        "glow",
        event_shape,
        levels,
        steps,
        hidden_channels,
        coupling,
        lu,
        logit_alpha,
        None if context_shape is None else tuple(int(s) for s in context_shape),
    )


#: ``cglow``: ``glow`` with ``context_shape=(10,)`` by default (a one-hot digit class).
cglow = register_alias("cglow", "glow", context_shape=(10,))


# -- NICE ----------------------------------------------------------------------------------------
def nice_image(
    event_shape: tuple[int, ...],
    num_layers: int = 4,
    hidden_dim: int = 1000,
    num_hidden_layers: int = 5,
    logit_alpha: Optional[float] = None,
    context_shape: Optional[tuple[int, ...]] = None,
) -> Flow:
    r"""NICE on flattened images (``nice`` dispatches here): additive couplings, scaling, logistic prior.

    The paper's MNIST model by default: 4 additive couplings (odd/even split) of ``5 x 1000`` ReLU MLPs,
    a diagonal scaling, a standard logistic base; the flow models the dequantized pixels in ``[0, 1]``
    directly (``logit_alpha=None``). For images, the vector hyper-parameters ``hidden_dims``/``mask`` of
    ``nice`` do not apply; use ``hidden_dim`` and ``num_hidden_layers``.

    .. math:: \log p(x) = \textstyle\sum_i \log p_L(h_i) + \sum_i s_i, \qquad h = e^{s} \odot g(x)

    Args:
        event_shape: ``(C, H, W)``.
        num_layers: number of additive couplings.
        hidden_dim: width of each coupling MLP.
        num_hidden_layers: hidden layers of each coupling MLP.
        logit_alpha: None (the paper) or a logit margin.
        context_shape: ``(K,)`` for a conditional flow (each coupling MLP also reads the context).

    References:
        Dinh, Krueger, Bengio, "NICE: Non-linear Independent Components Estimation", arXiv:1410.8516.

    Example:
        >>> flow = nice_image((1, 2, 2), hidden_dim=8, num_hidden_layers=1)
        >>> flow.log_prob(torch.rand(3, 1, 2, 2)).shape
        torch.Size([3])
    """
    shape = image_shape("nice", event_shape)
    dim = math.prod(shape)
    k = context_features(context_shape)
    couplings = [
        AdditiveCoupling(m, MLP(dim, dim, (hidden_dim,) * num_hidden_layers))
        if not k
        else ConditionalAdditiveCoupling(m, MLP(dim, dim, (hidden_dim,) * num_hidden_layers, context_features=k), (k,))
        for m in alternating_masks(dim, num_layers, "even_odd", anchor="latent")  # its masks from before the anchoring
    ]
    dl: list[nn.Module] = [Reshape((dim,), shape), Scaling((dim,)), *reversed(couplings)]
    return _flow(dl, StandardLogistic((dim,)), logit_alpha, context_shape=context_shape)
