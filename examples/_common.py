"""Shared plumbing of the example scripts (not an example itself: the smoke test skips ``_*.py``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from pyro_flowzoo import metrics

os.environ.setdefault("MPLBACKEND", "Agg")


def parser(name: str, description: str) -> argparse.ArgumentParser:
    """The command line every example shares: ``--quick``, ``--seed``, ``--out``, ``--threads``."""
    p = argparse.ArgumentParser(prog=f"examples/{name}.py", description=description)
    p.add_argument("--quick", action="store_true", help="tiny data and models: finishes in seconds (smoke test)")
    p.add_argument("--seed", type=int, default=0, help="seed of torch, the data order and the samples")
    p.add_argument("--out", type=Path, default=Path("runs") / "examples" / name, help="where the pictures go")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: a shared machine)")
    return p


def setup(args: argparse.Namespace) -> Path:
    """Seeds torch, sets the thread count, creates ``args.out``; returns it."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    return args.out


def require(*builders: str) -> None:
    """Exits with a one-line message when a flow builder this example needs is not registered."""
    import pyro_flowzoo as fz

    missing = [b for b in builders if b not in fz.FLOWS]
    if missing:
        sys.exit(
            f"this example needs the flow builder(s) {missing}, not registered in this version of "
            f"pyro_flowzoo (available: {', '.join(sorted(fz.FLOWS))})"
        )


def load_images(preferred: Sequence[str], split: str, n: Optional[int] = None, **kw):
    """The first image set of ``preferred`` whose files are here (``digits`` always is); prints the fallback."""
    from pyro_flowzoo.data import load

    tried = []
    for name in list(preferred) + ["digits"]:
        try:
            opts = {k: v for k, v in kw.items() if name not in ("digits", "mnist", "fashion_mnist") or k != "n_bits"}
            d = load(name, split, n=n, **opts)
        except FileNotFoundError as e:
            tried.append(name)
            if split == "train":
                print(f"note: {str(e).split(';')[0]}; trying the next data set")
            continue
        if tried and split == "train":
            print(f"note: using {name} (not available here: {', '.join(tried)})")
        return d
    raise AssertionError("digits is bundled with scikit-learn and always loads")


def levels(d, n: Optional[int] = None) -> torch.Tensor:
    """Integer image levels (int64) of a DataSplit, as ``pyro_flowzoo.train.fit(..., n_bins=)`` wants them."""
    return d.tensor(n).round().long()


def write_metrics(out: Path, lines: Sequence[str]) -> None:
    (out / "metrics.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"pictures and metrics in {out}")


def bits_per_dim(nats_per_dim: float, n_bins: int) -> float:
    """Bits/dim of discrete data from the nats/dim of its dequantized density on [0, 1]^D."""
    return float(metrics.nats_to_bits(nats_per_dim, n_bins))
