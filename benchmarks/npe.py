"""Neural posterior estimation (NPE) on four sbibm tasks, written in torch: ours against zuko and nflows.

Tasks (the definitions of sbibm, Lueckmann et al. 2021, arXiv:2101.04653, re-implemented here):

- ``gaussian_linear``: theta ~ N(0, 0.1 I_10), x ~ N(theta, 0.1 I_10); exact posterior N(x / 2, 0.05 I).
- ``two_moons``: theta ~ U(-1, 1)^2, a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01^2),
  x = (r cos a + 0.25, r sin a) + (-|theta_1 + theta_2| / sqrt 2, (theta_2 - theta_1) / sqrt 2); the
  likelihood is closed-form (polar change of variables), the posterior normalised on a ``--grid``^2 grid of
  midpoints over the prior box.
- ``gaussian_mixture``: theta ~ U(-10, 10)^2, x ~ 0.5 N(theta, I) + 0.5 N(theta, 0.01 I); exact posterior
  the same mixture centred at x, truncated to the box (normalised with normal CDFs).
- ``slcp``: theta ~ U(-3, 3)^5, x = 4 draws of a 2-D Gaussian with mean (theta_1, theta_2), scales
  theta_3^2, theta_4^2 and correlation tanh(theta_5) (8-D x); no closed-form posterior (NLL only).

Protocol: ``--sims`` simulations (10^4; the last 10% for early stopping), ``--test`` fresh test pairs. One
training loop for every library: Adam (lr ``--lr``), batch ``--batch``, gradient-norm clip 5, at most
``--epochs`` epochs, stop after ``--patience`` epochs without a better validation NLL, keep the best.
theta and x are z-scored from the training simulations for every library (ours through
``standardize="both"``, the peers through the same affine maps with the log-det added). Every model is
sized to ``--params`` parameters (hidden width searched per model; the counts are reported).

Metric: held-out conditional NLL of theta given x, minus the exact posterior's (``-log p(theta | x)`` on
the same pairs), per dimension of theta: an unbiased estimate of E_x KL(p(.|x) || q(.|x)) / dim, with its
standard error over the test pairs. Train seconds, ms per step, and seconds to draw 10^4 posterior
samples for one observation. Each (task, model) trains in its own process on one thread, ``--jobs`` at a
time.

    python benchmarks/npe.py [--quick] [--tasks ...] [--models ...] [--sims 10000] [--jobs 2] [--out FILE]
    python benchmarks/npe.py --step-time [--tasks ...] [--reps 20] [--steps 20]   # ours vs zuko, one step
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing as mp
import time
from typing import Optional

import torch
from torch import Tensor, nn

TASKS = ["gaussian_linear", "two_moons", "gaussian_mixture", "slcp"]
MODELS = ["ours-maf", "ours-nsf_ar", "ours-realnvp", "zuko-maf", "zuko-nsf", "zuko-realnvp", "nflows-maf", "nflows-nsf"]
LAYERS = {"maf": 5, "nsf_ar": 3, "nsf": 3, "nsf_coupling": 6, "realnvp": 8}  # the same per family for all libraries


# -- tasks ----------------------------------------------------------------------------------------
def _uniform(n: int, dim: int, bound: float, g: torch.Generator) -> Tensor:
    return (2 * torch.rand(n, dim, generator=g, dtype=torch.float64) - 1) * bound


def simulate(task: str, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(theta, x)``: ``n`` draws from the prior and the simulator (float64)."""
    randn = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    if task == "gaussian_linear":
        theta = math.sqrt(0.1) * randn(n, 10)
        return theta, theta + math.sqrt(0.1) * randn(n, 10)
    if task == "two_moons":
        theta = _uniform(n, 2, 1.0, g)
        a = (torch.rand(n, generator=g, dtype=torch.float64) - 0.5) * math.pi
        r = 0.1 + 0.01 * randn(n)
        p = torch.stack([r * torch.cos(a) + 0.25, r * torch.sin(a)], -1)
        return theta, p + _moons_shift(theta)
    if task == "gaussian_mixture":
        theta = _uniform(n, 2, 10.0, g)
        scale = torch.where(torch.rand(n, 1, generator=g, dtype=torch.float64) < 0.5, 1.0, 0.1)
        return theta, theta + scale * randn(n, 2)
    if task == "slcp":
        theta = _uniform(n, 5, 3.0, g)
        s1, s2, rho = theta[:, 2] ** 2, theta[:, 3] ** 2, torch.tanh(theta[:, 4])
        cov = torch.stack([torch.stack([s1**2, rho * s1 * s2], -1), torch.stack([rho * s1 * s2, s2**2], -1)], -2)
        chol = torch.linalg.cholesky(cov + 1e-12 * torch.eye(2, dtype=torch.float64))
        x = theta[:, None, :2] + (chol[:, None] @ randn(n, 4, 2, 1)).squeeze(-1)
        return theta, x.reshape(n, 8)
    raise ValueError(f"unknown task {task!r}")


