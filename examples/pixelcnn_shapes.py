"""PixelCNN mixture-CDF autoregressive flow on the 20x20 binary shapes: samples and floored samples.

    python examples/pixelcnn_shapes.py           # full: 10,000 training images (tens of minutes on a CPU)
    python examples/pixelcnn_shapes.py --quick   # seconds (8x8 shapes, a tiny net)

The flow models dequantized pixels ``x = (k + u) / 2`` in ``[0, 1]``; its density is reported in bits/dim
with the discretization correction. Writes ``data.png``, ``samples.png`` (continuous samples next to the
samples floored to {0, 1}) and ``metrics.md``.
"""

from __future__ import annotations

import _common
import torch

from pyro_flowzoo import build, plot
from pyro_flowzoo.data import load
from pyro_flowzoo.train import evaluate_nll, fit


def main(argv=None) -> None:
    p = _common.parser("pixelcnn_shapes", __doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden-channels", type=int, default=32)
    p.add_argument("--num-blocks", type=int, default=4)
    p.add_argument("--num-components", type=int, default=4)
    p.add_argument("--samples", type=int, default=36)
    p.add_argument("--n-train", type=int, default=None, help="use only the first N training images")
    args = p.parse_args(argv)
    out = _common.setup(args)
    _common.require("pixelcnn_flow")
    if args.quick:
        n, size, epochs, hidden, blocks, n_samples = 128, 8, 1, 8, 1, 4
    else:
        n, size, epochs, hidden, blocks, n_samples = (
            args.n_train,
            20,
            args.epochs,
            args.hidden_channels,
            args.num_blocks,
            args.samples,
        )
    train, valid, test = (load("shapes", s, n=n, size=size, seed=args.seed) for s in ("train", "valid", "test"))
    plot.image_grid(train.x[:36], n_levels=2, title="shapes (data)", path=out / "data.png")
    torch.manual_seed(args.seed)
    flow = build(
        "pixelcnn_flow",
        train.event_shape,
        num_components=args.num_components,
        hidden_channels=hidden,
        num_blocks=blocks,
    )
    result = fit(
        flow,
        _common.levels(train),
        _common.levels(valid),
        epochs=epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        n_bins=2,
        seed=args.seed,
        patience=5,
        progress=False,
    )
    bpd = _common.bits_per_dim(evaluate_nll(flow, _common.levels(test), n_bins=2), 2)
    plot.floored_samples(flow, n_samples, 2, title="PixelCNN flow on shapes", path=out / "samples.png")
    plot.training_curves(result, unit="nats/dim, dequantized", path=out / "curves.png")
    _common.write_metrics(
        out,
        [
            f"test: {bpd:.4f} bits/dim ({len(test)} images {size}x{size}, "
            f"{result.steps} steps, {flow.num_parameters} parameters)"
        ],
    )


if __name__ == "__main__":
    main()
