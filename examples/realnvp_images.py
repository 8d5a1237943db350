"""RealNVP (multi-scale) on images: samples, temperature samples and latent interpolations; saves the model.

    python examples/realnvp_images.py --dataset celeba --root DATA   # CelebA 32x32 (torchvision files under DATA)
    python examples/realnvp_images.py --dataset cifar10 --epochs 50 --hidden-channels 64 --seed 1
    python examples/realnvp_images.py                                # MNIST if its IDX files are found, else digits
    python examples/realnvp_images.py --quick                        # seconds (digits, a tiny model)

When the requested set's files are absent the script falls back, in order, to CIFAR-10, MNIST and the bundled
scikit-learn digits, and says so. It writes ``realnvp_<DATASET>.pt`` (a pyro_flowzoo checkpoint) to ``--out``,
then reloads it the way any user would and draws 36 samples from the reloaded flow::

    from pyro_flowzoo.checkpoint import flow_from_checkpoint
    flow, payload = flow_from_checkpoint("runs/examples/realnvp_images/realnvp_digits.pt")
    images = flow.sample((36,))            # (36, C, H, W) in [0, 1]; levels = floor(n_levels * images)

Pictures: ``data.png``, ``samples.png`` (T = 1), ``samples_t0.7.png``, ``interpolations.png``, ``curves.png``;
``metrics.md`` has the test bits/dim.
"""

from __future__ import annotations

import _common
import torch

from pyro_flowzoo import build, plot
from pyro_flowzoo.checkpoint import checkpoint_payload, flow_from_checkpoint, save_checkpoint
from pyro_flowzoo.train import evaluate_nll, fit


def main(argv=None) -> None:
    p = _common.parser("realnvp_images", __doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist", choices=["celeba", "cifar10", "mnist", "fashion_mnist", "digits"])
    p.add_argument(
        "--root",
        default=None,
        help="directory with the data files (default: $PYRO_FLOWZOO_DATA, else ~/.cache/pyro_flowzoo)",
    )
    p.add_argument("--n-bits", type=int, default=8, help="CelebA: keep this many bits per channel (e.g. 5)")
    p.add_argument("--n-train", type=int, default=None, help="use only the first N training images")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--num-scales", type=int, default=None, help="default: 2 for 8x8 images, 3 otherwise")
    p.add_argument("--num-blocks", type=int, default=4)
    p.add_argument("--hidden-channels", type=int, default=64)
    p.add_argument("--batch-norm", action="store_true", help="a batch norm after every coupling (the paper)")
    args = p.parse_args(argv)
    out = _common.setup(args)
    _common.require("realnvp")
    if args.quick:
        args.dataset, args.n_train, args.epochs, args.num_blocks, args.hidden_channels = "digits", 128, 1, 1, 8
    preferred = {"celeba": ["celeba", "cifar10", "mnist"], "cifar10": ["cifar10", "mnist"]}.get(
        args.dataset, [args.dataset]
    )
    kw = {"root": args.root} if args.root else {}
    if args.dataset == "celeba":
        kw["n_bits"] = args.n_bits
    train = _common.load_images(preferred, "train", n=args.n_train, **kw)
    name = train.name
    valid = _common.load_images([name], "valid", n=None if args.n_train is None else max(64, args.n_train // 10), **kw)
    test = _common.load_images([name], "test", n=200 if args.quick else None, **kw)
    n_levels = train.n_levels
    plot.image_grid(train.tensor(36), n_levels=n_levels, title=f"{name} (data)", path=out / "data.png")

    size = train.event_shape[-1]
    scales = args.num_scales or (2 if size % 4 else 3)
    torch.manual_seed(args.seed)
    flow = build(
        "realnvp",
        train.event_shape,
        num_scales=scales,
        num_blocks=args.num_blocks,
        hidden_channels=args.hidden_channels,
        batch_norm=args.batch_norm,
    )
    result = fit(
        flow,
        _common.levels(train),
        _common.levels(valid),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        n_bins=n_levels,
        seed=args.seed,
        patience=10,
        progress=False,
    )
    bpd = _common.bits_per_dim(evaluate_nll(flow, _common.levels(test), n_bins=n_levels), n_levels)

    path = out / f"realnvp_{name}.pt"
    save_checkpoint(
        path,
        checkpoint_payload(flow, metrics={"test_bits_per_dim": bpd}, extra={"dataset": name, "n_levels": n_levels}),
    )
    again, payload = flow_from_checkpoint(path)  # what a user does: rebuild from the file and sample
    torch.manual_seed(args.seed)
    plot.sample_grid(again, 36, title=f"RealNVP on {name}: samples", path=out / "samples.png")
    plot.sample_grid(again, 36, temperature=0.7, title="T = 0.7", path=out / "samples_t0.7.png")
    x = _common.levels(test, 8).float()
    x = (x + 0.5) / n_levels  # the centre of each level's bin
    plot.interpolations(again, x[:4], x[4:8], steps=8, title="latent interpolations", path=out / "interpolations.png")
    plot.training_curves(result, unit="nats/dim, dequantized", path=out / "curves.png")
    _common.write_metrics(
        out,
        [
            f"RealNVP on {name}: test {bpd:.4f} bits/dim ({len(test)} test images, "
            f"{result.steps} steps, {again.num_parameters} parameters); model saved to {path}"
        ],
    )


if __name__ == "__main__":
    main()