def _moons_shift(theta: Tensor) -> Tensor:
    z0 = (theta[..., 0] + theta[..., 1]) / math.sqrt(2)
    z1 = (theta[..., 1] - theta[..., 0]) / math.sqrt(2)
    return torch.stack([-z0.abs(), z1], -1)


def _moons_log_likelihood(x: Tensor, theta: Tensor) -> Tensor:
    u = x - _moons_shift(theta)
    dx, dy = u[..., 0] - 0.25, u[..., 1]
    r = torch.sqrt(dx * dx + dy * dy)
    log_r = -0.5 * ((r - 0.1) / 0.01) ** 2 - math.log(0.01 * math.sqrt(2 * math.pi))
    return torch.where(dx > 0, log_r - math.log(math.pi) - torch.log(r), -math.inf)


def exact_log_posterior(task: str, theta: Tensor, x: Tensor, grid: int = 800) -> Optional[Tensor]:
    """``log p(theta | x)`` per test pair, or None where the task has no closed form."""
    if task == "gaussian_linear":
        return torch.distributions.Normal(x / 2, math.sqrt(0.05)).log_prob(theta).sum(-1)
    if task == "gaussian_mixture":
        normal = torch.distributions.Normal(0.0, 1.0)
        parts, mass = [], []
        for s in (1.0, 0.1):
            parts.append(math.log(0.5) + torch.distributions.Normal(x, s).log_prob(theta).sum(-1))
            inside = normal.cdf((10 - x) / s) - normal.cdf((-10 - x) / s)
            mass.append(math.log(0.5) + inside.log().sum(-1))
        return torch.logsumexp(torch.stack(parts), 0) - torch.logsumexp(torch.stack(mass), 0)
    if task == "two_moons":
        n = grid
        axis = -1 + (torch.arange(n, dtype=torch.float64) + 0.5) * (2 / n)  # midpoints on [-1, 1]
        grid = torch.cartesian_prod(axis, axis)
        log_cell = math.log((2 / n) ** 2)
        out = []
        for xi, ti in zip(x, theta):
            log_z = torch.logsumexp(_moons_log_likelihood(xi, grid), 0) + log_cell  # prior 1/4 cancels
            out.append(_moons_log_likelihood(xi, ti) - log_z)
        return torch.stack(out)
    return None


# -- models ---------------------------------------------------------------------------------------
class Standardizer(nn.Module):
    """The peers' z-scoring of theta and x (the same statistics ours computes in the flow)."""

    def __init__(self, theta: Tensor, x: Tensor) -> None:
        super().__init__()
        for name, v in (("t", theta), ("x", x)):
            self.register_buffer(f"{name}_loc", v.mean(0))
            self.register_buffer(f"{name}_scale", v.std(0).clamp(min=1e-6))

    def theta(self, t: Tensor) -> Tensor:
        return (t - self.t_loc) / self.t_scale

    def x(self, x: Tensor) -> Tensor:
        return (x - self.x_loc) / self.x_scale

    def untheta(self, z: Tensor) -> Tensor:
        return z * self.t_scale + self.t_loc

    def log_det(self) -> Tensor:
        return self.t_scale.log().sum()


def _layers(name: str, arch: dict) -> int:
    return arch.get("layers") or LAYERS[name]


