"""RealNVP (and NICE) on moons: test NLL against the true entropy (foundation issue acceptance).

2,000 training points (the last 10% held out for early stopping), 20,000 fresh test points; the true
entropy is estimated on the same test points with the exact density (quadrature over the arc).

    python benchmarks/moons_realnvp.py [--flows realnvp nice] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import torch

import pyro_flowzoo as fz
from pyro_flowzoo.data import moons_log_prob, sample_moons
from pyro_flowzoo.train import evaluate_nll, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flows", nargs="+", default=["realnvp", "nice"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)
    data = sample_moons(2000, generator=g)
    train, valid = data[:1800], data[1800:]
    test = sample_moons(20_000, generator=g)
    entropy = -moons_log_prob(test.double()).mean().item() / 2
    print(f"true entropy on the test points: {entropy:.4f} nats/dim")
    print("| flow | test NLL (nats/dim) | gap to entropy | epochs | time (s) |")
    print("|---|---|---|---|---|")
    for name in args.flows:
        torch.manual_seed(args.seed)
        flow = fz.build(name, (2,))
        start = time.perf_counter()
        result = fit(flow, train, valid, epochs=args.epochs, batch_size=256, lr=1e-3, patience=50)
        elapsed = time.perf_counter() - start
        nll = evaluate_nll(flow, test)
        print(f"| {name} | {nll:.4f} | {nll - entropy:+.4f} | {result.best_epoch + 1}/{len(result.train_nll)} "
              f"| {elapsed:.0f} |")


if __name__ == "__main__":
    main()
