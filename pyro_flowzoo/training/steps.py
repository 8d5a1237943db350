r"""Step strategies: one optimizer step on a batch, the torch way or the Pyro way.

Both minimise the mean negative log-likelihood per example of a batch,
:math:`-\frac{1}{B}\sum_b \log p_\theta(x_b)`, and both apply the same :class:`~.optim.Updater`, so
from one seed they follow one trajectory up to rounding. :class:`SVIStep` writes the model
``pyro.sample("x", flow.dist, obs=x)`` under a plate with an empty guide (the negative ELBO is then
the negative log-likelihood) and keeps the flow in a private parameter store (:meth:`SVIStep.scope`),
so the caller's store is left alone.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, ContextManager, Optional

import pyro
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from torch import Tensor

from ..flow import Flow
from .distributed import all_reduce_sum
from .optim import PyroUpdater, Updater

__all__ = ["MLEStep", "SVIStep", "make_step"]


class MLEStep:
    """``step(x, context) -> loss``: forward, backward and one update on ``-flow.log_prob(x).mean()``.

    Args:
        model: the flow, or a wrapper of it (DistributedDataParallel, ``torch.compile``).
        updater: the :class:`~.optim.Updater` of the flow's parameters.
        world: the number of processes: with more than one the loss is averaged over them before the
            NaN check, so every process takes the same decision.

    Raises:
        FloatingPointError: on a NaN/inf loss or gradient, before any parameter is changed.
    """

    def __init__(self, model: Callable[..., Tensor], updater: Updater, world: int = 1) -> None:
        self.model, self.updater, self.world = model, updater, world

    def loss(self, x: Tensor, context: Optional[Tensor]) -> Tensor:
        return -(self.model(x) if context is None else self.model(x, context)).mean()

    def __call__(self, x: Tensor, context: Optional[Tensor] = None) -> float:
        self.updater.zero_grad()
        loss = self.loss(x, context)
        value = loss.detach()
        if self.world > 1:
            value = all_reduce_sum(value.clone(), True) / self.world
        value = value.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"non-finite loss {value}")
        loss.backward()
        self.updater.step()
        return loss.item()

    def scope(self) -> ContextManager[None]:
        return contextlib.nullcontext()


class _CheckedTraceELBO(Trace_ELBO):
    """Trace_ELBO that raises FloatingPointError on a non-finite loss before any update is applied."""

    def loss_and_grads(self, model, guide, *args, **kwargs):  # noqa: ANN001, ANN201 (Pyro's signature)
        loss = super().loss_and_grads(model, guide, *args, **kwargs)
        if not math.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss}")
        return loss


class SVIStep:
    """``step(x, context) -> loss`` through ``pyro.infer.SVI`` with the flow as the model's likelihood."""

    def __init__(self, flow: Flow, updater: Updater) -> None:
        self.flow, self.updater = flow, updater
        self.svi = SVI(self._model, self._guide, PyroUpdater(updater), _CheckedTraceELBO())

    def _model(self, x: Tensor, context: Optional[Tensor]) -> None:
        pyro.module("flow", self.flow)
        d = self.flow.dist if context is None else self.flow.condition(context)
        # scale 1/B: the ELBO is the mean NLL per example, as in the torch step
        with pyro.plate("data", x.shape[0]), poutine.scale(scale=1.0 / x.shape[0]):
            pyro.sample("x", d, obs=x)

    def _guide(self, x: Tensor, context: Optional[Tensor]) -> None:
        pass

    def __call__(self, x: Tensor, context: Optional[Tensor] = None) -> float:
        self.updater.zero_grad()
        try:
            return self.svi.step(x, context)
        except ValueError:
            # Pyro's support check sees the NaN/inf latent before the loss does
            if not all(bool(torch.isfinite(p).all()) for p in self.flow.parameters()):
                raise FloatingPointError("non-finite loss (the flow's parameters hold NaN/inf)") from None
            raise

    def scope(self) -> ContextManager[None]:
        """A private Pyro parameter store for the run (the caller's store is left untouched)."""
        return pyro.get_param_store().scope()


def make_step(
    method: str, flow: Flow, model: Callable[..., Tensor], updater: Updater, world: int = 1
) -> MLEStep | SVIStep:
    """The step strategy for ``method`` (``"torch"`` or ``"svi"``)."""
    if method == "svi":
        if world > 1:
            raise ValueError(
                "method='svi' is not supported under DistributedDataParallel; use method='torch' "
                "(the same loss and update)"
            )
        return SVIStep(flow, updater)
    return MLEStep(model, updater, world)
