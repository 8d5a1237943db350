"""Coupling transforms (NICE additive, RealNVP affine), their conditional twins, and masks.

Images ``(C, H, W)`` use :func:`checkerboard_mask` or :func:`channel_mask` (event_dim 3); with
``split_channels=True`` a channel-wise coupling feeds its net only the kept channels (Glow).

A coupling splits its input with a boolean ``mask`` of the event shape: entries where the mask is
True pass through unchanged and condition a network that transforms the other entries. Masks must
alternate between layers, otherwise half of the entries are never transformed, or (``"prefix"``
masks) keep growing prefixes of the natural order, a triangular map in that order.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from .base import (
    ConditionalFlowTransform,
    FixedMask,
    FlowTransform,
    ShiftSide,
    one_of,
    shift_and_scale,
    sum_rightmost,
)

__all__ = [
    "AdditiveCoupling",
    "AffineCoupling",
    "ConditionalAdditiveCoupling",
    "ConditionalAffineCoupling",
    "half_mask",
    "even_odd_mask",
    "prefix_mask",
    "alternating_masks",
    "MASKS",
    "ANCHORS",
    "checkerboard_mask",
    "channel_mask",
    "bound_input",
]


def half_mask(dim: int, first: bool = True) -> Tensor:
    """A vector mask keeping the first ``dim // 2`` entries (``first=False``: the others)."""
    mask = torch.arange(dim) < dim // 2
    return mask if first else ~mask


def even_odd_mask(dim: int, even: bool = True) -> Tensor:
    """A vector mask keeping the even entries (``even=False``: the odd ones)."""
    mask = torch.arange(dim) % 2 == 0
    return mask if even else ~mask


def prefix_mask(dim: int, size: int) -> Tensor:
    """A vector mask keeping the first ``size`` entries (``1 <= size < dim``).

    Example:
        >>> prefix_mask(4, 1).int().tolist()
        [1, 0, 0, 0]
    """
    if not 1 <= size < dim:
        raise ValueError(f"prefix_mask needs 1 <= size < dim, got size {size} for dim {dim}")
    return torch.arange(dim) < size


#: The vector mask kinds of :func:`alternating_masks` (the builders' ``mask=``).
MASKS = ("even_odd", "half", "prefix")
#: Which end of a stack fixes the alternation (the builders' ``mask_anchor=``).
ANCHORS = ("data", "latent")


