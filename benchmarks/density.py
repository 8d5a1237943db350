"""Density defaults (issue 15): test NLL minus the true entropy, nats/dim, for every builder and its peers.

Data: :data:`pyro_flowzoo.data.EXACT_SETS` (exact densities). Per (set, seed): 2,000 training points
(generator seed ``seed``), 20,000 test points (seed ``1000 + seed``); the true entropy is the closed form
where the set has one, else the Monte Carlo mean of ``-log p`` over 200,000 fresh points (its standard
error is printed). Every model is a library's *default* for the family, built as a user would:

* ours: ``fz.build(name, (D,))`` for realnvp, maf, nsf_ar, nsf_coupling, ar_flow, nice;
* zuko: ``zuko.flows.RealNVP / MAF / NSF / NSF(passes=2) / NICE (features=D)`` with zuko's defaults
  (zuko has no mixture-CDF flow: ``ar_flow`` has no zuko row; zuko's ``NICE`` uses affine couplings by
  default, so ``zuko:nice`` is three RealNVP-style couplings, not additive ones);
* nflows: the same architecture as ours (``benchmarks/peers.py``: layers, hidden sizes, bins, bound)
  for realnvp, maf, nsf_ar, nsf_coupling, by dimension as ours (:func:`nflows_sizes`; nflows ships no
  defaults for these). Its masks and input handling are its own: no input bound, no standardization.

Loops:

* ``loop``: the plain user loop, the same for every library: Adam(lr), cosine decay over the steps,
  gradient-norm clipping 10, mini-batches of 256 drawn as shuffled epochs, 2,000 steps, float32, no
  data-dependent init call (a flow that needs one must do it itself). A non-finite loss skips the step
  and is counted (the "NaN" column).
* ``fit``: :func:`pyro_flowzoo.fit` (ours only) on the first 1,800 training points, the last 200 for
  validation, ``steps=2000, lr=1e-3`` and fit's other defaults.

On the 1-D bounded sets (``gamma_mix``, ``beta_mix``) ours get ``support=`` the set's support; only
``nsf_ar``, ``nsf_coupling`` and ``ar_flow`` take ``(1,)``.

Each run is its own process on one thread (``--jobs`` at a time). The table reports the worst seed's gap
(and the mean) per (set, model, loop).

    python benchmarks/density.py [--quick] [--sets ...] [--models ...] [--seeds 0 1 2] [--loops loop fit]
                                 [--steps 2000] [--lr 1e-3] [--batch-size 256] [--clip 10] [--dtype float32]
                                 [--jobs 2] [--json out.json] [--entropy-cache entropies.json]

``--quick``: one set (8gaussians), ours and zuko's MAF / NSF, 200 steps, one seed (a smoke test).
``--constant-jacobian-bound``: no training; the lower bound on KL/D of any flow with a constant Jacobian
determinant (NICE) on each of ``--sets`` (:func:`constant_jacobian_bound`).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

import torch

OURS = ["realnvp", "maf", "nsf_ar", "nsf_coupling", "ar_flow", "nice"]
ZUKO = {"realnvp": "RealNVP", "maf": "MAF", "nsf_ar": "NSF", "nsf_coupling": "NSF2", "nice": "NICE"}
NFLOWS = ("realnvp", "maf", "nsf_ar", "nsf_coupling")


def nflows_sizes(arch: str, dim: int) -> dict:
    """Our builders' default sizes for ``dim``, for nflows (which ships no defaults for these families).

    Only the flow layers: our splines' affine layer in front (``affine_layer``, ``D >= 3``) has no nflows twin here.
    """
    from pyro_flowzoo.flows.vector import small_hidden
    from pyro_flowzoo.nn.made import default_made_hidden

    if dim <= 2:
        layers = {"realnvp": 12, "maf": 24, "nsf_ar": 3, "nsf_coupling": 3}
        return {"num_layers": layers[arch], "hidden": (64, 64), "bins": 8}
    layers = {"realnvp": 4, "maf": 3, "nsf_ar": 2, "nsf_coupling": 2}
    hidden = default_made_hidden(dim) if arch == "maf" else small_hidden(dim)
    return {"num_layers": layers[arch], "hidden": hidden, "bins": 4 if arch == "nsf_coupling" else 8}


SETS = ["8gaussians", "rings", "pinwheel", "moons", "smiley", "sas6", "student_t4", "banana16"]
MODELS = [f"ours:{a}" for a in OURS] + [f"zuko:{a}" for a in ZUKO] + [f"nflows:{a}" for a in NFLOWS]


def make(model: str, dim: int, hparams: dict):
    """``(module, log_prob)`` of ``"lib:arch"``."""
    lib, arch = model.split(":")
    if lib == "ours":
        import pyro_flowzoo as fz

        flow = fz.build(arch, (dim,), **hparams.get(arch, {}))
        return flow, flow.log_prob
    if lib == "zuko":
        import zuko

        name = ZUKO[arch]
        cls = getattr(zuko.flows, name.rstrip("2"))
        flow = cls(features=dim, passes=2) if name == "NSF2" else cls(features=dim)
        return flow, lambda x: flow().log_prob(x)
    if lib == "nflows":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from peers import build

        m = build("nflows", arch, dim, bound=5.0, **nflows_sizes(arch, dim))
        return m.module, m.log_prob
    raise ValueError(model)


def _data(name: str, seed: int, n_train: int, n_test: int):
    from pyro_flowzoo.data import EXACT_SETS

    s = EXACT_SETS[name]
    train = s.sample(n_train, generator=torch.Generator().manual_seed(seed))[0]
    test = s.sample(n_test, generator=torch.Generator().manual_seed(1000 + seed))[0]
    return s, train, test


@torch.no_grad()
def _nll(log_prob, x: torch.Tensor) -> float:
    return -torch.cat([log_prob(c) for c in x.split(4096)]).double().mean().item()


def run(job: dict) -> dict:
    torch.set_num_threads(1)
    from pyro_flowzoo.data import exact

    dtype = getattr(torch, job["dtype"])
    s, train, test = _data(job["set"], job["seed"], 2000, job["n_test"])
    train, test = train.to(dtype), test.to(dtype)
    entropy, entropy_se = job["entropy"] if "entropy" in job else exact.entropy(job["set"])
    torch.manual_seed(job["seed"])
    hparams = job["hparams"]
    if s.support is not None and job["model"].startswith("ours:"):  # bounded sets: ours end with the support's map
        arch = job["model"].split(":")[1]
        hparams = {**hparams, arch: {"support": s.support, **hparams.get(arch, {})}}
    module, log_prob = make(job["model"], s.dim, hparams)
    module = module.to(dtype)
    bad = 0
    start = time.perf_counter()
    if job["loop"] == "loop":
        module.train()
        opt = torch.optim.Adam(module.parameters(), lr=job["lr"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, job["steps"])
        g = torch.Generator().manual_seed(job["seed"])
        order = torch.randperm(len(train), generator=g)
        pos = 0
        for _ in range(job["steps"]):
            if pos + job["batch_size"] > len(train):
                order, pos = torch.randperm(len(train), generator=g), 0
            batch = train[order[pos : pos + job["batch_size"]]]
            pos += job["batch_size"]
            loss = -log_prob(batch).mean()
            opt.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                if job["clip"]:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), job["clip"])
                opt.step()
            else:
                bad += 1
            sched.step()
    else:
        from pyro_flowzoo.train import fit

        fit(
            module,
            train[:1800],
            train[1800:],
            steps=job["steps"],
            lr=job["lr"],
            batch_size=job["batch_size"],
            seed=job["seed"],
            progress=False,
        )
    elapsed = time.perf_counter() - start
    module.eval()
    nll = _nll(log_prob, test)
    gap = (nll - entropy) / s.dim
    # the same gap paired on the test points, KL(p || q) / D: no Monte Carlo noise from the entropy estimate
    with torch.no_grad():
        diff = (s.log_prob(test.double()) - torch.cat([log_prob(c) for c in test.split(4096)]).double()) / s.dim
    kl, kl_se = diff.mean().item(), (diff.std() / math.sqrt(len(diff))).item()
    return {
        **job,
        "dim": s.dim,
        "entropy": entropy / s.dim,
        "entropy_se": entropy_se / s.dim,
        "test_nll": nll / s.dim,
        "gap": gap if math.isfinite(gap) else float("nan"),
        "kl": kl,
        "kl_se": kl_se,
        "nan_steps": bad,
        "time": elapsed,
    }


def constant_jacobian_bound(name: str, base: str = "logistic", n: int = 400_000, seed: int = 7) -> float:
    """Lower bound on KL(p || q) / D over every flow q with a constant Jacobian determinant (NICE) and this base.

    With ``|det J| = c`` everywhere, ``q(f(z)) = p_z(z) / c``: the volume of ``{q > t}`` is ``c`` times the
    base's ``{p_z > t c}``, so the distribution of density values is fixed up to ``c``. By the
    Hardy-Littlewood rearrangement inequality the cross-entropy ``E_p[-log q]`` is smallest when ``q``'s level
    sets are nested like ``p``'s; the bound is that KL, minimised over ``c``. Level-set volumes by importance
    sampling, ``vol{log p > t} = E_p[exp(-log p(X)) 1{log p(X) > t}]``, from ``n`` draws of each.
    """
    from pyro_flowzoo.data import EXACT_SETS

    s = EXACT_SETS[name]
    x = s.sample(n, generator=torch.Generator().manual_seed(seed))[0].double()
    log_p = s.log_prob(x).double()
    g = torch.Generator().manual_seed(seed + 1)
    if base == "logistic":
        u = torch.rand(n, s.dim, generator=g, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
        z = torch.log(u) - torch.log1p(-u)
        log_z = (-z - 2 * torch.nn.functional.softplus(-z)).sum(-1)
    else:
        z = torch.randn(n, s.dim, generator=g, dtype=torch.float64)
        log_z = (-0.5 * z * z - 0.5 * math.log(2 * math.pi)).sum(-1)

    def volumes(log_d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        order = torch.argsort(log_d, descending=True)
        v = torch.cumsum(torch.exp(-log_d[order]) / len(log_d), 0)
        per_point = torch.empty_like(v)
        per_point[order] = v
        return per_point, log_d[order], v

    vol_p = volumes(log_p)[0]
    _, base_sorted, vol_base = volumes(log_z)
    best = math.inf
    for log_c in torch.linspace(-5, 10, 301, dtype=torch.float64).tolist():
        # q at volume rank v: the base level whose volume is v / c, minus log c
        idx = torch.searchsorted(vol_base, vol_p / math.exp(log_c)).clamp(max=n - 1)
        best = min(best, (log_p - (base_sorted[idx] - log_c)).mean().item() / s.dim)
    return best


def _table(rows: list[dict]) -> str:
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["set"], r["model"], r["loop"]), []).append(r)
    out = [
        "| set (D) | model | loop | worst gap | mean gap | seeds | NaN steps / non-finite NLL | s/run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, model, loop), rs in sorted(
        groups.items(), key=lambda kv: (SETS.index(kv[0][0]) if kv[0][0] in SETS else 99, kv[0][1:])
    ):
        gaps = [r["gap"] for r in rs]
        finite = [g for g in gaps if math.isfinite(g)]
        worst = max(gaps) if len(finite) == len(gaps) else float("nan")
        mean = sum(finite) / len(finite) if finite else float("nan")
        mark = "**" if not (worst <= 0.03) else ""
        out.append(
            f"| {name} ({rs[0]['dim']}) | {model} | {loop} | {mark}{worst:+.3f}{mark} | {mean:+.3f} | "
            f"{len(rs)} | {sum(r['nan_steps'] for r in rs)} / {len(gaps) - len(finite)} | "
            f"{sum(r['time'] for r in rs) / len(rs):.0f} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sets", nargs="+", default=None)
    parser.add_argument("--models", nargs="+", default=None, help="lib:arch, e.g. ours:maf zuko:nsf_ar")
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--loops", nargs="+", default=["loop", "fit"], choices=["loop", "fit"])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--clip", type=float, default=10.0, help="0 disables")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--n-test", type=int, default=20_000)
    parser.add_argument("--hparams", type=json.loads, default={}, help='ours only, e.g. \'{"maf": {"num_layers": 8}}\'')
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", default=None, help="write the rows to this JSON file (after every run)")
    parser.add_argument(
        "--constant-jacobian-bound",
        action="store_true",
        help="print the lower bound of every constant-Jacobian flow (NICE) on --sets, logistic and normal bases",
    )
    parser.add_argument(
        "--entropy-cache", default=None, help="JSON file of true entropies by set, read and extended (saves minutes)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # the entropies below; each run sets its own
    if args.constant_jacobian_bound:
        for name in args.sets or SETS:
            bounds = {base: constant_jacobian_bound(name, base) for base in ("logistic", "normal")}
            print(f"{name}: KL/D >= {bounds['logistic']:+.4f} (logistic base), {bounds['normal']:+.4f} (normal base)")
        return
    if args.quick:
        sets, models, seeds, steps = ["8gaussians"], [f"ours:{a}" for a in OURS] + ["zuko:maf", "zuko:nsf_ar"], [0], 200
        args.n_test = 2000
    else:
        sets, models, seeds, steps = SETS, MODELS, [0, 1, 2], 2000
    sets, models = args.sets or sets, args.models or models
    seeds, steps = args.seeds if args.seeds is not None else seeds, args.steps or steps
    base = {
        "steps": steps,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "clip": args.clip,
        "dtype": args.dtype,
        "n_test": args.n_test,
        "hparams": args.hparams,
    }
    # the true entropy once per set, here (for the quadrature sets, moons and smiley, it takes minutes)
    from pyro_flowzoo.data import exact

    cache = Path(args.entropy_cache) if args.entropy_cache else None
    entropies = json.loads(cache.read_text()) if cache is not None and cache.exists() else {}
    entropies = {s: tuple(entropies[s]) if s in entropies else exact.entropy(s) for s in sets} | {
        k: tuple(v) for k, v in entropies.items() if k not in sets
    }
    if cache is not None:
        cache.write_text(json.dumps(entropies, indent=1))
    jobs = [
        {**base, "set": s, "model": m, "seed": sd, "loop": lp, "entropy": entropies[s]}
        for s in sets
        for m in models
        for sd in seeds
        for lp in args.loops
        if lp == "loop" or m.startswith("ours:")
    ]
    # the plain loop of ours first, then the peers, then fit: a run cut short still compares what matters most
    jobs.sort(key=lambda j: (j["loop"] != "loop", not j["model"].startswith("ours:"), j["seed"], j["model"]))
    print(
        f"{len(jobs)} runs: sets {sets}, seeds {seeds}, steps {steps}, lr {args.lr}, batch {args.batch_size}, "
        f"clip {args.clip}, {args.dtype}",
        flush=True,
    )
    rows = []
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for r in pool.imap_unordered(run, jobs):
            rows.append(r)
            print(
                f"  {r['set']} {r['model']} {r['loop']} seed {r['seed']}: gap {r['gap']:+.4f} "
                f"(paired {r['kl']:+.4f} +- {r['kl_se']:.4f}) "
                f"(H {r['entropy']:.4f} +- {r['entropy_se']:.4f}) NaN {r['nan_steps']} {r['time']:.0f}s",
                flush=True,
            )
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"\n{_table(rows)}\n\ntotal {time.perf_counter() - start:.0f} s wall", flush=True)


if __name__ == "__main__":
    main()
