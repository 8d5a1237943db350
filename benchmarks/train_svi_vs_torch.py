"""Step time of fit()'s two paths (Pyro SVI vs plain torch) on RealNVP / moons, batch 256, CPU.

Run: ``.venv/bin/python benchmarks/train_svi_vs_torch.py [--steps 60] [--rounds 3]``. Rounds alternate
the two paths so that load from other processes hits both alike; the median per-step time is reported.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from pyro_flowzoo import build
from pyro_flowzoo.data import sample_moons
from pyro_flowzoo.train import fit


def time_path(method: str, steps: int, data: torch.Tensor) -> float:
    torch.manual_seed(0)
    flow = build("realnvp", (2,))
    result = fit(flow, data, steps=steps, batch_size=256, method=method, seed=0, progress=False, init_batch_size=0)
    return result.train_time / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = sample_moons(256 * args.steps, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {"torch": [], "svi": []}
    time_path("torch", 5, data)  # warm-up
    for _ in range(args.rounds):
        for method in ("torch", "svi"):
            times[method].append(time_path(method, args.steps, data))
    t, s = statistics.median(times["torch"]), statistics.median(times["svi"])
    print(f"realnvp (8 layers, 64x64 MLPs) on moons, batch 256, {args.steps} steps x {args.rounds} rounds, 1 thread")
    print(f"torch path: {1e3 * t:.2f} ms/step   svi path: {1e3 * s:.2f} ms/step   svi/torch = {s / t:.2f}")


if __name__ == "__main__":
    main()
