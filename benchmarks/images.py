"""Test bits/dim of NICE, RealNVP, Glow (and conditional Glow) on 8x8 digits and MNIST after a fixed CPU budget.

Data (``pyro_flowzoo.data.load``): scikit-learn's 8x8 digits, 17 levels (train+valid = 1,397 images for
training, the 400 test images for evaluation); MNIST from ../shared/data/mnist, the 10,000 test images
of the IDX files (first 8,000 = the loader's train+valid for training, last 2,000 = its test split for
evaluation), 256 levels; skipped with a message when absent. Each batch is dequantized afresh
(``(k + u) / n_levels``); the flows end with ``Inverse(Logit(0.05))`` (RealNVP, Glow) or model [0, 1]
directly (NICE), so ``flow.log_prob`` is a density there and

    bits/dim = (-log p(x) + D log n_levels) / (D log 2)

(``pyro_flowzoo.bits_per_dim``), the figure the RealNVP and Glow papers report. Test figures use one
dequantization draw per image (seed 0). Training: Adam (lr 1e-3), batch 64, gradient-norm clipping at
5, for ``--budget`` seconds of wall time on one thread (``torch.set_num_threads(1)``); a non-finite loss
raises. The digits run also writes a 8x8 grid of samples (temperature 1 and 0.7) per builder to
``benchmarks/results_image/``.

    python benchmarks/images.py --data digits --budget 60
    python benchmarks/images.py --data mnist --budget 150
    python benchmarks/images.py --quick          # seconds: smoke run of everything
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torchvision.utils import save_image

import pyro_flowzoo as fz
from pyro_flowzoo.data import dequantize, load

OUT = Path(__file__).parent / "results_image"

# Sized for a CPU budget of minutes (the papers' models are 10-100x larger).
CONFIGS = {
    "digits": {
        "nice": {"hidden_dim": 256, "num_hidden_layers": 3},
        "realnvp": {"num_scales": 2, "num_blocks": 2, "hidden_channels": 32},
        "glow": {"levels": 2, "steps": 4, "hidden_channels": 64},
        "cglow": {"levels": 2, "steps": 4, "hidden_channels": 64, "context_shape": (10,)},
    },
    "mnist": {
        "nice": {"hidden_dim": 1000, "num_hidden_layers": 5},  # the NICE paper's MNIST model
        "realnvp": {"num_scales": 2, "num_blocks": 1, "hidden_channels": 32},
        "glow": {"levels": 2, "steps": 4, "hidden_channels": 64},
    },
}


def get_data(name: str, quick: bool):
    if name == "digits":
        parts = [load("digits", s) for s in ("train", "valid")]
        test = load("digits", "test")
    else:
        try:
            parts = [load("mnist", s) for s in ("train", "valid")]
            test = load("mnist", "test")
        except FileNotFoundError as error:
            print(f"MNIST skipped: {error}", file=sys.stderr)
            return None
    x = torch.cat([p.x for p in parts])
    y = torch.cat([p.labels for p in parts])
    if quick:
        x, y = x[:256], y[:256]
        test.x, test.labels = test.x[:128], test.labels[:128]
    return x, y, test.x, test.labels, test.n_levels


@torch.no_grad()
def test_bpd(flow, x, y, n_levels, conditional: bool) -> float:
    flow.eval()
    g = torch.Generator().manual_seed(0)
    total = 0.0
    for i in range(0, len(x), 500):
        xb = dequantize(x[i : i + 500], n_levels, generator=g)
        ctx = torch.nn.functional.one_hot(y[i : i + 500], 10).float() if conditional else None
        total += fz.bits_per_dim(flow.log_prob(xb, ctx), flow.event_shape, n_levels).sum().item()
    flow.train()
    return total / len(x)


def train(flow, x, y, n_levels, budget: float, conditional: bool, batch: int = 64) -> tuple[int, float]:
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    start = time.perf_counter()
    steps, epoch_losses = 0, []
    while time.perf_counter() - start < budget:
        order = torch.randperm(len(x))
        for i in range(0, len(x) - batch + 1, batch):
            idx = order[i : i + batch]
            xb = dequantize(x[idx], n_levels)
            ctx = torch.nn.functional.one_hot(y[idx], 10).float() if conditional else None
            loss = fz.bits_per_dim(flow.log_prob(xb, ctx), flow.event_shape, n_levels).mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {loss.item()} at step {steps}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 5.0)
            opt.step()
            steps += 1
            epoch_losses.append(loss.item())
            if time.perf_counter() - start >= budget:
                break
    return steps, sum(epoch_losses[-20:]) / max(1, len(epoch_losses[-20:]))


@torch.no_grad()
def write_grid(flow, name: str, conditional: bool) -> list[str]:
    flow.eval()
    paths = []
    for temperature in (1.0, 0.7):
        torch.manual_seed(0)
        if conditional:
            ctx = torch.nn.functional.one_hot(torch.arange(10).repeat_interleave(8), 10).float()
            s = flow.sample((), temperature=temperature, context=ctx)  # row k: class k
        else:
            s = flow.sample((64,), temperature=temperature)
        path = OUT / f"digits_{name}_T{temperature:g}.png"
        save_image(s.clamp(0, 1), path, nrow=8, padding=1, pad_value=0.5)
        paths.append(str(path.relative_to(Path(__file__).parent.parent)))
    flow.train()
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["digits", "mnist", "both"], default="both")
    parser.add_argument("--models", default="nice,realnvp,glow,cglow")
    parser.add_argument("--budget", type=float, default=None, help="seconds of training per model")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(exist_ok=True)
    sets = ["digits", "mnist"] if args.data == "both" else [args.data]
    for data_name in sets:
        data = get_data(data_name, args.quick)
        if data is None:
            continue
        x, y, xt, yt, n_levels = data
        default = 3 if args.quick else (60 if data_name == "digits" else 150)
        budget = args.budget if args.budget is not None else default
        for model in args.models.split(","):
            if model not in CONFIGS[data_name]:
                continue
            torch.manual_seed(0)
            hparams = dict(CONFIGS[data_name][model])
            flow = fz.build(model, tuple(x.shape[1:]), **hparams)
            conditional = model == "cglow"
            init_bpd = test_bpd(flow, xt, yt, n_levels, conditional)  # eval mode: ActNorm stays uninitialised
            t0 = time.perf_counter()
            steps, train_bpd = train(flow, x, y, n_levels, budget, conditional)
            seconds = time.perf_counter() - t0
            row = {
                "data": data_name,
                "model": model,
                "hparams": {k: list(v) if isinstance(v, tuple) else v for k, v in hparams.items()},
                "params": flow.num_parameters,
                "train_seconds": round(seconds, 1),
                "steps": steps,
                "images_per_s_train": round(steps * 64 / seconds, 1),
                "train_bpd_last20": round(train_bpd, 4),
                "test_bpd": round(test_bpd(flow, xt, yt, n_levels, conditional), 4),
                "test_bpd_untrained": round(init_bpd, 4),
                "n_train": len(x),
                "n_test": len(xt),
                "n_levels": n_levels,
            }
            if data_name == "digits":
                row["samples"] = write_grid(flow, model, conditional)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
