"""Coupling flows on vectors: NICE and RealNVP (image versions dispatch to ``flows.image``)."""

from __future__ import annotations

import math
from typing import Optional, Sequence, TypeVar, Union

from torch import Tensor, nn

from ..flow import BaseDistribution, Flow, StandardLogistic, StandardNormal, StandardStudentT
from ..nn import MLP
from ..transforms import (
    AdditiveCoupling,
    AffineCoupling,
    ConditionalAdditiveCoupling,
    ConditionalAffineCoupling,
    Scaling,
    alternating_masks,
)
from ..transforms.base import finite_positive, one_of
from ..transforms.coupling import SQUASHES
from .data_side import Support, data_side
from .registry import register

__all__ = ["nice", "realnvp", "vector_dim", "context_features", "by_dimension", "small_hidden", "default_shift_side"]

T = TypeVar("T")


def by_dimension(dim: int, two_d: T, higher: T) -> T:
    """A builder default that depends on the data's dimension ``D``: ``two_d`` for ``D <= 2``, ``higher`` above.

    Why (benchmarks/RESULTS.md, "Density defaults (issue 15)"; plain Adam loop, 2,000 training points, 3 seeds):
    on the 2-D sets (separated modes, thin arms) the flows are capacity-limited, e.g. ``maf`` needed 24 layers
    on smiley (5 missed it by 0.077). From ``D = 4`` on, the same 2,000 points sample the density sparsely and
    the 2-D sizes overfit: the training NLL beats the true entropy while the test NLL misses it (``nsf_ar`` on
    ``sas6``: -0.057 and +0.057 nats/dim); smaller flows fit better on every 4-D and 6-D set measured
    (``maf`` with MADEs of 64 units, 24 -> 5 layers: ``sas6`` +0.114 -> +0.027, ``student_t4`` +0.062 ->
    +0.029, ``banana4`` +0.050 -> +0.039, worst of 3 seeds). The builders see ``D``, not the number of
    points: with much more data per dimension, pass larger sizes. ``D = 3`` was not measured; it gets the
    ``higher`` sizes.

    Example:
        >>> by_dimension(2, 24, 5), by_dimension(6, 24, 5)
        (24, 5)
    """
    return two_d if dim <= 2 else higher


def small_hidden(dim: int) -> tuple[int, int]:
    """The conditioner size of the vector builders for ``D >= 3``: two layers of ``max(32, 2 D)`` units.

    Example:
        >>> small_hidden(6), small_hidden(40)
        ((32, 32), (80, 80))
    """
    return (max(32, 2 * dim),) * 2


def default_shift_side(dim: int, context_features: int) -> str:
    """The default ``shift_side`` of ``maf`` and ``realnvp``: ``"latent"`` for unconditional ``D >= 3``, else data.

    The latent side trained better for unconditional vectors of ``D >= 3`` under a plain loop, split on the 2-D
    sets, and trained worse for the conditional flows of neural posterior estimation on SLCP (RESULTS.md, issue 15).

    Example:
        >>> default_shift_side(6, 0), default_shift_side(2, 0), default_shift_side(6, 3)
        ('latent', 'data', 'data')
    """
    return "latent" if dim >= 3 and not context_features else "data"


def shift_bound_of(shift_bound: Union[float, bool, None]) -> Optional[float]:
    """A builder's ``shift_bound`` for its affine layers: a number ``b > 0``, or ``None`` / ``False`` / ``0`` for none.

    Not a default anywhere: 1.5 on 2-D ``realnvp`` (plain loop; RESULTS.md, issue 15) left rings' mean gap
    unchanged over 12 seeds (+0.629 against +0.631; worst +1.198 against +0.931), lowered pinwheel's (+0.088
    against +0.093) and raised smiley's (+0.036 against +0.034): the couplings' scales compound as their shifts do.

    Example:
        >>> shift_bound_of(None), shift_bound_of(False), shift_bound_of(3)
        (None, None, 3.0)
    """
    if shift_bound is None or shift_bound is False or shift_bound == 0:
        return None
    if not finite_positive(shift_bound):
        raise ValueError(f"shift_bound must be a finite number > 0, or None / False for no bound, got {shift_bound!r}")
    return float(shift_bound)


#: The Student-t base's degrees of freedom for unconditional 2-D sets (:func:`vector_base`).
BASE_DF_2D = 10.0


