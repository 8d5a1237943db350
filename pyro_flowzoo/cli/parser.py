"""The argument parser of ``pyro-flowzoo``: one sub-parser per command, ``key=value`` options, one-line errors."""

from __future__ import annotations

import argparse
import ast
import sys
from typing import Any, NoReturn, Optional, Sequence

__all__ = ["PROG", "UsageError", "build_parser", "key_values"]

PROG = "pyro-flowzoo"


class UsageError(ValueError):
    """Bad command-line input (reported in one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def key_values(items: Optional[Sequence[str]], what: str) -> dict[str, Any]:
    """Parses repeated ``key=value`` options; values with ``ast.literal_eval`` (else kept as strings).

    Example:
        >>> key_values(["hidden_dims=(16,)", "name=x"], "--hparam")
        {'hidden_dims': (16,), 'name': 'x'}
    """
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


def _add_train(sub: Any) -> None:
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
    t.add_argument(
        "--hparam",
        action="append",
        metavar="KEY=VALUE",
        help="flow hyper-parameter, repeatable (values parsed with ast.literal_eval)",
    )
    t.add_argument("--data-arg", action="append", metavar="KEY=VALUE", help="keyword for the data loader")
    t.add_argument(
        "--context",
        choices=("auto", "labels", "none"),
        default="auto",
        help="condition the flow on the data set's one-hot class labels (auto: only builders with a "
        "default context, such as cglow)",
    )
    t.add_argument("--compile", action="store_true", help="run the training loss through torch.compile")
    t.add_argument("--resume", action="store_true", help="continue from OUT/model.pt (same arguments)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--no-plots", action="store_true", help="skip the pictures")


def _add_sample(sub: Any) -> None:
    s = sub.add_parser("sample", help="draw samples from a trained flow into a picture")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--num-samples", type=_positive_int, default=64)
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--out", required=True, help="output picture (.png)")


def _add_eval(sub: Any) -> None:
    e = sub.add_parser("eval", help="negative log-likelihood of a trained flow on a data split")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", required=True)
    e.add_argument("--split", default="test")
    e.add_argument("--batch-size", type=_positive_int, default=1024)
    e.add_argument("--device", default="cpu")
    e.add_argument("--data-arg", action="append", metavar="KEY=VALUE", help="keyword for the data loader")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``pyro-flowzoo``.

    Example:
        >>> build_parser().parse_args(["train", "--flow", "nice", "--data", "moons", "--steps", "5"]).steps
        5
    """
    p = _Parser(prog=PROG, description="Normalizing flows for Pyro: train, sample and evaluate.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the flows and data sets")
    _add_train(sub)
    _add_sample(sub)
    _add_eval(sub)
    return p
