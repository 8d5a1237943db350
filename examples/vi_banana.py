"""Variational inference on a banana-shaped posterior whose evidence log Z is known in closed form.

Fits AutoNormal, AutoMultivariateNormal and AutoFlowGuide with several zoo flows to
``pyro_flowzoo.infer.BananaPosterior`` and reports each guide's ELBO gap ``log Z - ELBO`` (the KL
divergence from the guide to the posterior, in nats) and the importance-sampled ``log Z``.

Writes under ``--out`` (default ``runs/examples/vi_banana``): ``metrics.md``, ``metrics.json`` and
``posterior.png`` (the true posterior's contours with each guide's samples).

    python examples/vi_banana.py                 # ~1-2 minutes on 2 CPU cores
    python examples/vi_banana.py --quick         # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402
from pyro.infer.autoguide import AutoMultivariateNormal, AutoNormal  # noqa: E402

from pyro_flowzoo import FLOWS  # noqa: E402
from pyro_flowzoo.infer import AutoFlowGuide, BananaPosterior, evidence, fit_svi  # noqa: E402

FLOW_HPARAMS = {
    # realnvp and maf: the guide defaults (AutoFlowGuide), triangular maps in the model order
    "nsf_coupling": {"num_layers": 4, "hidden_dims": (32, 32)},
}


def make_guide(name: str, model):
    if name == "AutoNormal":
        return AutoNormal(model)
    if name == "AutoMultivariateNormal":
        return AutoMultivariateNormal(model)
    return AutoFlowGuide(model, name, **FLOW_HPARAMS.get(name, {}))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps per guide (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/examples/vi_banana"))
    parser.add_argument("--steps", type=int, default=None, help="SVI steps per guide (default 1500; quick: 10)")
    parser.add_argument("--flows", nargs="*", default=["realnvp", "nsf_coupling", "maf"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    steps = args.steps or (10 if args.quick else 1500)
    num_eval = 500 if args.quick else 20000
    args.out.mkdir(parents=True, exist_ok=True)

    banana = BananaPosterior()
    names = ["AutoNormal", "AutoMultivariateNormal"] + [f for f in args.flows if f in FLOWS]
    results, samples = {}, {}
    for name in names:
        pyro.clear_param_store()
        pyro.set_rng_seed(args.seed)
        guide = make_guide(name, banana.model)
        start = time.perf_counter()
        fit_svi(banana.model, guide, steps=steps, lr=0.01, num_particles=64, max_plate_nesting=0)
        seconds = time.perf_counter() - start
        ev = evidence(banana.model, guide, num_samples=num_eval, max_plate_nesting=0)
        results[name] = {
            "elbo_gap": banana.log_z - ev["elbo"],
            "elbo_se": ev["elbo_se"],
            "log_z_is_error": ev["log_z_is"] - banana.log_z,
            "ess": ev["ess"],
            "seconds": seconds,
        }
        with torch.no_grad():
            draw = pyro.infer.Predictive(
                banana.model, guide=guide, num_samples=2000, parallel=True, return_sites=["x1", "x2"]
            )()
        samples[name] = torch.stack([draw["x1"].reshape(-1), draw["x2"].reshape(-1)], -1)
        print(
            f"{name:24s} ELBO gap {results[name]['elbo_gap']:.4f} nats (+- {ev['elbo_se']:.4f}), {seconds:.1f} s",
            flush=True,
        )

    lines = [
        f"# Banana posterior (log Z = {banana.log_z:.4f}), {steps} steps per guide, seed {args.seed}",
        "",
        "| guide | ELBO gap (nats) | MC s.e. | IS log Z error | ESS | train s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['elbo_gap']:.4f} | {r['elbo_se']:.4f} | {r['log_z_is_error']:+.4f} "
            f"| {r['ess']:.0f} | {r['seconds']:.1f} |"
        )
    (args.out / "metrics.md").write_text("\n".join(lines) + "\n")
    (args.out / "metrics.json").write_text(
        json.dumps({"log_z": banana.log_z, "steps": steps, "guides": results}, indent=2)
    )

    grid = torch.stack(torch.meshgrid(torch.linspace(-3, 3, 200), torch.linspace(-2, 9, 200), indexing="xy"), -1)
    density = banana.log_prob(grid.double()).exp()
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), sharex=True, sharey=True)
    for ax, name in zip(axes, names):
        ax.contour(grid[..., 0], grid[..., 1], density, levels=6, colors="k", linewidths=0.7)
        s = samples[name][:1000]
        ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.4)
        ax.set_title(f"{name}\ngap {results[name]['elbo_gap']:.3f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out / "posterior.png", dpi=100)
    plt.close(fig)
    print(f"wrote {args.out}/metrics.md and posterior.png")
    return results


if __name__ == "__main__":
    main()
