"""An autoencoder and a classifier on MNIST, a RealNVP (coupling, batch norm, permutation) fitted on the codes.

    python examples/autoencoder_mnist.py           # MNIST if its IDX files are found, else the bundled digits
    python examples/autoencoder_mnist.py --quick   # seconds

1. an MLP autoencoder compresses images to ``--code-dim`` numbers; 2. an MLP classifier is trained on the
images; 3. a RealNVP built by hand from pyro_flowzoo transforms, ``[AffineCoupling, BatchNorm, Permute] x L``,
is fitted to the codes by maximum likelihood; 4. codes sampled from the flow are decoded and the classifier
labels the decoded images. Writes ``reconstructions.png``, ``decoded_samples.png`` (titled with the
predicted classes), ``class_histogram.png`` and ``metrics.md``.
"""

from __future__ import annotations

import _common
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from pyro_flowzoo import Flow, StandardNormal, plot
from pyro_flowzoo.nn import MLP
from pyro_flowzoo.train import evaluate_nll, fit
from pyro_flowzoo.transforms import AffineCoupling, BatchNorm, Permute, alternating_masks


def code_flow(dim: int, num_layers: int, hidden: tuple[int, ...]) -> Flow:
    """RealNVP on vectors with batch norm and random permutations between couplings (latent -> data order)."""
    layers: list[nn.Module] = []
    for mask in alternating_masks(dim, num_layers, "half", anchor="latent"):
        layers += [AffineCoupling(mask, MLP(dim, 2 * dim, hidden)), BatchNorm(dim, event_dim=1), Permute(dim=dim)]
    return Flow(StandardNormal((dim,)), layers)


def train_net(net: nn.Module, x: torch.Tensor, target: torch.Tensor, loss_fn, epochs: int, lr: float = 1e-3) -> float:
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(128):
            opt.zero_grad()
            loss = loss_fn(net(x[idx]), target[idx])
            loss.backward()
            opt.step()
    return float(loss.detach())


def main(argv=None) -> None:
    p = _common.parser("autoencoder_mnist", __doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist", "digits"])
    p.add_argument("--root", default=None)
    p.add_argument("--code-dim", type=int, default=8)
    p.add_argument("--epochs", type=int, default=20, help="autoencoder and classifier epochs")
    p.add_argument("--flow-epochs", type=int, default=200)
    p.add_argument("--flow-layers", type=int, default=6)
    args = p.parse_args(argv)
    out = _common.setup(args)
    kw = {"root": args.root} if args.root else {}
    n = 256 if args.quick else None
    train = _common.load_images(["digits"] if args.quick else [args.dataset], "train", n=n, **kw)
    name, n_levels, shape = train.name, train.n_levels, train.event_shape
    valid = _common.load_images([name], "valid", n=n, **kw)
    test = _common.load_images([name], "test", n=n, **kw)
    dim = int(np.prod(shape))

    def flat(d):
        return d.tensor().reshape(len(d), dim) / (n_levels - 1)

    x_tr, x_va, x_te = flat(train), flat(valid), flat(test)
    epochs = 2 if args.quick else args.epochs
    hidden = 64 if args.quick else 256

    torch.manual_seed(args.seed)
    encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, args.code_dim))
    decoder = nn.Sequential(nn.Linear(args.code_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
    autoencoder = nn.Sequential(encoder, decoder)
    train_net(autoencoder, x_tr, x_tr, nn.BCEWithLogitsLoss(), epochs)
    classifier = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    train_net(classifier, x_tr, train.labels, nn.CrossEntropyLoss(), epochs)

    with torch.no_grad():
        codes = [encoder(x) for x in (x_tr, x_va, x_te)]
        recon = torch.sigmoid(autoencoder(x_te[:18]))
        accuracy = (classifier(x_te).argmax(-1) == test.labels).float().mean().item()
        recon_err = (torch.sigmoid(autoencoder(x_te)) - x_te).pow(2).mean().item()
    mean, std = codes[0].mean(0), codes[0].std(0)
    codes = [(c - mean) / std for c in codes]  # standardised codes: the flow's job is their shape

    torch.manual_seed(args.seed)
    flow = code_flow(args.code_dim, 2 if args.quick else args.flow_layers, (16,) if args.quick else (128, 128))
    fit(
        flow,
        codes[0],
        codes[1],
        epochs=2 if args.quick else args.flow_epochs,
        batch_size=256,
        lr=1e-3,
        seed=args.seed,
        patience=20,
        progress=False,
    )
    nll = evaluate_nll(flow, codes[2])

    torch.manual_seed(args.seed)
    with torch.no_grad():
        z = flow.sample((36,)) * std + mean
        decoded = torch.sigmoid(decoder(z))
        predicted = classifier(decoded).argmax(-1)
        many = torch.sigmoid(decoder(flow.sample((2000,)) * std + mean))
        counts = torch.bincount(classifier(many).argmax(-1), minlength=10)
    images = lambda v: v.reshape(-1, *shape)  # noqa: E731
    plot.image_grid(
        torch.cat([images(x_te[:18]), images(recon)]),
        nrow=18,
        title="test images (top) and their reconstructions (bottom)",
        path=out / "reconstructions.png",
    )
    plot.image_grid(
        images(decoded),
        nrow=6,
        title="decoded flow samples; classifier says: " + " ".join(str(int(c)) for c in predicted[:12]) + " ...",
        path=out / "decoded_samples.png",
    )
    fig = Figure(figsize=(4, 2.6))
    ax = fig.subplots()
    ax.bar(np.arange(10), counts.numpy() / counts.sum().item())
    ax.set_xticks(range(10))
    ax.set_xlabel("class predicted for 2,000 decoded samples")
    fig.tight_layout()
    plot.save_figure(fig, out / "class_histogram.png")
    _common.write_metrics(
        out,
        [
            f"data: {name} ({len(train)} train / {len(test)} test images); code dimension {args.code_dim}",
            f"classifier test accuracy: {accuracy:.3f}; autoencoder test MSE: {recon_err:.4f}",
            f"RealNVP on standardised codes: test NLL {nll:.4f} nats/dim",
            "classes of decoded samples: " + ", ".join(f"{c}: {int(k)}" for c, k in enumerate(counts)),
        ],
    )


if __name__ == "__main__":
    main()