class Ours(nn.Module):
    def __init__(self, name: str, width: int, d: int, k: int, theta: Tensor, x: Tensor, arch: dict) -> None:
        super().__init__()
        import pyro_flowzoo as fz
        from pyro_flowzoo.flows import fit_standardization

        hp: dict = {"num_layers": _layers(name, arch), "hidden_dims": (width, width)}
        if name in ("nsf_ar", "nsf_coupling"):
            hp["num_bins"] = arch.get("bins", 8)
        self.flow = fz.build(name, (d,), context_shape=(k,), standardize="both", **hp)
        fit_standardization(self.flow, theta.float(), x.float())

    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        return self.flow.log_prob(theta, x)

    def sample(self, n: int, x: Tensor) -> Tensor:
        return self.flow.sample((n,), context=x)


class Zuko(nn.Module):
    def __init__(self, name: str, width: int, d: int, k: int, theta: Tensor, x: Tensor, arch: dict) -> None:
        super().__init__()
        import zuko

        cls = {"maf": zuko.flows.MAF, "nsf": zuko.flows.NSF, "realnvp": zuko.flows.RealNVP}[name]
        extra = {"bins": arch.get("bins", 8)} if name == "nsf" else {}
        self.flow = cls(d, k, transforms=_layers(name, arch), hidden_features=(width, width), **extra)
        self.std = Standardizer(theta.float(), x.float())

    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        return self.flow(self.std.x(x)).log_prob(self.std.theta(theta)) - self.std.log_det()

    def sample(self, n: int, x: Tensor) -> Tensor:
        return self.std.untheta(self.flow(self.std.x(x)).sample((n,)))


class NFlows(nn.Module):
    def __init__(self, name: str, width: int, d: int, k: int, theta: Tensor, x: Tensor, arch: dict) -> None:
        super().__init__()
        from nflows.distributions import StandardNormal
        from nflows.flows import Flow
        from nflows.transforms import CompositeTransform, ReversePermutation
        from nflows.transforms.autoregressive import (
            MaskedAffineAutoregressiveTransform,
            MaskedPiecewiseRationalQuadraticAutoregressiveTransform,
        )

        layers = []
        for _ in range(_layers(name, arch)):
            if name == "maf":
                layers.append(MaskedAffineAutoregressiveTransform(d, width, context_features=k))
            else:
                layers.append(
                    MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
                        d, width, context_features=k, num_bins=arch.get("bins", 8), tails="linear", tail_bound=5.0
                    )
                )
            layers.append(ReversePermutation(d))
        self.flow = Flow(CompositeTransform(layers), StandardNormal([d]))
        self.std = Standardizer(theta.float(), x.float())

    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        return self.flow.log_prob(self.std.theta(theta), context=self.std.x(x)) - self.std.log_det()

    def sample(self, n: int, x: Tensor) -> Tensor:
        return self.std.untheta(self.flow.sample(n, context=self.std.x(x)[None])[0])


def make_model(
    model: str, width: int, d: int, k: int, theta: Tensor, x: Tensor, arch: Optional[dict] = None
) -> nn.Module:
    """``arch``: ``layers`` (overrides :data:`LAYERS` for every family when set) and ``bins`` (splines; 8)."""
    lib, name = model.split("-", 1)
    return {"ours": Ours, "zuko": Zuko, "nflows": NFlows}[lib](name, width, d, k, theta, x, arch or {})


def sized(
    model: str, budget: int, d: int, k: int, theta: Tensor, x: Tensor, arch: Optional[dict] = None
) -> tuple[nn.Module, int]:
    """The model whose hidden width gives the parameter count closest to ``budget``."""

    def count(w: int) -> int:
        torch.manual_seed(0)
        return sum(p.numel() for p in make_model(model, w, d, k, theta, x, arch).parameters())

    lo, hi = max(8, 2 * d), 1024
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) <= budget else (lo, mid)
    width = min((lo, hi), key=lambda w: abs(count(w) - budget))
    return make_model(model, width, d, k, theta, x, arch), width


# -- the shared loop --------------------------------------------------------------------------------
def n_valid(n: int, args: dict) -> int:
    """How many of the ``n`` simulations (the last ones) are held out for early stopping."""
    return max(1, round(n * args.get("valid_frac", 0.1)))


