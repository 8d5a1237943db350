"""Mixture-CDF AR flow and RealNVP on smiley and moons: densities (vs the true ones) and latent spaces.

    python examples/ar_realnvp_2d.py            # full: 5,000 training points, 300 epochs at most (minutes)
    python examples/ar_realnvp_2d.py --quick    # seconds

Writes ``<flow>_<data>_density.png`` (data, true density, model density, samples), ``<flow>_<data>_latent.png``
(data and their latent codes, coloured by moon / smiley part) and ``metrics.md`` (test NLL in nats/dim against
the true entropy, estimated from the exact density on the 20,000 test points).
"""

from __future__ import annotations

import _common
import torch

from pyro_flowzoo import build, plot
from pyro_flowzoo.data import load
from pyro_flowzoo.train import evaluate_nll, fit

FLOWS = {
    "ar_flow": dict(num_components=16, hidden_dims=(64, 64)),
    "realnvp": dict(num_layers=8, hidden_dims=(64, 64)),
}


def main(argv=None) -> None:
    p = _common.parser("ar_realnvp_2d", __doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", default=["smiley", "moons"], help="2-D data sets")
    p.add_argument("--flows", nargs="+", default=list(FLOWS), choices=list(FLOWS))
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    args = p.parse_args(argv)
    out = _common.setup(args)
    _common.require(*args.flows)
    n_train, n_test = (400, 1000) if args.quick else (None, None)
    epochs = 2 if args.quick else args.epochs
    lines = ["| flow | data | test NLL (nats/dim) | true entropy (nats/dim) | gap |", "|---|---|---|---|---|"]
    for data in args.data:
        train, valid = load(data, "train", n=n_train), load(data, "valid", n=n_train)
        test = load(data, "test", n=n_test)
        entropy = -test.true_log_prob(test.x).double().mean().item() / 2
        for name in args.flows:
            hp = dict(FLOWS[name])
            if args.quick:
                hp = {k: (v if k != "hidden_dims" else (16,)) for k, v in hp.items()}
                hp = {k: (min(v, 2) if k == "num_layers" else v) for k, v in hp.items()}
            torch.manual_seed(args.seed)
            flow = build(name, (2,), **hp)
            fit(
                flow,
                train.x,
                valid.x,
                epochs=epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                patience=30,
                seed=args.seed,
                progress=False,
            )
            nll = evaluate_nll(flow, test.x)
            lines.append(f"| {name} | {data} | {nll:.4f} | {entropy:.4f} | {nll - entropy:.4f} |")
            res = 60 if args.quick else 200
            plot.density_2d(
                flow,
                train.x[:2000],
                true_log_prob=train.true_log_prob,
                resolution=res,
                n_samples=500 if args.quick else 2000,
                title=f"{name} on {data}",
                path=out / f"{name}_{data}_density.png",
            )
            plot.latent_2d(
                flow,
                test.x[:2000],
                test.labels[:2000],
                title=f"{name} on {data}: latent space",
                path=out / f"{name}_{data}_latent.png",
            )
    _common.write_metrics(out, lines)


if __name__ == "__main__":
    main()