def alternating_masks(dim: int, num_layers: int, kind: str = "half", anchor: str = "data") -> list[Tensor]:
    """``num_layers`` vector masks (latent to data order): alternating (``"even_odd"``, ``"half"``) or prefixes.

    Alternating masks transform every entry. ``anchor="data"``: the last layer, the first to read the data,
    keeps the even entries (``"even_odd"``) or the first ``D // 2`` (``"half"``) and changes the others,
    whatever the number of layers; it conditions later entries on earlier ones, as the autoregressive
    builders' data-side layer reads the data in its natural order, so data made in order (each entry a
    function of the ones before it) is met where the flow starts reading it (``banana16``, plain loop, worst
    of 3 seeds: realnvp with a tanh input bound +0.230 against +0.329; RESULTS.md, issue 15).
    ``anchor="latent"``: the first layer keeps them (the masks of defaults version 2 and before), so with an
    even number of layers the data side keeps the odd entries / the second half.

    ``"prefix"`` masks keep the first ``k_i`` entries in layer ``i``, ``k_0 = 1`` and
    ``k_i = min(D - 1, ceil(i D / L))``: every entry but the first is changed, always given entries before it,
    so the stack is a triangular map in the natural order (for a guide: the model's order, where global
    latents precede the local ones they scale). The first entry is never changed: pair the stack with an
    elementwise layer for its marginal. The anchor does not apply.

    Example:
        >>> [m.int().tolist() for m in alternating_masks(3, 2, "even_odd")]
        [[0, 1, 0], [1, 0, 1]]
        >>> [m.int().tolist() for m in alternating_masks(3, 2, "even_odd", anchor="latent")]
        [[1, 0, 1], [0, 1, 0]]
        >>> [m.int().tolist() for m in alternating_masks(6, 2, "prefix")]
        [[1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]]
    """
    one_of("mask kind", kind, MASKS)
    one_of("mask_anchor", anchor, ANCHORS)
    if kind == "prefix":
        if dim < 2:
            raise ValueError(f"prefix masks need dim >= 2, got {dim}")
        return [prefix_mask(dim, min(dim - 1, max(1, -(-i * dim // num_layers)))) for i in range(num_layers)]
    make = half_mask if kind == "half" else even_odd_mask
    if anchor == "latent":
        return [make(dim, i % 2 == 0) for i in range(num_layers)]
    return [make(dim, (num_layers - 1 - i) % 2 == 0) for i in range(num_layers)]


def checkerboard_mask(event_shape: Sequence[int], parity: int = 0) -> Tensor:
    """A checkerboard mask on ``(C, H, W)`` images: True where ``(h + w) % 2 == parity``, in every channel.

    RealNVP's spatial coupling mask; alternate ``parity`` between layers.

    Example:
        >>> checkerboard_mask((1, 2, 2)).int().tolist()
        [[[1, 0], [0, 1]]]
    """
    if len(event_shape) != 3:
        raise ValueError(f"checkerboard_mask expects an image shape (C, H, W), got {tuple(event_shape)}")
    c, h, w = event_shape
    board = (torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2 == parity % 2
    return board.expand(c, h, w).clone()


def channel_mask(event_shape: Sequence[int], first: bool = True) -> Tensor:
    """A channel-wise mask on ``(C, H, W)`` images keeping the first ``C // 2`` channels (``first=False``: the rest).

    RealNVP's channel coupling mask (after a squeeze) and Glow's split; needs ``C >= 2``.

    Example:
        >>> channel_mask((2, 1, 1)).int().flatten().tolist()
        [1, 0]
    """
    if len(event_shape) != 3 or event_shape[0] < 2:
        raise ValueError(f"channel_mask expects an image shape (C, H, W) with C >= 2, got {tuple(event_shape)}")
    c, h, w = event_shape
    keep = torch.arange(c) < c // 2
    keep = keep if first else ~keep
    return keep[:, None, None].expand(c, h, w).clone()


#: How :func:`bound_input` squashes a conditioner's input.
SQUASHES = ("tanh", "asinh")


def bound_input(x: Tensor, bound: Optional[float], squash: str = "tanh") -> Tensor:
    r"""What a conditioner reads: :math:`c \tanh(x / c)` for ``bound = c`` (``None``: ``x`` itself).

    Close to the identity for ``|x| << c`` and bounded by ``c``, so a ReLU conditioner's outputs (shift and
    log-scale) are bounded functions that level off beyond the data instead of growing linearly: far
    from the training data each affine layer is an elementwise affine map with the parameters it learned
    at the data's edge, and a stack of them cannot compound slopes. The transformed entries themselves
    are not bounded, so the layer stays an exact bijection of ``R^D``.

    ``squash="asinh"`` reads :math:`c\,\mathrm{asinh}(x / c)` instead: the same near 0, but it keeps growing
    (logarithmically) beyond ``c``, so a conditioner can still tell apart points far out in a tail (a
    banana's shift ``x_1^2`` keeps rising); a deep stack can compound it (RESULTS.md, issue 15).

    Example:
        >>> [round(v, 5) for v in bound_input(torch.tensor([0.1, 100.0]), 5.0).tolist()]
        [0.09999, 5.0]
        >>> [round(v, 3) for v in bound_input(torch.tensor([0.1, 100.0]), 5.0, "asinh").tolist()]
        [0.1, 18.448]
    """
    if bound is None:
        return x
    if squash == "asinh":
        return torch.asinh(x * (1.0 / bound)) * bound
    one_of("squash", squash, SQUASHES)
    return torch.tanh(x * (1.0 / bound)) * bound


def run_net(
    net: nn.Module, x: Tensor, event_dim: int, context: Optional[Tensor] = None, context_dim: int = 1
) -> Tensor:
    """Applies a conditioner to inputs with any batch shape.

    Vector nets (``event_dim == 1``) broadcast by themselves; convolutional nets want ``(N, C, H, W)``,
    so batch dimensions (broadcast against the context's) are flattened and restored.
    """
    if event_dim == 1:
        return net(x) if context is None else net(x, context)
    batch = x.shape[: x.dim() - event_dim]
    if context is not None:
        batch = torch.broadcast_shapes(batch, context.shape[: context.dim() - context_dim])
        context = context.expand(batch + context.shape[context.dim() - context_dim :])
        context = context.reshape((-1,) + context.shape[len(batch) :])
    x = x.expand(batch + x.shape[x.dim() - event_dim :]).reshape((-1,) + x.shape[x.dim() - event_dim :])
    out = net(x) if context is None else net(x, context)
    return out.reshape(batch + out.shape[1:])


class _Coupling(FixedMask, ShiftSide):
    """Shared arithmetic of the additive and affine couplings (conditional or not)."""

    mask: Tensor
    net: nn.Module
    event_dim: int
    affine: bool = True

    def _init_coupling(
        self,
        mask: Tensor,
        net: nn.Module,
        scale_shape: Optional[Sequence[int]],
        affine: bool,
        split_channels: bool = False,
        input_bound: Optional[float] = None,
        log_scale_bound: Optional[float] = None,
        input_squash: str = "tanh",
        shift_side: str = "data",
        shift_bound: Optional[float] = None,
    ) -> None:
        if input_bound is not None and not input_bound > 0:
            raise ValueError(f"input_bound must be > 0 (or None), got {input_bound}")
        if shift_bound is not None and not affine:
            raise ValueError(
                f"shift_bound is for affine couplings only, got shift_bound={shift_bound!r} for an additive one"
            )
        self._init_shift_side(shift_side, shift_bound)
        self.input_squash = one_of("input_squash", input_squash, SQUASHES)
        if log_scale_bound is not None and not (affine and log_scale_bound > 0):
            raise ValueError(f"log_scale_bound must be > 0 (or None), for affine couplings only; got {log_scale_bound}")
        self.log_scale_bound = log_scale_bound
        self.register_buffer("mask", mask.bool().clone())  # clone: an expanded mask cannot be loaded into
        self.net = net
        self.input_bound = input_bound
        self.affine = affine
        self.split_channels = split_channels
        if split_channels:
            # Glow's layout: the net sees only the kept channels (vectors: entries) and predicts only the
            # changed ones (half the input and output size of the masked layout, same function class).
            if mask.dim() == 1:
                keep = mask.bool()
            elif mask.dim() == 3 and bool((mask == mask[:, :1, :1]).all()):
                keep = mask[:, 0, 0].bool()
            else:
                raise ValueError(
                    f"split_channels=True needs a vector mask (D,) or a channel-wise (C, H, W) mask, "
                    f"got shape {tuple(mask.shape)}"
                )
            if keep.all() or not keep.any():
                raise ValueError("split_channels=True needs a mask keeping some but not all channels")
            keep_idx, change_idx = keep.nonzero().flatten(), (~keep).nonzero().flatten()
            self.register_buffer("keep_idx", keep_idx)
            self.register_buffer("change_idx", change_idx)
            self.register_buffer("merge_idx", torch.argsort(torch.cat([keep_idx, change_idx])))
            n_keep = len(keep_idx)
            # Contiguous blocks are sliced instead of gathered (cheaper, and nicer to torch.compile).
            if torch.equal(keep_idx, torch.arange(n_keep)):
                self._layout = "keep_first"
            elif torch.equal(change_idx, torch.arange(len(change_idx))):
                self._layout = "change_first"
            else:
                self._layout = "general"
            self._n_keep = n_keep
            self._axis = -mask.dim()  # the channel axis of images, the only axis of vectors
        if affine:
            default = ((len(self.change_idx),) + (1,) * (mask.dim() - 1)) if split_channels else mask.shape
            shape = tuple(default if scale_shape is None else scale_shape)
            c = 1.0 if log_scale_bound is None else float(log_scale_bound)
            # ``scale`` and ``scale_shift`` side by side in one tensor: one optimizer state instead of two (Pyro's
            # Adam steps each parameter tensor on its own).
            self.log_scale_map = nn.Parameter(torch.stack([torch.full(shape, c), torch.zeros(shape)]))

    @property
    def scale(self) -> Tensor:
        """The log-scale's amplitude (a view of ``log_scale_map``)."""
        return self.log_scale_map[0]

    @property
    def scale_shift(self) -> Tensor:
        """The log-scale's offset (a view of ``log_scale_map``)."""
        return self.log_scale_map[1]

    def _log_scale(self, raw: Tensor) -> Tensor:
        # RealNVP's bounded log-scale: never explodes at initialisation or on outliers. With a bound c the
        # net's output is divided by c and ``scale`` starts at c: slope 1 at 0 and a range of +-c from the start.
        scale, shift = self.log_scale_map.unbind(0)
        if self.log_scale_bound is None:
            return scale * torch.tanh(raw) + shift
        return scale * torch.tanh(raw * (1.0 / self.log_scale_bound)) + shift

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        axis, n_keep = self._axis, self._n_keep
        if self._layout == "keep_first":
            return x.narrow(axis, 0, n_keep), x.narrow(axis, n_keep, x.shape[axis] - n_keep)
        if self._layout == "change_first":
            n_change = x.shape[axis] - n_keep
            return x.narrow(axis, n_change, n_keep), x.narrow(axis, 0, n_change)
        return x.index_select(axis, self.keep_idx), x.index_select(axis, self.change_idx)

    def _merge(self, kept: Tensor, changed: Tensor) -> Tensor:
        axis, event_dim = self._axis, -self._axis
        batch = torch.broadcast_shapes(kept.shape[: kept.dim() - event_dim], changed.shape[: changed.dim() - event_dim])
        kept = kept.expand(batch + kept.shape[kept.dim() - event_dim :])
        changed = changed.expand(batch + changed.shape[changed.dim() - event_dim :])
        if self._layout == "keep_first":
            return torch.cat([kept, changed], dim=axis)
        if self._layout == "change_first":
            return torch.cat([changed, kept], dim=axis)
        return torch.cat([kept, changed], dim=axis).index_select(axis, self.merge_idx)

    def _split_pass(self, x: Tensor, context: Optional[Tensor], inverse: bool) -> tuple[Tensor, Tensor]:
        kept, change = self._split(x)
        event_dim = -self._axis
        net_in = bound_input(kept, self.input_bound, self.input_squash)
        h = run_net(self.net, net_in, event_dim, context, len(getattr(self, "context_shape", ())) or 1).to(x.dtype)
        if not self.affine:
            out = change - h if inverse else change + h
            return self._merge(kept, out), x.new_zeros(h.shape[: h.dim() - event_dim])
        shift, raw = h.chunk(2, dim=self._axis)
        shift, log_scale = self._bound_shift(shift), self._log_scale(raw)
        factor = torch.exp(-log_scale) if inverse else torch.exp(log_scale)
        out = shift_and_scale(change, shift, factor, inverse, self.shift_side)
        return self._merge(kept, out), sum_rightmost(log_scale, event_dim)

    def _shift_log_scale(self, x: Tensor, context: Optional[Tensor]) -> tuple[Tensor, Optional[Tensor]]:
        keep = self.mask
        h = run_net(
            self.net,
            bound_input(torch.where(keep, x, 0.0), self.input_bound, self.input_squash),
            self.event_dim,
            context,
            len(getattr(self, "context_shape", ())) or 1,
        ).to(x.dtype)  # autocast: affine maths in x's dtype
        if not self.affine:
            return h.masked_fill(keep, 0.0), None
        shift, raw = h.chunk(2, dim=-self.event_dim)
        shift, log_scale = self._bound_shift(shift), self._log_scale(raw)
        return shift.masked_fill(keep, 0.0), log_scale.masked_fill(keep, 0.0)

    def _forward(self, x: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        if self.split_channels:
            return self._split_pass(x, context, inverse=False)
        shift, log_scale = self._shift_log_scale(x, context)
        if log_scale is None:
            y = x + shift
            return y, y.new_zeros(y.shape[: y.dim() - self.event_dim])
        y = shift_and_scale(x, shift, torch.exp(log_scale), False, self.shift_side)
        return y, sum_rightmost(log_scale, self.event_dim)

    def _inverse_pair(self, y: Tensor, context: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        # The conditioning entries are unchanged by the coupling, so y supplies them.
        if self.split_channels:
            return self._split_pass(y, context, inverse=True)
        shift, log_scale = self._shift_log_scale(y, context)
        if log_scale is None:
            x = y - shift
            return x, x.new_zeros(x.shape[: x.dim() - self.event_dim])
        x = shift_and_scale(y, shift, torch.exp(-log_scale), True, self.shift_side)
        return x, sum_rightmost(log_scale, self.event_dim)


class AffineCoupling(_Coupling, FlowTransform):
    r"""RealNVP's affine coupling with a tanh-bounded log-scale.

    .. math::
        y_{m} = x_{m}, \qquad
        y_{\bar m} = \exp(s) \odot x_{\bar m} + t(x_m), \qquad
        s = \text{scale} \cdot \tanh(g(x_m) / c) + \text{scale\_shift}

    with ``scale`` (initially ``c``) and ``scale_shift`` learned, ``c = 1`` unless ``log_scale_bound`` is
    given; ``log|det| = sum(s)``.

    Args:
        mask: boolean tensor of the event shape; True entries pass through and condition the rest.
        net: maps the masked input (event shape) to ``2 x`` the event shape along the first event
            dimension (shift first, then the raw log-scale). Its last layer should start at zero.
        scale_shape: shape of ``scale``/``scale_shift`` (default: the mask's; ``(C, 1, 1)`` for
            per-channel scales on images).
        split_channels: for channel-wise image masks (:func:`channel_mask`) and vector masks: the net
            takes only the kept channels ``(C_keep, H, W)`` (vectors: entries ``(D_keep,)``) and returns
            ``2 C_change`` channels (``2 D_change`` entries): Glow's layout, half the parameters and work
            of the masked layout; ``scale_shape`` defaults to ``(C_change, 1, 1)`` (``(D_change,)``).
        input_bound: the net reads :func:`bound_input` of the kept entries, ``c tanh(x_m / c)`` (``None``:
            ``x_m``): shift and log-scale level off far from the data (see :func:`bound_input`).
        input_squash: ``"tanh"`` as above, or ``"asinh"``: ``c asinh(x_m / c)``, which keeps growing
            (logarithmically) beyond the data.
        log_scale_bound: ``c`` above (``None``: 1). A larger ``c`` gives the log-scale a range of ``+-c``
            from the start with the same slope 1 at 0 (a funnel's scale varies by ``e^{+-4.5}``; with
            ``c = 1`` the range has to be learned through ``scale``).
        shift_side: ``"data"`` as above, or ``"latent"``: ``y_{\bar m} = \exp(s) \odot (x_{\bar m} + t)``, so the
            density direction reads ``x_{\bar m} = e^{-s} y_{\bar m} - t`` (the shift in latent units, zuko's form).
            The same family of maps, trained differently (``realnvp``'s default for unconditional ``D >= 3``).
        shift_bound: ``b``: the shift is :math:`b \tanh(t / b)` in both directions, so no point is moved by more
            than ``b`` by the shift of this layer (``None``: ``t``).

    References:
        Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", arXiv:1605.08803.

    Example:
        >>> from pyro_flowzoo.nn import MLP
        >>> t = AffineCoupling(half_mask(4), MLP(4, 8, (16,)))
        >>> x = torch.randn(3, 4)
        >>> torch.allclose(t.inv(t(x)), x)
        True
    """

    def __init__(
        self,
        mask: Tensor,
        net: nn.Module,
        scale_shape: Optional[Sequence[int]] = None,
        split_channels: bool = False,
        input_bound: Optional[float] = None,
        log_scale_bound: Optional[float] = None,
        input_squash: str = "tanh",
        shift_side: str = "data",
        shift_bound: Optional[float] = None,
    ) -> None:
        super().__init__(event_dim=mask.dim())
        self._init_coupling(
            mask,
            net,
            scale_shape,
            True,
            split_channels,
            input_bound,
            log_scale_bound,
            input_squash,
            shift_side,
            shift_bound,
        )

    def extra_repr(self) -> str:
        options = f"input_squash={self.input_squash}, shift_side={self.shift_side}, shift_bound={self.shift_bound}"
        return f"input_bound={self.input_bound}, {options}"

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._forward(x)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._inverse_pair(y)


class AdditiveCoupling(_Coupling, FlowTransform):
    r"""NICE's additive coupling, volume preserving.

    .. math:: y_m = x_m, \qquad y_{\bar m} = x_{\bar m} + t(x_m), \qquad \log|\det| = 0

    Args:
        mask: boolean tensor of the event shape; True entries pass through and condition the rest.
        net: maps the masked input to a shift of the event shape (last layer zero-initialised).
        split_channels: channel-wise image masks only: the net maps the kept channels to a shift of
            the changed channels (Glow's layout).
        input_bound: the net reads ``c tanh(x_m / c)`` (:func:`bound_input`; ``None``: ``x_m``).

    References:
        Dinh, Krueger, Bengio, "NICE: Non-linear Independent Components Estimation", arXiv:1410.8516.

    Example:
        >>> from pyro_flowzoo.nn import MLP
        >>> t = AdditiveCoupling(even_odd_mask(4), MLP(4, 4, (16,)))
        >>> t.log_abs_det_jacobian(torch.zeros(2, 4), t(torch.zeros(2, 4))).shape
        torch.Size([2])
    """

    def __init__(
        self, mask: Tensor, net: nn.Module, split_channels: bool = False, input_bound: Optional[float] = None
    ) -> None:
        super().__init__(event_dim=mask.dim())
        self._init_coupling(mask, net, None, affine=False, split_channels=split_channels, input_bound=input_bound)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._forward(x)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._inverse_pair(y)


class ConditionalAffineCoupling(_Coupling, ConditionalFlowTransform):
    r""":class:`AffineCoupling` whose network also takes a context: ``net(x_masked, context)``.

    .. math:: y_{\bar m} = \exp(s(x_m, c)) \odot x_{\bar m} + t(x_m, c)

    ``shift_side="latent"`` adds the shift before the scale instead, and ``shift_bound`` bounds it, as in
    :class:`AffineCoupling`.

    References:
        Dinh et al., arXiv:1605.08803; Winkler et al., "Learning Likelihoods with Conditional
        Normalizing Flows", arXiv:1912.00042.

    Example:
        >>> from pyro_flowzoo.nn import MLP
        >>> t = ConditionalAffineCoupling(half_mask(2), MLP(2, 4, (8,), context_features=3), (3,))
        >>> t.condition(torch.randn(5, 3))(torch.randn(5, 2)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        mask: Tensor,
        net: nn.Module,
        context_shape: Sequence[int],
        scale_shape: Optional[Sequence[int]] = None,
        split_channels: bool = False,
        input_bound: Optional[float] = None,
        log_scale_bound: Optional[float] = None,
        shift_side: str = "data",
        shift_bound: Optional[float] = None,
    ) -> None:
        super().__init__(event_dim=mask.dim(), context_shape=tuple(context_shape))
        self._init_coupling(
            mask, net, scale_shape, True, split_channels, input_bound, log_scale_bound, "tanh", shift_side, shift_bound
        )

    def forward_and_log_det(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        return self._forward(x, context)

    def inverse_and_log_det(self, y: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        return self._inverse_pair(y, context)


class ConditionalAdditiveCoupling(_Coupling, ConditionalFlowTransform):
    r""":class:`AdditiveCoupling` whose network also takes a context: ``net(x_masked, context)``.

    .. math:: y_{\bar m} = x_{\bar m} + t(x_m, c)

    References:
        Dinh, Krueger, Bengio, arXiv:1410.8516.

    Example:
        >>> from pyro_flowzoo.nn import MLP
        >>> t = ConditionalAdditiveCoupling(half_mask(2), MLP(2, 2, (8,), context_features=1), (1,))
        >>> t.condition(torch.zeros(1)).inv(torch.ones(2)).shape
        torch.Size([2])
    """

    def __init__(
        self,
        mask: Tensor,
        net: nn.Module,
        context_shape: Sequence[int],
        split_channels: bool = False,
        input_bound: Optional[float] = None,
    ) -> None:
        super().__init__(event_dim=mask.dim(), context_shape=tuple(context_shape))
        self._init_coupling(mask, net, None, affine=False, split_channels=split_channels, input_bound=input_bound)

    def forward_and_log_det(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        return self._forward(x, context)

    def inverse_and_log_det(self, y: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        return self._inverse_pair(y, context)
