"""Variational guides under a plain Pyro loop: pyro_flowzoo's default guides against Pyro's autoguides.

Supersedes ``benchmarks/guides.py`` for the VI defaults (that script trains with ``fit_svi`` and one seed).
Every guide is built with its defaults (``AutoFlowGuide(model, name)`` for ours) and trained by the same
loop a user would write::

    svi = SVI(model, guide, Adam({"lr": 5e-3}), Trace_ELBO(num_particles=8, vectorize_particles=True))
    for step in range(2000): svi.step()

over several seeds; the table reports the worst seed and the median. Targets:

- ``banana``: ``BananaPosterior()`` (closed-form log Z): gap ``log Z - ELBO = KL(q || p)`` in nats;
- ``funnel6``, ``funnel10``: Neal's funnel (``funnel_model``, scale 3) in 6 and 10 dimensions, log Z = 0;
- ``mixture``: an equal mixture of two unit Gaussians at (-2, 0) and (2, 0) (log Z = 0);
- ``gauss``: ``GaussianLinearPosterior(3)`` (correlations up to 0.88): max |mean error| in posterior sds
  and max |covariance error| in units of ``sd_i sd_j``, from 20,000 guide draws (Monte Carlo s.e.
  about 0.007 and 0.01), plus the gap to the closed-form log Z;
- ``logreg``: Bayesian logistic regression (``logistic_regression_model``, prior scale 1) on
  scikit-learn's bundled breast-cancer set (569 x 30, standardised): the ELBO (nats) and max |posterior
  mean error| in posterior sds against a long NUTS run (cached in ``runs/benchmarks/vi_nuts_logreg.json``).

ELBOs use 20,000 guide draws (5,000 for ``logreg``). A run whose loop raises, or whose parameters end
non-finite, counts as a failure (gap ``inf``). ``ms/step`` is training wall time per SVI step (median
over the runs of a target), on 2 shared CPU cores with one thread per process: compare ratios, not values.

    python benchmarks/vi.py --quick                          # 30 steps, 1 seed, banana + gauss: checks the script
    python benchmarks/vi.py --seeds 5 --jobs 2               # everything (hours on 2 cores)
    python benchmarks/vi.py --targets banana funnel6 --guides realnvp AutoIAFNormal --seeds 5
    python benchmarks/vi.py --speed --targets banana funnel6    # ms/step, guides interleaved in one process
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import statistics
import time
from functools import partial
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import block_autoregressive, iterated, spline_autoregressive
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoIAFNormal, AutoMultivariateNormal, AutoNormal, AutoNormalizingFlow
from pyro.optim import Adam

from pyro_flowzoo import FLOWS
from pyro_flowzoo.infer import (
    VECTOR_BUILDERS,
    AutoFlowGuide,
    BananaPosterior,
    GaussianLinearPosterior,
    evidence,
    funnel_model,
    logistic_regression_model,
)

PYRO_GUIDES = [
    "AutoNormal",
    "AutoMultivariateNormal",
    "AutoIAFNormal",
    "AutoNormalizingFlow(spline)",
    "AutoNormalizingFlow(BNAF)",
]
OURS = [n for n in VECTOR_BUILDERS if n in FLOWS]  # a label may add hyper-parameters: 'maf{"num_layers": 2}'
TARGETS = ["banana", "funnel6", "funnel10", "mixture", "gauss", "logreg"]
NUTS_CACHE = Path("runs/benchmarks/vi_nuts_logreg.json")


def make_guide(label: str, model):
    if label == "AutoNormal":
        return AutoNormal(model)
    if label == "AutoMultivariateNormal":
        return AutoMultivariateNormal(model)
    if label == "AutoIAFNormal":  # the configuration measured in issue 14
        return AutoIAFNormal(model, num_transforms=3, hidden_dim=[32, 32])
    if label == "AutoNormalizingFlow(spline)":
        return AutoNormalizingFlow(model, partial(iterated, 2, spline_autoregressive))
    if label == "AutoNormalizingFlow(BNAF)":  # what AutoBNAFNormal was (Pyro 1.9 no longer has the class)
        return AutoNormalizingFlow(model, partial(iterated, 1, block_autoregressive, hidden_factors=[8, 8]))
    name, _, hparams = label.partition("{")  # 'nsf_coupling{"mask": "prefix"}': builder hyper-parameters
    return AutoFlowGuide(model, name, **(json.loads("{" + hparams) if hparams else {}))


def mixture_model() -> None:
    """Two unit Gaussians at (-2, 0) and (2, 0), equal weights: a normalised density (log Z = 0)."""
    # A wide Normal site, reweighted to the mixture by a factor (MixtureSameFamily's support has no bijection).
    wide = dist.Normal(torch.zeros(2), 10.0).to_event(1)
    z = pyro.sample("z", wide)
    locs = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    log_p = dist.Normal(locs, 1.0).to_event(1).log_prob(z.unsqueeze(-2))
    pyro.factor("mixture", torch.logsumexp(log_p, -1) - math.log(2.0) - wide.log_prob(z))


def breast_cancer() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    return x, torch.tensor(y, dtype=torch.float32)


def gaussian_log_z(problem: GaussianLinearPosterior) -> float:
    x = problem.design.double()
    cov = x @ x.T + problem.noise**2 * torch.eye(x.shape[0], dtype=torch.float64)
    return (
        dist.MultivariateNormal(torch.zeros(x.shape[0], dtype=torch.float64), cov).log_prob(problem.obs.double()).item()
    )


def nuts_reference(num_samples: int = 2000, warmup: int = 1000) -> dict:
    """Posterior mean and sd of (w, b) from NUTS, computed once and cached."""
    if NUTS_CACHE.exists():
        return json.loads(NUTS_CACHE.read_text())
    from pyro.infer import MCMC, NUTS

    x, y = breast_cancer()
    pyro.set_rng_seed(0)
    start = time.perf_counter()
    mcmc = MCMC(NUTS(logistic_regression_model), num_samples=num_samples, warmup_steps=warmup, disable_progbar=True)
    mcmc.run(x, y)
    s = mcmc.get_samples()
    theta = torch.cat([s["w"], s["b"].unsqueeze(-1)], -1).double()
    ref = {
        "mean": theta.mean(0).tolist(),
        "sd": theta.std(0).tolist(),
        "num_samples": num_samples,
        "warmup": warmup,
        "seconds": time.perf_counter() - start,
    }
    NUTS_CACHE.parent.mkdir(parents=True, exist_ok=True)
    NUTS_CACHE.write_text(json.dumps(ref))
    return ref


def target(name: str):
    """(model, args, max_plate_nesting, log Z or None)."""
    if name == "banana":
        banana = BananaPosterior()
        return banana.model, (), 0, banana.log_z
    if name.startswith("funnel"):
        return partial(funnel_model, int(name[len("funnel") :])), (), 0, 0.0
    if name == "mixture":
        return mixture_model, (), 0, 0.0
    if name == "gauss":
        problem = GaussianLinearPosterior(3)
        return problem.model, (), 0, gaussian_log_z(problem)
    if name == "logreg":
        return logistic_regression_model, breast_cancer(), 1, None
    raise ValueError(f"unknown target {name!r}")


def draws(model, guide, args, n: int, sites: list[str]) -> torch.Tensor:
    # The guide alone: Predictive(model, guide=...) in parallel mode drops the particle dimension's
    # trailing 1 of unplated vector sites, which breaks models with a data plate (logreg).
    samples = Predictive(guide, num_samples=n, return_sites=sites, parallel=True)(*args)
    return torch.cat([samples[s].reshape(n, -1) for s in sites], -1).double()


LOOP_DEFAULTS = {"lr": 5e-3, "particles": 8, "vectorize": True}


def _key(r: dict) -> tuple:
    """What makes two results the same run: guide, target, seed, steps and the loop's settings."""
    return (r["guide"], r["target"], r["seed"], r["steps"], *(r.get(k, v) for k, v in LOOP_DEFAULTS.items()))