def vector_base(dim: int, context_features: int, base_df: Union[float, bool, None]) -> BaseDistribution:
    """The base of vector ``realnvp`` and ``maf``: :class:`StandardStudentT` with ``base_df`` degrees of freedom, or
    :class:`StandardNormal` for ``base_df=False`` (or ``math.inf``).

    ``None`` is the default: a Student-t base with :data:`BASE_DF_2D` for unconditional 2-D sets, else normal.
    On thin 2-D sets the deep 2-D stacks send a few test points at the training data's edge far into the base's
    tail; under a normal base those few carried a third of the mean gap (their cost grows with the square of
    the distance, under a t base with its logarithm) and changed with rounding (RESULTS.md, issue 15).

    Plain loop, seeds 0-2, worst gap, t 10 / normal: ``realnvp`` rings +0.479 / +0.774, 2spirals +0.220 / +0.222,
    smiley +0.028 / +0.035, pinwheel +0.082 / +0.096, moons +0.043 / +0.043, 8gaussians +0.021 / +0.021; ``maf``
    rings +0.468 / +0.739, 2spirals +0.163 / +0.695, pinwheel +0.079 / +0.082, moons +0.028 / +0.027, smiley
    +0.028 / +0.030, 8gaussians +0.018 / +0.020. 5 degrees gained more on rings (+0.413) and lost moons (+0.060
    over 6 seeds). At ``D >= 3`` a t base (5) was worse on ``banana4`` (realnvp +0.041 against +0.026) and
    ``sas6``, better on ``student_t4``. The 2-D splines keep a normal base: with t 10 they were level or worse
    (``nsf_ar`` rings +0.277 against +0.270, pinwheel +0.052 against +0.046).

    Example:
        >>> type(vector_base(2, 0, None)).__name__, type(vector_base(4, 0, None)).__name__
        ('StandardStudentT', 'StandardNormal')
        >>> float(vector_base(3, 0, 4).df), type(vector_base(2, 0, False)).__name__
        (4.0, 'StandardNormal')
    """
    if base_df is None:
        base_df = BASE_DF_2D if dim == 2 and not context_features else False
    if base_df is False or base_df == math.inf:
        return StandardNormal((dim,))
    if not finite_positive(base_df):
        raise ValueError(f"base_df must be a number > 0, or False / inf for a normal base, got {base_df!r}")
    return StandardStudentT((dim,), float(base_df))


def vector_dim(name: str, event_shape: tuple[int, ...], min_dim: int = 2, images: bool = False) -> int:
    """Returns D for a vector shape ``(D,)`` with ``D >= min_dim``, else raises ValueError."""
    if len(event_shape) != 1 or event_shape[0] < min_dim:
        also = " or images (C, H, W)" if images else ""
        raise ValueError(f"{name} supports vectors (D,) with D >= {min_dim}{also}; got event_shape {event_shape}")
    return event_shape[0]


def _reject_vector_hparams(name: str, **given: object) -> None:
    """Image versions have their own hyper-parameters: refuse vector ones instead of ignoring them."""
    wrong = sorted(k for k, v in given.items() if v is not None)
    if wrong:
        raise TypeError(f"{name} on images does not take {wrong}; see help(pyro_flowzoo.flows.image)")


def context_features(context_shape: Optional[Sequence[int]]) -> int:
    """The number of context features a builder's transforms read (0: unconditional)."""
    return 0 if context_shape is None else int(context_shape[0])


