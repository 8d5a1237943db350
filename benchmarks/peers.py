"""Identical-architecture constructors for pyro_flowzoo and its peers (zuko, nflows, normflows, Pyro).

Every constructor returns a :class:`Model`: the ``nn.Module`` (for the optimizer), a
``log_prob(x)`` callable (data -> latent, the training direction) and a ``sample(n)`` callable
(latent -> data), so the harness treats every library the same way.

Architectures (``D`` features, ``L`` layers, hidden sizes ``H``; ReLU MLPs, no batch norm, no residual
blocks, last layer as each library initialises it):

* ``realnvp``: ``L`` affine couplings, alternating half masks (first half conditions the second,
  then the reverse), conditioner ``MLP(H)`` producing shift and log-scale. Differences that cannot
  match: ours feeds the full vector with the transformed half zeroed (``D -> H``), the peers feed
  only the conditioning half (``D/2 -> H``); the log-scale is bounded differently (ours:
  ``a * tanh(raw) + b`` with learned a, b; zuko: soft clip ``s / (1 + |s / log 1e-3|)``; nflows:
  ``log(sigmoid(raw + 2) + 1e-3)``; normflows: ``exp(raw)``, unbounded).
* ``maf``: ``L`` masked affine autoregressive layers on a MADE with hidden sizes ``H``, the order
  reversed between layers. Log-scale bounds differ as above (nflows and normflows:
  ``sigmoid(raw + 2) + 1e-3``). normflows' ``MaskedAffineAutoregressive`` evaluates densities with
  the sequential pass as shipped; it is wrapped in ``normflows.flows.Reverse`` so that ``log_prob``
  is the parallel pass, as in every other library here.
* ``nsf_ar`` / ``nsf_coupling``: rational-quadratic splines (``bins`` bins on ``[-B, B]``, linear
  tails) on a MADE (autoregressive) or a coupling MLP over alternating half masks.

The peer constructors follow each library's own building blocks (zuko's ``MaskedAutoregressiveTransform``
and ``GeneralCouplingTransform``; nflows' ``MaskedAffineAutoregressiveTransform``,
``AffineCouplingTransform`` and spline transforms with ``use_residual_blocks=False, num_blocks=1``;
normflows' ``AffineCouplingBlock``, ``MaskedAffineAutoregressive`` and the nflows-derived spline layers,
also with plain MADEs; Pyro's own ``AffineCoupling`` on a ``DenseNN`` with a ``Permute`` flip between
layers, and ``AffineAutoregressive`` / ``SplineAutoregressive`` (``order="quadratic"``) on an
``AutoRegressiveNN``, used through ``.inv`` so that ``log_prob`` is their parallel pass, as in MAF).
Pyro's transforms run with ``cache_size=0`` and its distributions with ``validate_args=False``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["Model", "build", "LIBS", "ARCHS"]

LIBS = ("ours", "zuko", "nflows", "normflows", "pyro")
ARCHS = ("realnvp", "maf", "nsf_ar", "nsf_coupling")


@dataclass
class Model:
    """One flow behind a uniform interface."""

    lib: str
    arch: str
    module: nn.Module
    log_prob: Callable[[Tensor], Tensor]
    sample: Callable[[int], Tensor]
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)


def half_masks(dim: int, num_layers: int) -> list[Tensor]:
    """``True`` = conditioning entries; layer 0 conditions on the first half (as ours with ``mask="half",
    mask_anchor="latent"``, the 2-D realnvp default; ours at ``D >= 3`` use even/odd masks anchored at the data
    side)."""
    first = torch.arange(dim) < dim // 2
    return [first if i % 2 == 0 else ~first for i in range(num_layers)]


class _NoContext(nn.Module):
    """nflows' MLP with the ``(inputs, context)`` signature its coupling transforms call."""

    def __init__(self, i: int, o: int, hidden: Sequence[int]) -> None:
        super().__init__()
        from nflows.nn.nets import MLP

        self.net = MLP((i,), (o,), list(hidden))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        return self.net(x)


# -- ours ------------------------------------------------------------------------------------------
def _ours(arch: str, dim: int, num_layers: int, hidden: Sequence[int], bins: int, bound: float) -> Model:
    import pyro_flowzoo as fz

    hp: dict = dict(num_layers=num_layers, hidden_dims=tuple(hidden))
    if arch.startswith("nsf"):
        builder = fz.FLOWS[arch]
        params = inspect.signature(builder).parameters
        for name in ("bins", "num_bins", "count_bins"):
            if name in params:
                hp[name] = bins
        for name in ("bound", "tail_bound"):
            if name in params:
                hp[name] = bound
    flow = fz.build(arch, (dim,), **hp)
    flow.validate = True  # library default: the finite-data check stays on
    return Model("ours", arch, flow, flow.log_prob, lambda n: flow.sample((n,)), extra={"hparams": hp})


