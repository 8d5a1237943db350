"""Maximum-likelihood training of a :class:`~pyro_flowzoo.Flow`."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Optional

import pyro
import pyro.optim
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import Tensor

from .flow import Flow

__all__ = ["fit", "FitResult", "evaluate_nll"]


@dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch metrics in nats/dim and the best validation NLL."""

    train_nll: list[float] = field(default_factory=list)
    valid_nll: list[float] = field(default_factory=list)
    best_valid_nll: float = math.inf
    best_epoch: int = -1
    steps: int = 0


@torch.no_grad()
def evaluate_nll(flow: Flow, data: Tensor, batch_size: int = 4096, context: Optional[Tensor] = None) -> float:
    """Mean negative log-likelihood in nats per dimension over ``data``."""
    was_training = flow.training
    flow.eval()
    total = 0.0
    for i in range(0, data.shape[0], batch_size):
        ctx = None if context is None else context[i : i + batch_size]
        total += -flow.log_prob(data[i : i + batch_size], ctx).sum().item()
    flow.train(was_training)
    return total / (data.shape[0] * flow.event_shape.numel())


def fit(flow: Flow, train: Tensor, valid: Optional[Tensor] = None, *, epochs: int = 100,
        batch_size: int = 256, lr: float = 1e-3, weight_decay: float = 0.0, clip_grad: float = 5.0,
        patience: Optional[int] = 20, method: str = "torch", seed: Optional[int] = None) -> FitResult:
    """Fits ``flow`` to ``train`` by maximum likelihood; keeps the parameters best on ``valid``.

    ``method="svi"`` trains the Pyro way (``pyro.sample("x", flow.dist, obs=batch)`` under a plate,
    an empty guide, SVI with Trace_ELBO), ``method="torch"`` with a plain Adam loop on
    ``flow.log_prob``; both minimise the same loss. A NaN/inf loss raises ``FloatingPointError``.
    """
    if method not in ("torch", "svi"):
        raise ValueError(f"method must be 'torch' or 'svi', got {method!r}")
    if seed is not None:
        torch.manual_seed(seed)
    dim = flow.event_shape.numel()
    n = train.shape[0]
    result = FitResult()
    best_state = copy.deepcopy(flow.state_dict())
    bad_epochs = 0

    if method == "svi":
        pyro.clear_param_store()

        def model(batch: Tensor) -> None:
            pyro.module("flow", flow)
            with pyro.plate("data", batch.shape[0]):
                pyro.sample("x", flow.dist, obs=batch)

        def guide(batch: Tensor) -> None:
            pass

        optim = pyro.optim.ClippedAdam({"lr": lr, "clip_norm": clip_grad, "weight_decay": weight_decay})
        svi = SVI(model, guide, optim, Trace_ELBO())
    else:
        optimizer = torch.optim.Adam(flow.parameters(), lr=lr, weight_decay=weight_decay)

    for epoch in range(epochs):
        flow.train()
        order = torch.randperm(n)
        total = 0.0
        for i in range(0, n, batch_size):
            batch = train[order[i : i + batch_size]]
            if method == "svi":
                loss = svi.step(batch) / batch.shape[0]
            else:
                optimizer.zero_grad(set_to_none=True)
                loss_t = -flow.log_prob(batch).mean()
                loss_t.backward()
                if clip_grad:
                    torch.nn.utils.clip_grad_norm_(flow.parameters(), clip_grad)
                optimizer.step()
                loss = loss_t.item()
            if not math.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {loss} at epoch {epoch}, step {result.steps}")
            total += loss * batch.shape[0]
            result.steps += 1
        result.train_nll.append(total / (n * dim))
        if valid is not None:
            v = evaluate_nll(flow, valid)
            result.valid_nll.append(v)
            if v < result.best_valid_nll:
                result.best_valid_nll, result.best_epoch, bad_epochs = v, epoch, 0
                best_state = copy.deepcopy(flow.state_dict())
            else:
                bad_epochs += 1
                if patience is not None and bad_epochs >= patience:
                    break
    if valid is not None:
        flow.load_state_dict(best_state)
    flow.eval()
    return result