@register("nice", shapes=("vector", "image"))
def nice(
    event_shape: tuple[int, ...],
    num_layers: Optional[int] = None,
    hidden_dims: Optional[Sequence[int]] = None,
    mask: Optional[str] = None,
    context_shape: Optional[tuple[int, ...]] = None,
    support: Support = None,
    mask_anchor: Optional[str] = None,
    **image_hparams,
) -> Flow:
    """NICE: additive couplings with alternating masks, a final diagonal scaling, a logistic base.

    With ``context_shape=(K,)`` every coupling network also reads the context (the scaling does not).

    Vector defaults: 8 couplings (plain loop, worst of 3 seeds: 8gaussians +0.106 against +0.180 with 4,
    +0.097 with 16; ``sas6`` +0.035 against +0.040 with 4); networks (:func:`by_dimension`) of ``(256, 256)``
    for ``D = 2``, of :func:`small_hidden` for ``D >= 3`` (``sas6``, 4 couplings: +0.040 against +0.120 with
    ``(256, 256)``, which overfit). Images keep the paper's 4 couplings (``flows.image.nice_image``).
    ``mask="even_odd"`` and ``mask_anchor="data"`` (:func:`~pyro_flowzoo.transforms.alternating_masks`): the
    data-side coupling keeps the even entries, also for ``D = 2`` (``banana16`` +0.268 against +0.309 with
    ``"latent"``; 2-D sets equal or better).
    What NICE can reach: its Jacobian determinant is constant, so the law of
    ``log q(X)`` is the base's up to a shift, and no such flow with a logistic base gets closer than 0.042
    nats/dim to 8gaussians (a rearrangement bound; benchmarks/RESULTS.md, issue 15).

    References:
        Dinh, Krueger, Bengio, "NICE: Non-linear Independent Components Estimation", arXiv:1410.8516.

    Example:
        >>> flow = nice((2,), hidden_dims=(16,))
        >>> flow.sample((3,)).shape
        torch.Size([3, 2])
    """
    if len(event_shape) == 3:
        from .image import nice_image

        _reject_vector_hparams("nice", hidden_dims=hidden_dims, mask=mask, support=support, mask_anchor=mask_anchor)
        if num_layers is not None:
            image_hparams["num_layers"] = num_layers
        return nice_image(event_shape, context_shape=context_shape, **image_hparams)
    mask = "even_odd" if mask is None else mask
    if image_hparams:
        raise TypeError(f"nice on vectors: unknown hyper-parameter(s) {sorted(image_hparams)}")
    dim = vector_dim("nice", event_shape, images=True)
    num_layers = 8 if num_layers is None else num_layers
    hidden_dims = by_dimension(dim, (256, 256), small_hidden(dim)) if hidden_dims is None else hidden_dims
    k = context_features(context_shape)
    # The nets see only the kept entries and predict only the changed ones (split layout).
    transforms: list[nn.Module] = [
        AdditiveCoupling(m, MLP(int(m.sum()), dim - int(m.sum()), hidden_dims), split_channels=True)
        if not k
        else ConditionalAdditiveCoupling(
            m, MLP(int(m.sum()), dim - int(m.sum()), hidden_dims, context_features=k), (k,), split_channels=True
        )
        for m in alternating_masks(dim, num_layers, mask, "data" if mask_anchor is None else mask_anchor)
    ]
    transforms.append(Scaling((dim,)))  # data side: the paper's scaling follows the couplings
    return Flow(StandardLogistic((dim,)), transforms + data_side((dim,), support), context_shape=context_shape)


def _affine_couplings(
    masks: list[Tensor],
    hidden_dims: Sequence[int],
    k: int,
    input_bound: Optional[float],
    log_scale_bound: Optional[float],
    input_squash: str,
    shift_side: str,
    shift_bound: Optional[float] = None,
) -> list[nn.Module]:
    """realnvp's vector couplings, one per mask; conditional ones (``k`` context features) read ``x_m`` unbounded."""
    layers: list[nn.Module] = []
    shared = dict(log_scale_bound=log_scale_bound, shift_side=shift_side, shift_bound=shift_bound)
    for m in masks:
        kept, changed = int(m.sum()), len(m) - int(m.sum())
        if not k:
            net = MLP(kept, 2 * changed, hidden_dims)
            layers.append(
                AffineCoupling(
                    m, net, split_channels=True, input_bound=input_bound, input_squash=input_squash, **shared
                )
            )
        else:
            net = MLP(kept, 2 * changed, hidden_dims, context_features=k)
            layers.append(ConditionalAffineCoupling(m, net, (k,), split_channels=True, **shared))
    return layers


