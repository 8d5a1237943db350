"""``TrainConfig``: every training hyper-parameter in one frozen, validated record."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    r"""The hyper-parameters of :func:`pyro_flowzoo.fit`, checked once when the record is made.

    Attributes:
        epochs: budget in passes over the training data (default 100 when ``steps`` is not given).
        steps: budget in optimizer steps (exclusive with ``epochs``).
        batch_size: global batch size (under DistributedDataParallel each of W processes takes
            ``batch_size // W``); ignored for a ``DataLoader``, which keeps its own.
        lr: peak learning rate.
        optimizer: ``"adam"`` or ``"adamax"``.
        weight_decay: L2 penalty as in ``torch.optim.Adam``.
        clip_grad: max global gradient norm (None or 0 disables).
        warmup_steps: linear warm-up length (default ``min(200, total // 20)``).
        schedule: ``"cosine"`` (after warm-up), ``"exponential"`` (to ``lr * final_lr_ratio``) or ``"constant"``.
        final_lr_ratio: the cosine decays to ``lr * final_lr_ratio``.
        patience: epochs without validation improvement before stopping (None: never).
        method: ``"torch"`` (a plain loop on ``flow.log_prob``) or ``"svi"`` (Pyro's ``SVI`` with an
            empty guide: the negative ELBO is then the negative log-likelihood).
        seed: seeds torch and the data order (drawn at random when None; saved for resume).
        ema_decay: keep an exponential moving average of the weights with this decay (e.g. 0.999).
        init_batch_size: size of the data-dependent init batch run through ``flow.log_prob`` before
            the optimizer is built (ActNorm); default ``batch_size``; 0 skips it.
        n_bins: number of levels of integer (image) data: dequantization and bits/dim reporting.
        eval_batch_size: batch size of validation passes.
        compile: run the loss through ``torch.compile`` (``method="torch"`` only).

    Example:
        >>> TrainConfig(steps=10).total_steps(steps_per_epoch=4)
        10
        >>> TrainConfig(lr=-1.0)
        Traceback (most recent call last):
        ...
        ValueError: lr must be a finite number >= 0, got -1.0
    """

    epochs: Optional[int] = None
    steps: Optional[int] = None
    batch_size: int = 256
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    clip_grad: Optional[float] = 5.0
    warmup_steps: Optional[int] = None
    schedule: str = "cosine"
    final_lr_ratio: float = 0.0
    patience: Optional[int] = 20
    method: str = "torch"
    seed: Optional[int] = None
    ema_decay: Optional[float] = None
    init_batch_size: Optional[int] = None
    n_bins: Optional[int] = None
    eval_batch_size: int = 4096
    compile: bool = False

    def __post_init__(self) -> None:
        _choice("method", self.method, ("torch", "svi"))
        _choice("optimizer", self.optimizer, ("adam", "adamax"))
        _choice("schedule", self.schedule, ("cosine", "exponential", "constant"))
        if self.epochs is not None and self.steps is not None:
            raise ValueError(
                f"give a budget in epochs or in steps, not both (got epochs={self.epochs}, steps={self.steps})"
            )
        if (self.epochs is not None and self.epochs < 1) or (self.steps is not None and self.steps < 1):
            raise ValueError(f"the budget must be positive, got epochs={self.epochs}, steps={self.steps}")
        for name in ("batch_size", "eval_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr >= 0):
            raise ValueError(f"lr must be a finite number >= 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.clip_grad is not None and self.clip_grad < 0:
            raise ValueError(f"clip_grad must be >= 0 or None, got {self.clip_grad}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.final_lr_ratio <= 1.0:
            raise ValueError(f"final_lr_ratio must be in [0, 1], got {self.final_lr_ratio}")
        if self.schedule == "exponential" and self.final_lr_ratio <= 0:
            raise ValueError("schedule='exponential' needs final_lr_ratio > 0 (the lr decays to lr * final_lr_ratio)")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.init_batch_size is not None and self.init_batch_size < 0:
            raise ValueError(f"init_batch_size must be >= 0, got {self.init_batch_size}")
        if self.n_bins is not None and self.n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {self.n_bins}")
        if self.compile and self.method != "torch":
            raise ValueError("compile=True needs method='torch' (Pyro's SVI traces every step in Python)")

    def total_steps(self, steps_per_epoch: Optional[int]) -> int:
        """The budget in optimizer steps, given the length of an epoch (None: unknown length)."""
        if self.steps is not None:
            return self.steps
        if steps_per_epoch is None:
            raise ValueError("the training data have no length (an iterable DataLoader): give steps=")
        return (self.epochs or 100) * steps_per_epoch

    def warmup(self, total_steps: int) -> int:
        """The warm-up length in steps (``min(200, total // 20)`` unless given)."""
        return self.warmup_steps if self.warmup_steps is not None else min(200, total_steps // 20)

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict (what checkpoints store)."""
        return asdict(self)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
