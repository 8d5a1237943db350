"""Conditional Glow: class-conditional samples (one row per class) on MNIST, or the bundled digits offline.

    python examples/cglow_classes.py              # MNIST if its IDX files are found, else digits
    python examples/cglow_classes.py --quick      # seconds

The class enters as a one-hot context (``context_shape=(10,)``) in every coupling network and prior.
Writes ``samples_by_class.png`` (row k: samples given class k), ``metrics.md`` (test bits/dim given the true
class, and the accuracy of classifying test images by ``argmax_k log p(x | k)``).
"""

from __future__ import annotations

import _common
import torch
from torch.nn.functional import one_hot

from pyro_flowzoo import build, plot
from pyro_flowzoo.train import evaluate_nll, fit


def main(argv=None) -> None:
    p = _common.parser("cglow_classes", __doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist", "cifar10", "digits"])
    p.add_argument("--root", default=None)
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--levels", type=int, default=2)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--hidden-channels", type=int, default=64)
    p.add_argument("--per-class", type=int, default=8, help="samples per class")
    args = p.parse_args(argv)
    out = _common.setup(args)
    _common.require("cglow")
    if args.quick:
        args.dataset, args.n_train, args.epochs, args.levels, args.steps, args.hidden_channels = (
            "digits",
            200,
            1,
            1,
            1,
            8,
        )
        args.per_class = 3
    kw = {"root": args.root} if args.root else {}
    train = _common.load_images([args.dataset], "train", n=args.n_train, **kw)
    name, n_levels = train.name, train.n_levels
    small = None if args.n_train is None else max(64, args.n_train // 10)
    valid = _common.load_images([name], "valid", n=small, **kw)
    test = _common.load_images([name], "test", n=100 if args.quick else None, **kw)
    k = train.num_classes or 10

    def context(d):
        return one_hot(d.labels, k).float()

    torch.manual_seed(args.seed)
    flow = build(
        "cglow",
        train.event_shape,
        context_shape=(k,),
        levels=args.levels,
        steps=args.steps,
        hidden_channels=args.hidden_channels,
    )
    fit(
        flow,
        (_common.levels(train), context(train)),
        (_common.levels(valid), context(valid)),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        n_bins=n_levels,
        seed=args.seed,
        patience=10,
        progress=False,
    )
    x_test = _common.levels(test)
    bpd = _common.bits_per_dim(evaluate_nll(flow, x_test, context=context(test), n_bins=n_levels), n_levels)
    # classification by Bayes' rule with a uniform class prior: argmax_k log p(x | k)
    with torch.no_grad():
        flow.eval()
        x = (x_test.float() + 0.5) / n_levels
        scores = torch.stack([flow.log_prob(x, one_hot(torch.full((len(x),), c), k).float()) for c in range(k)], -1)
    accuracy = (scores.argmax(-1) == test.labels).float().mean().item()
    labels = torch.arange(k).repeat_interleave(args.per_class)
    torch.manual_seed(args.seed)
    plot.sample_grid(
        flow,
        len(labels),
        context=one_hot(labels, k).float(),
        nrow=args.per_class,
        title=f"conditional Glow on {name}: row k = class k",
        path=out / "samples_by_class.png",
    )
    _common.write_metrics(
        out,
        [
            f"conditional Glow on {name}: test {bpd:.4f} bits/dim given the class; "
            f"generative classification accuracy {accuracy:.3f} ({len(test)} test images)"
        ],
    )


if __name__ == "__main__":
    main()
