"""A mixture of Gaussians pushed to a unit Gaussian by planar, radial, RealNVP, MAF and NSF flows (1-D and 2-D).

    python examples/mog_to_gaussian.py           # full (a few minutes)
    python examples/mog_to_gaussian.py --quick   # seconds

Writes ``mog_1d.png`` (per flow: the fitted density over the data histogram and the true density, and the
histogram of the latent codes ``z = T^{-1}(x)`` over the N(0, 1) density), ``mog_2d_<flow>.png`` (data and
latent codes coloured by mixture component) and ``mog_2d_densities.png``, plus ``metrics.md``.
In 1-D, NSF is a single elementwise spline (Pyro's ``Spline``); RealNVP and MAF have nothing to condition on in
one dimension (they would be one affine map), so they are skipped there with a note.
"""

from __future__ import annotations

import math

import _common
import numpy as np
import torch
from matplotlib.figure import Figure

from pyro_flowzoo import build, plot
from pyro_flowzoo.data import load
from pyro_flowzoo.train import evaluate_nll, fit

FLOWS = {
    "planar": dict(num_layers=16),
    "radial": dict(num_layers=16),
    # base_df=False: pushed to a unit Gaussian (the builders' 2-D default is a Student-t base)
    "realnvp": dict(num_layers=8, hidden_dims=(64, 64), base_df=False),
    "maf": dict(num_layers=5, base_df=False),
    "nsf_ar": dict(num_layers=3),
}


def _build(name: str, dim: int, quick: bool):
    if dim == 1 and name == "nsf_ar":
        # in 1-D an autoregressive spline flow is one elementwise monotonic rational-quadratic spline (Pyro's)
        from pyro.distributions.transforms import Spline

        from pyro_flowzoo import Flow, StandardNormal

        return Flow(StandardNormal((1,)), [Spline(1, count_bins=8 if quick else 16, bound=6.0)])
    hp = dict(FLOWS[name])
    if quick:
        hp = {k: (2 if k == "num_layers" else v) for k, v in hp.items()}
        if "hidden_dims" in hp:
            hp["hidden_dims"] = (16,)
    return build(name, (dim,), **hp)


def main(argv=None) -> None:
    p = _common.parser("mog_to_gaussian", __doc__.splitlines()[0])
    p.add_argument("--flows", nargs="+", default=list(FLOWS), choices=list(FLOWS))
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--lr", type=float, default=3e-3)
    args = p.parse_args(argv)
    out = _common.setup(args)
    _common.require(*args.flows)
    n = 400 if args.quick else None
    epochs = 2 if args.quick else args.epochs
    lines = ["| flow | dim | test NLL (nats/dim) | true entropy (nats/dim) |", "|---|---|---|---|"]
    for dim in (1, 2):
        train, valid, test = (load("mog", s, n=n, dim=dim) for s in ("train", "valid", "test"))
        entropy = -test.true_log_prob(test.x).double().mean().item() / dim
        flows = {}
        for name in args.flows:
            torch.manual_seed(args.seed)
            try:
                flow = _build(name, dim, args.quick)
            except ValueError as e:
                print(f"note: {name} skipped in {dim}-D: {e}")
                continue
            fit(
                flow,
                train.x,
                valid.x,
                epochs=epochs,
                batch_size=256,
                lr=args.lr,
                patience=30,
                seed=args.seed,
                progress=False,
            )
            flows[name] = flow
            lines.append(f"| {name} | {dim} | {evaluate_nll(flow, test.x):.4f} | {entropy:.4f} |")
        if not flows:
            continue
        if dim == 1:
            fig = Figure(figsize=(3.0 * len(flows), 5.0))
            axes = fig.subplots(2, len(flows), squeeze=False)
            grid = np.linspace(-4, 4, 200)
            for j, (name, flow) in enumerate(flows.items()):
                plot.density_1d(flow, train.x, true_log_prob=train.true_log_prob, ax=axes[0, j], label=name)
                axes[0, j].set_title(f"{name}: p(x)", fontsize=9)
                with torch.no_grad():
                    z = flow.to_latent(test.x[:5000])[0][:, 0].numpy()
                axes[1, j].hist(z, bins=60, range=(-4, 4), density=True, color="0.75")
                axes[1, j].plot(grid, np.exp(-(grid**2) / 2) / math.sqrt(2 * math.pi), "k--", lw=1)
                axes[1, j].set_title(f"{name}: z = T^-1(x) vs N(0, 1)", fontsize=9)
            fig.tight_layout()
            plot.save_figure(fig, out / "mog_1d.png")
        else:
            fig = Figure(figsize=(2.6 * (len(flows) + 1), 2.8))
            axes = fig.subplots(1, len(flows) + 1)
            box = (-4.0, 4.0, -4.0, 4.0)
            res = 50 if args.quick else 150
            plot._heat(axes[0], train.true_log_prob, box, res, None)
            plot._style(axes[0], box, "true density")
            for ax, (name, flow) in zip(axes[1:], flows.items()):
                plot._heat(ax, flow, box, res, None)
                plot._style(ax, box, name)
            fig.tight_layout()
            plot.save_figure(fig, out / "mog_2d_densities.png")
            for name, flow in flows.items():
                plot.latent_2d(
                    flow,
                    test.x[:2000],
                    test.labels[:2000],
                    title=f"{name}: mixture -> N(0, I)",
                    path=out / f"mog_2d_{name}.png",
                )
    _common.write_metrics(out, lines)


if __name__ == "__main__":
    main()
