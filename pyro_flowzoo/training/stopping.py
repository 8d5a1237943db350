"""Early stopping and keeping the weights that were best on validation data."""

from __future__ import annotations

import math
from typing import Any, Optional

from torch import Tensor

from .ema import clone_state

__all__ = ["BestKeeper"]


class BestKeeper:
    """Remembers the best validation NLL and its weights; says when ``patience`` epochs brought nothing.

    Example:
        >>> keeper = BestKeeper(patience=2)
        >>> [keeper.observe(e, v, {}) for e, v in enumerate([3.0, 2.0, 2.5, 2.1])]
        [False, False, False, True]
        >>> keeper.best_epoch, keeper.best_valid_nll
        (1, 2.0)
    """

    def __init__(self, patience: Optional[int]) -> None:
        self.patience = patience
        self.best_valid_nll = math.inf
        self.best_epoch = -1
        self.bad_epochs = 0
        self.state: Optional[dict[str, Tensor]] = None

    def observe(self, epoch: int, valid_nll: float, weights: dict[str, Tensor]) -> bool:
        """Records epoch ``epoch``'s validation NLL (and ``weights`` when best); True: stop now."""
        if valid_nll < self.best_valid_nll:
            self.best_valid_nll, self.best_epoch, self.bad_epochs = valid_nll, epoch, 0
            self.state = clone_state(weights)
            return False
        self.bad_epochs += 1
        return self.patience is not None and self.bad_epochs >= self.patience

    def counters(self) -> dict[str, Any]:
        return {"best_valid_nll": self.best_valid_nll, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    def restore(self, counters: dict[str, Any], state: Optional[dict[str, Tensor]]) -> None:
        self.best_valid_nll = counters["best_valid_nll"]
        self.best_epoch = counters["best_epoch"]
        self.bad_epochs = counters["bad_epochs"]
        self.state = None if state is None else clone_state(state)