def run(
    label: str, target_name: str, seed: int, steps: int, lr: float = 5e-3, particles: int = 8, vectorize: bool = True
) -> dict:
    torch.set_num_threads(1)
    model, args, nesting, log_z = target(target_name)
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    guide = make_guide(label, model)
    svi = SVI(
        model,
        guide,
        Adam({"lr": lr}),
        Trace_ELBO(num_particles=particles, vectorize_particles=vectorize, max_plate_nesting=nesting),
    )
    out: dict = {"guide": label, "target": target_name, "seed": seed, "steps": steps}
    out.update(lr=lr, particles=particles, vectorize=vectorize)
    nonfinite = 0
    start = time.perf_counter()
    try:
        svi.step(*args)  # the first step builds the guide (and ours chooses its initial Gaussian)
        out["setup_s"] = time.perf_counter() - start
        loop = time.perf_counter()
        for _ in range(steps - 1):
            nonfinite += not math.isfinite(svi.step(*args))
        out["ms_per_step"] = (time.perf_counter() - loop) / max(steps - 1, 1) * 1e3
        finite = all(bool(torch.isfinite(p).all()) for p in pyro.get_param_store().values())
        if not finite:
            raise FloatingPointError("parameters are not finite")
        n_eval = 5000 if target_name == "logreg" else 20000
        with torch.no_grad():
            ev = evidence(model, guide, *args, num_samples=n_eval, max_plate_nesting=nesting, batch_size=5000)
        out["elbo"], out["elbo_se"] = ev["elbo"], ev["elbo_se"]
        if log_z is not None:
            out["gap"] = log_z - ev["elbo"]
        if target_name == "gauss":
            problem = GaussianLinearPosterior(3)
            theta = draws(model, guide, args, 20000, ["a", "b"])
            sd = problem.cov.diagonal().sqrt()
            out["mean_err"] = ((theta.mean(0) - problem.mean) / sd).abs().max().item()
            out["cov_err"] = ((torch.cov(theta.T) - problem.cov) / (sd[:, None] * sd)).abs().max().item()
        if target_name == "logreg":
            ref = nuts_reference()
            theta = draws(model, guide, args, 5000, ["w", "b"])
            mean, sd = torch.tensor(ref["mean"], dtype=torch.float64), torch.tensor(ref["sd"], dtype=torch.float64)
            out["mean_err"] = ((theta.mean(0) - mean) / sd).abs().max().item()
    except Exception as e:  # a run that fails counts as a failure, not a crash of the benchmark
        out["error"] = f"{type(e).__name__}: {str(e)[:200]}"
        out["gap"] = math.inf
        out["elbo"] = -math.inf
    out["nonfinite_steps"] = nonfinite
    return out