# -- zuko ------------------------------------------------------------------------------------------
def _zuko(arch: str, dim: int, num_layers: int, hidden: Sequence[int], bins: int, bound: float) -> Model:
    import zuko
    from zuko.flows import GeneralCouplingTransform, MaskedAutoregressiveTransform
    from zuko.transforms import MonotonicRQSTransform

    hidden = tuple(hidden)
    base = zuko.flows.UnconditionalDistribution(
        zuko.distributions.DiagNormal, torch.zeros(dim), torch.ones(dim), buffer=True
    )
    spline = dict(
        univariate=lambda w, h, d: MonotonicRQSTransform(w, h, d, bound=bound), shapes=[(bins,), (bins,), (bins - 1,)]
    )
    if arch == "realnvp":
        ts = [GeneralCouplingTransform(dim, mask=m, hidden_features=hidden) for m in half_masks(dim, num_layers)]
    elif arch == "nsf_coupling":
        ts = [
            GeneralCouplingTransform(dim, mask=m, hidden_features=hidden, **spline) for m in half_masks(dim, num_layers)
        ]
    elif arch in ("maf", "nsf_ar"):
        orders = [torch.arange(dim), torch.arange(dim).flip(0)]
        kw = spline if arch == "nsf_ar" else {}
        ts = [
            MaskedAutoregressiveTransform(dim, order=orders[i % 2], hidden_features=hidden, **kw)
            for i in range(num_layers)
        ]
    else:
        raise ValueError(arch)
    flow = zuko.flows.Flow(ts, base)
    return Model("zuko", arch, flow, lambda x: flow().log_prob(x), lambda n: flow().sample((n,)))


# -- nflows ----------------------------------------------------------------------------------------
def _nflows(arch: str, dim: int, num_layers: int, hidden: Sequence[int], bins: int, bound: float) -> Model:
    from nflows.distributions import StandardNormal
    from nflows.flows import Flow
    from nflows.transforms import (
        AffineCouplingTransform,
        CompositeTransform,
        MaskedAffineAutoregressiveTransform,
        MaskedPiecewiseRationalQuadraticAutoregressiveTransform,
        PiecewiseRationalQuadraticCouplingTransform,
        ReversePermutation,
    )

    hidden = list(hidden)
    if len(set(hidden)) != 1:
        raise ValueError("nflows' MADE takes one hidden width")
    made = dict(hidden_features=hidden[0], num_blocks=len(hidden) - 1, use_residual_blocks=False)

    def net(i: int, o: int) -> nn.Module:
        return _NoContext(i, o, hidden)

    ts: list = []
    for i in range(num_layers):
        if arch == "realnvp":
            # nflows: mask > 0 = transformed; ours: True = conditioning.
            ts.append(AffineCouplingTransform((~half_masks(dim, num_layers)[i]).int(), net))
        elif arch == "nsf_coupling":
            ts.append(
                PiecewiseRationalQuadraticCouplingTransform(
                    (~half_masks(dim, num_layers)[i]).int(), net, num_bins=bins, tails="linear", tail_bound=bound
                )
            )
        elif arch == "maf":
            if i:
                ts.append(ReversePermutation(dim))
            ts.append(MaskedAffineAutoregressiveTransform(dim, **made))
        elif arch == "nsf_ar":
            if i:
                ts.append(ReversePermutation(dim))
            ts.append(
                MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
                    dim, num_bins=bins, tails="linear", tail_bound=bound, **made
                )
            )
        else:
            raise ValueError(arch)
    flow = Flow(CompositeTransform(ts), StandardNormal([dim]))
    return Model("nflows", arch, flow, flow.log_prob, flow.sample)


