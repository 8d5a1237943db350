r"""``fit``: maximum-likelihood training of a :class:`~pyro_flowzoo.Flow`, composed of the training parts.

:func:`fit` minimises the mean negative log-likelihood of mini-batches,

.. math:: \mathcal{L}(\theta) = -\frac{1}{B} \sum_{b=1}^{B} \log p_\theta(x_b),

with a plain torch step (``method="torch"``, the default) or Pyro's ``SVI`` (``method="svi"``); both
apply one :class:`~.optim.Updater`, so from one seed they follow one trajectory up to rounding.
:class:`Trainer` wires the parts together: :mod:`.data` (the batch stream), :mod:`.optim`,
:mod:`.steps`, :mod:`.ema`, :mod:`.stopping`, :mod:`.checkpointing` and :mod:`.progress`.

References:
    Papamakarios, Nalisnick, Rezende, Mohamed, Lakshminarayanan, "Normalizing Flows for Probabilistic
    Modeling and Inference", arXiv:1912.02762.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import torch

from ..checkpoint import CheckpointError, checkpoint_payload, error_line, save_checkpoint
from ..flow import Flow
from ..metrics import nats_to_bits
from .checkpointing import open_resume, restore_rng, rng_state, write_csv
from .config import TrainConfig
from .data import Source, as_source, prepare, step_generator
from .distributed import all_reduce_sum, dist_info
from .ema import EMA, clone_state, swapped
from .evaluate import check_source, nll_sum
from .optim import Updater
from .progress import Progress
from .steps import make_step
from .stopping import BestKeeper

__all__ = ["fit", "FitResult", "Trainer"]

PathLike = Union[str, os.PathLike]
Callback = Callable[[dict[str, Any]], Optional[bool]]


@dataclass
class FitResult:
    """What :func:`fit` returns: per-epoch metrics in nats/dim and the best validation NLL.

    Attributes:
        train_nll: mean training NLL (nats/dim) of each epoch.
        valid_nll: validation NLL (nats/dim) after each epoch (empty without ``valid``).
        best_valid_nll: the lowest validation NLL (``inf`` without ``valid``).
        best_epoch: the epoch it was reached (-1 without ``valid``).
        steps: optimizer steps taken in total (resumed runs included).
        history: one dict per epoch (the rows of the metrics CSV).
        stopped: why training ended: ``"budget"``, ``"early_stopping"`` or ``"callback"``.
        train_time: wall-clock seconds spent training (resumed runs included).
        compile_time: with ``compile=True``, seconds of the first step (compilation included), else 0.
    """

    train_nll: list[float] = field(default_factory=list)
    valid_nll: list[float] = field(default_factory=list)
    best_valid_nll: float = math.inf
    best_epoch: int = -1
    steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "budget"
    train_time: float = 0.0
    compile_time: float = 0.0


class Trainer:
    """One training run: the parts of :mod:`pyro_flowzoo.training` wired together (see :func:`fit`)."""

    def __init__(
        self,
        flow: Flow,
        config: TrainConfig,
        train: Any,
        valid: Any = None,
        *,
        checkpoint: Optional[PathLike] = None,
        resume: Any = None,
        metrics_csv: Optional[PathLike] = None,
        checkpoint_extra: Optional[dict[str, Any]] = None,
        callback: Optional[Callback] = None,
    ) -> None:
        self.flow, self.cfg, self.callback = flow, config, callback
        self.checkpoint, self.metrics_csv, self.extra = checkpoint, metrics_csv, checkpoint_extra
        self.distributed, self.rank, self.world = dist_info()
        if config.batch_size < self.world:
            raise ValueError(
                f"batch_size ({config.batch_size}) must be at least the number of processes ({self.world})"
            )
        self.train, self.valid = self._sources(train, valid)
        self.ckpt = None if resume is None else open_resume(flow, resume, flow.device)
        seed = self.ckpt["train_state"]["seed"] if self.ckpt is not None else config.seed
        self.seed = int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed
        torch.manual_seed(self.seed)
        self.local_bs = config.batch_size // self.world
        self.steps_per_epoch = self.train.steps_per_epoch(self.local_bs, self.rank, self.world)
        self.total_steps = config.total_steps(self.steps_per_epoch)
        self.warmup_steps = config.warmup(self.total_steps)
        self.dim = flow.event_shape.numel()
        self.unit = "nats/dim" if config.n_bins is None else "bits/dim"
        self.counters: dict[str, Any] = {
            "step": 0,
            "epoch": 0,
            "pos": 0,
            "epoch_sum": 0.0,
            "epoch_count": 0,
            "elapsed": 0.0,
            "stopped": None,
        }
        self.history: list[dict[str, Any]] = []
        self.compile_time = 0.0
        self._init_and_build()

    def _sources(self, train: Any, valid: Any) -> tuple[Source, Optional[Source]]:
        out = []
        for data, name in ((train, "train"), (valid, "valid")):
            if data is None:
                out.append(None)
                continue
            source = as_source(data, name)
            check_source(self.flow, source, name, self.cfg.n_bins)
            out.append(source.place(self.flow.device, self.flow.dtype))
        return out[0], out[1]

    def _batch(self, batch: Any, step: int) -> Any:
        gen = None if batch[0].is_floating_point() else step_generator(self.flow.device, self.seed, step, self.rank)
        return prepare(batch, self.cfg.n_bins, self.flow.dtype, gen)

    def _init_and_build(self) -> None:
        """Data-dependent init (ActNorm) on a first batch, then optimizer, step, EMA, best keeper."""
        flow, cfg = self.flow, self.cfg
        flow.train()
        if self.ckpt is None and (cfg.init_batch_size is None or cfg.init_batch_size > 0):
            first = next(
                iter(self.train.epoch(0, cfg.init_batch_size or self.local_bs, self.seed, 0, self.rank, self.world))
            )
            with torch.no_grad():
                flow.log_prob(*self._batch(first, -1))
        model = flow
        if self.distributed:
            # DDP broadcasts rank 0's parameters and buffers (so rank 0's ActNorm init) to all ranks
            dev = flow.device
            model = torch.nn.parallel.DistributedDataParallel(
                flow, device_ids=[dev.index] if dev.type == "cuda" else None
            )
        if cfg.compile:
            model = torch.compile(model)
        self.updater = Updater(
            flow.parameters(),
            lr=cfg.lr,
            optimizer=cfg.optimizer,
            weight_decay=cfg.weight_decay,
            clip_grad=cfg.clip_grad,
            total_steps=self.total_steps,
            warmup_steps=self.warmup_steps,
            schedule=cfg.schedule,
            final_lr_ratio=cfg.final_lr_ratio,
        )
        self.step_fn = make_step(cfg.method, flow, model, self.updater, self.world)
        self.ema = EMA(flow, cfg.ema_decay) if cfg.ema_decay else None
        self.best = BestKeeper(cfg.patience)
        if self.ckpt is not None:
            self._restore(self.ckpt)

    def _restore(self, ckpt: dict[str, Any]) -> None:
        ts = ckpt["train_state"]
        try:
            self.flow.load_state_dict(ts["model"])
        except RuntimeError as e:  # another architecture: one line, as flow_from_checkpoint says it
            raise CheckpointError(f"cannot resume into this flow: {error_line(e)[:200]}") from None
        self.updater.load_state_dict({"optimizer": ts["optimizer"], "scheduler": ts["scheduler"]})
        if self.ema is not None:
            if ts.get("ema") is None:
                raise CheckpointError("checkpoint was trained without EMA; resume with ema_decay=None")
            self.ema.load(ts["ema"])
        counters = dict(ts["counters"])
        self.best.restore(counters, ts.get("best"))
        self.counters.update({k: counters[k] for k in self.counters})
        if self.counters["stopped"] == "callback":  # a clean interruption: carry on
            self.counters["stopped"] = None
        self.history = list(ckpt.get("metrics", {}).get("history", []))
        restore_rng(ts, self.flow.device)

    # ---- outputs ---------------------------------------------------------------------------------------
    def _weights_to_use(self) -> dict[str, torch.Tensor]:
        """Best on validation, else EMA, else current."""
        if self.best.state is not None:
            return self.best.state
        return self.ema.shadow if self.ema is not None else self.flow.state_dict()

    def payload(self) -> dict[str, Any]:
        """The checkpoint: the weights to use, the metrics, and the state for an exact resume."""
        cfg = self.cfg
        config = cfg.to_dict() | {
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "world_size": self.world,
        }
        train_state = {
            "seed": self.seed,
            "model": clone_state(self.flow.state_dict()),
            "ema": None if self.ema is None else clone_state(self.ema.shadow),
            "best": None if self.best.state is None else clone_state(self.best.state),
            **self.updater.state_dict(),
            "counters": self.counters | self.best.counters(),
            **rng_state(self.flow.device),
            "config": config,
        }
        metrics = {
            "history": self.history,
            "best_valid_nll": self.best.best_valid_nll,
            "best_epoch": self.best.best_epoch,
            "steps": self.counters["step"],
            "unit": self.unit,
            "n_bins": cfg.n_bins,
        }
        return checkpoint_payload(self.flow, self._weights_to_use(), metrics, train_state, self.extra)

    def write_outputs(self) -> None:
        if self.rank != 0:
            return
        if self.checkpoint is not None:
            save_checkpoint(self.checkpoint, self.payload())
        if self.metrics_csv is not None:
            write_csv(self.metrics_csv, self.history)

    def to_unit(self, nats_per_dim: float) -> float:
        return nats_per_dim if self.cfg.n_bins is None else nats_to_bits(nats_per_dim, self.cfg.n_bins)

    # ---- the loop ----------------------------------------------------------------------------------------
    def _one_step(self, batch: Any) -> bool:
        """One optimizer step; True when the callback asks to stop."""
        st = self.counters
        xb, cb = self._batch(batch, st["step"])
        t = time.perf_counter()
        try:
            loss = self.step_fn(xb, cb)
        except FloatingPointError as e:
            where = f" (last good checkpoint: {self.checkpoint})" if self.checkpoint is not None else ""
            raise FloatingPointError(
                f"{e} at step {st['step']} (epoch {st['epoch']}); training stopped{where}"
            ) from None
        if self.cfg.compile and st["step"] == 0:
            self.compile_time = time.perf_counter() - t
        st["step"] += 1
        st["pos"] += 1
        st["epoch_sum"] += loss * xb.shape[0]
        st["epoch_count"] += xb.shape[0]
        if self.ema is not None:
            self.ema.update(st["step"])
        self.progress.step(f"epoch {st['epoch']} loss {self.to_unit(loss / self.dim):.4f} {self.unit}")
        info = {"step": st["step"], "epoch": st["epoch"], "loss": loss / self.dim, "lr": self.updater.lr}
        return bool(self.callback is not None and self.callback(info))

    def _run_epoch(self, t0: float) -> bool:
        """Steps through the rest of the current epoch; True when it ended early (callback)."""
        st = self.counters
        for batch in self.train.epoch(st["epoch"], self.local_bs, self.seed, st["pos"], self.rank, self.world):
            if st["step"] >= self.total_steps:
                break
            if self._one_step(batch):
                mid_epoch = self.steps_per_epoch is None or st["pos"] < self.steps_per_epoch
                if mid_epoch and st["step"] < self.total_steps:
                    # stopped mid-epoch by the callback: save the exact position, no epoch summary
                    st["stopped"], st["elapsed"] = "callback", time.perf_counter() - t0
                    self.write_outputs()
                    return True
                st["stopped"] = "callback"
                break
        return False

    def _validate(self) -> Optional[float]:
        if self.valid is None:
            return None
        self.flow.eval()
        with swapped(self.flow, None if self.ema is None else self.ema.shadow):
            s, c = nll_sum(
                self.flow,
                self.valid,
                self.cfg.eval_batch_size,
                self.cfg.n_bins,
                0,
                self.rank,
                self.world,
                self.distributed,
            )
        self.flow.train()
        return s / (c * self.dim)

    def _end_epoch(self, t0: float) -> None:
        st = self.counters
        sums = all_reduce_sum(
            torch.tensor([st["epoch_sum"], float(st["epoch_count"])], dtype=torch.float64, device=self.flow.device),
            self.distributed,
        )
        train_nll = sums[0].item() / (sums[1].item() * self.dim)
        valid_nll = self._validate()
        row: dict[str, Any] = {"epoch": st["epoch"], "step": st["step"], "train_nll": train_nll, "valid_nll": valid_nll}
        if self.cfg.n_bins is not None:
            row["train_bpd"] = self.to_unit(train_nll)
            row["valid_bpd"] = None if valid_nll is None else self.to_unit(valid_nll)
        row["lr"] = self.updater.lr
        if valid_nll is not None and self.best.observe(st["epoch"], valid_nll, self._averaged()):
            st["stopped"] = st["stopped"] or "early_stopping"
        st.update(epoch=st["epoch"] + 1, pos=0, epoch_sum=0.0, epoch_count=0, elapsed=time.perf_counter() - t0)
        row["time"] = round(st["elapsed"], 3)
        self.history.append(row)
        self.write_outputs()
        msg = f"epoch {row['epoch']}: train {self.to_unit(train_nll):.4f}"
        if valid_nll is not None:
            msg += f", valid {self.to_unit(valid_nll):.4f}"
        self.progress.write(f"{msg} {self.unit}")

    def _averaged(self) -> dict[str, torch.Tensor]:
        return self.ema.shadow if self.ema is not None else self.flow.state_dict()

    def run(self, progress: Optional[bool] = None) -> FitResult:
        """Trains to the budget, early stopping or the callback; leaves the flow in eval mode with its best weights."""
        st = self.counters
        self.progress = Progress(self.total_steps, st["step"], progress, self.rank)
        t0 = time.perf_counter() - st["elapsed"]
        validate, self.flow.validate = self.flow.validate, False  # the data were checked once, up front
        try:
            with self.step_fn.scope():
                while st["step"] < self.total_steps and st["stopped"] is None:
                    if self._run_epoch(t0):
                        break
                    self._end_epoch(t0)
        finally:
            self.flow.validate = validate
            self.progress.close()
        return self._result()

    def _result(self) -> FitResult:
        h, st = self.history, self.counters
        result = FitResult(
            train_nll=[r["train_nll"] for r in h],
            valid_nll=[r["valid_nll"] for r in h if r["valid_nll"] is not None],
            best_valid_nll=self.best.best_valid_nll,
            best_epoch=self.best.best_epoch,
            steps=st["step"],
            history=h,
            stopped=st["stopped"] or "budget",
            train_time=st["elapsed"],
            compile_time=self.compile_time,
        )
        if self.best.state is not None:
            self.flow.load_state_dict(self.best.state)
        elif self.ema is not None:
            self.flow.load_state_dict(self.ema.shadow)
        self.flow.eval()
        return result


def fit(
    flow: Flow,
    train: Any,
    valid: Any = None,
    *,
    checkpoint: Optional[PathLike] = None,
    resume: Any = None,
    metrics_csv: Optional[PathLike] = None,
    checkpoint_extra: Optional[dict[str, Any]] = None,
    progress: Optional[bool] = None,
    device: Optional[Union[str, torch.device]] = None,
    callback: Optional[Callback] = None,
    config: Optional[TrainConfig] = None,
    **hyper: Any,
) -> FitResult:
    r"""Fits ``flow`` to ``train`` by maximum likelihood; keeps the parameters best on ``valid``.

    Args:
        flow: the flow to train (in place).
        train: the data: a tensor ``(N, *event_shape)`` (float, or integer image levels with
            ``n_bins``), a numpy array, a ``(data, context)`` pair for conditional flows, a ``Dataset``
            whose items are tensors or ``(x, context)`` tuples, or a ``DataLoader`` (used as given).
        valid: validation data in the same forms, scored after every epoch (early stopping, best
            weights; with ``ema_decay`` the EMA weights are scored and kept).
        checkpoint: path of the checkpoint written (atomically) after every epoch and at the end.
        resume: a checkpoint (path or loaded dict) with training state to continue from, exactly.
        metrics_csv: path of the per-epoch metrics CSV.
        checkpoint_extra: primitive-only dict stored under ``"extra"`` in checkpoints.
        progress: show a tqdm bar (default: only on a TTY, not when ``CI=true``, rank 0 only).
        device: move the flow (and the data) there first.
        callback: called after each step with ``{"step", "epoch", "loss", "lr"}`` (loss in nats/dim);
            returning True stops training cleanly (a checkpoint is written, resume continues exactly).
        config: a :class:`~pyro_flowzoo.training.TrainConfig`; ``**hyper`` (``epochs``, ``steps``,
            ``batch_size``, ``lr``, ``clip_grad``, ``method``, ``seed``, ``ema_decay``, ``n_bins``,
            ``compile``, ...: its fields) override it.

    Returns:
        A :class:`FitResult`; the flow is left in eval mode holding the best (or EMA, or last) weights.

    Raises:
        FloatingPointError: on a NaN/inf loss or gradient; the last good checkpoint file is kept.

    Example:
        >>> from pyro_flowzoo import build
        >>> from pyro_flowzoo.data import sample_moons
        >>> flow = build("realnvp", (2,), num_layers=2, hidden_dims=(16,))
        >>> result = fit(flow, sample_moons(256), sample_moons(128), epochs=2, batch_size=64, seed=0)
        >>> len(result.train_nll), result.steps
        (2, 8)
    """
    fields = TrainConfig.__dataclass_fields__
    unknown = sorted(set(hyper) - set(fields))
    if unknown:
        raise TypeError(f"fit() got unknown argument(s) {', '.join(unknown)}; TrainConfig has {', '.join(fields)}")
    base = config.to_dict() if config is not None else {}
    cfg = TrainConfig(**(base | hyper))
    if device is not None:
        flow.to(device)
    trainer = Trainer(
        flow,
        cfg,
        train,
        valid,
        checkpoint=checkpoint,
        resume=resume,
        metrics_csv=metrics_csv,
        checkpoint_extra=checkpoint_extra,
        callback=callback,
    )
    return trainer.run(progress)
