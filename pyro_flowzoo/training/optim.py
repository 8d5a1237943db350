r"""One optimizer, one schedule, one global gradient clip: for the MLE loop, Pyro's SVI and ``fit_svi``.

:class:`Updater` owns a torch optimizer (Adam fused, or Adamax ``foreach``), a warm-up + cosine
:func:`lr_factor` schedule and the global-norm clip of ``torch.nn.utils.clip_grad_norm_`` (Pyro's
``ClippedAdam`` clips each tensor on its own instead). :class:`PyroUpdater` hands the same update to
``pyro.infer.SVI``, which then follows the torch loop's trajectory step for step.

References:
    Kingma, Ba, "Adam: A Method for Stochastic Optimization", arXiv:1412.6980; Loshchilov, Hutter,
    "SGDR: Stochastic Gradient Descent with Warm Restarts", arXiv:1608.03983.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

import pyro.optim
import torch
from torch import Tensor

__all__ = ["lr_factor", "Updater", "PyroUpdater", "clip_global_norm"]


def lr_factor(
    step: int, total_steps: int, warmup_steps: int, schedule: str = "cosine", final_lr_ratio: float = 0.0
) -> float:
    r"""Learning-rate multiplier: linear warm-up, then cosine decay (or exponential, or constant).

    .. math::
        f(s) = \begin{cases} \frac{s + 1}{w + 1} & s < w \\
        r + (1 - r)\,\tfrac12\bigl(1 + \cos(\pi t)\bigr) & s \ge w \text{ (cosine)} \\
        r^{t} & s \ge w \text{ (exponential)} \end{cases}
        \qquad t = \min\bigl(1, \tfrac{s - w}{S - w}\bigr)

    Example:
        >>> [round(lr_factor(s, 10, 2), 3) for s in (0, 1, 2, 6, 10)]
        [0.333, 0.667, 1.0, 0.5, 0.0]
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "exponential":
        return final_lr_ratio**t
    return final_lr_ratio + (1.0 - final_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def clip_global_norm(params: Iterable[Tensor], max_norm: Optional[float]) -> Tensor:
    """Clips the gradients' global norm to ``max_norm`` (None or 0: no clip); raises on NaN/inf."""
    grads = [p for p in params if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(grads, max_norm if max_norm else math.inf)
    if not bool(torch.isfinite(norm)):
        raise FloatingPointError(f"non-finite gradient norm {norm.item()}")
    return norm


def _impl(cls: type) -> dict[str, bool]:
    """Adam's fused kernel (one C++/CUDA loop over all tensors; faster than ``foreach`` on a small flow's
    CPU step, see ``benchmarks/RESULTS.md``) where torch has one; else ``foreach`` (Adamax)."""
    return {"fused": True} if cls is torch.optim.Adam else {"foreach": True}


class Updater:
    """Optimizer + schedule + global clip over ``params``; :meth:`step` is one update.

    Args:
        params: the parameters (more can join later through :meth:`add`, as Pyro creates them).
        lr, optimizer, weight_decay, clip_grad: as in :class:`~pyro_flowzoo.training.TrainConfig`.
        total_steps, warmup_steps, schedule, final_lr_ratio: the :func:`lr_factor` schedule.

    Example:
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> up = Updater([w], lr=0.1, total_steps=10, warmup_steps=0)
        >>> (w ** 2).sum().backward(); up.step(); round(up.lr, 4)
        0.0976
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        *,
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        clip_grad: Optional[float] = None,
        total_steps: int = 1,
        warmup_steps: int = 0,
        schedule: str = "cosine",
        final_lr_ratio: float = 0.0,
    ) -> None:
        if optimizer not in ("adam", "adamax"):
            raise ValueError(f"optimizer must be one of 'adam', 'adamax', got {optimizer!r}")
        self.params = list(params)
        self.clip_grad = clip_grad
        cls = torch.optim.Adam if optimizer == "adam" else torch.optim.Adamax
        self.optimizer = cls(
            self.params or [torch.zeros(0, requires_grad=True)], lr=lr, weight_decay=weight_decay, **_impl(cls)
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, total_steps, warmup_steps, schedule, final_lr_ratio)
        )

    def add(self, params: Iterable[Tensor]) -> None:
        """Adds parameters not seen before (Pyro creates a guide's parameters on its first call)."""
        known = {id(p) for p in self.params}
        new = [p for p in params if id(p) not in known]
        if new:
            self.params += new
            self.optimizer.param_groups[0]["params"].extend(new)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        clip_global_norm(self.params, self.clip_grad)
        self.optimizer.step()
        self.scheduler.step()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


class PyroUpdater(pyro.optim.PyroOptim):
    """A ``PyroOptim`` that applies one :class:`Updater` (global clip, one schedule) to what SVI hands it.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from pyro.infer import SVI, Trace_ELBO
        >>> def model(): pyro.sample("x", dist.Normal(0.0, 1.0))
        >>> def guide(): pyro.sample("x", dist.Normal(pyro.param("m", torch.tensor(2.0)), 1.0))
        >>> with pyro.get_param_store().scope():
        ...     svi = SVI(model, guide, PyroUpdater(lr=0.1, clip_grad=10.0, total_steps=5), Trace_ELBO())
        ...     _ = [svi.step() for _ in range(5)]
        ...     bool(pyro.param("m").item() < 2.0)
        True
    """

    def __init__(self, updater: Optional[Updater] = None, **kwargs: Any) -> None:
        super().__init__(torch.optim.Adam, {})
        self.updater = updater if updater is not None else Updater([], **kwargs)

    def __call__(self, params: Iterable[Tensor], *args: Any, **kwargs: Any) -> None:
        params = list(params)
        self.updater.add(params)
        self.updater.step()
        for p in params:
            p.grad = None

    def get_state(self) -> dict[str, Any]:
        return self.updater.state_dict()

    def set_state(self, state: dict[str, Any]) -> None:
        self.updater.load_state_dict(state)
