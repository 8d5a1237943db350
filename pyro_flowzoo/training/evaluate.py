"""Scoring a flow on data: the mean negative log-likelihood in nats per dimension."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from ..flow import Flow
from .data import Source, as_source, prepare, step_generator
from .distributed import all_reduce_sum

__all__ = ["evaluate_nll", "nll_sum", "check_source"]


def check_source(flow: Flow, source: Source, name: str, n_bins: Optional[int]) -> None:
    """Checks shapes, dtypes and values against ``flow`` once (whole tensors, else the first batch)."""
    x, ctx = source.first() if not source.whole else (source.x, source.context)
    shape = tuple(flow.event_shape)
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape or x.shape[0] < 1:
        raise ValueError(
            f"{name}: expected data of shape (N, {', '.join(map(str, shape))}) for this flow, got {tuple(x.shape)}"
        )
    if x.is_floating_point():
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name}: data contain NaN or inf")
        if n_bins is not None and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"{name}: with n_bins={n_bins}, expected integer levels (an integer tensor) or "
                f"dequantized values in [0, 1], got floats in [{x.min().item():g}, "
                f"{x.max().item():g}]; pass levels as x.long()"
            )
    elif n_bins is None:
        raise ValueError(f"{name}: integer data (image levels) need n_bins= to be dequantized, got dtype {x.dtype}")
    if ctx is None and flow.is_conditional:
        raise ValueError(f"{name}: this flow is conditional: give (data, context) pairs")
    if ctx is not None and flow.context_shape is None:
        raise ValueError(f"{name}: this flow is not conditional, but the data come with a context")
    if ctx is not None and tuple(ctx.shape[1:]) != tuple(flow.context_shape):
        raise ValueError(
            f"{name}: expected context of shape (N, {', '.join(map(str, flow.context_shape))}), got {tuple(ctx.shape)}"
        )


@torch.no_grad()
def nll_sum(
    flow: Flow,
    source: Source,
    batch_size: int,
    n_bins: Optional[int],
    seed: int = 0,
    rank: int = 0,
    world: int = 1,
    distributed: bool = False,
) -> tuple[float, int]:
    """Sum of ``-log p`` over this process's share of ``source`` (all processes when distributed), and the count.

    Integer levels are dequantized with noise from ``seed`` alone, so the figure is reproducible.
    """
    total = torch.zeros((), dtype=torch.float64, device=flow.device)
    count = 0
    for i, batch in enumerate(source.ordered(batch_size, rank, world)):
        x, c = prepare(batch, n_bins, flow.dtype, step_generator(flow.device, seed, 0x5EED, i))
        total += -flow.log_prob(x, c).double().sum()
        count += x.shape[0]
    sums = all_reduce_sum(torch.stack([total, total.new_tensor(float(count))]), distributed)
    return sums[0].item(), int(sums[1].item())


def evaluate_nll(
    flow: Flow,
    data: Any,
    batch_size: int = 4096,
    context: Optional[Tensor] = None,
    *,
    n_bins: Optional[int] = None,
    seed: int = 0,
) -> float:
    r"""Mean negative log-likelihood in nats per dimension over ``data``.

    .. math:: \text{NLL} = -\frac{1}{N D} \sum_{n=1}^{N} \log p(x_n)

    ``data`` takes every form :func:`~pyro_flowzoo.fit` takes (tensor, numpy array, ``(x, context)``
    pair, ``Dataset``, ``DataLoader``). Integer image levels are dequantized with noise from ``seed``
    (the figure is reproducible); :func:`pyro_flowzoo.metrics.nats_to_bits` converts to bits/dim.

    Example:
        >>> from pyro_flowzoo import build
        >>> flow = build("realnvp", (2,), num_layers=2, hidden_dims=(8,))
        >>> evaluate_nll(flow, torch.zeros(10, 2)) > 0
        True
    """
    source = as_source((data, context) if context is not None else data, "data")
    check_source(flow, source, "data", n_bins)
    source.place(flow.device, flow.dtype)
    was_training = flow.training
    flow.eval()
    try:
        total, count = nll_sum(flow, source, batch_size, n_bins, seed)
    finally:
        flow.train(was_training)
    return total / (count * flow.event_shape.numel())
