"""Variational inference on Neal's funnel: how much of the neck does each guide reach?

The funnel ``v ~ N(0, 3^2)``, ``x_i ~ N(0, e^v)`` (``pyro_flowzoo.infer.funnel_model``) has no data,
so ``log Z = 0`` and the ELBO gap is ``-ELBO``. Mean-field and Gaussian guides must pick one width
for ``x`` and so cover only part of ``v``'s range; a flow can make the width depend on ``v``. The
script reports each guide's ELBO gap and the standard deviation of ``v`` under the guide (exact: 3).

Writes under ``--out`` (default ``runs/examples/vi_funnel``): ``metrics.md``, ``metrics.json``,
``funnel.png`` (exact samples and each guide's samples of ``(v, x_1)``).

    python examples/vi_funnel.py             # a couple of minutes on 2 CPU cores
    python examples/vi_funnel.py --quick     # seconds (smoke test)
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
from pyro.infer import Predictive  # noqa: E402
from pyro.infer.autoguide import AutoMultivariateNormal, AutoNormal  # noqa: E402

from pyro_flowzoo import FLOWS  # noqa: E402
from pyro_flowzoo.infer import AutoFlowGuide, evidence, fit_svi, funnel_model  # noqa: E402

FLOW_HPARAMS = {
    # realnvp and maf: the guide defaults (AutoFlowGuide), triangular maps in the model order
    "nsf_coupling": {"num_layers": 4, "hidden_dims": (64, 64)},
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps per guide (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/examples/vi_funnel"))
    parser.add_argument("--dim", type=int, default=10, help="funnel dimension (v plus dim - 1 x's)")
    parser.add_argument("--steps", type=int, default=None, help="SVI steps per guide (default 3000; quick: 10)")
    parser.add_argument("--flows", nargs="*", default=["realnvp", "nsf_coupling", "maf"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    steps = args.steps or (10 if args.quick else 3000)
    num_eval = 500 if args.quick else 20000
    args.out.mkdir(parents=True, exist_ok=True)

    names = ["AutoNormal", "AutoMultivariateNormal"] + [f for f in args.flows if f in FLOWS]
    results, samples = {}, {}
    for name in names:
        pyro.clear_param_store()
        pyro.set_rng_seed(args.seed)
        if name == "AutoNormal":
            guide = AutoNormal(funnel_model)
        elif name == "AutoMultivariateNormal":
            guide = AutoMultivariateNormal(funnel_model)
        else:
            guide = AutoFlowGuide(funnel_model, name, **FLOW_HPARAMS.get(name, {}))
        start = time.perf_counter()
        fit_svi(funnel_model, guide, args.dim, steps=steps, lr=0.005, num_particles=32, max_plate_nesting=0)
        seconds = time.perf_counter() - start
        ev = evidence(funnel_model, guide, args.dim, num_samples=num_eval, max_plate_nesting=0)
        draw = Predictive(funnel_model, guide=guide, num_samples=num_eval, parallel=True, return_sites=["v", "x"])(
            args.dim
        )
        v = draw["v"].reshape(-1)
        samples[name] = torch.stack([v, draw["x"].reshape(v.numel(), -1)[:, 0]], -1)
        results[name] = {
            "elbo_gap": -ev["elbo"],
            "elbo_se": ev["elbo_se"],
            "v_sd": v.std().item(),
            "v_mean": v.mean().item(),
            "seconds": seconds,
        }
        print(f"{name:24s} ELBO gap {-ev['elbo']:.3f} nats, sd(v) {v.std():.2f} (exact 3), {seconds:.1f} s", flush=True)

    lines = [
        f"# Neal's funnel, D = {args.dim} (log Z = 0), {steps} steps per guide, seed {args.seed}",
        "",
        "| guide | ELBO gap (nats) | MC s.e. | mean v (exact 0) | sd v (exact 3) | train s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['elbo_gap']:.3f} | {r['elbo_se']:.3f} | {r['v_mean']:+.2f} | {r['v_sd']:.2f} "
            f"| {r['seconds']:.1f} |"
        )
    (args.out / "metrics.md").write_text("\n".join(lines) + "\n")
    (args.out / "metrics.json").write_text(json.dumps({"dim": args.dim, "steps": steps, "guides": results}, indent=2))

    v = 3 * torch.randn(2000)
    exact = torch.stack([v, torch.exp(v / 2) * torch.randn(2000)], -1)
    panels = [("exact", exact)] + [(n, samples[n][:2000]) for n in names]
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3), sharex=True, sharey=True)
    for ax, (name, s) in zip(axes, panels):
        ax.scatter(s[:, 1], s[:, 0], s=2, alpha=0.4)
        ax.set_title(name, fontsize=9)
        ax.set_xlim(-20, 20)
        ax.set_ylim(-9, 9)
        ax.set_xlabel("x1")
    axes[0].set_ylabel("v")
    fig.tight_layout()
    fig.savefig(args.out / "funnel.png", dpi=100)
    plt.close(fig)
    print(f"wrote {args.out}/metrics.md and funnel.png")
    return results


if __name__ == "__main__":
    main()