def train(
    model: nn.Module, theta: Tensor, x: Tensor, args: dict, seed: int, monitor: Optional[tuple[Tensor, Tensor]] = None
) -> dict:
    """The shared loop: Adam, clip 5, keep the best validation epoch, stop after ``patience`` bad epochs.

    ``args["schedule"]``: ``"constant"`` (the learning rate ``lr`` throughout) or ``"cosine"`` (``lr`` decayed
    per step to 0 along a half cosine over ``epochs`` epochs; early stopping still applies). ``monitor``: test
    pairs scored after every epoch for the record only (``test_curve``; never used to choose anything).
    """
    nv = n_valid(len(theta), args)
    t_tr, x_tr, t_va, x_va = theta[:-nv], x[:-nv], theta[-nv:], x[-nv:]
    opt = torch.optim.Adam(model.parameters(), lr=args["lr"])
    total_steps = args["epochs"] * math.ceil(len(t_tr) / args["batch"])
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
        if args.get("schedule", "constant") == "cosine"
        else None
    )
    g = torch.Generator().manual_seed(seed)
    best, best_state, bad, steps, step_seconds, epochs, curve, test_curve = math.inf, None, 0, 0, [], 0, [], []
    start = time.perf_counter()
    for epoch in range(args["epochs"]):
        epochs = epoch + 1
        model.train()
        for idx in torch.randperm(len(t_tr), generator=g).split(args["batch"]):
            t0 = time.perf_counter()
            loss = -model.log_prob(t_tr[idx], x_tr[idx]).mean()
            opt.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
            if scheduler is not None:
                scheduler.step()
            step_seconds.append(time.perf_counter() - t0)
            steps += 1
        model.eval()
        with torch.no_grad():
            valid = -model.log_prob(t_va, x_va).mean().item()
            if monitor is not None:
                test_curve.append(-model.log_prob(monitor[0].float(), monitor[1].float()).mean().item())
        curve.append(valid)
        if valid < best - 1e-4:
            best, best_state, bad = valid, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
            if bad >= args["patience"]:
                break
    train_seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    step_seconds.sort()
    return {
        "train_s": train_seconds,
        "steps": steps,
        "epochs": epochs,
        "best_valid": best,
        "best_epoch": 1 + curve.index(best) if best in curve else 0,
        "valid_curve": curve,  # validation NLL (nats per pair) after every epoch
        **({"test_curve": test_curve} if monitor is not None else {}),  # the same on the test pairs
        "ms_per_step": 1000 * step_seconds[len(step_seconds) // 2],
    }


def run(job: dict) -> dict:
    torch.set_num_threads(1)
    args, task, model_name = job["args"], job["task"], job["model"]
    g = torch.Generator().manual_seed(1000 + job["seed"])
    theta, x = (v.float() for v in simulate(task, args["sims"], g))
    test_theta, test_x = job["test"]
    torch.manual_seed(job["seed"])
    nv = n_valid(len(theta), args)
    arch = {"layers": args.get("layers"), "bins": args.get("bins", 8)}
    model, width = sized(model_name, args["params"], theta.shape[1], x.shape[1], theta[:-nv], x[:-nv], arch)
    torch.manual_seed(job["seed"])
    out = train(model, theta, x, args, job["seed"], job["test"] if args.get("trace_test") else None)
    model.eval()
    with torch.no_grad():
        log_q = torch.cat(
            [model.log_prob(t, c) for t, c in zip(test_theta.float().split(500), test_x.float().split(500))]
        ).double()
        t0 = time.perf_counter()
        samples = model.sample(10_000, test_x[0].float())
        sample_s = time.perf_counter() - t0
    assert samples.shape == (10_000, theta.shape[1]), samples.shape
    return {
        **out,
        "task": task,
        "model": model_name,
        "seed": job["seed"],
        "width": width,
        "params": sum(p.numel() for p in model.parameters()),
        "sample_s": sample_s,
        "log_q": log_q.tolist(),
    }


def _step(model: nn.Module, opt: torch.optim.Optimizer, theta: Tensor, x: Tensor) -> None:
    """One step of the shared loop (loss, backward, clip, Adam), as ``train`` takes it."""
    loss = -model.log_prob(theta, x).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()


def step_times(tasks: list[str], families: list[str], params: int, batch: int, reps: int, steps: int) -> str:
    """Interleaved in-process timing of one training step, ours against zuko, at the benchmark's sizes.

    For each task and family (``maf``: ours-maf vs zuko-maf, ``nsf``: ours-nsf_ar vs zuko-nsf) both models are
    built at their sized widths on one batch of ``batch`` training pairs; after warm-up, ``reps`` rounds each
    time ``steps`` steps of one model then the other (the order alternating per round), so both see the same
    machine state. Reported: the median over rounds of ours' ms/step, zuko's, and of the per-round ratio.
    """
    torch.set_num_threads(1)
    pairs = {"maf": ("ours-maf", "zuko-maf"), "nsf": ("ours-nsf_ar", "zuko-nsf")}
    lines = [
        f"One training step (batch {batch}, forward + backward + clip + Adam), 1 thread, {reps} interleaved "
        f"rounds of {steps} steps; medians.",
        "",
        "| task | family | ours ms/step | zuko ms/step | ours / zuko (median of rounds) | params ours / zuko |",
        "|---|---|---|---|---|---|",
    ]
    for task in tasks:
        theta, x = (v.float() for v in simulate(task, 2000, torch.Generator().manual_seed(1000)))
        t_b, x_b = theta[:batch], x[:batch]
        for family in families:
            models = []
            for name in pairs[family]:
                torch.manual_seed(0)
                model, _ = sized(name, params, theta.shape[1], x.shape[1], theta, x)
                opt = torch.optim.Adam(model.parameters(), lr=1e-3)
                for _ in range(10):  # warm-up (allocator, first-batch initialisations)
                    _step(model, opt, t_b, x_b)
                models.append((model, opt))
            per = [[], []]
            for r in range(reps):
                for i in (0, 1) if r % 2 == 0 else (1, 0):
                    model, opt = models[i]
                    t0 = time.perf_counter()
                    for _ in range(steps):
                        _step(model, opt, t_b, x_b)
                    per[i].append(1000 * (time.perf_counter() - t0) / steps)
            ours, zuko = torch.tensor(per[0]), torch.tensor(per[1])
            counts = [sum(p.numel() for p in m.parameters()) for m, _ in models]
            lines.append(
                f"| {task} | {family} | {ours.median():.2f} | {zuko.median():.2f} | "
                f"{(ours / zuko).median():.3f} | {counts[0]} / {counts[1]} |"
            )
    return "\n".join(lines)


def summarise(task: str, rows: list[dict], exact: Optional[Tensor], dim: int) -> list[dict]:
    table = []
    for r in rows:
        log_q = torch.tensor(r["log_q"], dtype=torch.float64)
        finite = torch.isfinite(log_q)
        nll = -log_q / dim
        entry = {k: r[k] for k in ("model", "params", "width", "train_s", "ms_per_step", "steps", "epochs", "sample_s")}
        entry["nll"], entry["nll_se"] = nll.mean().item(), (nll.std() / math.sqrt(len(nll))).item()
        entry["non_finite"] = int((~finite).sum())
        if exact is not None:
            gap = (exact - log_q) / dim
            entry["gap"], entry["gap_se"] = gap.mean().item(), (gap.std() / math.sqrt(len(gap))).item()
        table.append(entry)
    return table


def markdown(task: str, table: list[dict], exact_nll: Optional[float], dim: int) -> str:
    head = f"**{task}** (theta {dim}-D" + (
        f"; exact posterior NLL {exact_nll:.4f} nats/dim)"
        if exact_nll is not None
        else "; no closed-form posterior: NLL only)"
    )
    lines = [
        head,
        "",
        "| model | params | width | gap nats/dim (+- se) | NLL nats/dim (+- se) | train s | ms/step "
        "| epochs | sample 10^4 s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in sorted(table, key=lambda e: e.get("gap", e["nll"])):
        gap = f"{e['gap']:+.4f} +- {e['gap_se']:.4f}" if "gap" in e else "-"
        lines.append(
            f"| {e['model']} | {e['params']} | {e['width']} | {gap} | {e['nll']:.4f} +- {e['nll_se']:.4f} "
            f"| {e['train_s']:.1f} | {e['ms_per_step']:.2f} | {e['epochs']} | {e['sample_s']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="*", default=TASKS, choices=TASKS)
    p.add_argument("--models", nargs="*", default=MODELS, choices=[*MODELS, "ours-nsf_coupling"])
    p.add_argument("--sims", type=int, default=10_000)
    p.add_argument("--test", type=int, default=1000)
    p.add_argument("--params", type=int, default=30_000)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--patience", type=int, default=8)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--schedule", default="constant", choices=["constant", "cosine"], help="learning rate per step")
    p.add_argument("--valid-frac", type=float, default=0.1, help="share of --sims held out for early stopping")
    p.add_argument("--layers", type=int, default=None, help="layers for every family (default: LAYERS)")
    p.add_argument("--bins", type=int, default=8, help="spline bins (NSF)")
    p.add_argument("--trace-test", action="store_true", help="record the test NLL after every epoch (JSON only)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--grid", type=int, default=800, help="two_moons: grid points per axis for the exact posterior")
    p.add_argument("--quick", action="store_true", help="seconds: 1,000 simulations, 3 epochs, 200 test pairs")
    p.add_argument("--out", default=None, help="write the markdown tables and a JSON of every run here")
    p.add_argument("--step-time", action="store_true", help="only the interleaved step timing, ours vs zuko")
    p.add_argument("--reps", type=int, default=20, help="--step-time: interleaved rounds")
    p.add_argument("--steps", type=int, default=20, help="--step-time: steps per round")
    a = p.parse_args()
    if a.step_time:
        print(step_times(a.tasks, ["maf", "nsf"], a.params, a.batch, a.reps, a.steps))
        return
    if a.quick:
        a.sims, a.epochs, a.test, a.params = 1000, 3, 200, 5000
    torch.set_num_threads(max(1, a.jobs))
    keys = (
        "sims",
        "params",
        "epochs",
        "patience",
        "batch",
        "lr",
        "schedule",
        "valid_frac",
        "layers",
        "bins",
        "trace_test",
    )
    args = {k: getattr(a, k) for k in keys}
    tests, exact = {}, {}
    for task in a.tasks:
        g = torch.Generator().manual_seed(10_000 + a.seed)
        tests[task] = simulate(task, a.test, g)
        t0 = time.perf_counter()
        exact[task] = exact_log_posterior(task, *tests[task], grid=a.grid)
        print(f"{task}: test set and exact posterior in {time.perf_counter() - t0:.1f} s", flush=True)
    jobs = [{"args": args, "task": t, "model": m, "seed": a.seed, "test": tests[t]} for t in a.tasks for m in a.models]
    start = time.perf_counter()
    rows: dict[str, list[dict]] = {t: [] for t in a.tasks}
    with mp.get_context("spawn").Pool(a.jobs) as pool:
        for r in pool.imap_unordered(run, jobs):
            rows[r["task"]].append(r)
            print(
                f"  {r['task']:16s} {r['model']:18s} params {r['params']:6d} epochs {r['epochs']:3d} "
                f"train {r['train_s']:6.1f} s",
                flush=True,
            )
    report = [
        f"{a.sims} simulations ({a.valid_frac:.0%} validation), {a.test} test pairs, ~{a.params} parameters per "
        f"model{'' if a.layers is None else f', {a.layers} layers'}{'' if a.bins == 8 else f', {a.bins} bins'}, "
        f"Adam lr {a.lr} ({a.schedule}), batch {a.batch}, <= {a.epochs} epochs, patience {a.patience}, seed {a.seed}, "
        f"{a.jobs} jobs x 1 thread; {time.perf_counter() - start:.0f} s wall."
    ]
    for task in a.tasks:
        dim = tests[task][0].shape[1]
        table = summarise(task, rows[task], exact[task], dim)
        exact_nll = None if exact[task] is None else -exact[task].mean().item() / dim
        report.append(markdown(task, table, exact_nll, dim))
    text = "\n\n".join(report)
    print("\n" + text)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")
        with open(a.out + ".json", "w") as fh:
            dims = {t: tests[t][0].shape[1] for t in a.tasks}
            json.dump(
                {
                    "args": {**args, "seed": a.seed, "test": a.test, "grid": a.grid},
                    "exact_log_p": {t: None if exact[t] is None else exact[t].tolist() for t in a.tasks},
                    "summary": {t: summarise(t, rows[t], exact[t], dims[t]) for t in a.tasks},
                    "runs": rows,  # per run, with log_q: each test pair's log q(theta | x) (paired comparisons)
                },
                fh,
            )


if __name__ == "__main__":
    main()