# -- normflows -------------------------------------------------------------------------------------
def _normflows(arch: str, dim: int, num_layers: int, hidden: Sequence[int], bins: int, bound: float) -> Model:
    import normflows as nf
    from normflows.flows.neural_spline.autoregressive import MaskedPiecewiseRationalQuadraticAutoregressive
    from normflows.flows.neural_spline.coupling import PiecewiseRationalQuadraticCoupling

    hidden = list(hidden)
    ts: list = []

    def reverse() -> nn.Module:
        p = nf.flows.Permute(dim, mode="shuffle")
        p.perm = torch.arange(dim).flip(0)
        p.inv_perm = torch.arange(dim).flip(0)
        return p

    for i in range(num_layers):
        if arch == "realnvp":
            # One conditioner for shift and log-scale on the conditioning half (channel split);
            # "channel_inv" conditions on the second half, so the masks alternate as ours.
            net = nf.nets.MLP([dim // 2, *hidden, 2 * (dim - dim // 2)], init_zeros=True)
            ts.append(nf.flows.AffineCouplingBlock(net, split_mode="channel" if i % 2 == 0 else "channel_inv"))
        elif arch == "maf":
            if i:
                ts.append(reverse())
            # normflows' layer puts the parallel MADE pass in ``forward`` (sampling); Reverse makes
            # log_prob the parallel pass, as in MAF (as shipped it is an IAF for density estimation).
            ts.append(
                nf.flows.Reverse(
                    nf.flows.MaskedAffineAutoregressive(
                        dim, hidden[0], num_blocks=len(hidden) - 1, use_residual_blocks=False
                    )
                )
            )
        elif arch == "nsf_ar":
            if i:
                ts.append(reverse())
            layer = nf.flows.AutoregressiveRationalQuadraticSpline(dim, 1, hidden[0], num_bins=bins, tail_bound=bound)
            layer.mprqat = MaskedPiecewiseRationalQuadraticAutoregressive(
                features=dim,
                hidden_features=hidden[0],
                num_bins=bins,
                tails="linear",
                tail_bound=bound,
                num_blocks=len(hidden) - 1,
                use_residual_blocks=False,
                activation=nn.ReLU(),
            )
            ts.append(layer)
        elif arch == "nsf_coupling":
            layer = nf.flows.CoupledRationalQuadraticSpline(dim, 1, hidden[0], num_bins=bins, tail_bound=bound)
            mask = (~half_masks(dim, num_layers)[i]).int()
            layer.prqct = PiecewiseRationalQuadraticCoupling(
                mask=mask,
                transform_net_create_fn=lambda a, b: _NoContext(a, b, hidden),
                num_bins=bins,
                tails="linear",
                tail_bound=bound,
                apply_unconditional_transform=False,
            )
            ts.append(layer)
        else:
            raise ValueError(arch)
    flow = nf.NormalizingFlow(nf.distributions.DiagGaussian(dim, trainable=False), ts)
    return Model("normflows", arch, flow, flow.log_prob, lambda n: flow.sample(n)[0])


# -- Pyro's own transforms -------------------------------------------------------------------------
class _PyroFlow(nn.Module):
    """Pyro transforms (latent -> data order) over a standard normal base, without validation."""

    def __init__(self, dim: int, parts: list, modules: list[nn.Module]) -> None:
        super().__init__()
        self.parts = parts
        self.layers = nn.ModuleList(modules)
        self.register_buffer("loc", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        for t in modules:  # no pair cache: every call recomputes, as in the other libraries
            t._cache_size = 0

    def dist(self):  # noqa: ANN201
        import pyro.distributions as pdist

        base = pdist.Normal(self.loc, self.scale, validate_args=False).to_event(1)
        return pdist.TransformedDistribution(base, self.parts, validate_args=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.dist().log_prob(x)


def _pyro(arch: str, dim: int, num_layers: int, hidden: Sequence[int], bins: int, bound: float) -> Model:
    import pyro.distributions.transforms as T
    from pyro.nn import AutoRegressiveNN, DenseNN

    hidden = list(hidden)
    parts: list = []
    modules: list[nn.Module] = []
    flip = torch.arange(dim).flip(0)
    for i in range(num_layers):
        if arch == "realnvp":
            # Pyro's coupling conditions on the first split_dim entries; a flip between layers alternates.
            split = dim // 2
            if i:
                parts.append(T.Permute(flip, cache_size=0))
            t = T.AffineCoupling(split, DenseNN(split, hidden, param_dims=[dim - split, dim - split]))
            parts.append(t)
        elif arch in ("maf", "nsf_ar"):
            order = torch.arange(dim) if i % 2 == 0 else flip
            if arch == "maf":
                t = T.AffineAutoregressive(AutoRegressiveNN(dim, hidden, permutation=order))
            else:
                t = T.SplineAutoregressive(
                    dim,
                    AutoRegressiveNN(dim, hidden, param_dims=[bins, bins, bins - 1], permutation=order),
                    count_bins=bins,
                    bound=bound,
                    order="quadratic",
                )
            # Pyro's _call is the parallel (IAF) pass; .inv makes it the data -> latent pass (MAF).
            parts.append(t.inv)
        else:
            raise ValueError(f"no Pyro peer for {arch}")
        modules.append(t)
    if arch != "realnvp":
        parts.reverse()
    flow = _PyroFlow(dim, parts, modules)
    return Model("pyro", arch, flow, flow.forward, lambda n: flow.dist().sample((n,)))


_BUILDERS = {"ours": _ours, "zuko": _zuko, "nflows": _nflows, "normflows": _normflows, "pyro": _pyro}


def build(
    lib: str,
    arch: str,
    dim: int,
    num_layers: int,
    hidden: Sequence[int],
    bins: int = 8,
    bound: float = 5.0,
    seed: int = 0,
) -> Model:
    """Builds ``arch`` from library ``lib`` with a fixed seed (float32, train mode)."""
    torch.manual_seed(seed)
    return _BUILDERS[lib](arch, dim, num_layers, tuple(hidden), bins, bound)
