"""Autoregressive and other vector flows: ar_flow, pixelcnn_flow, maf, nsf_ar, nsf_coupling, planar, radial.

Every builder takes ``event_shape`` first, then keyword hyper-parameters with defaults measured on the
2-D toy sets (``benchmarks/toy2d.py``); a shape it does not support raises a ValueError naming what it
supports. With ``context_shape=(K,)`` the vector builders return conditional flows: MADE-based layers
read the context in every hidden layer (the density direction stays one parallel pass), spline
couplings in their MLPs, planar and radial layers through a hypernetwork.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

from torch import nn

from ..flow import Flow, StandardLogistic, StandardNormal, StandardUniform
from ..transforms import (
    ConditionalMaskedAffineAutoregressive,
    ConditionalMixtureCDFAutoregressive,
    ConditionalNeuralSplineAutoregressive,
    ConditionalNeuralSplineCoupling,
    ConditionalPixelCNNMixtureCDF,
    ConditionalPlanar,
    ConditionalRadial,
    MaskedAffineAutoregressive,
    MixtureCDFAutoregressive,
    NeuralSplineAutoregressive,
    NeuralSplineCoupling,
    PixelCNNMixtureCDF,
    Planar,
    Radial,
    alternating_masks,
)
from ..transforms.base import one_of
from ..transforms.coupling import SQUASHES
from ..transforms.elementwise_spline import ElementwiseSpline
from ..transforms.mixture_cdf import MixtureCDF
from ..transforms.spline import KNOTS
from .data_side import Support, data_side
from .registry import register
from .vector import (
    by_dimension,
    context_features,
    default_shift_side,
    shift_bound_of,
    small_hidden,
    vector_base,
    vector_dim,
)

__all__ = ["ar_flow", "pixelcnn_flow", "maf", "nsf_ar", "nsf_coupling", "planar", "radial"]


def _reversed(num_layers: int) -> list[bool]:
    """Which layers (latent -> data order) condition on later entries: alternating, the data side in natural order.

    The same family as natural-order layers with a Reverse between them (for an even count that puts
    one more flip at the latent side, a symmetry of the i.i.d. base), without the flips.
    """
    return [(num_layers - 1 - i) % 2 == 1 for i in range(num_layers)]


def _no_context_in_1d(name: str, context_features: int) -> None:
    if context_features:
        raise ValueError(f"{name} on (1,) is elementwise (nothing to condition on): no conditional version")


def affine_layers(dim: int, context_features: int, affine_layer: Optional[bool]) -> list[nn.Module]:
    """The spline builders' data-side affine layer: a :class:`MaskedAffineAutoregressive` of ``max(64, 2 D)``
    units with the shift on the latent side and an asinh input bound, or none.

    ``affine_layer=None`` means one for unconditional ``D >= 3`` (``True`` asks for it, conditional flows cannot
    have it yet).

    Example:
        >>> [type(t).__name__ for t in affine_layers(4, 0, None)], affine_layers(2, 0, None)
        (['MaskedAffineAutoregressive'], [])
    """
    if affine_layer is None:
        affine_layer = dim >= 3 and not context_features
    if not affine_layer:
        return []
    if context_features or dim < 2:
        raise ValueError("affine_layer=True needs an unconditional flow on vectors (D,) with D >= 2")
    return [
        MaskedAffineAutoregressive(
            dim, hidden_dims=None, max_log_scale=3.0, input_bound=2.0, input_squash="asinh", shift_side="latent"
        )
    ]


def _elementwise_splines(
    name: str, context_features: int, num_layers: int, num_bins: int, bound: float, tails: str, knots: str
) -> list:
    """The spline flows of ``(1,)`` data: ``num_layers`` free elementwise splines (no conditioner)."""
    _no_context_in_1d(name, context_features)
    return [ElementwiseSpline(1, num_bins, bound, tails, knots) for _ in range(num_layers)]


@register("ar_flow", min_dim=1)
def ar_flow(
    event_shape: tuple[int, ...],
    num_layers: Optional[int] = None,
    num_components: Optional[int] = None,
    hidden_dims: Optional[Sequence[int]] = None,
    family: str = "gaussian",
    to_real: Optional[bool] = None,
    context_shape: Optional[tuple[int, ...]] = None,
    support: Support = None,
) -> Flow:
    """Mixture-CDF autoregressive flow (MADE conditioner) for vectors ``(D,)``; for ``D = 1`` elementwise.

    Defaults (:func:`~pyro_flowzoo.flows.vector.by_dimension`): one layer for ``D <= 2`` (uniform base:
    dimension 1 by its own mixture, dimension 2 by a mixture conditioned on dimension 1) with MADEs of
    ``max(64, 2 D)`` units and 8 components; for ``D >= 3`` two layers of
    :func:`~pyro_flowzoo.flows.vector.small_hidden` with 4 components (``sas6``, plain loop, worst of 3
    seeds: +0.028, against +0.041 with 8 components and +0.379 for the former three layers of 64 units,
    which overfit). Several layers (or ``to_real=True``) use logit-latent layers
    under a logistic base, in alternating orders (every other layer conditions each entry on the entries
    after it: a Reverse permutation between layers without the flip).

    References:
        Germain et al., "MADE", arXiv:1502.03509; Ho et al., "Flow++", arXiv:1902.00275.

    Example:
        >>> flow = ar_flow((2,), num_components=3, hidden_dims=(8,))
        >>> type(flow.base).__name__, flow.sample((4,)).shape
        ('StandardUniform', torch.Size([4, 2]))
    """
    dim = vector_dim("ar_flow", event_shape, min_dim=1)
    if num_layers is None:
        num_layers = by_dimension(dim, 1, 2)
    if hidden_dims is None:
        hidden_dims = by_dimension(dim, None, small_hidden(dim))
    if num_components is None:
        num_components = by_dimension(dim, 8, 4)
    if num_layers < 1:
        raise ValueError(f"ar_flow needs num_layers >= 1, got {num_layers}")
    if to_real is None:
        to_real = num_layers > 1
    if num_layers > 1 and not to_real:
        raise ValueError("ar_flow with num_layers > 1 stacks logit-latent layers: use to_real=True (or None)")
    k = context_features(context_shape)
    layers = (
        [
            MixtureCDFAutoregressive(dim, num_components, hidden_dims, family, to_real, reverse=r)
            if not k
            else ConditionalMixtureCDFAutoregressive(dim, k, num_components, hidden_dims, family, to_real, reverse=r)
            for r in _reversed(num_layers)
        ]
        if dim > 1
        else [MixtureCDF(1, num_components, family, to_real) for _ in range(num_layers)]
    )
    _no_context_in_1d("ar_flow", k if dim == 1 else 0)
    base = StandardLogistic((dim,)) if to_real else StandardUniform((dim,))
    return Flow(base, layers + data_side((dim,), support), context_shape=context_shape)


@register("pixelcnn_flow", shapes=("image",))
def pixelcnn_flow(
    event_shape: tuple[int, ...],
    num_components: int = 4,
    hidden_channels: int = 64,
    num_blocks: int = 4,
    kernel_size: int = 3,
    family: str = "logistic",
    context_shape: Optional[tuple[int, ...]] = None,
) -> Flow:
    """PixelCNN mixture-CDF autoregressive flow on images ``(C, H, W)`` with a uniform latent.

    log_prob is one parallel pass; sampling goes pixel by pixel (``C H W`` passes). With
    ``context_shape=`` (e.g. one-hot class labels) every residual block reads the context
    (:class:`~pyro_flowzoo.transforms.ConditionalPixelCNNMixtureCDF`). Feed it continuous images in
    ``[0, 1]``: dequantize discrete or binary images first, ``x = (k + U(0, 1)) / n_bins``.

    References:
        van den Oord et al., "Pixel Recurrent Neural Networks", arXiv:1601.06759; van den Oord et al.,
        "Conditional Image Generation with PixelCNN Decoders", arXiv:1606.05328; Ho et al., "Flow++",
        arXiv:1902.00275.

    Example:
        >>> flow = pixelcnn_flow((1, 3, 3), num_components=2, hidden_channels=4, num_blocks=1)
        >>> flow.sample((2,)).shape
        torch.Size([2, 1, 3, 3])
    """
    if len(event_shape) != 3:
        raise ValueError(f"pixelcnn_flow supports images (C, H, W); got event_shape {event_shape}")
    sizes = dict(num_components=num_components, hidden_channels=hidden_channels, num_blocks=num_blocks)
    if context_shape is None:
        transform = PixelCNNMixtureCDF(event_shape, kernel_size=kernel_size, family=family, **sizes)
    else:
        (k,) = context_shape
        transform = ConditionalPixelCNNMixtureCDF(event_shape, k, kernel_size=kernel_size, family=family, **sizes)
    return Flow(StandardUniform(event_shape), [transform], context_shape=context_shape)


@register("maf")
def maf(
    event_shape: tuple[int, ...],
    num_layers: Optional[int] = None,
    hidden_dims: Optional[Sequence[int]] = None,
    max_log_scale: float = 3.0,
    context_shape: Optional[tuple[int, ...]] = None,
    support: Support = None,
    input_bound: Optional[float] = 2.0,
    input_squash: Optional[str] = None,
    shift_side: Optional[str] = None,
    shift_bound: Union[float, bool, None] = None,
    base_df: Union[float, bool, None] = None,
) -> Flow:
    """Masked autoregressive flow for vectors ``(D,)``, ``D >= 2``: MAF layers in alternating orders.

    Every other layer conditions each entry on the entries after it (``reverse=True``) instead of
    before it, which is a Reverse permutation between layers without the flip.

    Sizes by dimension (:func:`~pyro_flowzoo.flows.vector.by_dimension`). ``D = 2``: 24 layers with MADEs of
    ``max(64, 2 D)`` units: on smiley, 5 layers missed the entropy by 0.07-0.08 nats/dim and 16 by 0.055 on
    one seed; 24 stay within 0.045 on moons and smiley, two seeds each (benchmarks/RESULTS.md). ``D >= 3``:
    3 layers of ``max(64, 2 D)`` units (zuko's size), with the shift on the latent side (below); 24 layers
    overfit 2,000 points there. Plain loop, worst of 3 seeds, against the former 5 layers of ``max(32, 2 D)``
    (both with the latent shift, measured through a scratch patch whose shift had the opposite sign):
    ``banana4`` +0.021 against +0.028, ``banana16`` +0.161 against +0.258, ``sas6`` +0.024 against +0.023,
    ``student_t4`` +0.027 against +0.022 (as built: +0.019, +0.176, +0.022, +0.028); over the lr and batch
    sweeps (2 seeds) lower in 11 of 16 cells, equal in 2, higher in 3, all heavy tails (lr 3e-3: ``sas6`` +0.044
    against +0.038, ``student_t4`` +0.051 against +0.032; batch 1024: ``student_t4`` +0.038 against +0.028).

    ``shift_side`` (:func:`~pyro_flowzoo.flows.vector.default_shift_side`): ``"latent"`` for unconditional
    ``D >= 3``, else ``"data"`` (:class:`MaskedAffineAutoregressive`: ``z = x e^{-s} - m`` rather than
    ``(x - m) e^{-s}``; the same family of maps, trained better). 5 layers of 32 units, plain loop, worst of 3
    seeds, latent (the scratch patch above) against data: ``banana4`` +0.028 against +0.046, ``banana16``
    +0.258 against +0.306, ``sas6`` +0.023 against +0.025, ``student_t4`` +0.022 against +0.024, and lower or
    equal in every cell of the lr 3e-3 / 3e-4 sweeps. On the 2-D sets (24 layers) it split: ``rings`` +1.308
    against +0.739, ``2spirals`` +0.445 against +0.695. Conditional, in neural posterior estimation on SLCP
    (seeds 0-1, explicit sizes), it was worse: 1.300 and 1.310 nats/dim against 1.241 and 1.296. Conditional
    flows take the ``D >= 3`` sizes above too (not measured there). RESULTS.md, issue 15.

    ``input_bound=2.0``: every MADE reads ``2 tanh(x / 2)`` of its (standardized) inputs (``2 asinh(x / 2)``
    for ``D >= 3``, below), so shifts and log-scales level off beyond the data instead of growing linearly
    with it; without it, test points of a
    heavy-tailed set beyond the training range got log-densities of -1e22 (RESULTS.md, issue 15).
    ``None`` reads ``x`` itself.

    ``input_squash``: ``"tanh"`` for ``D = 2``, ``"asinh"`` for ``D >= 3`` (``2 asinh(x / 2)``: logarithmic
    growth beyond the data, so a banana's shift ``x_1^2`` keeps rising in the tails). With 5 layers, plain
    loop, worst of 3 seeds, asinh against tanh: ``banana4`` +0.046 against +0.071, ``student_t4`` +0.024
    against +0.027, ``sas6`` +0.025 against +0.026; over the lr and batch sweeps (2 seeds) lower in 8 of 12
    cells, equal in 1, higher in 3 (``sas6`` at lr 3e-3: +0.045 against +0.034; ``student_t4`` by 0.002
    twice). With 24 layers (``D = 2``) it compounds: ``rings`` blew up (+28,305). Conditional layers
    (``context_shape=``) read ``x`` unbounded (not measured).

    ``base_df`` (:func:`~pyro_flowzoo.flows.vector.vector_base`, with the measurements): a Student-t base with
    10 degrees of freedom for unconditional 2-D sets (rings +0.468 against +0.739), else normal (``False``).
    ``shift_bound=b``: each layer's shift is ``b tanh(m / b)`` (``None``, the default: unbounded).

    References:
        Papamakarios, Pavlakou, Murray, "Masked Autoregressive Flow for Density Estimation", arXiv:1705.07057.

    Example:
        >>> flow = maf((3,), num_layers=2, hidden_dims=(8,))
        >>> flow.log_prob(flow.sample((4,))).shape
        torch.Size([4])
    """
    dim = vector_dim("maf", event_shape)
    num_layers = by_dimension(dim, 24, 3) if num_layers is None else num_layers
    input_squash = by_dimension(dim, "tanh", "asinh") if input_squash is None else input_squash
    one_of("input_squash", input_squash, SQUASHES)  # here too: conditional layers do not take it
    k = context_features(context_shape)
    shift_side = default_shift_side(dim, k) if shift_side is None else shift_side
    sides = dict(shift_side=shift_side, shift_bound=shift_bound_of(shift_bound))
    layers = [
        MaskedAffineAutoregressive(dim, hidden_dims, max_log_scale, r, input_bound, input_squash, **sides)
        if not k
        else ConditionalMaskedAffineAutoregressive(dim, k, hidden_dims, max_log_scale, r, **sides)
        for r in _reversed(num_layers)
    ]
    return Flow(vector_base(dim, k, base_df), layers + data_side((dim,), support), context_shape=context_shape)


@register("nsf_ar", min_dim=1)
def nsf_ar(
    event_shape: tuple[int, ...],
    num_layers: Optional[int] = None,
    hidden_dims: Optional[Sequence[int]] = None,
    num_bins: int = 8,
    bound: float = 5.0,
    context_shape: Optional[tuple[int, ...]] = None,
    support: Support = None,
    tails: str = "identity",
    input_bound: Optional[float] = 2.0,
    knots: Optional[str] = None,
    affine_layer: Optional[bool] = None,
) -> Flow:
    """Autoregressive neural spline flow for vectors ``(D,)``, ``D >= 2`` (identity tails outside ``[-bound, bound]``).

    Sizes by dimension (:func:`~pyro_flowzoo.flows.vector.by_dimension`): for ``D <= 2``, 3 layers with MADEs
    of ``max(64, 2 D)`` units; for ``D >= 3``, 2 layers of :func:`~pyro_flowzoo.flows.vector.small_hidden`
    (``sas6``, plain loop, worst of 3 seeds: +0.026 against +0.069, which overfit).

    ``input_bound=2.0``: every MADE reads ``2 tanh(x / 2)`` of its (standardized) inputs, as in :func:`maf`
    (``sas6`` +0.026 against +0.031 unbounded; ``student_t4`` +0.052 against +0.064); ``None`` reads ``x``.
    ``tails="linear"`` makes each spline linear outside ``[-bound, bound]`` with conditioned end slopes (C^1,
    exact); it did not help on ``sas6`` (+0.071 against +0.069 with the former sizes), so the default keeps
    the identity.

    ``knots``: where each fresh spline puts its knots
    (:func:`~pyro_flowzoo.transforms.spline.initial_bin_logits`); the default is ``"centered"`` for
    ``D = 2`` (plain loop, worst of 3 seeds: ``rings`` +0.269 against +0.387 uniform, ``2spirals`` +0.091
    against +0.147, ``pinwheel`` +0.046 against +0.051; the smooth sets lose a little and stay within 0.03,
    ``moons`` +0.026 against +0.022, ``8gaussians`` +0.024 against +0.016) and ``"uniform"`` for ``D = 1``
    and ``D >= 3`` (centered: ``sas6`` +0.036 against +0.026); likewise in :func:`nsf_coupling`.
    Conditional layers (``context_shape=``) take none of the three options yet (centered knots did not help
    SLCP in neural posterior estimation).

    ``affine_layer`` (:func:`affine_layers`): on by default for unconditional ``D >= 3``: one MAF layer with
    the shift on the latent side reads the standardized data before the splines, so an affine move such as a
    banana's ``x_1^2`` shift is made before a spline on a fixed interval has to (plain loop, worst of 3 seeds,
    with against without: ``banana16`` +0.146 against +0.368, ``banana4`` +0.033 against +0.058, ``student_t4``
    +0.033 against +0.052, ``sas6`` +0.028 against +0.026; both spline builders, that loop and lr 3e-4 / 3e-3,
    batch 64 / 1024 and ``fit``: lower in 39 of 48 cells, higher in 8: ``sas6`` at lr 1e-3 / 3e-3 and batch 1024,
    ``nsf_coupling`` ``banana16`` at lr 3e-3 and batch 1024; RESULTS.md, issue 15). Likewise in :func:`nsf_coupling`.

    References:
        Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", arXiv:1906.04032.

    Example:
        >>> flow = nsf_ar((2,), num_layers=1, hidden_dims=(8,), num_bins=4)
        >>> flow.log_prob(flow.sample((4,))).shape
        torch.Size([4])
    """
    dim = vector_dim("nsf_ar", event_shape, min_dim=1)
    num_layers = by_dimension(dim, 3, 2) if num_layers is None else num_layers
    hidden_dims = by_dimension(dim, None, small_hidden(dim)) if hidden_dims is None else hidden_dims
    knots = one_of("knots", ("centered" if dim == 2 else "uniform") if knots is None else knots, KNOTS)
    k = context_features(context_shape)
    layers = (
        [
            NeuralSplineAutoregressive(
                dim, num_bins, hidden_dims, bound, reverse=r, tails=tails, input_bound=input_bound, knots=knots
            )
            if not k
            else ConditionalNeuralSplineAutoregressive(dim, k, num_bins, hidden_dims, bound, reverse=r)
            for r in _reversed(num_layers)
        ]
        if dim > 1
        else _elementwise_splines("nsf_ar", k, num_layers, num_bins, bound, tails, knots)
    )
    layers += affine_layers(dim, k, affine_layer)
    return Flow(StandardNormal((dim,)), layers + data_side((dim,), support), context_shape=context_shape)


@register("nsf_coupling", min_dim=1)
def nsf_coupling(
    event_shape: tuple[int, ...],
    num_layers: Optional[int] = None,
    hidden_dims: Optional[Sequence[int]] = None,
    num_bins: Optional[int] = None,
    bound: float = 5.0,
    mask: str = "even_odd",
    context_shape: Optional[tuple[int, ...]] = None,
    support: Support = None,
    tails: str = "identity",
    input_bound: Optional[float] = None,
    knots: Optional[str] = None,
    mask_anchor: str = "data",
    affine_layer: Optional[bool] = None,
) -> Flow:
    """Coupling neural spline flow for vectors ``(D,)``, ``D >= 2``, with alternating masks.

    Sizes by dimension (:func:`~pyro_flowzoo.flows.vector.by_dimension`): for ``D = 2``, 3 layers of
    ``(64, 64)``, 8 bins and centered knots (4 layers when conditional, as measured for neural posterior
    estimation); for ``D = 1``, 4 elementwise splines of 8 bins; for ``D >= 3``,
    2 layers of :func:`~pyro_flowzoo.flows.vector.small_hidden` and 4 bins (``sas6``, plain loop, worst of 3
    seeds: +0.029 against +0.186, which overfit). ``mask="even_odd"``
    as in :func:`~pyro_flowzoo.flows.vector.realnvp` (the same as ``"half"`` for ``D = 2``), with
    ``mask_anchor="data"`` for every ``D`` (:func:`~pyro_flowzoo.transforms.alternating_masks`: the data-side
    layer keeps the even entries; ``banana4`` +0.050 against +0.072 with ``"latent"``).

    ``tails`` and ``input_bound`` as for :func:`nsf_ar` (the MLPs read the bounded kept entries), both off
    by default here (``input_bound=2.0`` measured no better on ``sas6``). ``knots`` as for :func:`nsf_ar`
    (``"centered"`` for ``D = 2``, ``"uniform"`` otherwise). For ``D = 2`` the centered knots come with 3
    layers instead of the former 4 uniform ones, which with centered knots overfit the smooth sets (plain
    loop, worst of 3 seeds, 3 centered / 4 uniform / 4 centered: ``rings`` +0.266 / +0.325 / +0.262,
    ``2spirals`` +0.083 / +0.135 / +0.078, ``pinwheel`` +0.040 / +0.048 / +0.043, ``smiley`` +0.020 / +0.022
    / +0.022, ``moons`` +0.029 / +0.026 / +0.036, ``8gaussians`` +0.027 / +0.022 / +0.031).
    ``affine_layer`` as for :func:`nsf_ar` (with against without: ``banana4`` +0.031 against +0.050,
    ``student_t4`` +0.030 against +0.050, ``banana16`` +0.212 against +0.220, ``sas6`` +0.033 against +0.031).
    The layer is autoregressive, so sampling makes ``D`` passes through it (10^4 samples, one CPU thread: 2.0x
    the time without it at ``D = 4``, 2.4x at 16, 5.4x at 64; ``log_prob`` 1.03-1.25x); ``affine_layer=False``
    keeps sampling to one pass per layer. Two affine couplings in its place fitted worse (RESULTS.md).

    References:
        Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", arXiv:1906.04032.

    Example:
        >>> flow = nsf_coupling((2,), num_layers=2, hidden_dims=(8,), num_bins=4)
        >>> flow.log_prob(flow.sample((4,))).shape
        torch.Size([4])
    """
    dim = vector_dim("nsf_coupling", event_shape, min_dim=1)
    # 3 layers for 2-D densities (with centered knots, below); conditional 2-D flows (NPE) keep the 4 measured.
    if num_layers is None:
        num_layers = 3 if dim == 2 and context_shape is None else by_dimension(dim, 4, 2)
    hidden_dims = by_dimension(dim, (64, 64), small_hidden(dim)) if hidden_dims is None else hidden_dims
    num_bins = by_dimension(dim, 8, 4) if num_bins is None else num_bins
    knots = one_of("knots", ("centered" if dim == 2 else "uniform") if knots is None else knots, KNOTS)
    k = context_features(context_shape)
    layers = (
        [
            NeuralSplineCoupling(m, num_bins, hidden_dims, bound, tails, input_bound, knots)
            if not k
            else ConditionalNeuralSplineCoupling(m, k, num_bins, hidden_dims, bound)
            for m in alternating_masks(dim, num_layers, mask, mask_anchor)
        ]
        if dim > 1
        else _elementwise_splines("nsf_coupling", k, num_layers, num_bins, bound, tails, knots)
    )
    layers += affine_layers(dim, k, affine_layer)
    return Flow(StandardNormal((dim,)), layers + data_side((dim,), support), context_shape=context_shape)


@register("planar", min_dim=1)
def planar(
    event_shape: tuple[int, ...],
    num_layers: int = 8,
    hidden_dims: Sequence[int] = (32,),
    context_shape: Optional[tuple[int, ...]] = None,
) -> Flow:
    """A stack of planar flows (exact inverses) on a standard normal, for vectors ``(D,)``, ``D >= 1``.

    For small corrections of a Gaussian in a few dimensions (variational posteriors, illustrations): each
    layer adds one tanh ridge (:class:`~pyro_flowzoo.transforms.Planar`). Not one of the density builders
    measured in benchmarks/density.py.

    With ``context_shape=(K,)`` each layer's parameters come from a hypernetwork of the context
    (``hidden_dims``; unused otherwise), the invertibility constraint applied per context.

    References:
        Rezende, Mohamed, "Variational Inference with Normalizing Flows", arXiv:1505.05770.

    Example:
        >>> flow = planar((1,), num_layers=2)
        >>> flow.log_prob(flow.sample((4,))).shape
        torch.Size([4])
    """
    dim = vector_dim("planar", event_shape, min_dim=1)
    k = context_features(context_shape)
    layers = [Planar(dim) if not k else ConditionalPlanar(dim, k, hidden_dims) for _ in range(num_layers)]
    return Flow(StandardNormal((dim,)), layers, context_shape=context_shape)


@register("radial", min_dim=1)
def radial(
    event_shape: tuple[int, ...],
    num_layers: int = 8,
    hidden_dims: Sequence[int] = (32,),
    context_shape: Optional[tuple[int, ...]] = None,
) -> Flow:
    """A stack of radial flows (exact inverses) on a standard normal, for vectors ``(D,)``, ``D >= 1``.

    For widening, narrowing or adding rounded modes to a Gaussian in a few dimensions (variational
    posteriors, illustrations): each layer contracts or expands around one centre
    (:class:`~pyro_flowzoo.transforms.Radial`). Not one of the density builders measured in
    benchmarks/density.py.

    With ``context_shape=(K,)`` each layer's parameters come from a hypernetwork of the context
    (``hidden_dims``; unused otherwise), the invertibility constraints applied per context.

    References:
        Rezende, Mohamed, "Variational Inference with Normalizing Flows", arXiv:1505.05770.

    Example:
        >>> flow = radial((2,), num_layers=2)
        >>> flow.log_prob(flow.sample((4,))).shape
        torch.Size([4])
    """
    dim = vector_dim("radial", event_shape, min_dim=1)
    k = context_features(context_shape)
    layers = [Radial(dim) if not k else ConditionalRadial(dim, k, hidden_dims) for _ in range(num_layers)]
    return Flow(StandardNormal((dim,)), layers, context_shape=context_shape)
