"""The commands of ``pyro-flowzoo``: ``list``, ``train``, ``sample`` and ``eval``, one function each.

Data come from :func:`pyro_flowzoo.data.load` (as :class:`~pyro_flowzoo.data.DataSplit`), training from
:func:`pyro_flowzoo.train.fit`, the process group from :mod:`pyro_flowzoo.training.distributed`, pictures from
:mod:`pyro_flowzoo.plot` and bits/dim from :func:`pyro_flowzoo.metrics.nats_to_bits`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import Tensor

from .. import plot
from ..checkpoint import flow_from_checkpoint
from ..data import DATASETS, SPLITS, DataSplit, load
from ..flow import Flow
from ..metrics import nats_to_bits
from ..training import distributed
from .parser import UsageError, key_values

__all__ = ["dataset_names", "load_data", "list_command", "train_command", "sample_command", "eval_command"]


# -- data -----------------------------------------------------------------------------------------------
def dataset_names() -> list[str]:
    """Names of the data sets ``train``/``eval`` accept.

    Example:
        >>> "moons" in dataset_names() and "digits" in dataset_names()
        True
    """
    return list(DATASETS)


def _check_data_name(name: str) -> None:
    if name not in DATASETS:
        raise UsageError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")


def load_data(name: str, split: str = "train", **kwargs: Any) -> DataSplit:
    """Split ``split`` of data set ``name`` from :func:`pyro_flowzoo.data.load`, its points in one tensor.

    Unknown names, splits or options and unavailable files raise a one-line error. Use
    ``.tensor(integer=True)`` for what :func:`~pyro_flowzoo.train.fit` takes (integer levels for images).

    Example:
        >>> d = load_data("digits", "test")
        >>> d.event_shape, d.tensor(integer=True).dtype, d.n_levels
        ((1, 8, 8), torch.uint8, 17)
    """
    _check_data_name(name)
    _check_split(split)
    try:
        out = load(name, split, **kwargs)
        return dataclasses.replace(out, x=out.tensor())
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f"data set {name!r} ({split}): {msg}") from None


def _n_bins(data: DataSplit) -> Optional[int]:
    return data.n_levels if data.discrete else None


def _context(flow: Flow, data: DataSplit) -> Optional[Tensor]:
    """One-hot labels as the context of a conditional flow (None for unconditional flows)."""
    if not flow.is_conditional:
        return None
    shape = tuple(flow.context_shape or ())
    if len(shape) != 1:
        raise UsageError(f"the CLI conditions flows on one-hot labels (K,), but this flow's context shape is {shape}")
    if data.num_classes is not None and data.num_classes > shape[0]:
        raise UsageError(f"data set {data.name!r} has {data.num_classes} classes, the flow's context only {shape[0]}")
    if data.labels is None:
        raise UsageError(f"data set {data.name!r} has no class labels to condition on")
    return torch.nn.functional.one_hot(data.labels.long(), shape[0]).float()


def _with_context(x: Tensor, context: Optional[Tensor]) -> Any:
    return x if context is None else (x, context)


# -- list -----------------------------------------------------------------------------------------------
def _summary(fn: Callable[..., Any]) -> str:
    doc = (getattr(fn, "__doc__", None) or "").strip().splitlines()
    return doc[0].strip() if doc else ""


def list_command(args: argparse.Namespace) -> int:
    """Prints the registered flows and the data sets."""
    from ..flows import FLOWS

    print("flows:")
    width = max(map(len, FLOWS), default=0)
    for name in sorted(FLOWS):
        print(f"  {name:<{width}}  {_summary(FLOWS[name])}")
    print("data sets:")
    for name in dataset_names():
        print(f"  {name}")
    return 0


# -- train ----------------------------------------------------------------------------------------------
def _check_flow_name(name: str) -> None:
    from ..flows.registry import flow_info

    try:
        flow_info(name)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _build_flow(name: str, event_shape: tuple[int, ...], hparams: dict[str, Any]) -> Flow:
    from ..flows import build

    _check_flow_name(name)
    try:
        return build(name, event_shape, **hparams)
    except TypeError as e:  # an unknown hyper-parameter
        raise UsageError(str(e).splitlines()[0]) from None


def _context_hparams(name: str, hparams: dict[str, Any], train: DataSplit, context: str) -> dict[str, Any]:
    """``--context labels`` (or a builder whose registry entry has a default context, ``cglow``): one-hot class
    labels of the data set as the context; ``--context none``: unconditional."""
    from ..flows.registry import flow_info

    info = flow_info(name)
    wanted = context == "labels" or (context == "auto" and info.default_context_shape is not None)
    if "context_shape" in hparams or not wanted:
        return hparams if wanted or info.default_context_shape is None else {**hparams, "context_shape": None}
    if not train.num_classes:
        raise UsageError(f"--context labels: data set {train.name!r} has no class labels to condition on")
    if not info.accepts(train.event_shape, conditional=True):
        raise UsageError(f"flow {name!r} cannot be conditional on data of shape {tuple(train.event_shape)}")
    return {**hparams, "context_shape": (train.num_classes,)}


def _fit_options(
    args: argparse.Namespace, out: Path, train: DataSplit, data_kw: dict[str, Any], device: torch.device
) -> dict[str, Any]:
    """The keywords of :func:`~pyro_flowzoo.train.fit` that the ``train`` flags set."""
    resume = None
    if args.resume:
        resume = out / "model.pt"
        if not resume.is_file():
            raise UsageError(f"--resume: no checkpoint at {resume}")
    epochs = args.epochs if args.steps is None and args.epochs is not None else (None if args.steps else 20)
    extra = {
        "data": args.data,
        "n_bins": _n_bins(train),
        "data_args": {k: v for k, v in data_kw.items() if isinstance(v, (int, float, str, bool))},
    }
    return dict(
        epochs=epochs,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        clip_grad=args.clip_grad or None,
        warmup_steps=args.warmup_steps,
        patience=args.patience,
        ema_decay=args.ema,
        method=args.method,
        seed=args.seed,
        compile=args.compile,
        n_bins=_n_bins(train),
        checkpoint=out / "model.pt",
        metrics_csv=out / "metrics.csv",
        checkpoint_extra=extra,
        resume=resume,
        progress=False if args.no_progress else None,
        device=device,
    )


def _report(args: argparse.Namespace, flow: Flow, train: DataSplit, out: Path, result: Any) -> None:
    """Rank 0's summary lines and pictures after training."""
    n_bins = _n_bins(train)
    best = result.best_valid_nll if n_bins is None else nats_to_bits(result.best_valid_nll, n_bins)
    unit = "nats/dim" if n_bins is None else "bits/dim"
    print(
        f"{result.steps} steps in {result.train_time:.1f} s ({result.stopped}); "
        f"best valid NLL {best:.4f} {unit} at epoch {result.best_epoch}"
    )
    if not args.no_plots:
        for path in plot.training_pictures(flow, train, out, result):
            print(f"wrote {path}")
    print(f"wrote {out / 'model.pt'} and {out / 'metrics.csv'}")


