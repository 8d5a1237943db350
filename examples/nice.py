"""NICE on two Gaussians (2-D) and on MNIST (the paper's 4 additive couplings, scaling, logistic prior).

    python examples/nice.py            # full: MNIST from its IDX files (else digits), two Gaussians
    python examples/nice.py --quick    # seconds

Writes ``two_gaussians_density.png``, ``two_gaussians_latent.png``, ``<images>_samples.png`` and ``metrics.md``.
"""

from __future__ import annotations

import _common
import torch

from pyro_flowzoo import build, plot
from pyro_flowzoo.data import load
from pyro_flowzoo.train import evaluate_nll, fit


def main(argv=None) -> None:
    p = _common.parser("nice", __doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist", "digits"])
    p.add_argument("--root", default=None)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden-dim", type=int, default=1000)
    p.add_argument("--num-hidden-layers", type=int, default=5)
    args = p.parse_args(argv)
    out = _common.setup(args)
    _common.require("nice")
    quick = args.quick
    lines = []

    # two Gaussians: a volume-preserving flow (additive couplings) plus one diagonal scaling
    n = 500 if quick else None
    train, valid, test = (load("two_gaussians", s, n=n) for s in ("train", "valid", "test"))
    torch.manual_seed(args.seed)
    flow = build("nice", (2,), num_layers=4, hidden_dims=(16,) if quick else (64, 64))
    fit(
        flow,
        train.x,
        valid.x,
        epochs=2 if quick else 200,
        batch_size=256,
        lr=3e-3,
        seed=args.seed,
        patience=30,
        progress=False,
    )
    entropy = -test.true_log_prob(test.x).double().mean().item() / 2
    lines.append(f"NICE on two_gaussians: test {evaluate_nll(flow, test.x):.4f} nats/dim (true entropy {entropy:.4f})")
    plot.density_2d(
        flow,
        train.x,
        true_log_prob=train.true_log_prob,
        resolution=50 if quick else 200,
        title="NICE on two Gaussians",
        path=out / "two_gaussians_density.png",
    )
    plot.latent_2d(
        flow,
        test.x[:2000],
        test.labels[:2000],
        title="NICE: latent (logistic base)",
        path=out / "two_gaussians_latent.png",
    )

    # images
    kw = {"root": args.root} if args.root else {}
    n_img = 128 if quick else None
    images = _common.load_images(["digits"] if quick else [args.dataset], "train", n=n_img, **kw)
    name, n_levels = images.name, images.n_levels
    valid_i = _common.load_images([name], "valid", n=n_img, **kw)
    test_i = _common.load_images([name], "test", n=n_img, **kw)
    torch.manual_seed(args.seed)
    flow = build(
        "nice",
        images.event_shape,
        hidden_dim=16 if quick else args.hidden_dim,
        num_hidden_layers=1 if quick else args.num_hidden_layers,
    )
    fit(
        flow,
        _common.levels(images),
        _common.levels(valid_i),
        epochs=1 if quick else args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        n_bins=n_levels,
        seed=args.seed,
        patience=5,
        progress=False,
    )
    bpd = _common.bits_per_dim(evaluate_nll(flow, _common.levels(test_i), n_bins=n_levels), n_levels)
    lines.append(f"NICE on {name}: test {bpd:.4f} bits/dim ({len(test_i)} images)")
    plot.sample_grid(flow, 36, title=f"NICE on {name}", path=out / f"{name}_samples.png")
    _common.write_metrics(out, lines)


if __name__ == "__main__":
    main()