@register("realnvp", shapes=("vector", "image"))
def realnvp(
    event_shape: tuple[int, ...],
    num_layers: Optional[int] = None,
    hidden_dims: Optional[Sequence[int]] = None,
    mask: Optional[str] = None,
    context_shape: Optional[tuple[int, ...]] = None,
    support: Support = None,
    input_bound: Optional[float] = 2.0,
    log_scale_bound: Optional[float] = None,
    mask_anchor: Optional[str] = None,
    input_squash: Optional[str] = None,
    shift_side: Optional[str] = None,
    shift_bound: Union[float, bool, None] = None,
    base_df: Union[float, bool, None] = None,
    **image_hparams,
) -> Flow:
    """RealNVP: alternating affine couplings with tanh-bounded log-scales, a normal base (Student-t for 2-D sets).

    On images ``(C, H, W)`` this is the multi-scale architecture of the paper (see ``flows.image``).
    With ``context_shape=(K,)`` every coupling network also reads the context.

    Vector defaults (:func:`by_dimension`; the measurements behind them are in benchmarks/RESULTS.md, issue 15):

    - sizes: for ``D = 2``, 12 couplings of ``(64, 64)`` (smiley, issue 8); for ``D >= 3``, 4 couplings of
      :func:`small_hidden` (12 of (64, 64) overfit 2,000 points: ``sas6`` +0.110 against +0.024).
    - ``mask="even_odd"``, zuko's choice too: neighbouring entries (chains, series, pairs) land on opposite
      sides, so each is transformed given its neighbours. ``mask_anchor``
      (:func:`~pyro_flowzoo.transforms.alternating_masks`): ``"data"`` for ``D >= 3``, the last coupling keeping
      the even entries for any number of layers, as the autoregressive builders read the data in its natural
      order; ``"latent"`` (the masks from before the anchoring) for ``D = 2``, where the 2-D sets split.
    - ``input_bound=2.0`` (vectors, unconditional): every coupling network reads ``2 tanh(x_m / 2)`` of its
      (standardized) inputs, ``2 asinh(x_m / 2)`` for ``D >= 3`` (``input_squash``), so shifts and log-scales
      level off, or grow slowly, beyond the data instead of growing linearly (a heavy-tailed test set scored
      +1.25 nats/dim over the entropy without it). ``None`` reads ``x_m``; conditional couplings read ``x_m``.
    - ``shift_side`` (:func:`default_shift_side`): ``"latent"`` for unconditional ``D >= 3``, the density
      direction reading ``e^{-s} y - t`` rather than ``(y - t) e^{-s}`` (the same family of maps, trained better:
      ``banana16`` +0.156 against +0.218, plain loop, worst of 3 seeds); ``"data"`` for 2-D sets (they split)
      and conditional flows (worse on SLCP).
    - ``base_df`` (:func:`vector_base`, with the measurements): a Student-t base with 10 degrees of freedom for
      unconditional 2-D sets (rings +0.479 against +0.774 with a normal one), else normal (``False``: normal).
    - ``shift_bound=None``: unbounded shifts; ``b`` makes each coupling's shift ``b tanh(t / b)``
      (:func:`shift_bound_of`, measured there and not a default).

    ``log_scale_bound=c`` (vectors): each coupling's log-scale is ``scale tanh(raw / c) + shift`` with
    ``scale`` starting at ``c``, a range of ``+-c`` from the start (``None``: ``c = 1``, the range grows only
    as ``scale`` is learned). ``mask="prefix"`` gives a triangular map in the natural order
    (:func:`~pyro_flowzoo.transforms.alternating_masks`). The VI guides use both (``AutoFlowGuide``).

    References:
        Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", arXiv:1605.08803.

    Example:
        >>> flow = realnvp((2,), num_layers=2, hidden_dims=(8,))
        >>> flow.log_prob(flow.sample((4,))).shape
        torch.Size([4])
    """
    if len(event_shape) == 3:
        from .image import realnvp_image

        vector = dict(num_layers=num_layers, hidden_dims=hidden_dims, mask=mask, support=support, base_df=base_df)
        vector.update(log_scale_bound=log_scale_bound, mask_anchor=mask_anchor, input_squash=input_squash)
        _reject_vector_hparams("realnvp", shift_side=shift_side, shift_bound=shift_bound, **vector)
        return realnvp_image(event_shape, context_shape=context_shape, **image_hparams)
    if image_hparams:
        raise TypeError(f"realnvp on vectors: unknown hyper-parameter(s) {sorted(image_hparams)}")
    dim = vector_dim("realnvp", event_shape, images=True)
    num_layers = by_dimension(dim, 12, 4) if num_layers is None else num_layers
    hidden_dims = by_dimension(dim, (64, 64), small_hidden(dim)) if hidden_dims is None else hidden_dims
    mask = "even_odd" if mask is None else mask
    mask_anchor = by_dimension(dim, "latent", "data") if mask_anchor is None else mask_anchor
    input_squash = by_dimension(dim, "tanh", "asinh") if input_squash is None else input_squash
    one_of("input_squash", input_squash, SQUASHES)  # here too: conditional couplings do not take it
    masks = alternating_masks(dim, num_layers, mask, mask_anchor)
    k = context_features(context_shape)
    shift_side = default_shift_side(dim, k) if shift_side is None else shift_side
    bounds = input_bound, log_scale_bound, input_squash, shift_side, shift_bound_of(shift_bound)
    layers = _affine_couplings(masks, hidden_dims, k, *bounds)
    return Flow(vector_base(dim, k, base_df), layers + data_side((dim,), support), context_shape=context_shape)