def speed(guides: list[str], targets: list[str], steps: int = 50, rounds: int = 3) -> list[str]:
    """ms per SVI step of every guide, interleaved in one process (``rounds`` x ``steps`` each), so that a
    changing load on shared cores hits every guide alike; the median round, and its ratio to AutoIAFNormal."""
    torch.set_num_threads(1)
    lines = ["| target | " + " | ".join(guides) + " |", "|" + "---|" * (len(guides) + 1)]
    for t in targets:
        model, args, nesting, _ = target(t)
        svis = {}
        for g in guides:
            pyro.clear_param_store()
            pyro.set_rng_seed(0)
            svis[g] = SVI(
                model,
                make_guide(g, model),
                Adam({"lr": 5e-3}),
                Trace_ELBO(num_particles=8, vectorize_particles=True, max_plate_nesting=nesting),
            )
            svis[g].step(*args)
        times: dict = {g: [] for g in guides}
        for _ in range(rounds):
            for g, svi in svis.items():
                start = time.perf_counter()
                for _ in range(steps):
                    svi.step(*args)
                times[g].append((time.perf_counter() - start) / steps * 1e3)
        ms = {g: statistics.median(v) for g, v in times.items()}
        iaf = ms.get("AutoIAFNormal")
        lines.append(
            f"| {t} | " + " | ".join(f"{ms[g]:.1f}" + (f" ({ms[g] / iaf:.2f}x)" if iaf else "") for g in guides) + " |"
        )
        print(lines[-1], flush=True)
    return lines


def _run_star(job: tuple) -> dict:
    return run(*job)


def _fmt(values: list[float], worst) -> str:
    if not values:
        return "-"
    return f"{worst(values):.3f} / {statistics.median(values):.3f} ({len(values)})"


