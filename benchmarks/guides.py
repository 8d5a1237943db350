"""Flow guides against Pyro's autoguides: ELBO gap on the banana, moment errors on a Gaussian posterior.

Every guide is trained the same way, with Pyro's SVI (``pyro_flowzoo.infer.fit_svi``: Trace_ELBO with
vectorised particles, ClippedAdam with the learning rate decaying from ``lr`` to ``lr / 10``), from
the same seed:

- banana (``pyro_flowzoo.infer.BananaPosterior``, closed-form ``log Z``): the ELBO gap
  ``log Z - ELBO = KL(q || p)`` in nats, from 20,000 guide samples (its Monte Carlo s.e. alongside);
- correlated Gaussian (``GaussianLinearPosterior(3)``, closed-form mean and covariance): the largest
  error of the guide's mean in posterior standard deviations, and of its covariance in units of
  ``sd_i sd_j``, from 20,000 guide samples (Monte Carlo s.e. about 0.007 and 0.01).

Peers: AutoNormal, AutoMultivariateNormal, Pyro's AutoNormalizingFlow with iterated affine couplings
(no permutation, as in its documentation) and AutoIAFNormal.

    python benchmarks/guides.py                 # ~20 CPU-minutes; writes runs/benchmarks/guides.md
    python benchmarks/guides.py --quick         # a few steps (checks the script)
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import pyro
import torch
from pyro.distributions.transforms import affine_coupling, iterated
from pyro.infer.autoguide import AutoIAFNormal, AutoMultivariateNormal, AutoNormal, AutoNormalizingFlow

from pyro_flowzoo import FLOWS
from pyro_flowzoo.infer import AutoFlowGuide, BananaPosterior, GaussianLinearPosterior, evidence, fit_svi

# Moderate sizes for 2-3 latent dimensions.
HPARAMS = {
    "nice": {"num_layers": 6, "hidden_dims": (32, 32)},
    "realnvp": {"num_layers": 6, "hidden_dims": (32, 32)},
    "maf": {"num_layers": 4, "hidden_dims": (32, 32)},
    "nsf_ar": {"num_layers": 3, "hidden_dims": (32, 32), "num_bins": 8},
    "nsf_coupling": {"num_layers": 4, "hidden_dims": (32, 32), "num_bins": 8},
    "ar_flow": {"num_layers": 2, "hidden_dims": (32, 32), "num_components": 8},
    "planar": {"num_layers": 16},
    "radial": {"num_layers": 16},
}
GUIDES = [
    "AutoNormal",
    "AutoMultivariateNormal",
    "Pyro AutoNormalizingFlow(iterated affine_coupling)",
    "Pyro AutoIAFNormal",
    *[f"AutoFlowGuide({n})" for n in HPARAMS],
    "AutoFlowGuide(radial, affine=tril)",
]


def make_guide(label: str, model):
    if label == "AutoNormal":
        return AutoNormal(model)
    if label == "AutoMultivariateNormal":
        return AutoMultivariateNormal(model)
    if label.startswith("Pyro AutoNormalizingFlow"):
        return AutoNormalizingFlow(model, partial(iterated, 4, affine_coupling))
    if label == "Pyro AutoIAFNormal":
        return AutoIAFNormal(model, num_transforms=4)
    name = label[len("AutoFlowGuide(") : -1].split(",")[0]
    affine = "tril" if "tril" in label else "diag"
    return AutoFlowGuide(model, name, affine=affine, **HPARAMS[name])


def posterior_samples(guide, model, n: int) -> torch.Tensor:
    """Packed latent samples (sites in model order) drawn through the guide's forward."""
    with torch.no_grad(), pyro.plate("samples", n, dim=-1):
        draw = guide()
    trace = pyro.poutine.trace(model).get_trace()
    names = [name for name, _ in trace.iter_stochastic_nodes()]
    return torch.cat([draw[k].reshape(n, -1) for k in names], -1).double()


def run(label: str, steps: int, particles: int, lr: float, seed: int, n_eval: int) -> dict:
    out = {}
    banana = BananaPosterior()
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    guide = make_guide(label, banana.model)
    start = time.perf_counter()
    fit_svi(banana.model, guide, steps=steps, lr=lr, num_particles=particles, max_plate_nesting=0)
    out["banana_seconds"] = time.perf_counter() - start
    ev = evidence(banana.model, guide, num_samples=n_eval, max_plate_nesting=0)
    out["banana_gap"] = banana.log_z - ev["elbo"]
    out["banana_gap_se"] = ev["elbo_se"]

    problem = GaussianLinearPosterior(3)
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    guide = make_guide(label, problem.model)
    start = time.perf_counter()
    fit_svi(problem.model, guide, steps=steps, lr=lr, num_particles=particles, max_plate_nesting=0)
    out["gauss_seconds"] = time.perf_counter() - start
    theta = posterior_samples(guide, problem.model, n_eval)
    sd = problem.cov.diagonal().sqrt()
    out["mean_err"] = ((theta.mean(0) - problem.mean) / sd).abs().max().item()
    out["cov_err"] = ((torch.cov(theta.T) - problem.cov) / (sd[:, None] * sd)).abs().max().item()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--particles", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="substrings of guide labels to run")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/guides.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    steps, n_eval = (10, 500) if args.quick else (args.steps, 20000)
    labels = [g for g in GUIDES if args.only is None or any(s in g for s in args.only)]
    labels = [g for g in labels if not g.startswith("AutoFlowGuide(") or g[14:-1].split(",")[0] in FLOWS]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path = args.out.with_suffix(".json")
    results = json.loads(json_path.read_text()) if json_path.exists() and not args.quick else {}
    for label in labels:
        r = run(label, steps, args.particles, args.lr, args.seed, n_eval)
        results[label] = r
        print(
            f"{label:55s} banana gap {r['banana_gap']:.4f} (+-{r['banana_gap_se']:.4f})  "
            f"gauss mean err {r['mean_err']:.3f} sd, cov err {r['cov_err']:.3f}  "
            f"[{r['banana_seconds'] + r['gauss_seconds']:.0f} s]",
            flush=True,
        )
        if not args.quick:
            json_path.write_text(json.dumps(results, indent=2))
    if args.quick:
        return
    lines = [
        "# Flow guides vs Pyro autoguides (benchmarks/guides.py)",
        "",
        f"Command: `python benchmarks/guides.py --steps {steps} --particles {args.particles} --lr {args.lr}` "
        f"(seed {args.seed}); 2 shared CPU cores, one thread; train seconds are indicative only.",
        "Every guide: Pyro SVI, Trace_ELBO (vectorised particles), ClippedAdam lr decaying to lr/10.",
        "Banana: `BananaPosterior()` (log Z closed form); gap = log Z - ELBO (nats) from 20,000 samples.",
        "Gaussian: `GaussianLinearPosterior(3)` (correlations up to 0.88); max |mean error| in posterior sds,",
        "max |covariance error| / (sd_i sd_j), from 20,000 samples (MC s.e. ~0.007 and ~0.01).",
        "",
        "| guide | banana ELBO gap (nats) | MC s.e. | Gaussian mean error (sd) | Gaussian cov error | train s (both) |",
        "|---|---|---|---|---|---|",
    ]
    for label in GUIDES:
        if label in results:
            r = results[label]
            lines.append(
                f"| {label} | {r['banana_gap']:.4f} | {r['banana_gap_se']:.4f} | {r['mean_err']:.3f} "
                f"| {r['cov_err']:.3f} | {r['banana_seconds'] + r['gauss_seconds']:.0f} |"
            )
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
