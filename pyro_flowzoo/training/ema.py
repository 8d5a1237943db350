"""Exponential moving average of a module's weights, and swapping other weights in for a while."""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
from torch import Tensor, nn

__all__ = ["EMA", "swapped", "clone_state"]


def clone_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A detached copy of a state dict."""
    return {k: v.detach().clone() for k, v in state.items()}


class EMA:
    r"""``shadow <- decay * shadow + (1 - decay) * weights`` after each step, with a warm-up of the decay.

    The decay used at step ``s`` is ``min(decay, (1 + s) / (10 + s))`` (as TensorFlow's
    ``ExponentialMovingAverage`` with ``num_updates``), so early weights do not dominate. Integer
    buffers are copied, not averaged.

    Example:
        >>> m = nn.Linear(1, 1)
        >>> ema = EMA(m, 0.5)
        >>> with torch.no_grad(): _ = m.weight.add_(1.0)
        >>> ema.update(step=100)
        >>> bool(torch.allclose(ema.shadow["weight"], m.weight - 0.5))
        True
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.module, self.decay = module, decay
        self.shadow = clone_state(module.state_dict())

    @torch.no_grad()
    def update(self, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for k, v in self.module.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].lerp_(v, 1.0 - decay)
            else:
                self.shadow[k].copy_(v)

    def load(self, shadow: dict[str, Tensor]) -> None:
        self.shadow = clone_state(shadow)


@contextlib.contextmanager
def swapped(module: nn.Module, state: Optional[dict[str, Tensor]]) -> Iterator[None]:
    """Temporarily loads ``state`` (e.g. the EMA weights) into ``module``; None changes nothing."""
    if state is None:
        yield
        return
    backup = clone_state(module.state_dict())
    module.load_state_dict(state)
    try:
        yield
    finally:
        module.load_state_dict(backup)
