"""A VAE whose encoder ends in a conditional flow, against the plain Gaussian encoder.

Binarised 8x8 digits (scikit-learn, bundled; ``--mnist`` uses the 10,000 MNIST test images from the data
root: ``--root``, else ``$PYRO_FLOWZOO_DATA``, else ``~/.cache/pyro_flowzoo``), a Bernoulli decoder MLP, a
``k``-dimensional standard normal prior. Encoders (``pyro_flowzoo.infer.FlowEncoder``): a diagonal Gaussian,
and the same Gaussian with a conditional flow reading a context vector from the encoder: by default RealNVP
and IAF; ``--encoders`` takes any of ``pyro_flowzoo.infer.encoder_flows()`` (every conditional vector builder,
sized by ``ENCODER_DEFAULTS``), ``gaussian``, or ``all``.
Every VAE is trained with Pyro's SVI (Trace_ELBO) for the same number of steps from the same seed.
``benchmarks/vae.py`` runs every encoder over several seeds with this model, data and loop.
Reported on the test split (a fixed shuffle): the ELBO and the importance-weighted bound with
``K = 200`` samples (IWAE; a tighter estimate of ``log p(x)``), in nats per image.

Writes under ``--out`` (default ``runs/examples/vi_vae``): ``metrics.md``, ``metrics.json``, ``samples.png``.

    python examples/vi_vae.py               # several minutes on 2 CPU cores
    python examples/vi_vae.py --quick       # seconds (smoke test)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyro  # noqa: E402
import pyro.distributions as dist  # noqa: E402
import torch  # noqa: E402
from pyro.infer import SVI, Trace_ELBO  # noqa: E402
from pyro.optim import ClippedAdam  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402

from pyro_flowzoo.data import data_root  # noqa: E402
from pyro_flowzoo.data.images import find_idx_dir, load_idx_pair  # noqa: E402
from pyro_flowzoo.infer.amortized import FlowEncoder, encoder_flows  # noqa: E402
from pyro_flowzoo.nn import MLP  # noqa: E402


def load_data(mnist: bool, seed: int, root: str | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Binarised images (threshold at half intensity), a fixed 85/15 train/test shuffle, and the side length."""
    if mnist:
        directory = find_idx_dir([data_root(root)], ("mnist", "MNIST/raw", "MNIST"))
        if directory is None:
            raise SystemExit(f"--mnist: no t10k-images-idx3-ubyte[.gz] in {data_root(root)} or its mnist/")
        images = load_idx_pair(directory, "t10k")[0].reshape(-1, 784).float() / 255
        side = 28
    else:
        images = torch.tensor(load_digits().data, dtype=torch.float32) / 16
        side = 8
    x = (images > 0.5).float()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_train = int(0.85 * len(x))
    return x[perm[:n_train]], x[perm[n_train:]], side


