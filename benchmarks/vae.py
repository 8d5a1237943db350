"""Amortized guides: every conditional flow family as a VAE encoder against the plain Gaussian encoder.

The model, data and loop are those of ``examples/vi_vae.py`` (imported, not copied): binarised 8x8 digits
(scikit-learn, a fixed 85/15 shuffle, here always the split of seed 0), a Bernoulli decoder MLP (128, 128)
on a 4-dimensional standard normal prior, an encoder MLP (128, 128), ``Trace_ELBO`` with one particle,
``ClippedAdam`` at lr 1e-3 decaying tenfold, clip norm 10, batch 100. The encoders are
``FlowEncoder(flow=name)`` with :data:`~pyro_flowzoo.infer.amortized.ENCODER_DEFAULTS`: every conditional
vector builder and ``iaf``, against ``gaussian`` (``flow=None``: the diagonal Gaussian encoder that
Pyro's VAE tutorial writes, the amortized counterpart of ``AutoNormal``). Within a seed every encoder
starts from the same decoder initialisation.

Reported on the 270 test images, in nats per image (higher is better): the ELBO (mean of ``log p(x, z) -
log q(z | x)`` over 200 encoder draws per image) and the importance-weighted bound with ``K = 200``
(IWAE), worst and median over seeds; the paired difference to the Gaussian encoder of the same seed;
encoder parameters; ``ms/step``, training wall time per SVI step (median over seeds, each run alone in
the process, one thread; the load average is recorded with every run). ``--speed`` measures ms/step with
the encoders interleaved in one process (rounds of 20 steps each), which is what to compare on a shared
machine.

    python benchmarks/vae.py --quick                 # seconds: 1 seed, 1 epoch, 200 images (checks the script)
    python benchmarks/vae.py --seeds 5               # every encoder, 150 epochs (51 min on 2 shared cores)
    python benchmarks/vae.py --speed                 # interleaved ms/step
    python benchmarks/vae.py --table-only            # the table of the results so far
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from vi_vae import VAE, load_data, make_svi, train_vae  # noqa: E402

from pyro_flowzoo.infer.amortized import encoder_flows  # noqa: E402

ENCODERS = ["gaussian", *encoder_flows()]
LATENT_DIM, HIDDEN, BATCH_SIZE = 4, 128, 100  # the example's defaults


def run(name: str, seed: int, epochs: int, train: torch.Tensor, test: torch.Tensor, num_iw: int, position: str) -> dict:
    """Trains one VAE with the example's loop and scores it; a raise or a non-finite loss is recorded."""
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    vae = VAE(train.shape[1], LATENT_DIM, HIDDEN, name)
    vae.encoder.affine_position = position
    result = {"encoder": name, "seed": seed, "epochs": epochs, "affine_position": position}
    result["encoder_params"] = sum(p.numel() for p in vae.encoder.parameters())
    load = os.getloadavg()[0]
    try:
        seconds, losses = train_vae(vae, train, epochs, BATCH_SIZE)
    except (RuntimeError, ValueError) as error:  # e.g. a NaN scale rejected by a distribution's validation
        return {**result, "error": f"{type(error).__name__}: {str(error)[:200]}"}
    steps = epochs * math.ceil(len(train) / BATCH_SIZE)
    finite = all(math.isfinite(v) for v in losses) and all(p.isfinite().all() for p in vae.parameters())
    elbo, iwae = vae.bounds(test, num_iw)
    train_elbo, _ = vae.bounds(train[: len(test)], num_iw)
    return {
        **result,
        "test_elbo": elbo,
        "test_iwae": iwae,
        "train_elbo": train_elbo,
        "finite": finite,
        "final_loss": losses[-1],
        "ms_per_step": 1000 * seconds / steps,
        "load": [load, os.getloadavg()[0]],
    }


def speed(encoders: list[str], train: torch.Tensor, rounds: int, steps: int) -> list[str]:
    """ms per SVI step with the encoders interleaved (round robin, ``steps`` each per round): median over rounds."""
    svis, times = {}, {}
    batches = train[: 10 * BATCH_SIZE].split(BATCH_SIZE)
    for name in encoders:
        pyro.set_rng_seed(0)
        vae = VAE(train.shape[1], LATENT_DIM, HIDDEN, name)
        svis[name], times[name] = make_svi(vae, 10**6), []
    for r in range(rounds + 1):  # round 0 warms up
        for name in encoders:
            # The VAEs share site names: re-register this one's modules (their tensors; the optimizer's state
            # is keyed by them and kept) by emptying the store.
            pyro.clear_param_store()
            start = time.perf_counter()
            for i in range(steps):
                svis[name].step(batches[i % len(batches)])
            if r:
                times[name].append(1000 * (time.perf_counter() - start) / steps)
    base = statistics.median(times["gaussian"]) if "gaussian" in times else None
    lines = [
        f"ms per SVI step, encoders interleaved ({rounds} rounds of {steps} steps, batch {BATCH_SIZE}, one thread; "
        f"load average {os.getloadavg()[0]:.1f})",
        "",
        "| encoder | ms/step | x gaussian |",
        "|---|---|---|",
    ]
    for name in encoders:
        ms = statistics.median(times[name])
        lines.append(f"| {name} | {ms:.1f} | {ms / base:.2f}x |" if base else f"| {name} | {ms:.1f} | - |")
    return lines


