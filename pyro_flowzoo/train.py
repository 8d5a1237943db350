r"""Maximum-likelihood training of a :class:`~pyro_flowzoo.Flow`.

:func:`fit` minimises the mean negative log-likelihood of mini-batches,

.. math:: \mathcal{L}(\theta) = -\frac{1}{B} \sum_{b=1}^{B} \log p_\theta(x_b),

either the Pyro way (``method="svi"``: a model ``pyro.sample("x", flow.dist, obs=batch)`` under a plate,
an empty guide, :class:`pyro.infer.SVI` with ``Trace_ELBO``; with an empty guide the negative ELBO *is*
the negative log-likelihood) or with a plain torch loop on ``flow.log_prob`` (``method="torch"``, the
default: it skips Pyro's tracing and is faster). Both paths share one torch optimizer (Adam or Adamax,
L2 ``weight_decay`` as in ``torch.optim``), one global-norm gradient clip and one warm-up + cosine
schedule, so from the same seed they follow the same trajectory up to floating-point rounding (a test
checks this). Pyro's own ``ClippedAdam`` clips each parameter tensor separately; we clip the global
norm instead (as ``torch.nn.utils.clip_grad_norm_``) and apply that in both paths.

Image data given as integer levels ``k in {0, ..., n_bins - 1}`` are dequantized on the fly,
``x = (k + u) / n_bins`` with fresh uniform noise ``u`` per step, and reported in bits/dim.

References:
    Papamakarios, Nalisnick, Rezende, Mohamed, Lakshminarayanan, "Normalizing Flows for Probabilistic
    Modeling and Inference", arXiv:1912.02762; Loshchilov, Hutter, "SGDR: Stochastic Gradient Descent
    with Warm Restarts", arXiv:1608.03983 (cosine schedule).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import pyro
import pyro.optim
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from torch import Tensor
from torch.utils.data.distributed import DistributedSampler

from .checkpoint import CheckpointError, checkpoint_payload, load_checkpoint, save_checkpoint
from .flow import Flow
from .transforms.elementwise import uniform_dequantize

__all__ = ["fit", "FitResult", "evaluate_nll", "dequantize", "lr_factor"]

Data = Union[Tensor, tuple[Tensor, Tensor]]
PathLike = Union[str, os.PathLike]


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
    """

    train_nll: list[float] = field(default_factory=list)
    valid_nll: list[float] = field(default_factory=list)
    best_valid_nll: float = math.inf
    best_epoch: int = -1
    steps: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = "budget"
    train_time: float = 0.0


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
def _split(data: Data, name: str) -> tuple[Tensor, Optional[Tensor]]:
    if isinstance(data, Tensor):
        return data, None
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        if data[0].shape[0] != data[1].shape[0]:
            raise ValueError(f"{name}: data and context must have the same length, "
                             f"got {data[0].shape[0]} and {data[1].shape[0]}")
        return data[0], data[1]
    raise TypeError(f"{name}: expected a tensor or a (data, context) pair of tensors, got {type(data).__name__}")


def _check_shape(flow: Flow, x: Tensor, ctx: Optional[Tensor], name: str, n_bins: Optional[int]) -> None:
    shape = tuple(flow.event_shape)
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape or x.shape[0] < 1:
        raise ValueError(f"{name}: expected data of shape (N, {', '.join(map(str, shape))}) for this flow, "
                         f"got {tuple(x.shape)}")
    if not x.is_floating_point() and n_bins is None:
        raise ValueError(f"{name}: integer data (image levels) need n_bins= to be dequantized, got dtype {x.dtype}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: data contain NaN or inf")
    if x.is_floating_point() and n_bins is not None and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name}: with n_bins={n_bins}, expected integer levels (an integer tensor) or "
                         f"dequantized values in [0, 1], got floats in [{x.min().item():g}, {x.max().item():g}]; "
                         "pass levels as x.long()")
    if ctx is not None and flow.context_shape is not None and tuple(ctx.shape[1:]) != tuple(flow.context_shape):
        raise ValueError(f"{name}: expected context of shape (N, {', '.join(map(str, flow.context_shape))}), "
                         f"got {tuple(ctx.shape)}")


