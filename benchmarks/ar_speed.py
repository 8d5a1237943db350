"""Sampling speed of the sequential (latent -> data) direction on one CPU thread.

- ``ar_flow`` on 2-D (float64): 100,000 samples, after a short fit on moons so the mixtures are not
  the initial ones; round-trip errors ``|z - T^{-1}(T(z))|`` and ``|x - T(T^{-1}(x))|``.
- ``pixelcnn_flow`` on 1x20x20: 64 samples (400 sequential PixelCNN passes), default size.

    python benchmarks/ar_speed.py [--fit-epochs 30] [--repeats 3] [--skip-pixelcnn]
"""

from __future__ import annotations

import argparse
import time

import torch

import pyro_flowzoo as fz
from pyro_flowzoo.data import sample_moons
from pyro_flowzoo.train import evaluate_nll, fit


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fit-epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-pixelcnn", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    g = torch.Generator().manual_seed(0)
    data = sample_moons(2000, generator=g)
    flow = fz.build("ar_flow", (2,))
    fit(flow, data[:1800], data[1800:], epochs=args.fit_epochs, lr=1e-3, progress=False, seed=0)
    flow = flow.double()
    print(f"ar_flow fitted {args.fit_epochs} epochs: valid NLL {evaluate_nll(flow, data[1800:].double()):.3f}")
    z = flow.base.sample((100_000,))
    with torch.no_grad():
        t, x = best_time(lambda: flow.from_latent(z)[0], args.repeats)
        z_back, _ = flow.to_latent(x)
        x_back, _ = flow.from_latent(z_back)
    print(
        f"ar_flow 2-D float64: 100,000 samples in {t:.3f} s (best of {args.repeats}); "
        f"max |z - T^-1(T(z))| = {(z_back - z).abs().max().item():.2e}, "
        f"max |x - T(T^-1(x))| = {(x_back - x).abs().max().item():.2e}"
    )

    if not args.skip_pixelcnn:
        flow = fz.build("pixelcnn_flow", (1, 20, 20))
        with torch.no_grad():
            t, s = best_time(lambda: flow.sample((64,)), 1)
            u, _ = flow.to_latent(s)
            s_back, _ = flow.from_latent(u)
        print(
            f"pixelcnn_flow 1x20x20 float32 ({flow.num_parameters} parameters): 64 samples in {t:.1f} s; "
            f"max |x - T(T^-1(x))| = {(s_back - s).abs().max().item():.2e}"
        )


if __name__ == "__main__":
    main()
