"""`make demo`: every registered vector flow on 2-D toy sets and a small Glow on digits.

Writes under ``--out`` (default ``runs/demo``):

- ``<data>_densities.png``: per data set, the true density with data, then each flow's density heat
  map with its samples;
- ``digits_<flow>_samples.png`` (and ``digits_data.png``): image samples next to real digits;
- ``<flow>_<data>.pt``: the trained flows (use ``python -m pyro_flowzoo sample/eval --checkpoint``);
- ``metrics.md``: flow, data, test NLL in nats/dim (bits/dim for images), the true entropy where
  known, parameters and training time.

A few minutes on 2 CPU cores; ``--quick`` runs every flow for a handful of steps (seconds, for tests).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from pyro_flowzoo import FLOWS, build, plot  # noqa: E402
from pyro_flowzoo.checkpoint import checkpoint_payload, save_checkpoint  # noqa: E402
from pyro_flowzoo.data import DATASETS, load  # noqa: E402
from pyro_flowzoo.metrics import nats_to_bits  # noqa: E402
from pyro_flowzoo.train import evaluate_nll, fit  # noqa: E402

# Small settings that train in seconds on 2 cores; builders not listed here use their defaults.
VECTOR_HPARAMS: dict[str, dict[str, Any]] = {
    "nice": {"num_layers": 4, "hidden_dims": (64, 64)},
    "realnvp": {"num_layers": 6, "hidden_dims": (64, 64)},
    "planar": {"num_layers": 16},
    "radial": {"num_layers": 16},
}
DATA_2D = ["moons", "smiley"]
IMAGE_RUNS: list[tuple[str, dict[str, Any], float]] = [
    # (builder, hyper-parameters, learning rate)
    ("glow", {"levels": 2, "steps": 4, "hidden_channels": 32}, 2e-3),
]


def vector_flows() -> list[str]:
    """Registered builders that accept 2-D vectors (image-only builders raise ValueError and are skipped)."""
    names = []
    for name in sorted(FLOWS):
        try:
            flow = build(name, (2,), **VECTOR_HPARAMS.get(name, {}))
        except (ValueError, TypeError):
            continue
        if not flow.is_conditional:
            names.append(name)
    return names


def _grid(data: torch.Tensor, g: int) -> tuple[torch.Tensor, tuple[float, float, float, float]]:
    lo = torch.quantile(data.float(), 0.002, dim=0) - 0.4
    hi = torch.quantile(data.float(), 0.998, dim=0) + 0.4
    xs, ys = torch.linspace(lo[0], hi[0], g), torch.linspace(lo[1], hi[1], g)
    pts = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)
    return pts, (lo[0].item(), hi[0].item(), lo[1].item(), hi[1].item())


def _panel(ax: Any, density: torch.Tensor, extent: tuple[float, ...], points: torch.Tensor, title: str) -> None:
    ax.imshow(density.numpy(), origin="lower", extent=extent, cmap="viridis", aspect="auto")
    pts = points.float().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=1.5, c="white", alpha=0.4, linewidths=0)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def run_2d(
    name: str, flows: list[str], out: Path, steps: int, g: int, rows: list[dict[str, Any]], quick: bool = False
) -> None:
    sizes = {"train": 500, "valid": 200, "test": 200} if quick else {"train": 5000, "valid": 1000, "test": 5000}
    train, valid, test = (load(name, s, n=n) for s, n in sizes.items())
    pts, extent = _grid(train.x, g)
    panels = []
    results = {}
    entropy = None
    if test.true_log_prob is not None:
        with torch.no_grad():
            entropy = -test.true_log_prob(test.x.double()).mean().item() / 2
            panels.append(
                ("data (true density)", test.true_log_prob(pts.double()).exp().reshape(g, g).float(), test.x[:1000])
            )
    for flow_name in flows:
        torch.manual_seed(0)
        flow = build(flow_name, (2,), **VECTOR_HPARAMS.get(flow_name, {}))
        result = fit(
            flow,
            train.x,
            valid.x,
            steps=steps,
            batch_size=64 if quick else 256,
            lr=3e-3,
            seed=0,
            progress=False,
            patience=None,
        )
        nll = evaluate_nll(flow, test.x)
        results[flow_name] = result
        with torch.no_grad():
            density = flow.log_prob(pts).exp().reshape(g, g)
            samples = flow.sample((1000,))
        panels.append((f"{flow_name}: {nll:.3f} nats/dim", density, samples))
        save_checkpoint(
            out / f"{flow_name}_{name}.pt", checkpoint_payload(flow, metrics={"test_nll": nll}, extra={"data": name})
        )
        rows.append(
            {
                "flow": flow_name,
                "data": name,
                "nll": nll,
                "bpd": None,
                "entropy": entropy,
                "params": flow.num_parameters,
                "time": result.train_time,
            }
        )
        print(
            f"{flow_name:>14} on {name}: test NLL {nll:.4f} nats/dim"
            + (f" (true entropy {entropy:.4f})" if entropy is not None else "")
            + f", {result.steps} steps in {result.train_time:.1f} s",
            flush=True,
        )
    cols = min(4, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, 2.6 * nrows), dpi=100, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, density, points) in zip(axes.flat, panels):
        ax.axis("on")
        _panel(ax, density, extent, points, title)
    fig.suptitle(f"{name}: densities and samples", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / f"{name}_densities.png")
    plt.close(fig)
    plot.training_curves(results, title=f"{name}: train (solid) / valid (dashed)", path=out / f"{name}_curves.png")


def run_images(out: Path, steps: int, rows: list[dict[str, Any]], quick: bool = False) -> Optional[str]:
    if "digits" not in DATASETS:
        return "digits data set not available: image run skipped"
    n = 200 if quick else None  # digits: train 1,200 / valid 197 / test 400 images
    train, valid, test = (load("digits", s, **({"n": n} if n else {})) for s in ("train", "valid", "test"))
    plot.image_grid(train.x[:64], n_levels=train.n_levels, title="digits (data)", path=out / "digits_data.png")
    results = {}
    for flow_name, hparams, lr in IMAGE_RUNS:
        if flow_name not in FLOWS:
            continue
        torch.manual_seed(0)
        flow = build(flow_name, train.event_shape, **hparams)
        # integer levels: fit() and evaluate_nll() dequantize them with n_bins
        result = fit(
            flow,
            train.tensor(integer=True),
            valid.tensor(integer=True),
            steps=steps,
            batch_size=32 if quick else 128,
            lr=lr,
            seed=0,
            n_bins=train.n_levels,
            progress=False,
            patience=None,
        )
        nll = evaluate_nll(flow, test.tensor(integer=True), n_bins=test.n_levels)
        bpd = nats_to_bits(nll, test.n_levels)
        with torch.no_grad():
            plot.image_grid(
                flow.sample((64,), temperature=0.8),
                title=f"{flow_name} samples (T=0.8)",
                path=out / f"digits_{flow_name}_samples.png",
            )
        results[flow_name] = result
        save_checkpoint(
            out / f"{flow_name}_digits.pt",
            checkpoint_payload(flow, metrics={"test_nll": nll}, extra={"data": "digits"}),
        )
        rows.append(
            {
                "flow": flow_name,
                "data": "digits",
                "nll": nll,
                "bpd": bpd,
                "entropy": None,
                "params": flow.num_parameters,
                "time": result.train_time,
            }
        )
        print(
            f"{flow_name:>14} on digits: test {bpd:.4f} bits/dim ({nll:.4f} nats/dim), "
            f"{result.steps} steps in {result.train_time:.1f} s",
            flush=True,
        )
    if results:
        plot.training_curves(results, title="digits: train (solid) / valid (dashed)", path=out / "digits_curves.png")
    return None


def write_table(rows: list[dict[str, Any]], path: Path, notes: list[str], wall: float) -> str:
    def f(v: Optional[float]) -> str:
        return "" if v is None else f"{v:.4f}"

    lines = [
        "# make demo: test-set negative log-likelihood",
        "",
        "| flow | data | test NLL (nats/dim) | test bits/dim | true entropy (nats/dim) | parameters | train time (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['flow']} | {r['data']} | {f(r['nll'])} | {f(r['bpd'])} | {f(r['entropy'])} | "
            f"{r['params']} | {r['time']:.1f} |"
        )
    lines += [
        "",
        "NLL of images: density of the dequantized pixels on [0, 1]; bits/dim include the "
        "discretization correction. True entropy: Monte Carlo over the test split with the exact density.",
        f"Total wall time {wall:.0f} s (`{_command()}`).",
    ]
    lines += [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def _command() -> str:
    import sys

    return "python " + " ".join(["examples/demo.py", *sys.argv[1:]])


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--quick", action="store_true", help="a few steps per flow (smoke test)")
    parser.add_argument("--steps", type=int, default=None, help="steps per 2-D run (default 500, quick 5)")
    parser.add_argument("--image-steps", type=int, default=None, help="steps of the digits run (default 400)")
    args = parser.parse_args(argv)
    # one thread: the models are small, and on a shared 2-core machine a second OpenMP thread mostly spins
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = args.steps or (5 if args.quick else 500)
    image_steps = args.image_steps or (3 if args.quick else 400)
    g = 40 if args.quick else 150
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    flows = vector_flows()
    data_sets = [d for d in DATA_2D if d in DATASETS]
    for name in data_sets[:1] if args.quick else data_sets:
        run_2d(name, flows, out, steps, g, rows, args.quick)
    note = run_images(out, image_steps, rows, args.quick)
    if note:
        notes.append(note)
    text = write_table(rows, out / "metrics.md", notes, time.perf_counter() - t0)
    print(text)
    print(f"wrote pictures, checkpoints and metrics.md under {out}")


if __name__ == "__main__":
    main()
