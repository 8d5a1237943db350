"""Command line: ``python -m pyro_flowzoo`` / ``pyro-flowzoo`` with ``list``, ``train``, ``sample``, ``eval``.

``train`` also runs under ``torchrun --nproc_per_node N -m pyro_flowzoo train ...``: it then trains with
DistributedDataParallel (gloo on CPU, nccl on CUDA), and only rank 0 logs and writes files.

Expected errors (unknown names, missing files, bad shapes, unreadable checkpoints) end with a one-line
``pyro-flowzoo: error: ...`` on stderr and exit status 2; a diverging run (NaN loss) exits with 1.

The parser is in :mod:`pyro_flowzoo.cli.parser`, one function per command in :mod:`pyro_flowzoo.cli.commands`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ..checkpoint import CheckpointError
from .commands import dataset_names, eval_command, list_command, load_data, sample_command, train_command
from .parser import PROG, UsageError, build_parser

__all__ = [
    "main",
    "build_parser",
    "train_command",
    "list_command",
    "sample_command",
    "eval_command",
    "load_data",
    "dataset_names",
    "UsageError",
]


def _run(command: str, args: argparse.Namespace) -> int:
    # commands are looked up here at call time, so that a replaced attribute of this module is the one run
    if command == "list":
        return list_command(args)
    if command == "train":
        train_command(args)
        return 0
    if command == "sample":
        return sample_command(args)
    return eval_command(args)


def _error(e: BaseException) -> int:
    """Writes the one-line message of an expected error; returns the exit status."""
    if isinstance(e, FloatingPointError):
        sys.stderr.write(f"{PROG}: error: training diverged: {str(e).splitlines()[0]}\n")
        return 1
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, KeyError):
        msg = f"missing entry {msg}"
    sys.stderr.write(f"{PROG}: error: {msg}\n")
    return 2


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
        return _run(args.command, args)
    except (FloatingPointError, UsageError, CheckpointError, ValueError, TypeError, OSError, KeyError) as e:
        return _error(e)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