def _worst_median(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f}" if values else "-"


def table(results: list[dict], encoders: list[str]) -> list[str]:
    """Worst / median over seeds (higher is better); Δ is paired with the Gaussian encoder of the same seed."""
    by = {(r["encoder"], r["seed"]): r for r in results}
    seeds = sorted({r["seed"] for r in results})
    gauss = {s: by[("gaussian", s)] for s in seeds if ("gaussian", s) in by and "error" not in by[("gaussian", s)]}
    lines = [
        "| encoder | test ELBO | test IWAE | Δ ELBO vs gaussian | Δ IWAE vs gaussian | train ELBO "
        "| encoder params | ms/step | failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in encoders:
        runs = [by[(name, s)] for s in seeds if (name, s) in by]
        if not runs:
            continue
        ok = [r for r in runs if "error" not in r and r["finite"]]
        paired = [(r, gauss[r["seed"]]) for r in ok if r["seed"] in gauss]
        cells = [
            _worst_median([r["test_elbo"] for r in ok]) + f" ({len(ok)})",
            _worst_median([r["test_iwae"] for r in ok]),
            "-" if name == "gaussian" else _worst_median([r["test_elbo"] - g["test_elbo"] for r, g in paired]),
            "-" if name == "gaussian" else _worst_median([r["test_iwae"] - g["test_iwae"] for r, g in paired]),
            _worst_median([r["train_elbo"] for r in ok]),
            str(runs[0]["encoder_params"]),
            f"{statistics.median(r['ms_per_step'] for r in ok):.1f}" if ok else "-",
            str(len(runs) - len(ok)),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    loads = [v for r in results if "load" in r for v in r["load"]]
    if loads:
        lines += ["", f"load average during the runs: {min(loads):.1f} to {max(loads):.1f} (2 cores)"]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 1 epoch, 200 train / 100 test images, K=20")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=150, help="the example's 150 by default")
    parser.add_argument("--encoders", nargs="*", default=ENCODERS, choices=ENCODERS)
    parser.add_argument("--affine-position", default="latent", choices=["latent", "data"])
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/vae.json"))
    parser.add_argument("--table-only", action="store_true", help="print the table of the results so far")
    parser.add_argument("--speed", action="store_true", help="only the interleaved ms/step comparison")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    train, test, _ = load_data(False, 0)
    num_iw = 200
    if args.quick:
        train, test, num_iw = train[:200], test[:100], 20
        args.epochs, args.seeds = 1, 1
        args.out = args.out.with_name(args.out.stem + "_quick.json")
    if args.speed:
        lines = speed(args.encoders, train, *((1, 2) if args.quick else (10, 20)))
        print("\n".join(lines))
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.out.read_text()) if args.out.exists() else []
    if not args.table_only:  # the first step of a process pays for lazy set-up: not the first run's time
        run("gaussian", 0, 1, train[:BATCH_SIZE], test[:10], 2, args.affine_position)
    key = ("encoder", "seed", "epochs", "affine_position")
    done = {tuple(r[k] for k in key) for r in results}
    for seed in range(args.seeds):  # seeds outer: a change of load falls on every encoder alike
        for name in args.encoders:
            if args.table_only or (name, seed, args.epochs, args.affine_position) in done:
                continue
            r = run(name, seed, args.epochs, train, test, num_iw, args.affine_position)
            results.append(r)
            shown = {k: round(r[k], 3) for k in ("test_elbo", "test_iwae", "ms_per_step") if k in r}
            print(name, seed, shown, r.get("error", ""), flush=True)
            args.out.write_text(json.dumps(results, indent=1))
    mine = [r for r in results if r["epochs"] == args.epochs and r["affine_position"] == args.affine_position]
    mine = [r for r in mine if r["seed"] < args.seeds and r["encoder"] in args.encoders]
    lines = [
        f"VAE on digits 8x8 (train {len(train)}, test {len(test)}), latent {LATENT_DIM}, {args.epochs} epochs, "
        f"flow position {args.affine_position!r}, seeds 0-{args.seeds - 1}; nats/image, worst / median (runs)",
        "",
        *table(mine, args.encoders),
    ]
    md = args.out.with_suffix(".md")
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.out} and {md}")


if __name__ == "__main__":
    main()
