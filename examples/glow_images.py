"""Glow on Flowers102 (or the image set available here): samples at several temperatures.

    python examples/glow_images.py --root DATA                 # Flowers102 32x32 from torchvision files in DATA
    python examples/glow_images.py --dataset cifar10 --levels 3 --steps 16 --epochs 100
    python examples/glow_images.py --quick                     # seconds (digits, a tiny Glow)

Falls back to CIFAR-10, MNIST and then the bundled digits when the requested files are absent (it says so).
Writes ``data.png``, ``samples_t<T>.png`` for T in (1.0, 0.8, 0.6), ``curves.png``, ``glow_<DATASET>.pt``
and ``metrics.md`` (test bits/dim).
"""

from __future__ import annotations

import _common
import torch

from pyro_flowzoo import build, plot
from pyro_flowzoo.checkpoint import checkpoint_payload, save_checkpoint
from pyro_flowzoo.train import evaluate_nll, fit


def main(argv=None) -> None:
    p = _common.parser("glow_images", __doc__.splitlines()[0])
    p.add_argument("--dataset", default="flowers102", choices=["flowers102", "celeba", "cifar10", "mnist", "digits"])
    p.add_argument("--root", default=None)
    p.add_argument("--size", type=int, default=32, help="Flowers102/CelebA image size")
    p.add_argument("--n-bits", type=int, default=5, help="bits per channel for Flowers102/CelebA (Glow used 5)")
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--levels", type=int, default=None, help="default: 2 for 8x8 or 28x28 images, else 3")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--hidden-channels", type=int, default=128)
    p.add_argument("--coupling", default="affine", choices=["affine", "additive"])
    args = p.parse_args(argv)
    out = _common.setup(args)
    _common.require("glow")
    if args.quick:
        args.dataset, args.n_train, args.epochs, args.steps, args.hidden_channels = "digits", 128, 1, 1, 8
        args.levels = 1
    preferred = {
        "flowers102": ["flowers102", "cifar10", "mnist"],
        "celeba": ["celeba", "cifar10", "mnist"],
        "cifar10": ["cifar10", "mnist"],
    }.get(args.dataset, [args.dataset])
    kw = {"root": args.root} if args.root else {}
    if args.dataset in ("flowers102", "celeba"):
        kw.update(size=args.size, n_bits=args.n_bits)
    train = _common.load_images(preferred, "train", n=args.n_train, **kw)
    name = train.name
    kw = {k: v for k, v in kw.items() if name in ("flowers102", "celeba") or k == "root"}
    small = None if args.n_train is None else max(64, args.n_train // 10)
    valid = _common.load_images([name], "valid", n=small, **kw)
    test = _common.load_images([name], "test", n=200 if args.quick else None, **kw)
    n_levels = train.n_levels
    plot.image_grid(train.tensor(36), n_levels=n_levels, title=f"{name} (data)", path=out / "data.png")
    size = train.event_shape[-1]
    levels = args.levels or (2 if size % 8 or size < 16 else 3)
    torch.manual_seed(args.seed)
    flow = build(
        "glow",
        train.event_shape,
        levels=levels,
        steps=args.steps,
        hidden_channels=args.hidden_channels,
        coupling=args.coupling,
    )
    result = fit(
        flow,
        _common.levels(train),
        _common.levels(valid),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        n_bins=n_levels,
        seed=args.seed,
        patience=10,
        progress=False,
    )
    bpd = _common.bits_per_dim(evaluate_nll(flow, _common.levels(test), n_bins=n_levels), n_levels)
    save_checkpoint(out / f"glow_{name}.pt", checkpoint_payload(flow, extra={"dataset": name, "n_levels": n_levels}))
    for t in (1.0, 0.8, 0.6):
        torch.manual_seed(args.seed)
        plot.sample_grid(flow, 36, temperature=t, title=f"Glow on {name}, T = {t}", path=out / f"samples_t{t}.png")
    plot.training_curves(result, unit="nats/dim, dequantized", path=out / "curves.png")
    _common.write_metrics(
        out,
        [
            f"Glow on {name}: test {bpd:.4f} bits/dim ({len(test)} test images, "
            f"{result.steps} steps, {flow.num_parameters} parameters)"
        ],
    )


if __name__ == "__main__":
    main()