def _flow_device_dtype(flow: Flow) -> tuple[torch.device, torch.dtype]:
    for t in list(flow.parameters()) + list(flow.buffers()):
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def dequantize(levels: Tensor, n_bins: int, generator: Optional[torch.Generator] = None,
               dtype: Optional[torch.dtype] = None) -> Tensor:
    r"""Uniform dequantization of integer levels to the unit cube.

    .. math:: x = (k + u) / n_{\text{bins}}, \qquad u \sim U[0, 1)^D

    Float input is returned unchanged (already continuous).

    References:
        Theis, van den Oord, Bethge, "A note on the evaluation of generative models", arXiv:1511.01844.

    Example:
        >>> x = dequantize(torch.tensor([[0, 3]]), n_bins=4)
        >>> bool(((x >= 0) & (x < 1)).all()), bool((x[0, 1] >= 0.75).item())
        (True, True)
    """
    if levels.is_floating_point():
        return levels if dtype is None else levels.to(dtype)
    # fit() checked the levels once; no per-step host syncs here.
    return uniform_dequantize(levels, n_bins, generator, dtype=dtype, validate=False)


def _step_generator(device: torch.device, *keys: int) -> torch.Generator:
    """A generator seeded from ``keys`` only: per-step noise without state to save (exact resume)."""
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k) + 7919) % (2**62)
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str = "cosine",
              final_lr_ratio: float = 0.0) -> float:
    r"""Learning-rate multiplier: linear warm-up, then cosine decay (or constant).

    .. math::
        f(s) = \begin{cases} \frac{s + 1}{w + 1} & s < w \\
        r + (1 - r)\,\tfrac12\bigl(1 + \cos(\pi \min(1, \tfrac{s - w}{S - w}))\bigr) & s \ge w \end{cases}

    References:
        Loshchilov, Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", arXiv:1608.03983.

    Example:
        >>> [round(lr_factor(s, 10, 2), 3) for s in (0, 1, 2, 6, 10)]
        [0.333, 0.667, 1.0, 0.5, 0.0]
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if schedule == "constant":
        return 1.0
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return final_lr_ratio + (1.0 - final_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def _dist_info() -> tuple[bool, int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return True, torch.distributed.get_rank(), torch.distributed.get_world_size()
    return False, 0, 1


def _all_reduce_sum(t: Tensor, distributed: bool) -> Tensor:
    if distributed:
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return t


class _Length(torch.utils.data.Dataset):
    """An index set of length n (what DistributedSampler needs)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


@torch.no_grad()
def _nll_sum(flow: Flow, x: Tensor, ctx: Optional[Tensor], batch_size: int, n_bins: Optional[int],
             seed: int, dtype: torch.dtype) -> tuple[float, int]:
    """Sum of -log p over ``x`` (integer levels dequantized with noise from ``seed``) and the count."""
    g = _step_generator(x.device, seed, 0x5EED) if not x.is_floating_point() else None
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for i in range(0, x.shape[0], batch_size):
        xb = dequantize(x[i : i + batch_size], n_bins or 1, g, dtype)
        cb = None if ctx is None else ctx[i : i + batch_size]
        total += -flow.log_prob(xb, cb).double().sum()
    return total.item(), x.shape[0]


def evaluate_nll(flow: Flow, data: Tensor, batch_size: int = 4096, context: Optional[Tensor] = None, *,
                 n_bins: Optional[int] = None, seed: int = 0) -> float:
    r"""Mean negative log-likelihood in nats per dimension over ``data``.

    .. math:: \text{NLL} = -\frac{1}{N D} \sum_{n=1}^{N} \log p(x_n)

    Integer image levels are dequantized once (noise from ``seed``: the figure is reproducible);
    convert to bits/dim with :func:`pyro_flowzoo.metrics.bits_per_dim` or ``(nll + log n_bins) / log 2``.

    References:
        Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and Inference", arXiv:1912.02762.

    Example:
        >>> from pyro_flowzoo import build
        >>> flow = build("realnvp", (2,), num_layers=2, hidden_dims=(8,))
        >>> evaluate_nll(flow, torch.zeros(10, 2)) > 0
        True
    """
    x, ctx = _split((data, context) if context is not None else data, "data")
    _check_shape(flow, x, ctx, "data", n_bins)
    device, dtype = _flow_device_dtype(flow)
    was_training = flow.training
    flow.eval()
    try:
        total, count = _nll_sum(flow, x.to(device), None if ctx is None else ctx.to(device), batch_size,
                                n_bins, seed, dtype)
    finally:
        flow.train(was_training)
    return total / (count * flow.event_shape.numel())