def table(results: list[dict], guides: list[str], targets: list[str]) -> list[str]:
    """Markdown: worst / median (number of seeds) of each target's score, and ms per step (median)."""
    cols = []
    for t in targets:
        if t == "gauss":
            cols += [("gauss", "mean_err", max, "gauss mean err (sd)"), ("gauss", "cov_err", max, "gauss cov err")]
        elif t == "logreg":
            cols += [("logreg", "elbo", min, "logreg ELBO"), ("logreg", "mean_err", max, "logreg mean err (sd)")]
        else:
            cols.append((t, "gap", max, f"{t} gap"))
    head = "| guide | " + " | ".join(c[3] for c in cols) + " | ms/step (ratio to IAF) |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    by = {}
    for r in results:
        by.setdefault((r["guide"], r["target"]), []).append(r)
    iaf_ms = [r["ms_per_step"] for r in results if r["guide"] == "AutoIAFNormal" and "ms_per_step" in r]
    iaf = statistics.median(iaf_ms) if iaf_ms else None
    for g in guides:
        cells = []
        for t, key, worst, _ in cols:
            rs = by.get((g, t), [])
            vals = [r.get(key, math.inf if worst is max else -math.inf) for r in rs]
            cells.append(_fmt(vals, worst))
        ms = [r["ms_per_step"] for r in results if r["guide"] == g and "ms_per_step" in r]
        # Per-step cost relative to IAF on the same targets (each target's median ratio, then the median).
        ratios = []
        for t in targets:
            a = [r["ms_per_step"] for r in by.get((g, t), []) if "ms_per_step" in r]
            b = [r["ms_per_step"] for r in by.get(("AutoIAFNormal", t), []) if "ms_per_step" in r]
            if a and b:
                ratios.append(statistics.median(a) / statistics.median(b))
        speed = (
            "-"
            if not ms
            else f"{statistics.median(ms):.1f}" + (f" ({statistics.median(ratios):.2f}x)" if ratios and iaf else "")
        )
        lines.append(f"| {g} | " + " | ".join(cells) + f" | {speed} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 steps, one seed, banana and gauss")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=LOOP_DEFAULTS["lr"], help="Adam's learning rate")
    parser.add_argument("--particles", type=int, default=LOOP_DEFAULTS["particles"], help="ELBO particles")
    parser.add_argument("--no-vectorize", action="store_true", help="particles in a Python loop, not a plate")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (one thread each)")
    parser.add_argument("--targets", nargs="*", default=TARGETS, choices=TARGETS)
    parser.add_argument("--guides", nargs="*", default=OURS + PYRO_GUIDES)
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/vi.json"))
    parser.add_argument(
        "--also",
        nargs="*",
        type=Path,
        default=[],
        help="more result files (other processes' --out) to include in the table",
    )
    parser.add_argument("--table-only", action="store_true", help="print the table of the results so far")
    parser.add_argument("--speed", action="store_true", help="only the interleaved ms/step comparison")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.seeds = 30, 1
        args.targets = [t for t in args.targets if t in ("banana", "gauss")] or ["banana"]
        args.out = args.out.with_name(args.out.stem + "_quick.json")
    torch.set_num_threads(1)
    if args.speed:
        lines = speed(args.guides, args.targets, *((5, 1) if args.quick else (50, 3)))
        print("\n".join(lines))
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.out.read_text()) if args.out.exists() else []
    loop = (args.lr, args.particles, not args.no_vectorize)
    done = {_key(r) for r in results}
    if "logreg" in args.targets and not args.quick and not args.table_only:
        nuts_reference()
    jobs = [
        (g, t, s, args.steps, *loop)
        for t in args.targets
        for g in args.guides
        for s in range(args.seeds)
        if (g, t, s, args.steps, *loop) not in done and not args.table_only
    ]
    pool = mp.get_context("spawn").Pool(args.jobs) if args.jobs > 1 else None
    it = pool.imap_unordered(_run_star, jobs) if pool else map(_run_star, jobs)
    for r in it:
        results.append(r)
        score = {k: round(r[k], 4) for k in ("gap", "elbo", "mean_err", "cov_err", "ms_per_step") if k in r}
        print(r["guide"], r["target"], r["seed"], score, r.get("error", ""), flush=True)
        args.out.write_text(json.dumps(results, indent=1))
    if pool:
        pool.close()
    for path in (p for p in args.also if p.exists()):
        results += [r for r in json.loads(path.read_text()) if _key(r) not in done]
    unique: dict = {}
    for r in results:  # one result per (guide, target, seed, steps, loop): the first one read
        unique.setdefault(_key(r), r)
    mine = [
        r
        for r in unique.values()
        if _key(r)[3:] == (args.steps, *loop) and r["guide"] in args.guides and r["target"] in args.targets
    ]
    lines = table(mine, args.guides, args.targets)
    md = args.out.with_suffix(".md")
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {args.out} and {md}")


if __name__ == "__main__":
    main()
