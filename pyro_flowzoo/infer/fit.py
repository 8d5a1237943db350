"""Training and evaluating variational guides: ``fit_svi`` and ``evidence``."""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import pyro  # noqa: F401 (the doctests use it)
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.importance import vectorized_importance_weights
from pyro.optim import PyroOptim

from ..training.optim import PyroUpdater

__all__ = ["fit_svi", "evidence"]


def fit_svi(
    model: Callable,
    guide: Callable,
    *args: Any,
    steps: int = 1000,
    lr: float = 0.01,
    final_lr: Optional[float] = None,
    num_particles: int = 16,
    max_plate_nesting: Optional[int] = None,
    clip_norm: float = 10.0,
    callback: Optional[Callable[[int, float], None]] = None,
    optim: Optional[PyroOptim] = None,
    **kwargs: Any,
) -> list[float]:
    r"""Maximises the ELBO with Pyro's ``SVI``, ``Trace_ELBO`` (vectorised particles) and Adam.

    .. math:: \text{ELBO}(q) = \mathbb{E}_{q(z)}[\log p(x, z) - \log q(z)] \le \log p(x)

    The learning rate decays geometrically from ``lr`` to ``final_lr`` (default ``lr / 10``); the
    gradients are clipped to a global norm ``clip_norm`` over all parameters (one
    :class:`~pyro_flowzoo.training.Updater`, as in :func:`~pyro_flowzoo.fit`).

    Args:
        model, guide: the Pyro model and guide; ``*args, **kwargs`` are passed to both.
        steps: optimizer steps.
        lr: initial learning rate.
        final_lr: learning rate at the last step.
        num_particles: ELBO particles per step (vectorised).
        max_plate_nesting: as in ``Trace_ELBO`` (None: guessed by Pyro).
        clip_norm: the maximum global gradient norm.
        callback: called as ``callback(step, loss)`` after every step.
        optim: a Pyro optimizer to use instead (e.g. ``pyro.optim.ClippedAdam`` for per-tensor clipping);
            ``lr``, ``final_lr`` and ``clip_norm`` are then ignored.

    Returns:
        the loss (negative ELBO estimate) at every step.

    References:
        Hoffman et al., "Stochastic Variational Inference", arXiv:1206.7051; Kingma, Ba, "Adam",
        arXiv:1412.6980.

    Example:
        >>> import pyro.distributions as dist
        >>> from pyro_flowzoo.infer import AutoFlowGuide
        >>> pyro.clear_param_store()  # autoguides keep their parameters in Pyro's global store
        >>> def model():
        ...     pyro.sample("x", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        >>> losses = fit_svi(model, AutoFlowGuide(model, num_layers=2, hidden_dims=(8,)), steps=3)
        >>> len(losses)
        3
    """
    if steps < 1:
        raise ValueError(f"expected steps >= 1, got {steps}")
    final_lr = lr / 10 if final_lr is None else final_lr
    if optim is None:
        optim = PyroUpdater(
            lr=lr, clip_grad=clip_norm, total_steps=steps, schedule="exponential", final_lr_ratio=final_lr / lr
        )
    nesting = {} if max_plate_nesting is None else {"max_plate_nesting": max_plate_nesting}
    elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=True, **nesting)
    svi = SVI(model, guide, optim, elbo)
    losses = []
    for step in range(steps):
        loss = svi.step(*args, **kwargs)
        if not math.isfinite(loss):
            raise ValueError(f"the ELBO became {loss} at step {step}; lower lr or init_scale")
        losses.append(loss)
        if callback is not None:
            callback(step, loss)
    return losses


@torch.no_grad()
def evidence(
    model: Callable,
    guide: Callable,
    *args: Any,
    num_samples: int = 10000,
    max_plate_nesting: int = 1,
    batch_size: int = 10000,
    **kwargs: Any,
) -> dict[str, float]:
    r"""Monte Carlo ELBO and importance-sampled ``log p(x)`` with the guide as proposal.

    .. math::
        w_s = \log p(x, z_s) - \log q(z_s), \qquad
        \text{ELBO} \approx \tfrac{1}{S} \textstyle\sum_s w_s, \qquad
        \log \hat p(x) = \log \tfrac{1}{S} \textstyle\sum_s e^{w_s} \;(\text{in expectation} \le \log p(x))

    Args:
        model, guide: the Pyro model and guide; ``*args, **kwargs`` are passed to both.
        num_samples: ``S``.
        max_plate_nesting: the model's plate nesting (the particle plate goes outside it).
        batch_size: particles drawn at once.

    Returns:
        ``{"elbo", "elbo_se", "log_z_is", "ess"}``: the ELBO, its Monte Carlo standard error, the
        importance-sampled evidence and the effective sample size of the weights.

    References:
        Burda, Grosse, Salakhutdinov, "Importance Weighted Autoencoders", arXiv:1509.00519.

    Example:
        >>> import pyro.distributions as dist
        >>> from pyro_flowzoo.infer import AutoFlowGuide
        >>> pyro.clear_param_store()  # autoguides keep their parameters in Pyro's global store
        >>> def model():
        ...     pyro.sample("x", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        >>> sorted(evidence(model, AutoFlowGuide(model, num_layers=2), num_samples=100, max_plate_nesting=0))
        ['elbo', 'elbo_se', 'ess', 'log_z_is']
    """
    if getattr(guide, "prototype_trace", False) is None:
        guide(*args, **kwargs)  # an autoguide must see the model's shapes outside the particle plate
    chunks = []
    left = num_samples
    while left > 0:
        n = min(batch_size, left)
        log_w, _, _ = vectorized_importance_weights(
            model, guide, *args, num_samples=n, max_plate_nesting=max_plate_nesting, **kwargs
        )
        chunks.append(log_w.detach().double().reshape(-1))
        left -= n
    log_w = torch.cat(chunks)
    if not bool(torch.isfinite(log_w).all()):
        raise ValueError("some importance weights are not finite")
    log_z = (torch.logsumexp(log_w, 0) - math.log(log_w.numel())).item()
    normalized = torch.softmax(log_w, 0)
    return {
        "elbo": log_w.mean().item(),
        "elbo_se": (log_w.std() / math.sqrt(log_w.numel())).item(),
        "log_z_is": log_z,
        "ess": (1.0 / normalized.pow(2).sum()).item(),
    }