def _train(
    args: argparse.Namespace,
    hparams: dict[str, Any],
    data_kw: dict[str, Any],
    rank: int,
    world: int,
    device: torch.device,
) -> Flow:
    from ..train import fit  # looked up at call time: tests replace it

    out = Path(args.out)
    train = load_data(args.data, "train", **data_kw)
    valid = load_data(args.data, "valid", **data_kw)
    torch.manual_seed(args.seed)
    hparams = _context_hparams(args.flow, hparams, train, args.context)
    flow = _build_flow(args.flow, train.event_shape, hparams).to(device)
    c_train, c_valid = _context(flow, train), _context(flow, valid)
    options = _fit_options(args, out, train, data_kw, device)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        print(
            f"training {args.flow} ({flow.num_parameters} parameters) on {args.data} {tuple(train.x.shape)}"
            + (f" with {world} processes" if world > 1 else "")
            + f" on {device}",
            flush=True,
        )
    result = fit(
        flow,
        _with_context(train.tensor(integer=True), c_train),
        _with_context(valid.tensor(integer=True), c_valid),
        **options,
    )
    if rank == 0:
        _report(args, flow, train, out, result)
    return flow


def train_command(args: argparse.Namespace) -> Flow:
    """Runs ``train``; returns the trained flow (best weights). Rank 0 writes OUT/model.pt etc.

    Under torchrun (``WORLD_SIZE > 1``) it trains with DistributedDataParallel; only rank 0 logs and writes.
    """
    _check_flow_name(args.flow)  # fail before loading any data
    hparams = key_values(args.hparam, "--hparam")
    data_kw = key_values(args.data_arg, "--data-arg")
    started, rank, world, device = distributed.setup(args.device)
    ok = False
    try:
        flow = _train(args, hparams, data_kw, rank, world, device)
        ok = True
        return flow
    finally:
        if started:
            if ok:  # a failing rank must not wait here for the others (torchrun stops them)
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()


# -- sample ---------------------------------------------------------------------------------------------
def sample_command(args: argparse.Namespace) -> int:
    """Runs ``sample``: a sample grid (images) or a scatter of the samples (2-D)."""
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must be a .png file, got {str(out)!r}")
    if not args.temperature > 0:
        raise UsageError(f"--temperature must be positive, got {args.temperature}")
    flow, _ = flow_from_checkpoint(args.checkpoint, map_location=distributed.resolve_device(args.device))
    torch.manual_seed(args.seed)
    title = f"{args.num_samples} samples, T={args.temperature}" if tuple(flow.event_shape) == (2,) else None
    plot.samples_picture(flow, args.num_samples, temperature=args.temperature, title=title, path=out)
    print(f"wrote {out}")
    return 0


# -- eval -----------------------------------------------------------------------------------------------
def eval_command(args: argparse.Namespace) -> int:
    """Runs ``eval``: prints the NLL of a split in nats/dim (and bits/dim for images)."""
    from ..train import evaluate_nll

    _check_data_name(args.data)  # cheap checks first
    _check_split(args.split)
    flow, _ = flow_from_checkpoint(args.checkpoint, map_location=distributed.resolve_device(args.device))
    data = load_data(args.data, args.split, **key_values(args.data_arg, "--data-arg"))
    if tuple(data.event_shape) != tuple(flow.event_shape):
        raise UsageError(
            f"data set {args.data!r} has event shape {tuple(data.event_shape)}, but the flow in "
            f"{args.checkpoint} expects {tuple(flow.event_shape)}"
        )
    x = data.tensor(integer=True)
    nll = evaluate_nll(flow, x, args.batch_size, _context(flow, data), n_bins=_n_bins(data))
    line = f"{args.split} NLL on {args.data} ({x.shape[0]} points): {nll:.4f} nats/dim"
    if data.discrete:
        line += f", {nats_to_bits(nll, data.n_levels):.4f} bits/dim"
    elif data.true_log_prob is not None:
        with torch.no_grad():
            entropy = -data.true_log_prob(x.double()).mean().item() / math.prod(data.event_shape)
        line += f" (the true density on the same points: {entropy:.4f} nats/dim)"
    print(line)
    return 0