def _to_unit(nats_per_dim: float, n_bins: Optional[int]) -> float:
    return nats_per_dim if n_bins is None else (nats_per_dim + math.log(n_bins)) / math.log(2)


@contextlib.contextmanager
def _weights(flow: Flow, state: Optional[dict[str, Tensor]]) -> Iterator[None]:
    """Temporarily loads ``state`` (e.g. the EMA weights) into ``flow``."""
    if state is None:
        yield
        return
    backup = {k: v.detach().clone() for k, v in flow.state_dict().items()}
    flow.load_state_dict(state)
    try:
        yield
    finally:
        flow.load_state_dict(backup)


def _clone_state(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in sd.items()}


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrites the whole metrics CSV atomically (rows come from the checkpointed history)."""
    if not rows:
        return
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in keys})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


class _CheckedTraceELBO(Trace_ELBO):
    """Trace_ELBO that raises FloatingPointError on a non-finite loss before any update is applied."""

    def loss_and_grads(self, model, guide, *args, **kwargs):  # noqa: ANN001, ANN201 (Pyro's signature)
        loss = super().loss_and_grads(model, guide, *args, **kwargs)
        if not math.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss}")
        return loss


class _SharedUpdate(pyro.optim.PyroOptim):
    """A PyroOptim for SVI that applies the same update as the torch path (one optimizer, global clip)."""

    def __init__(self, update: Callable[[], None]) -> None:
        super().__init__(torch.optim.Adam, {})
        self._update = update

    def __call__(self, params, *args, **kwargs) -> None:  # noqa: ANN001 (Pyro's signature)
        self._update()


# ------------------------------------------------------------------------------------------------
# fit
# ------------------------------------------------------------------------------------------------
def fit(flow: Flow, train: Data, valid: Optional[Data] = None, *, epochs: Optional[int] = None,
        steps: Optional[int] = None, batch_size: int = 256, lr: float = 1e-3, optimizer: str = "adam",
        weight_decay: float = 0.0, clip_grad: Optional[float] = 5.0, warmup_steps: Optional[int] = None,
        schedule: str = "cosine", final_lr_ratio: float = 0.0, patience: Optional[int] = 20,
        method: str = "torch", seed: Optional[int] = None, ema_decay: Optional[float] = None,
        init_batch_size: Optional[int] = None, n_bins: Optional[int] = None,
        checkpoint: Optional[PathLike] = None, resume: Optional[Union[PathLike, dict[str, Any]]] = None,
        metrics_csv: Optional[PathLike] = None, checkpoint_extra: Optional[dict[str, Any]] = None,
        progress: Optional[bool] = None, device: Optional[Union[str, torch.device]] = None,
        eval_batch_size: int = 4096, callback: Optional[Callable[[dict[str, Any]], Optional[bool]]] = None,
        ) -> FitResult:
    r"""Fits ``flow`` to ``train`` by maximum likelihood; keeps the parameters best on ``valid``.

    Minimises :math:`-\frac{1}{B}\sum_b \log p_\theta(x_b)` over mini-batches (see the module docstring
    for the SVI and torch paths, which give the same trajectory).

    Args:
        flow: the flow to train (in place).
        train: data ``(N, *event_shape)`` (float, or integer image levels with ``n_bins``), or a
            ``(data, context)`` pair for conditional flows.
        valid: validation data, same form; evaluated after every epoch (early stopping and best-model
            keeping; with ``ema_decay`` the EMA weights are evaluated and kept).
        epochs: budget in passes over ``train`` (default 100 when ``steps`` is not given).
        steps: budget in optimizer steps (exclusive with ``epochs``).
        batch_size: global batch size (under DistributedDataParallel each of W processes takes
            ``batch_size // W``).
        lr: peak learning rate.
        optimizer: ``"adam"`` or ``"adamax"``.
        weight_decay: L2 penalty as in ``torch.optim.Adam``.
        clip_grad: max global gradient norm (None or 0 disables).
        warmup_steps: linear warm-up length (default ``min(200, total // 20)``).
        schedule: ``"cosine"`` (after warm-up) or ``"constant"``.
        final_lr_ratio: the cosine decays to ``lr * final_lr_ratio``.
        patience: epochs without validation improvement before stopping (None: never).
        method: ``"torch"`` or ``"svi"`` (``"svi"`` is not available under DistributedDataParallel).
        seed: seeds torch and the data order (drawn at random when None; saved for resume).
        ema_decay: keep an exponential moving average of the weights with this decay (e.g. 0.999).
        init_batch_size: size of the data-dependent init batch run through ``flow.log_prob`` before
            the optimizer is built (ActNorm); default ``batch_size``; 0 skips it.
        n_bins: number of levels of integer (image) data: dequantization and bits/dim reporting.
        checkpoint: path of the checkpoint written (atomically) after every epoch and at the end.
        resume: a checkpoint (path or loaded dict) with training state to continue from, exactly.
        metrics_csv: path of the per-epoch metrics CSV.
        checkpoint_extra: primitive-only dict stored under ``"extra"`` in checkpoints.
        progress: show a tqdm bar (default: only on a TTY, not when ``CI=true``, rank 0 only).
        device: move the flow (and data) there first.
        eval_batch_size: batch size of validation passes.
        callback: called after each step with ``{"step", "epoch", "loss", "lr"}`` (loss in nats/dim);
            returning True stops training cleanly (a checkpoint is written, resume continues exactly).

    Returns:
        A :class:`FitResult`; the flow is left in eval mode holding the best (or EMA, or last) weights.

    Raises:
        FloatingPointError: on a NaN/inf loss or gradient; the last good checkpoint file is kept.

    References:
        Kingma, Ba, "Adam: A Method for Stochastic Optimization", arXiv:1412.6980;
        Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and Inference", arXiv:1912.02762.

    Example:
        >>> from pyro_flowzoo import build
        >>> from pyro_flowzoo.data import sample_moons
        >>> flow = build("realnvp", (2,), num_layers=2, hidden_dims=(16,))
        >>> result = fit(flow, sample_moons(256), sample_moons(128), epochs=2, batch_size=64, seed=0)
        >>> len(result.train_nll), result.steps
        (2, 8)
    """
    # ---- arguments --------------------------------------------------------------------------
    if method not in ("torch", "svi"):
        raise ValueError(f"method must be 'torch' or 'svi', got {method!r}")
    if optimizer not in ("adam", "adamax"):
        raise ValueError(f"optimizer must be 'adam' or 'adamax', got {optimizer!r}")
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
    if epochs is not None and steps is not None:
        raise ValueError(f"give a budget in epochs or in steps, not both (got epochs={epochs}, steps={steps})")
    if epochs is None and steps is None:
        epochs = 100
    if (epochs is not None and epochs < 1) or (steps is not None and steps < 1):
        raise ValueError(f"the budget must be positive, got epochs={epochs}, steps={steps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}")
    distributed, rank, world = _dist_info()
    if distributed and method == "svi":
        raise ValueError("method='svi' is not supported under DistributedDataParallel; use method='torch' "
                         "(the same loss and update)")
    if batch_size < world:
        raise ValueError(f"batch_size ({batch_size}) must be at least the number of processes ({world})")

    if device is not None:
        flow.to(device)
    dev, dtype = _flow_device_dtype(flow)
    x_train, c_train = _split(train, "train")
    _check_shape(flow, x_train, c_train, "train", n_bins)
    if valid is not None:
        x_valid, c_valid = _split(valid, "valid")
        _check_shape(flow, x_valid, c_valid, "valid", n_bins)

    def _place(x: Tensor) -> Tensor:
        return x.to(dev, dtype) if x.is_floating_point() else x.to(dev)

    x_train = _place(x_train)
    c_train = None if c_train is None else _place(c_train)
    if valid is not None:
        # each process scores its own share of the validation set; the sums are all-reduced
        x_valid = _place(x_valid[rank::world])
        c_valid = None if c_valid is None else _place(c_valid[rank::world])

    ckpt = None
    if resume is not None:
        ckpt = resume if isinstance(resume, dict) else load_checkpoint(resume, map_location=dev)
        if ckpt.get("train_state") is None:
            raise CheckpointError("checkpoint has no training state to resume from (saved without fit?)")
        if flow.builder is not None and ckpt.get("builder") not in (None, flow.builder):
            raise CheckpointError(f"checkpoint is for flow {ckpt.get('builder')!r}, not {flow.builder!r}")
        seed = ckpt["train_state"]["seed"]
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    torch.manual_seed(seed)

    n = x_train.shape[0]
    local_bs = batch_size // world
    sampler = DistributedSampler(_Length(n), num_replicas=world, rank=rank, shuffle=True, seed=seed)
    steps_per_epoch = math.ceil(len(sampler) / local_bs)
    total_steps = steps if steps is not None else epochs * steps_per_epoch
    if warmup_steps is None:
        warmup_steps = min(200, total_steps // 20)
    dim = flow.event_shape.numel()
    unit = "nats/dim" if n_bins is None else "bits/dim"

    def batch_at(epoch: int, indices: Tensor, step: int) -> tuple[Tensor, Optional[Tensor]]:
        g = None if x_train.is_floating_point() else _step_generator(dev, seed, step, rank)
        xb = dequantize(x_train[indices], n_bins or 1, g, dtype)
        return xb, None if c_train is None else c_train[indices]

    def epoch_order(epoch: int) -> Tensor:
        sampler.set_epoch(epoch)
        return torch.tensor(list(iter(sampler)), dtype=torch.long, device=dev)

    # ---- data-dependent init (ActNorm), then the optimizer ----------------------------------
    flow.train()
    if ckpt is None and (init_batch_size is None or init_batch_size > 0):
        idx = epoch_order(0)[: init_batch_size or local_bs]
        with torch.no_grad():
            flow.log_prob(*batch_at(0, idx, -1))
    model = flow
    if distributed:
        # DDP broadcasts rank 0's parameters and buffers (so also rank 0's ActNorm init) to all ranks
        model = torch.nn.parallel.DistributedDataParallel(flow, device_ids=[dev.index] if dev.type == "cuda" else None)
    params = list(flow.parameters())
    opt_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.Adamax
    # foreach: one fused update over all parameter tensors (about 40% less optimizer time on CPU).
    opt = opt_cls(params, lr=lr, weight_decay=weight_decay, foreach=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total_steps, warmup_steps, schedule, final_lr_ratio))

    # ---- state (fresh or resumed) -----------------------------------------------------------
    ema: Optional[dict[str, Tensor]] = _clone_state(flow.state_dict()) if ema_decay else None
    best_state: Optional[dict[str, Tensor]] = None
    st: dict[str, Any] = {"step": 0, "epoch": 0, "pos": 0, "epoch_sum": 0.0, "epoch_count": 0,
                          "best_valid_nll": math.inf, "best_epoch": -1, "bad_epochs": 0, "elapsed": 0.0,
                          "stopped": None}
    history: list[dict[str, Any]] = []
    if ckpt is not None:
        ts = ckpt["train_state"]
        flow.load_state_dict(ts["model"])
        opt.load_state_dict(ts["optimizer"])
        scheduler.load_state_dict(ts["scheduler"])
        if ema_decay:
            if ts.get("ema") is None:
                raise CheckpointError("checkpoint was trained without EMA; resume with ema_decay=None")
            ema = _clone_state(ts["ema"])
        best_state = None if ts.get("best") is None else _clone_state(ts["best"])
        st.update(ts["counters"])
        if st["stopped"] == "callback":  # a clean interruption: carry on
            st["stopped"] = None
        history = list(ckpt.get("metrics", {}).get("history", []))
        # RNG states are CPU byte tensors, whatever map_location did to the rest of the checkpoint
        torch.set_rng_state(ts["rng"].cpu())
        if ts.get("cuda_rng") is not None and dev.type == "cuda":
            torch.cuda.set_rng_state(ts["cuda_rng"].cpu(), dev)

    def payload() -> dict[str, Any]:
        # "state_dict" holds the weights to use: best on validation, else EMA, else current
        use = best_state if best_state is not None else (ema if ema is not None else flow.state_dict())
        train_state = {
            "seed": seed,
            "model": _clone_state(flow.state_dict()),
            "ema": None if ema is None else _clone_state(ema),
            "best": None if best_state is None else _clone_state(best_state),
            "optimizer": opt.state_dict(),
            "scheduler": scheduler.state_dict(),
            "counters": dict(st),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(dev).cpu() if dev.type == "cuda" else None,
            "config": {"batch_size": batch_size, "lr": lr, "optimizer": optimizer, "weight_decay": weight_decay,
                       "clip_grad": clip_grad, "total_steps": total_steps, "warmup_steps": warmup_steps,
                       "schedule": schedule, "method": method, "ema_decay": ema_decay, "n_bins": n_bins,
                       "world_size": world},
        }
        metrics = {"history": history, "best_valid_nll": st["best_valid_nll"], "best_epoch": st["best_epoch"],
                   "steps": st["step"], "unit": unit, "n_bins": n_bins}
        return checkpoint_payload(flow, use, metrics, train_state, checkpoint_extra)

    def write_outputs() -> None:
        if rank != 0:
            return
        if checkpoint is not None:
            save_checkpoint(checkpoint, payload())
        if metrics_csv is not None:
            _write_csv(Path(metrics_csv), history)

    # ---- one update, shared by both paths ---------------------------------------------------
    def update() -> None:
        max_norm = clip_grad if clip_grad else math.inf
        norm = torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], max_norm)
        if not bool(torch.isfinite(norm)):
            raise FloatingPointError(f"non-finite gradient norm {norm.item()}")
        opt.step()
        scheduler.step()

    svi = None
    if method == "svi":

        def pyro_model(xb: Tensor, cb: Optional[Tensor]) -> None:
            pyro.module("flow", flow)
            d = flow.dist if cb is None else flow.condition(cb)
            # scale 1/B: the ELBO is the mean NLL per example, as in the torch path
            with pyro.plate("data", xb.shape[0]), poutine.scale(scale=1.0 / xb.shape[0]):
                pyro.sample("x", d, obs=xb)

        def pyro_guide(xb: Tensor, cb: Optional[Tensor]) -> None:
            pass

        svi = SVI(pyro_model, pyro_guide, _SharedUpdate(update), _CheckedTraceELBO())

    def train_step(xb: Tensor, cb: Optional[Tensor]) -> float:
        opt.zero_grad(set_to_none=True)
        if svi is not None:
            try:
                return svi.step(xb, cb)
            except ValueError:
                # Pyro's support check sees the NaN/inf latent before the loss does
                if not all(bool(torch.isfinite(p).all()) for p in params):
                    raise FloatingPointError("non-finite loss (the flow's parameters hold NaN/inf)") from None
                raise
        loss = -(model(xb) if cb is None else model(xb, cb)).mean()
        value = loss.detach()
        if distributed:  # every rank must take the same decision on a bad loss
            value = _all_reduce_sum(value.clone(), True) / world
        value = value.item()
        if not math.isfinite(value):
            raise FloatingPointError(f"non-finite loss {value}")
        loss.backward()
        update()
        return loss.item()

    def update_ema() -> None:
        if ema is None:
            return
        # bias-corrected warm-up of the decay (as in TensorFlow's ExponentialMovingAverage)
        decay = min(ema_decay, (1 + st["step"]) / (10 + st["step"]))
        with torch.no_grad():
            for k, v in flow.state_dict().items():
                if v.is_floating_point():
                    ema[k].lerp_(v, 1.0 - decay)
                else:
                    ema[k].copy_(v)

    def validate() -> Optional[float]:
        if valid is None:
            return None
        flow.eval()
        with _weights(flow, ema):
            s, c = _nll_sum(flow, x_valid, c_valid, eval_batch_size, n_bins, 0, dtype)
        flow.train()
        tot = _all_reduce_sum(torch.tensor([s, float(c)], dtype=torch.float64, device=dev), distributed)
        return tot[0].item() / (tot[1].item() * dim)

    # ---- the loop ----------------------------------------------------------------------------
    show = progress if progress is not None else (sys.stderr.isatty() and os.environ.get("CI", "").lower() != "true")
    show = bool(show) and rank == 0
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=st["step"], unit="step", dynamic_ncols=True, leave=False)
    t0 = time.perf_counter() - st["elapsed"]
    scope = pyro.get_param_store().scope() if svi is not None else contextlib.nullcontext()
    try:
        # SVI registers the flow in a private parameter store: the caller's store is left untouched
        scope.__enter__()
        while st["step"] < total_steps and st["stopped"] is None:
            order = epoch_order(st["epoch"])
            stop_requested = False
            while st["pos"] < steps_per_epoch and st["step"] < total_steps:
                idx = order[st["pos"] * local_bs : (st["pos"] + 1) * local_bs]
                xb, cb = batch_at(st["epoch"], idx, st["step"])
                try:
                    loss = train_step(xb, cb)
                except FloatingPointError as e:
                    where = f" (last good checkpoint: {checkpoint})" if checkpoint is not None else ""
                    raise FloatingPointError(f"{e} at step {st['step']} (epoch {st['epoch']}); "
                                             f"training stopped{where}") from None
                st["step"] += 1
                st["pos"] += 1
                st["epoch_sum"] += loss * xb.shape[0]
                st["epoch_count"] += xb.shape[0]
                update_ema()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"epoch {st['epoch']} loss {_to_unit(loss / dim, n_bins):.4f} {unit}",
                                        refresh=False)
                if callback is not None and callback({"step": st["step"], "epoch": st["epoch"], "loss": loss / dim,
                                                      "lr": opt.param_groups[0]["lr"]}):
                    stop_requested = True
                    break
            if st["pos"] < steps_per_epoch and st["step"] < total_steps:
                # stopped mid-epoch by the callback: save the exact position, no epoch summary
                st["stopped"] = "callback"
                st["elapsed"] = time.perf_counter() - t0
                write_outputs()
                break
            # ---- end of an epoch (or of the budget) ----
            sums = _all_reduce_sum(torch.tensor([st["epoch_sum"], float(st["epoch_count"])],
                                                dtype=torch.float64, device=dev), distributed)
            train_nll = sums[0].item() / (sums[1].item() * dim)
            valid_nll = validate()
            row: dict[str, Any] = {"epoch": st["epoch"], "step": st["step"], "train_nll": train_nll,
                                   "valid_nll": valid_nll}
            if n_bins is not None:
                row["train_bpd"] = _to_unit(train_nll, n_bins)
                row["valid_bpd"] = None if valid_nll is None else _to_unit(valid_nll, n_bins)
            row["lr"] = opt.param_groups[0]["lr"]
            if valid_nll is not None:
                if valid_nll < st["best_valid_nll"]:
                    st.update(best_valid_nll=valid_nll, best_epoch=st["epoch"], bad_epochs=0)
                    best_state = _clone_state(ema if ema is not None else flow.state_dict())
                else:
                    st["bad_epochs"] += 1
                    if patience is not None and st["bad_epochs"] >= patience:
                        st["stopped"] = "early_stopping"
            st["epoch"] += 1
            st["pos"] = 0
            st["epoch_sum"], st["epoch_count"] = 0.0, 0
            st["elapsed"] = time.perf_counter() - t0
            row["time"] = round(st["elapsed"], 3)
            history.append(row)
            if stop_requested:
                st["stopped"] = "callback"
            write_outputs()
            if bar is not None:
                msg = f"epoch {row['epoch']}: train {_to_unit(train_nll, n_bins):.4f}"
                if valid_nll is not None:
                    msg += f", valid {_to_unit(valid_nll, n_bins):.4f}"
                bar.write(f"{msg} {unit}", file=sys.stderr)
    finally:
        scope.__exit__(None, None, None)
        if bar is not None:
            bar.close()

    # ---- the result --------------------------------------------------------------------------
    result = FitResult(
        train_nll=[r["train_nll"] for r in history],
        valid_nll=[r["valid_nll"] for r in history if r["valid_nll"] is not None],
        best_valid_nll=st["best_valid_nll"], best_epoch=st["best_epoch"], steps=st["step"], history=history,
        stopped=st["stopped"] or "budget", train_time=st["elapsed"],
    )
    if best_state is not None:
        flow.load_state_dict(best_state)
    elif ema is not None:
        flow.load_state_dict(ema)
    flow.eval()
    return result