class VAE(nn.Module):
    """Decoder ``p(x | z)`` (Bernoulli MLP) and encoder ``q(z | x)`` (a FlowEncoder)."""

    def __init__(self, pixels: int, latent_dim: int, hidden: int, encoder: str = "gaussian") -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.decoder = MLP(latent_dim, pixels, (hidden, hidden), zero_init=False)
        flow = None if encoder == "gaussian" else encoder
        self.encoder = FlowEncoder(pixels, latent_dim, (hidden, hidden), flow=flow, context_features=16)

    def model(self, x: torch.Tensor) -> None:
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(self.latent_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", self.encoder(x))

    @torch.no_grad()
    def bounds(self, x: torch.Tensor, num_samples: int) -> tuple[float, float]:
        """Mean ELBO and IWAE bound per image (nats), from ``num_samples`` encoder samples per image."""
        z, log_q = self.encoder(x).rsample_and_log_prob((num_samples,))
        log_prior = dist.Normal(0.0, 1.0).log_prob(z).sum(-1)
        log_lik = dist.Bernoulli(logits=self.decoder(z)).log_prob(x).sum(-1)
        log_w = log_prior + log_lik - log_q  # (K, N)
        iwae = torch.logsumexp(log_w, 0) - math.log(num_samples)
        return log_w.mean().item(), iwae.mean().item()


def make_svi(vae: VAE, total_steps: int) -> SVI:
    """The loop's SVI: Trace_ELBO, ClippedAdam at lr 1e-3 decaying tenfold over ``total_steps``, clip norm 10."""
    lrd = 0.1 ** (1 / max(total_steps, 1))
    return SVI(vae.model, vae.guide, ClippedAdam({"lr": 1e-3, "lrd": lrd, "clip_norm": 10.0}), Trace_ELBO())


def train_vae(vae: VAE, train: torch.Tensor, epochs: int, batch_size: int) -> tuple[float, list[float]]:
    """Trains ``vae``, reshuffling ``train`` every epoch; returns the seconds and each epoch's mean loss per image."""
    svi = make_svi(vae, epochs * math.ceil(len(train) / batch_size))
    losses = []
    start = time.perf_counter()
    for _ in range(epochs):
        total = sum(svi.step(batch) for batch in train[torch.randperm(len(train))].split(batch_size))
        losses.append(total / len(train))
    return time.perf_counter() - start, losses


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps per encoder (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/examples/vi_vae"))
    parser.add_argument("--mnist", action="store_true", help="MNIST test images instead of 8x8 digits")
    parser.add_argument(
        "--root", default=None, help="data root (default: $PYRO_FLOWZOO_DATA, else ~/.cache/pyro_flowzoo)"
    )
    parser.add_argument("--latent-dim", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=None, help="default 150 (digits), 20 (MNIST); quick: 1")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--encoders", nargs="*", default=["gaussian", "realnvp", "iaf"], help="gaussian, all, or encoder_flows()"
    )
    args = parser.parse_args(argv)
    if "all" in args.encoders:
        args.encoders = ["gaussian", *encoder_flows()]
    torch.set_num_threads(1)
    train, test, side = load_data(args.mnist, args.seed, args.root)
    if args.quick:
        train, test = train[:200], test[:100]
    epochs = args.epochs or (1 if args.quick else (20 if args.mnist else 150))
    num_iw = 20 if args.quick else 200
    args.out.mkdir(parents=True, exist_ok=True)

    results, vaes = {}, {}
    for name in args.encoders:
        pyro.clear_param_store()
        pyro.set_rng_seed(args.seed)
        vae = VAE(train.shape[1], args.latent_dim, args.hidden, name)
        seconds, _ = train_vae(vae, train, epochs, args.batch_size)
        elbo, iwae = vae.bounds(test, num_iw)
        train_elbo, _ = vae.bounds(train[: len(test)], 1)
        params = sum(p.numel() for p in vae.encoder.parameters())
        results[name] = {
            "test_elbo": elbo,
            "test_iwae": iwae,
            "train_elbo": train_elbo,
            "encoder_params": params,
            "seconds": seconds,
        }
        vaes[name] = vae
        print(f"{name:9s} test ELBO {elbo:.2f}, IWAE(K={num_iw}) {iwae:.2f} nats/image, {seconds:.1f} s", flush=True)

    data_name = "MNIST (test images)" if args.mnist else "digits 8x8"
    lines = [
        f"# VAE, {data_name} binarised (train {len(train)}, test {len(test)}), latent {args.latent_dim}, "
        f"{epochs} epochs, seed {args.seed}",
        "",
        f"| encoder | test ELBO | test IWAE (K={num_iw}) | train ELBO | encoder params | train s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['test_elbo']:.2f} | {r['test_iwae']:.2f} | {r['train_elbo']:.2f} "
            f"| {r['encoder_params']} | {r['seconds']:.1f} |"
        )
    (args.out / "metrics.md").write_text("\n".join(lines) + "\n")
    (args.out / "metrics.json").write_text(
        json.dumps({"data": data_name, "epochs": epochs, "encoders": results}, indent=2)
    )

    fig, axes = plt.subplots(1, len(vaes), figsize=(2.5 * len(vaes), 2.6))
    axes = [axes] if len(vaes) == 1 else axes
    for ax, (name, vae) in zip(axes, vaes.items()):
        with torch.no_grad():
            probs = torch.sigmoid(vae.decoder(torch.randn(36, args.latent_dim)))
        grid = probs.reshape(6, 6, side, side).permute(0, 2, 1, 3).reshape(6 * side, 6 * side)
        ax.imshow(grid, cmap="gray")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out / "samples.png", dpi=100)
    plt.close(fig)
    print(f"wrote {args.out}/metrics.md and samples.png")
    return results


if __name__ == "__main__":
    main()
