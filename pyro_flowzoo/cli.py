"""Command line: ``python -m pyro_flowzoo`` / ``pyro-flowzoo`` with ``list``, ``train``, ``sample``, ``eval``.

``train`` also runs under ``torchrun --nproc_per_node N -m pyro_flowzoo train ...``: it then trains with
DistributedDataParallel (gloo on CPU, nccl on CUDA), and only rank 0 logs and writes files.

Expected errors (unknown names, missing files, bad shapes, unreadable checkpoints) end with a one-line
``pyro-flowzoo: error: ...`` on stderr and exit status 2; a diverging run (NaN loss) exits with 1.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, Sequence

import torch
from torch import Tensor

from .checkpoint import CheckpointError, flow_from_checkpoint
from .flow import Flow

__all__ = ["main", "build_parser", "train_command", "Dataset", "load_data", "dataset_names"]

PROG = "pyro-flowzoo"


class UsageError(ValueError):
    """Bad command-line input (reported in one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


# ------------------------------------------------------------------------------------------------
# data sets
# ------------------------------------------------------------------------------------------------
@dataclass
class Dataset:
    """One split of a data set as the CLI uses it (a tensor view of :class:`pyro_flowzoo.data.DataSplit`).

    Attributes:
        name: data set name.
        x: the data ``(N, *event_shape)``: floats, or integer levels (uint8/int64) for images.
        n_bins: number of levels for image data (None for continuous data).
        log_prob: the true log-density where known (2-D toys), else None.
        labels: class labels ``(N,)`` where the set has them, else None.
        num_classes: number of classes where known.
    """

    name: str
    x: Tensor
    n_bins: Optional[int] = None
    log_prob: Optional[Callable[[Tensor], Tensor]] = None
    labels: Optional[Tensor] = None
    num_classes: Optional[int] = None

    @property
    def event_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.x.dim() == 4

    def one_hot(self, num_classes: Optional[int] = None) -> Tensor:
        """The labels as one-hot float vectors (the context of conditional flows)."""
        k = num_classes or self.num_classes
        if self.labels is None or k is None:
            raise UsageError(f"data set {self.name!r} has no class labels to condition on")
        return torch.nn.functional.one_hot(self.labels.long(), k).float()


_SPLITS = ("train", "valid", "test")


def dataset_names() -> list[str]:
    """Names of the data sets ``train``/``eval`` accept.

    Example:
        >>> "moons" in dataset_names() and "digits" in dataset_names()
        True
    """
    from .data import DATASETS

    return list(DATASETS)


def load_data(name: str, split: str = "train", **kwargs: Any) -> Dataset:
    """Loads split ``split`` of data set ``name`` with :func:`pyro_flowzoo.data.load` as one tensor.

    Image levels become an integer tensor (so that :func:`~pyro_flowzoo.train.fit` dequantizes them);
    unknown names, splits or options and unavailable files raise a one-line error.

    Example:
        >>> d = load_data("digits", "test")
        >>> d.event_shape, d.x.dtype, d.n_bins
        ((1, 8, 8), torch.uint8, 17)
    """
    from .data import DATASETS, load

    if name not in DATASETS:
        raise UsageError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    if split not in _SPLITS:
        raise UsageError(f"unknown split {split!r}; choose one of: {', '.join(_SPLITS)}")
    try:
        out = load(name, split, **kwargs)
        x = out.tensor()
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UsageError(f"data set {name!r} ({split}): {msg}") from None
    n_bins = out.n_levels if out.discrete else None
    if n_bins is not None and x.is_floating_point():
        # integer levels stored as floats: make them integers so that fit() dequantizes them
        x = x.round().to(torch.uint8 if n_bins <= 256 else torch.long)
    return Dataset(name, x, n_bins, out.true_log_prob, out.labels, out.num_classes)


# ------------------------------------------------------------------------------------------------
# argument parsing
# ------------------------------------------------------------------------------------------------
def _key_values(items: Optional[Sequence[str]], what: str) -> dict[str, Any]:
    """Parses repeated ``key=value`` options; values with ``ast.literal_eval`` (else kept as strings)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"{what} must look like key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pyro-flowzoo``.

    Example:
        >>> build_parser().parse_args(["train", "--flow", "nice", "--data", "moons", "--steps", "5"]).steps
        5
    """
    p = _Parser(prog=PROG, description="Normalizing flows for Pyro: train, sample and evaluate.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="list the flows and data sets")

    t = sub.add_parser("train", help="train a flow by maximum likelihood")
    t.add_argument("--flow", required=True, help="flow builder name (see `list`)")
    t.add_argument("--data", required=True, help="data set name (see `list`)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=_positive_int, help="budget in passes over the data (default 20)")
    budget.add_argument("--steps", type=_positive_int, help="budget in optimizer steps")
    t.add_argument("--batch-size", type=_positive_int, default=256)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--optimizer", choices=("adam", "adamax"), default="adam")
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--clip-grad", type=float, default=5.0, help="max global grad norm (0 disables)")
    t.add_argument("--warmup-steps", type=int, default=None)
    t.add_argument("--patience", type=int, default=20, help="early-stopping patience in epochs")
    t.add_argument("--ema", type=float, default=None, metavar="DECAY", help="EMA of the weights (e.g. 0.999)")
    t.add_argument("--method", choices=("torch", "svi"), default="torch", help="plain torch loop or Pyro SVI")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    t.add_argument("--out", default="runs/train", help="output folder (model.pt, metrics.csv, pictures)")
    t.add_argument("--hparam", action="append", metavar="KEY=VALUE",
                   help="flow hyper-parameter, repeatable (values parsed with ast.literal_eval)")
    t.add_argument("--data-arg", action="append", metavar="KEY=VALUE", help="keyword for the data loader")
    t.add_argument("--resume", action="store_true", help="continue from OUT/model.pt (same arguments)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--no-plots", action="store_true", help="skip the pictures")

    s = sub.add_parser("sample", help="draw samples from a trained flow into a picture")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--num-samples", type=_positive_int, default=64)
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", required=True, help="output picture (.png)")

    e = sub.add_parser("eval", help="negative log-likelihood of a trained flow on a data split")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--split", default="test")
    e.add_argument("--batch-size", type=_positive_int, default=1024)
    e.add_argument("--device", default="cpu")
    e.add_argument("--data-arg", action="append", metavar="KEY=VALUE", help="keyword for the data loader")
    return p


# ------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------
def _summary(fn: Callable[..., Any]) -> str:
    doc = (getattr(fn, "__doc__", None) or "").strip().splitlines()
    return doc[0].strip() if doc else ""


def list_command(args: argparse.Namespace) -> int:
    """Prints the registered flows and the data sets."""
    from .flows import FLOWS

    print("flows:")
    width = max(map(len, FLOWS), default=0)
    for name in sorted(FLOWS):
        print(f"  {name:<{width}}  {_summary(FLOWS[name])}")
    print("data sets:")
    for name in dataset_names():
        print(f"  {name}")
    return 0


def _device(spec: Optional[str], local_rank: Optional[int] = None) -> torch.device:
    if spec is None:
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"unknown device {spec!r}; expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {spec!r} requested but CUDA is not available; use --device cpu")
        if local_rank is not None and dev.index is None:
            dev = torch.device("cuda", local_rank)
    return dev


def _ddp_setup(device_spec: Optional[str]) -> tuple[bool, int, int, torch.device]:
    """Starts the process group when run by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (torch.distributed.is_available() and torch.distributed.is_initialized()):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank = torch.distributed.get_rank()
            return False, rank, torch.distributed.get_world_size(), _device(device_spec)
        return False, 0, 1, _device(device_spec)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _device(device_spec, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    torch.distributed.init_process_group(backend=backend)
    return True, torch.distributed.get_rank(), torch.distributed.get_world_size(), dev


def _build_flow(name: str, event_shape: tuple[int, ...], hparams: dict[str, Any]) -> Flow:
    from .flows import FLOWS, build

    if name not in FLOWS:
        raise UsageError(f"unknown flow {name!r}; choose one of: {', '.join(sorted(FLOWS))}")
    try:
        return build(name, event_shape, **hparams)
    except TypeError as e:  # an unknown hyper-parameter
        raise UsageError(str(e).splitlines()[0]) from None


def _context_hparams(name: str, hparams: dict[str, Any], train: Dataset) -> dict[str, Any]:
    """For builders with a ``context_shape``: default it to one-hot class labels of the data set."""
    import inspect

    from .flows import FLOWS

    params = inspect.signature(FLOWS[name]).parameters
    if "context_shape" in params and "context_shape" not in hparams and train.num_classes:
        hparams = {**hparams, "context_shape": (train.num_classes,)}
    return hparams


def _context(flow: Flow, data: Dataset) -> Optional[Tensor]:
    """One-hot labels as the context of a conditional flow (None for unconditional flows)."""
    if not flow.is_conditional:
        return None
    shape = tuple(flow.context_shape or ())
    if len(shape) != 1:
        raise UsageError(f"the CLI conditions flows on one-hot labels (K,), but this flow's context shape is {shape}")
    if data.num_classes is not None and data.num_classes > shape[0]:
        raise UsageError(f"data set {data.name!r} has {data.num_classes} classes, the flow's context only {shape[0]}")
    return data.one_hot(shape[0])


def train_command(args: argparse.Namespace) -> Flow:
    """Runs ``train``; returns the trained flow (best weights). Rank 0 writes OUT/model.pt etc."""
    from .flows import FLOWS
    from .train import fit

    if args.flow not in FLOWS:  # fail before loading any data
        raise UsageError(f"unknown flow {args.flow!r}; choose one of: {', '.join(sorted(FLOWS))}")
    hparams = _key_values(args.hparam, "--hparam")
    data_kw = _key_values(args.data_arg, "--data-arg")
    started, rank, world, dev = _ddp_setup(args.device)
    ok = False
    try:
        out = Path(args.out)
        train = load_data(args.data, "train", **data_kw)
        valid = load_data(args.data, "valid", **data_kw)
        torch.manual_seed(args.seed)
        flow = _build_flow(args.flow, train.event_shape, _context_hparams(args.flow, hparams, train)).to(dev)
        c_train, c_valid = _context(flow, train), _context(flow, valid)
        resume = None
        if args.resume:
            resume = out / "model.pt"
            if not resume.is_file():
                raise UsageError(f"--resume: no checkpoint at {resume}")
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            print(f"training {args.flow} ({flow.num_parameters} parameters) on {args.data} "
                  f"{tuple(train.x.shape)}" + (f" with {world} processes" if world > 1 else "")
                  + f" on {dev}", flush=True)
        epochs = args.epochs if args.steps is None and args.epochs is not None else (None if args.steps else 20)
        extra = {"data": args.data, "n_bins": train.n_bins,
                 "data_args": {k: v for k, v in data_kw.items() if isinstance(v, (int, float, str, bool))}}
        result = fit(flow, train.x if c_train is None else (train.x, c_train),
                     valid.x if c_valid is None else (valid.x, c_valid),
                     epochs=epochs, steps=args.steps, batch_size=args.batch_size,
                     lr=args.lr, optimizer=args.optimizer, weight_decay=args.weight_decay,
                     clip_grad=args.clip_grad or None, warmup_steps=args.warmup_steps, patience=args.patience,
                     ema_decay=args.ema, method=args.method, seed=args.seed, n_bins=train.n_bins,
                     checkpoint=out / "model.pt", metrics_csv=out / "metrics.csv", checkpoint_extra=extra,
                     resume=resume, progress=False if args.no_progress else None, device=dev)
        if rank == 0:
            unit = "nats/dim" if train.n_bins is None else "bits/dim"
            best = result.best_valid_nll
            if train.n_bins is not None:
                best = (best + math.log(train.n_bins)) / math.log(2)
            print(f"{result.steps} steps in {result.train_time:.1f} s ({result.stopped}); "
                  f"best valid NLL {best:.4f} {unit} at epoch {result.best_epoch}")
            if not args.no_plots:
                for path in _pictures(flow, train, out, result):
                    print(f"wrote {path}")
            print(f"wrote {out / 'model.pt'} and {out / 'metrics.csv'}")
        ok = True
        return flow
    finally:
        if started:
            if ok:  # a failing rank must not wait here for the others (torchrun stops them)
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def _class_contexts(flow: Flow, n: int) -> Optional[Tensor]:
    """Contexts for sampling a conditional flow: one-hot classes in turn, sorted (one grid row per class)."""
    if not flow.is_conditional:
        return None
    k = tuple(flow.context_shape or ())
    if len(k) != 1:
        raise UsageError(f"cannot sample a flow conditioned on contexts of shape {k} from the command line")
    labels = torch.arange(n) % k[0]
    return torch.nn.functional.one_hot(labels.sort().values, k[0]).float()


def _draw(flow: Flow, n: int, temperature: float = 1.0) -> Tensor:
    ctx = _class_contexts(flow, n)
    dev = next((b.device for b in flow.buffers()), torch.device("cpu"))
    with torch.no_grad():
        if ctx is None:
            return flow.sample((n,), temperature=temperature)
        return flow.sample((), temperature=temperature, context=ctx.to(dev))


def _pictures(flow: Flow, data: Dataset, out: Path, result: Any = None) -> list[Path]:
    """Pictures with :mod:`pyro_flowzoo.plot`: density panels (2-D) or a sample grid (images), and curves."""
    from . import plot

    flow = flow.cpu().eval()
    paths = []
    title = f"{flow.builder} on {data.name}"
    if data.event_shape == (2,) and not flow.is_conditional:
        paths.append(out / "density.png")
        plot.density_2d(flow, data.x[:2000], true_log_prob=data.log_prob, resolution=120, n_samples=1000,
                        title=title, path=paths[-1])
    elif data.is_image:
        paths.append(out / "samples.png")
        n = 100 if flow.is_conditional else 64
        plot.image_grid(_draw(flow, n), nrow=10 if flow.is_conditional else None, title=title, path=paths[-1])
    if result is not None and result.train_nll:
        paths.append(out / "curves.png")
        plot.training_curves(result, unit="nats/dim", title=title, path=paths[-1])
    return paths


def save_image_grid(images: Tensor, path: Path, nrow: Optional[int] = None) -> None:
    """Saves images ``(N, C, H, W)`` with values in ``[0, 1]`` as one grid picture (via :mod:`pyro_flowzoo.plot`)."""
    from . import plot

    plot.image_grid(images.detach().float().cpu(), nrow=nrow, path=path)


def sample_command(args: argparse.Namespace) -> int:
    """Runs ``sample``: a sample grid (images) or a scatter over the density (2-D)."""
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out must be a .png file, got {str(out)!r}")
    if not args.temperature > 0:
        raise UsageError(f"--temperature must be positive, got {args.temperature}")
    flow, _ = flow_from_checkpoint(args.checkpoint, map_location=_device(args.device))
    torch.manual_seed(args.seed)
    shape = tuple(flow.event_shape)
    x = _draw(flow, args.num_samples, args.temperature)
    if len(shape) == 3:
        save_image_grid(x, out, nrow=math.ceil(args.num_samples / flow.context_shape[0]) if flow.is_conditional
                        else None)
    elif shape == (2,):
        _scatter(x.cpu(), out, f"{args.num_samples} samples, T={args.temperature}")
    else:
        raise UsageError(f"cannot draw samples of shape {shape} as a picture (2-D points or (C, H, W) images)")
    print(f"wrote {out}")
    return 0


def _scatter(x: Tensor, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    pts = x.float().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.6)
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal", adjustable="datalim")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def eval_command(args: argparse.Namespace) -> int:
    """Runs ``eval``: prints the NLL of a split in nats/dim (and bits/dim for images)."""
    from .data import DATASETS
    from .train import evaluate_nll

    if args.data not in DATASETS:  # cheap checks first
        raise UsageError(f"unknown data set {args.data!r}; choose one of: {', '.join(DATASETS)}")
    if args.split not in _SPLITS:
        raise UsageError(f"unknown split {args.split!r}; choose one of: {', '.join(_SPLITS)}")
    dev = _device(args.device)
    flow, payload = flow_from_checkpoint(args.checkpoint, map_location=dev)
    data = load_data(args.data, args.split, **_key_values(args.data_arg, "--data-arg"))
    if data.event_shape != tuple(flow.event_shape):
        raise UsageError(f"data set {args.data!r} has event shape {data.event_shape}, but the flow in "
                         f"{args.checkpoint} expects {tuple(flow.event_shape)}")
    nll = evaluate_nll(flow, data.x, args.batch_size, _context(flow, data), n_bins=data.n_bins)
    line = f"{args.split} NLL on {args.data} ({data.x.shape[0]} points): {nll:.4f} nats/dim"
    if data.n_bins is not None:
        line += f", {(nll + math.log(data.n_bins)) / math.log(2):.4f} bits/dim"
    elif data.log_prob is not None:
        with torch.no_grad():
            entropy = -data.log_prob(data.x.double()).mean().item() / data.x[0].numel()
        line += f" (the true density on the same points: {entropy:.4f} nats/dim)"
    print(line)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``pyro-flowzoo`` / ``python -m pyro_flowzoo``; returns the exit status.

    Example:
        >>> main(["eval", "--checkpoint", "/no/such/model.pt", "--data", "moons"])  # one line on stderr
        2
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a one-line usage error (2)
        return e.code if isinstance(e.code, int) else 2
    try:
        if args.command == "list":
            return list_command(args)
        if args.command == "train":
            train_command(args)
            return 0
        if args.command == "sample":
            return sample_command(args)
        return eval_command(args)
    except FloatingPointError as e:
        sys.stderr.write(f"{PROG}: error: training diverged: {str(e).splitlines()[0]}\n")
        return 1
    except (UsageError, CheckpointError, ValueError, TypeError, OSError, KeyError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, KeyError):
            msg = f"missing entry {msg}"
        sys.stderr.write(f"{PROG}: error: {msg}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
