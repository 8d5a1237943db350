"""CPU speed and accuracy of pyro_flowzoo against zuko, nflows and normflows (issue 7, part 1).

One process, one thread (``torch.set_num_threads(1)``), fixed seeds, identical architectures
(``benchmarks/peers.py``). For each architecture every library trains on the same batches; the
libraries take turns step by step (A, B, C, D, A, B, ...) in ``--rounds`` rounds of ``--steps``
training steps each (zero_grad, ``-log_prob(x).mean()``, backward, Adam step) after a warm-up; a
round's figure is each library's median step time in it. Reported: the median step time; the
ratio ours/peer per round (median and range over rounds: the meaningful figure on a shared
machine); the test NLL after the same number of steps on the same data; the time to draw
``--n-eval`` samples and to evaluate ``log_prob`` on ``--n-eval`` points without gradients
(libraries interleaved the same way).

Data: 2-D moons (``pyro_flowzoo.data.sample_moons``, noise 0.1) for RealNVP; for the 8-D flows a
fixed random mixture of 8 Gaussians with random full covariances (seed 1234, see :func:`mog8`),
whose exact test NLL is printed as the floor. Train: 20,000 points; test: 10,000 fresh points.

    python benchmarks/speed_cpu.py                  # all four architectures (~1 min each on 2 shared cores)
    python benchmarks/speed_cpu.py --archs realnvp  # one architecture
    python benchmarks/speed_cpu.py --quick          # smoke run, seconds
    python benchmarks/speed_cpu.py --profile realnvp   # torch.profiler: one of our steps vs zuko's
    python benchmarks/speed_cpu.py --whatif nsf_coupling   # ours vs the same maths on a split coupling
    python benchmarks/speed_cpu.py --compile        # issue 16: eager and torch.compile'd, best of each, vs peers
    python benchmarks/speed_cpu.py --compile --profile maf --libs ours zuko   # profile compiled steps
    python benchmarks/speed_cpu.py --sampling       # ar_flow 10^5 2-D samples, pixelcnn_flow 64 x 1x20x20
"""

from __future__ import annotations

import argparse
import gc
import math
import platform
import statistics
import sys
import time
import warnings
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

# nflows' spline couplings warn when a conditioner's raw bin widths exceed 10 at any step (a heuristic
# about initialisation); it says nothing about the timings.
warnings.filterwarnings("ignore", message="Inputs to the softmax are not scaled down")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

CONFIGS = {
    # arch: (dim, num_layers, hidden, data)
    "realnvp": (2, 8, (64, 64), "moons"),
    "maf": (8, 5, (128, 128), "mog8"),
    "nsf_ar": (8, 5, (128, 128), "mog8"),
    "nsf_coupling": (8, 5, (128, 128), "mog8"),
}


# -- data ------------------------------------------------------------------------------------------
def mog8(n: int, generator: torch.Generator) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """A fixed 8-D mixture of 8 Gaussians (means ~ N(0, 2^2 I), covariances A A^T / 8 + 0.05 I).

    The mixture itself is drawn from seed 1234 whatever ``generator`` is; ``generator`` draws the points.
    Returns the points and the exact log-density.
    """
    g = torch.Generator().manual_seed(1234)
    k, d = 8, 8
    means = 2.0 * torch.randn(k, d, generator=g, dtype=torch.float64)
    a = torch.randn(k, d, d, generator=g, dtype=torch.float64) / math.sqrt(8)
    cov = a @ a.transpose(-1, -2) + 0.05 * torch.eye(d, dtype=torch.float64)
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.ones(k, dtype=torch.float64)),
        torch.distributions.MultivariateNormal(means, cov),
    )
    comp = torch.randint(k, (n,), generator=generator)
    eps = torch.randn(n, d, generator=generator, dtype=torch.float64)
    x = means[comp] + (torch.linalg.cholesky(cov)[comp] @ eps.unsqueeze(-1)).squeeze(-1)
    return x.float(), lambda y: mix.log_prob(y.double())


def make_data(kind: str, n_train: int, n_test: int) -> tuple[Tensor, Tensor, float]:
    g = torch.Generator().manual_seed(0)
    if kind == "moons":
        from pyro_flowzoo.data import moons_log_prob, sample_moons

        train, test = sample_moons(n_train, generator=g), sample_moons(n_test, generator=g)
        floor = -moons_log_prob(test.double()).mean().item()
    else:
        train, log_p = mog8(n_train, g)
        test, _ = mog8(n_test, g)
        floor = -log_p(test).mean().item()
    return train, test, floor


# -- timing ----------------------------------------------------------------------------------------
def train_steps(model: peers.Model, opt: torch.optim.Optimizer, batches: list[Tensor]) -> list[float]:
    """Timed steps: zero_grad, ``-log_prob(x).mean()`` (or ``extra["loss"]``, compiled), backward, Adam."""
    times = []
    loss_fn = model.extra.get("loss") or (lambda x: -model.log_prob(x).mean())
    for x in batches:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(x)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        if not math.isfinite(loss.item()):
            model.extra["nan"] = True
    return times


@torch.no_grad()
def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


@torch.no_grad()
def test_nll(model: peers.Model, test: Tensor) -> float:
    return -torch.cat([model.log_prob(x) for x in test.split(5000)]).mean().item()


def fmt_ms(s: float) -> str:
    return f"{1e3 * s:.2f}" if s < 1 else f"{1e3 * s:.0f}"


def ratio_cell(ours: list[float], peer: list[float]) -> str:
    r = [a / b for a, b in zip(ours, peer)]
    return f"{statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f})"


def bench_arch(arch: str, libs: list[str], args: argparse.Namespace) -> list[str]:
    dim, num_layers, hidden, data = CONFIGS[arch]
    train, test, floor = make_data(data, args.n_train, args.n_test)
    models, opts = {}, {}
    for lib in libs:
        try:
            models[lib] = peers.build(
                lib, arch, dim, num_layers, hidden, bins=args.bins, bound=args.bound, seed=args.seed
            )
        except Exception as e:  # report and go on with the others
            print(f"  [{arch}] {lib}: not built ({type(e).__name__}: {e})", flush=True)
            continue
        opts[lib] = torch.optim.Adam(models[lib].module.parameters(), lr=args.lr)
    libs = [lib for lib in libs if lib in models]
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))
    step_no = 0

    def next_batches(k: int) -> list[Tensor]:
        nonlocal step_no
        out = []
        for _ in range(k):
            i = (step_no * args.batch) % (len(train) - args.batch + 1)
            out.append(train[perm[i : i + args.batch]])
            step_no += 1
        return out

    warm = next_batches(args.warmup)
    for lib in libs:
        train_steps(models[lib], opts[lib], warm)
    step_times: dict[str, list[float]] = {lib: [] for lib in libs}  # per-round medians
    for _ in range(args.rounds):
        # Interleaved at the step: A, B, C, D, A, B, ... so that every library sees the same
        # background load; a round's figure is each library's median step over the round.
        gc.collect()
        times: dict[str, list[float]] = {lib: [] for lib in libs}
        for x in next_batches(args.steps):
            for lib in libs:
                times[lib] += train_steps(models[lib], opts[lib], [x])
        for lib in libs:
            step_times[lib].append(statistics.median(times[lib]))
    total_steps = step_no
    nll = {lib: test_nll(models[lib], test) for lib in libs}
    xs = test[: args.n_eval]
    sample_t: dict[str, list[float]] = {lib: [] for lib in libs}
    lp_t: dict[str, list[float]] = {lib: [] for lib in libs}
    for lib in libs:  # warm-up
        timed(partial(models[lib].sample, min(args.n_eval, 256)))
        timed(partial(models[lib].log_prob, xs[:256]))
    for _ in range(args.eval_rounds):
        for lib in libs:
            gc.collect()
            sample_t[lib].append(timed(partial(models[lib].sample, args.n_eval)))
            lp_t[lib].append(timed(partial(models[lib].log_prob, xs)))

    title = f"{arch}: {dim}-D, {num_layers} layers of {list(hidden)}"
    if arch.startswith("nsf"):
        title += f", {args.bins} bins on [-{args.bound:g}, {args.bound:g}]"
    lines = [
        f"### {title}",
        "",
        f"Data: {data} ({args.n_train} train, {args.n_test} test; exact test NLL floor {floor:.4f} nats). "
        f"Batch {args.batch}, Adam lr {args.lr}, {total_steps} steps each "
        f"({args.warmup} warm-up + {args.rounds} rounds x {args.steps}).",
        "",
        "| library | params | step (ms) | ours/lib step | test NLL | sample "
        f"{args.n_eval} (ms) | ours/lib | log_prob {args.n_eval} (ms) | ours/lib |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lib in libs:
        m = models[lib]
        me = lib == "ours" or "ours" not in libs
        nan = " (NaN)" if m.extra.get("nan") else ""
        lines.append(
            f"| {lib} | {m.num_parameters:,} | {fmt_ms(statistics.median(step_times[lib]))} | "
            f"{'-' if me else ratio_cell(step_times['ours'], step_times[lib])} | {nll[lib]:.4f}{nan} | "
            f"{fmt_ms(statistics.median(sample_t[lib]))} | "
            f"{'-' if me else ratio_cell(sample_t['ours'], sample_t[lib])} | "
            f"{fmt_ms(statistics.median(lp_t[lib]))} | {'-' if me else ratio_cell(lp_t['ours'], lp_t[lib])} |"
        )
    lines.append("")
    return lines


# -- compiled (issue 16, item 3) -------------------------------------------------------------------
COMPILED = "+compile"


def compile_loss(model: peers.Model) -> None:
    """The same for every library: ``torch.compile`` (inductor, defaults) of ``x -> -log_prob(x).mean()``.

    Backward goes through AOTAutograd; zero_grad and Adam stay eager (as in any user loop).
    """
    model.extra["loss"] = torch.compile(lambda x: -model.log_prob(x).mean())


ADAM_IMPL = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def make_adam(lib: str, params, args: argparse.Namespace) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` in the implementation ``--adam`` names (ours: ``--ours-adam``, default the same).

    "default" is what ``torch.optim.Adam(params, lr)`` picks on the CPU (one tensor at a time); "fused" is
    what ``pyro_flowzoo.fit`` uses (``training.optim.Updater``).
    """
    impl = args.ours_adam if lib == "ours" and args.ours_adam else args.adam
    return torch.optim.Adam(params, lr=args.lr, **ADAM_IMPL[impl])


def _graph_count() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _best(times: dict[str, list[float]], lib: str) -> str:
    """The variant (eager or compiled) of ``lib`` with the smaller median step over rounds."""
    cands = [v for v in (lib, lib + COMPILED) if v in times]
    return min(cands, key=lambda v: statistics.median(times[v]))


def _build_variants(arch: str, libs: list[str], args: argparse.Namespace, first: Tensor) -> tuple:
    """Each library eager and compiled (the first two steps compile), with its optimizer."""
    dim, num_layers, hidden, _ = CONFIGS[arch]
    models: dict[str, peers.Model] = {}
    opts: dict[str, torch.optim.Optimizer] = {}
    compile_s: dict[str, float] = {}
    graphs: dict[str, int] = {}
    failed: dict[str, str] = {}
    for lib in libs:
        for variant in (lib, lib + COMPILED):
            try:
                m = peers.build(lib, arch, dim, num_layers, hidden, bins=args.bins, bound=args.bound, seed=args.seed)
            except Exception as e:  # report and go on with the others
                print(f"  [{arch}] {lib}: not built ({type(e).__name__}: {e})", flush=True)
                break
            opt = make_adam(lib, m.module.parameters(), args)
            if args.init_eager:  # the same for every variant of every library
                train_steps(m, opt, [first])
            if variant.endswith(COMPILED):
                compile_loss(m)
                g0 = _graph_count()
                try:
                    # The first step compiles forward and (lazily) backward; the second one recompiles where a
                    # guard changed (e.g. ours: ActNorm's first-batch initialisation graph-breaks once).
                    compile_s[variant] = sum(train_steps(m, opt, [first, first]))
                except Exception as e:
                    msg = (str(e).strip().splitlines() or [""])[0]
                    failed[lib] = f"{type(e).__name__}: {msg}"[:200]
                    print(f"  [{arch}] {variant}: compile failed ({failed[lib]})", flush=True)
                    continue
                graphs[variant] = _graph_count() - g0
                print(
                    f"  [{arch}] {variant}: first two steps (compile) {compile_s[variant]:.1f} s, "
                    f"{graphs[variant]} graph(s)",
                    flush=True,
                )
            else:
                train_steps(m, opt, [first, first])
            models[variant], opts[variant] = m, opt
    return models, opts, compile_s, graphs, failed


def _interleaved_rounds(models: dict, opts: dict, train: Tensor, perm: Tensor, args: argparse.Namespace) -> tuple:
    """Warm-up, then ``--rounds`` rounds in which all variants take turns step by step: per-round medians."""
    variants = list(models)
    step_no = 0

    def next_batches(k: int) -> list[Tensor]:
        nonlocal step_no
        out = []
        for _ in range(k):
            i = (step_no * args.batch) % (len(train) - args.batch + 1)
            out.append(train[perm[i : i + args.batch]])
            step_no += 1
        return out

    for x in next_batches(args.warmup):
        for v in variants:
            train_steps(models[v], opts[v], [x])
    step_times: dict[str, list[float]] = {v: [] for v in variants}  # per-round medians
    for _ in range(args.rounds):
        gc.collect()
        times: dict[str, list[float]] = {v: [] for v in variants}
        for x in next_batches(args.steps):
            for v in variants:
                times[v] += train_steps(models[v], opts[v], [x])
        for v in variants:
            step_times[v].append(statistics.median(times[v]))
    return step_times, step_no


def bench_arch_compiled(arch: str, libs: list[str], args: argparse.Namespace) -> tuple[list[str], dict]:
    """Every library eager and compiled, all variants interleaved step by step; best of the two each."""
    torch._dynamo.reset()
    dim, num_layers, hidden, data = CONFIGS[arch]
    train, test, floor = make_data(data, args.n_train, args.n_test)
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))
    first = train[perm[: args.batch]]
    models, opts, compile_s, graphs, failed = _build_variants(arch, libs, args, first)
    variants = list(models)
    g0 = _graph_count()
    step_times, step_no = _interleaved_rounds(models, opts, train, perm, args)
    late_graphs = _graph_count() - g0  # graphs compiled after the first two steps: recompiles
    nll = {v: test_nll(models[v], test) for v in variants}
    libs = [lib for lib in libs if lib in variants]
    best = {lib: _best(step_times, lib) for lib in libs}
    peer_libs = [lib for lib in libs if lib != "ours"]
    fastest = min(peer_libs, key=lambda lib: statistics.median(step_times[best[lib]])) if peer_libs else None

    title = f"{arch}: {dim}-D, {num_layers} layers of {list(hidden)}"
    if arch.startswith("nsf"):
        title += f", {args.bins} bins on [-{args.bound:g}, {args.bound:g}]"
    lines = [
        f"### {title}",
        "",
        f"Data: {data} ({args.n_train} train; exact test NLL floor {floor:.4f} nats on {args.n_test} test points). "
        f"Batch {args.batch}, Adam lr {args.lr}, {step_no + 2 + args.init_eager} steps each "
        f"({'1 eager + ' if args.init_eager else ''}2 first + {args.warmup} warm-up + "
        f"{args.rounds} rounds x {args.steps}), all "
        f"{len(variants)} variants interleaved step by step; graphs compiled after the first two steps "
        f"(recompiles, all libraries): {late_graphs}.",
        "",
        "| library | params | eager step (ms) | compiled step (ms) | compiled/eager | compile: first two "
        "compiled steps (s) | graphs | best | ours best / lib best | test NLL eager / compiled |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary: dict = {"arch": arch}
    for lib in libs:
        e, c = lib, lib + COMPILED
        med = {v: statistics.median(step_times[v]) for v in (e, c) if v in step_times}
        if c in step_times:
            cstep, cratio = fmt_ms(med[c]), ratio_cell(step_times[c], step_times[e])
            ctime, cg = f"{compile_s[c]:.1f}", str(graphs[c])
        else:
            cstep, cratio, ctime, cg = f"failed: `{failed.get(lib, '?')}`", "-", "-", "-"
        r = "-" if lib == "ours" or "ours" not in libs else ratio_cell(step_times[best["ours"]], step_times[best[lib]])
        nc = f"{nll[c]:.4f}" if c in nll else "-"
        lines.append(
            f"| {lib} | {models[e].num_parameters:,} | {fmt_ms(med[e])} | {cstep} | {cratio} | {ctime} | {cg} | "
            f"{'compiled' if best[lib] == c else 'eager'} | {r} | {nll[e]:.4f} / {nc} |"
        )
    lines.append("")
    if "ours" in libs and fastest:
        rs = [a / b for a, b in zip(step_times[best["ours"]], step_times[best[fastest]])]
        med = statistics.median(rs)
        summary.update(
            fastest=fastest,
            fastest_variant=best[fastest],
            ours_variant=best["ours"],
            ratio=med,
            lo=min(rs),
            hi=max(rs),
            met=med <= args.target,
            ours_compile=compile_s.get("ours" + COMPILED),
            ours_ms=statistics.median(step_times[best["ours"]]),
            peer_ms=statistics.median(step_times[best[fastest]]),
        )
        lines += [
            f"Ours best ({best['ours']}) / fastest peer best ({best[fastest]}): **{med:.2f}** "
            f"({min(rs):.2f}-{max(rs):.2f}) over {len(rs)} rounds; target <= {args.target:g}: "
            f"**{'met' if med <= args.target else 'missed'}**.",
            "",
        ]
    return lines, summary


# -- sampling --------------------------------------------------------------------------------------
def sampling(args: argparse.Namespace) -> list[str]:
    """``ar_flow`` 10^5 2-D samples (eager and compiled) and ``pixelcnn_flow`` 64 samples of 1x20x20 (eager)."""
    import pyro_flowzoo as fz

    n_ar, n_px, size = (1000, 2, 8) if args.quick else (100_000, 64, 20)
    torch.manual_seed(args.seed)
    flow = fz.build("ar_flow", (2,))
    lines = [
        "| flow | samples | eager (s) | compiled (s) | compile (first call, s) | target |",
        "|---|---|---|---|---|---|",
    ]
    with torch.no_grad():
        eager = [timed(lambda: flow.sample((n_ar,))) for _ in range(args.eval_rounds + 1)][1:]
        sample = torch.compile(lambda n: flow.sample((n,)), fullgraph=True)
        t0 = time.perf_counter()
        sample(n_ar)
        first = time.perf_counter() - t0
        comp = [timed(partial(sample, n_ar)) for _ in range(args.eval_rounds)]
    best = min(min(eager), min(comp))
    lines.append(
        f"| ar_flow (2,), defaults, float32 | {n_ar:,} | {min(eager):.3f} | {min(comp):.3f} | {first:.1f} | "
        f"< 1 s: {'met' if best < 1 else 'missed'} ({best:.3f} s) |"
    )
    print(lines[-1], flush=True)
    flow = fz.build("pixelcnn_flow", (1, size, size))
    with torch.no_grad():
        t = timed(lambda: flow.sample((n_px,)))
    lines.append(
        f"| pixelcnn_flow (1, {size}, {size}), defaults | {n_px} | {t:.1f} | not compiled "
        f"({size * size} sequential passes) | - | < 60 s: {'met' if t < 60 else 'missed'} |"
    )
    print(lines[-1], flush=True)
    return lines


# -- profile ---------------------------------------------------------------------------------------
def profile(arch: str, libs: list[str], args: argparse.Namespace) -> None:
    """torch.profiler over ``args.steps`` training steps per library, the libraries interleaved step by step.

    All libraries run inside one profiler session, one step each in turn, each step under a
    ``record_function`` label, so background load hits them alike. Every op is charged to the step
    it runs in (forward, backward and Adam alike); the table gives self CPU time and calls per step.
    "Python and framework overhead" is the step's wall time less the self CPU time of every op in it.
    """
    from collections import Counter

    from torch.profiler import ProfilerActivity, record_function
    from torch.profiler import profile as tprofile

    dim, num_layers, hidden, data = CONFIGS[arch]
    train, _, _ = make_data(data, args.n_train, 100)
    x = train[: args.batch]
    models = {
        lib: peers.build(lib, arch, dim, num_layers, hidden, bins=args.bins, bound=args.bound, seed=args.seed)
        for lib in libs
    }
    opts = {lib: torch.optim.Adam(models[lib].module.parameters(), lr=args.lr) for lib in libs}
    if args.compile:
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True  # each fused C++ kernel under its own label
        for lib in libs:
            if args.init_eager:
                train_steps(models[lib], opts[lib], [x])
            compile_loss(models[lib])
    for lib in libs:
        train_steps(models[lib], opts[lib], [x] * 5)
    walls: dict[str, list[float]] = {lib: [] for lib in libs}
    for _ in range(args.steps):  # unprofiled, interleaved
        for lib in libs:
            walls[lib] += train_steps(models[lib], opts[lib], [x])
    with tprofile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.steps):
            for lib in libs:
                with record_function(f"step:{lib}"):
                    train_steps(models[lib], opts[lib], [x])
    self_us: dict[str, Counter] = {lib: Counter() for lib in libs}
    calls: dict[str, Counter] = {lib: Counter() for lib in libs}
    step_us: dict[str, float] = dict.fromkeys(libs, 0.0)
    for e in prof.events():
        if e.name.startswith("step:"):
            step_us[e.name[5:]] += e.cpu_time_total
            continue
        root = e.cpu_parent
        while root is not None and not root.name.startswith("step:"):
            root = root.cpu_parent
        if root is None:
            continue
        lib = root.name[5:]
        self_us[lib][e.name] += e.self_cpu_time_total
        calls[lib][e.name] += 1
    n = args.steps
    print(
        f"\n===== {arch}: one {'compiled ' if args.compile else ''}training step (batch {args.batch}), "
        f"{n} steps per library, interleaved"
    )
    for lib in libs:
        ops = sum(c for name, c in calls[lib].items() if name.startswith("aten::"))
        busy = sum(self_us[lib].values())
        print(
            f"  {lib:10s} unprofiled step min {1e3 * min(walls[lib]):.2f} ms, median "
            f"{1e3 * statistics.median(walls[lib]):.2f} ms | profiled {step_us[lib] / n / 1e3:.2f} ms/step, "
            f"{ops / n:.0f} aten ops/step, Python and framework overhead "
            f"{(step_us[lib] - busy) / n / 1e3:.2f} ms/step"
        )
    names = Counter()
    for lib in libs:
        for name, us in self_us[lib].items():
            names[name] = max(names[name], us)
    head = " | ".join(f"{lib} ms/step | {lib} calls/step" for lib in libs)
    print(f"\n| op (self CPU) | {head} |")
    print("|---|" + "---|---|" * len(libs))
    for name, _ in names.most_common(args.row_limit):
        cells = " | ".join(f"{self_us[lib][name] / n / 1e3:.2f} | {calls[lib][name] / n:.0f}" for lib in libs)
        print(f"| {name[:60]} | {cells} |")
    if args.shapes:
        print(
            prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=args.row_limit)
        )


# -- what-if -------------------------------------------------------------------------------------
class _SplitCoupling(nn.Module):
    """What-if: a coupling on the transformed half only (``index_select`` the halves, ``cat`` back).

    ``kind="affine"``: our RealNVP maths (log-scale ``a * tanh(raw) + b`` with learned a, b);
    ``kind="spline"``: our ``rational_quadratic_spline``. Only for measuring, never for use.
    """

    def __init__(self, dim: int, first: bool, hidden: tuple[int, ...], kind: str, bins: int, bound: float) -> None:
        super().__init__()
        from pyro_flowzoo.nn import MLP

        keep = peers.half_masks(dim, 2)[0 if first else 1]
        idx = torch.arange(dim)
        self.register_buffer("ia", idx[keep])
        self.register_buffer("ib", idx[~keep])
        self.register_buffer("order", torch.argsort(torch.cat([idx[keep], idx[~keep]])))
        self.kind, self.bins, self.bound, nb = kind, bins, bound, int((~keep).sum())
        width = 2 * nb if kind == "affine" else nb * (3 * bins - 1)
        self.net = MLP(int(keep.sum()), width, hidden)
        if kind == "affine":
            self.scale = nn.Parameter(torch.ones(nb))
            self.scale_shift = nn.Parameter(torch.zeros(nb))

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        from pyro_flowzoo.transforms.spline import _split, rational_quadratic_spline

        ya, yb = y.index_select(-1, self.ia), y.index_select(-1, self.ib)
        h = self.net(ya)
        if self.kind == "affine":
            shift, raw = h.chunk(2, -1)
            log_scale = self.scale * torch.tanh(raw) + self.scale_shift
            xb, log_det = (yb - shift) * torch.exp(-log_scale), log_scale.sum(-1)
        else:
            h = h.reshape(h.shape[:-1] + (yb.shape[-1], 3 * self.bins - 1))
            xb, ld = rational_quadratic_spline(yb, *_split(h, self.bins), bound=self.bound)
            log_det = -ld.sum(-1)
        return torch.cat([ya, xb], -1).index_select(-1, self.order), log_det


def whatif(arch: str, args: argparse.Namespace) -> None:
    """Step time of ours, the same maths as a split coupling, and the peers; interleaved, min / p20."""
    if arch not in ("realnvp", "nsf_coupling"):
        raise SystemExit("--whatif takes realnvp or nsf_coupling")
    dim, num_layers, hidden, data = CONFIGS[arch]
    kind = "affine" if arch == "realnvp" else "spline"
    torch.manual_seed(args.seed)
    layers = nn.ModuleList(
        [_SplitCoupling(dim, i % 2 == 0, hidden, kind, args.bins, args.bound) for i in range(num_layers)]
    )

    def split_log_prob(x: Tensor) -> Tensor:
        total = x.new_zeros(x.shape[:-1])
        for t in reversed(layers):
            x, ld = t.inverse(x)
            total = total - ld
        return -0.5 * x.pow(2).sum(-1) - 0.5 * dim * math.log(2 * math.pi) + total

    models = {
        lib: peers.build(lib, arch, dim, num_layers, hidden, bins=args.bins, bound=args.bound, seed=args.seed)
        for lib in args.libs
    }
    models["ours, split coupling"] = peers.Model("split", arch, layers, split_log_prob, lambda n: None)
    opts = {k: torch.optim.Adam(m.module.parameters(), lr=args.lr) for k, m in models.items()}
    train, _, _ = make_data(data, args.n_train, 100)
    x = train[: args.batch]
    times: dict[str, list[float]] = {k: [] for k in models}
    for i in range(max(args.rounds * args.steps, args.warmup + 3)):
        for k, m in models.items():
            t = train_steps(m, opts[k], [x])
            if i >= args.warmup:
                times[k] += t
    print(f"{arch} what-if, batch {args.batch}, {len(times['ours'])} interleaved steps each")
    print("| variant | params | step min (ms) | step p20 (ms) | median (ms) |\n|---|---|---|---|---|")
    for k, v in times.items():
        print(
            f"| {k} | {models[k].num_parameters:,} | {1e3 * min(v):.2f} | "
            f"{1e3 * statistics.quantiles(v, n=5, method='inclusive')[0]:.2f} | {1e3 * statistics.median(v):.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--libs", nargs="+", default=list(peers.LIBS), choices=list(peers.LIBS))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per library per round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--eval-rounds", type=int, default=3)
    parser.add_argument("--n-eval", type=int, default=10_000, help="points for the sample/log_prob timings")
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--bins", type=int, default=8)
    parser.add_argument("--bound", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="smoke run in seconds")
    parser.add_argument("--profile", metavar="ARCH", choices=list(CONFIGS))
    parser.add_argument(
        "--whatif",
        metavar="ARCH",
        choices=["realnvp", "nsf_coupling"],
        help="ours vs the same maths as a split coupling (transformed half only) vs peers",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="issue 16: every library eager and torch.compile'd, best of the two each (default archs "
        "realnvp maf nsf_ar, libs ours zuko nflows pyro); with --profile: profile compiled steps",
    )
    parser.add_argument(
        "--init-eager",
        action="store_true",
        help="--compile: one eager training step for every model before compiling (first-batch "
        "initialisations such as ours' FirstBatchNorm then run outside the compiled graph)",
    )
    parser.add_argument(
        "--adam", choices=list(ADAM_IMPL), default="default", help="--compile: Adam implementation, every library"
    )
    parser.add_argument(
        "--ours-adam", choices=list(ADAM_IMPL), default=None, help="--compile: ours' Adam (default: --adam's)"
    )
    parser.add_argument("--target", type=float, default=0.7, help="--compile: target ours best / fastest peer best")
    parser.add_argument(
        "--sampling",
        action="store_true",
        help="ar_flow 10^5 2-D samples (eager, compiled), pixelcnn_flow 64 x 1x20x20 (eager)",
    )
    parser.add_argument("--row-limit", type=int, default=20)
    parser.add_argument("--shapes", action="store_true", help="profile: also group by input shape")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # One compiled loss per model, all from the same lambda: allow more than the default 8 entries.
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 256))
    if args.quick:
        args.rounds, args.steps, args.warmup, args.eval_rounds = 2, 1, 1, 1
        args.n_eval, args.n_train, args.n_test, args.batch = 64, 1024, 256, 128
    if args.whatif:
        if "--libs" not in sys.argv:
            args.libs = ["ours", "zuko", "normflows"]
        whatif(args.whatif, args)
        return
    if args.profile:
        if "--libs" not in sys.argv:
            args.libs = ["ours", "zuko"]
        args.steps = 5 if args.quick else 20
        profile(args.profile, args.libs, args)
        return
    if "--libs" not in sys.argv:  # peers that are not installed are left out unless asked for
        from importlib.util import find_spec

        args.libs = [lib for lib in args.libs if lib in ("ours", "pyro") or find_spec(lib) is not None]
    if args.sampling:
        print("\n".join(sampling(args)))
        return
    if args.compile:
        compiled_main(args)
        return
    import pyro_flowzoo as fz

    missing = [arch for arch in args.archs if arch not in fz.FLOWS]
    if missing:
        print(f"not registered in pyro_flowzoo yet: {missing} (peers only)", flush=True)
    start = time.perf_counter()
    out = [
        "## CPU step time, NLL, sampling and log_prob: pyro_flowzoo vs zuko, nflows, normflows",
        "",
        f"Command: `python {' '.join(['benchmarks/speed_cpu.py', *sys.argv[1:]])}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s) on a "
        "2-core VM shared with other busy processes (absolute times are indicative; the per-round ratios "
        "from interleaving are the meaningful figures).  ",
        f"Versions: torch {torch.__version__}, "
        + ", ".join(
            f"{name} {version(name)}"
            for name in ("pyro-ppl", "zuko", "nflows", "normflows")
            if name == "pyro-ppl" or name in args.libs
        )
        + ".",
        "Ratio cells: median over rounds of (ours / library) per round, with (min-max); below 1 = ours faster.",
        "",
    ]
    for arch in args.archs:
        libs = [lib for lib in args.libs if lib != "ours" or arch in fz.FLOWS]
        out += bench_arch(arch, libs, args)
        print("\n".join(out[-len(args.libs) - 7 :]), flush=True)
    out.append(f"Total run time: {time.perf_counter() - start:.0f} s.")
    print("\n\n" + "\n".join(out))


def compiled_main(args: argparse.Namespace) -> None:
    import pyro_flowzoo as fz

    if "--archs" not in sys.argv:
        args.archs = ["realnvp"] if args.quick else ["realnvp", "maf", "nsf_ar"]
    if "--libs" not in sys.argv:
        args.libs = ["ours", "zuko"] if args.quick else ["ours", "zuko", "nflows", "pyro"]
    start = time.perf_counter()
    out = [
        f"Command: `python {' '.join(['benchmarks/speed_cpu.py', *sys.argv[1:]])}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"Machine: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch thread(s) on a 2-core VM shared with other busy processes (absolute times "
        "are indicative; the per-round ratios from interleaving are the meaningful figures).  ",
        f"Versions: torch {torch.__version__}, "
        + ", ".join(
            f"{name} {version(name)}"
            for name in ("pyro-ppl", "zuko", "nflows", "normflows")
            if name == "pyro-ppl" or name in args.libs
        )
        + ".  ",
        "Compiled = `torch.compile(lambda x: -model.log_prob(x).mean())` (inductor, default options, the same for "
        "every library; backward through AOTAutograd; zero_grad and Adam eager). Step = zero_grad, loss, backward, "
        f"Adam step; Adam: {args.adam} for the peers, {args.ours_adam or args.adam} for ours ('default' = "
        "torch.optim.Adam(params, lr): one tensor at a time on the CPU; 'fused' = what fz.fit uses). "
        "Ratio cells: median over rounds of the per-round ratio of median steps, with (min-max); "
        "below 1 = ours faster. Each library's best = its variant with the smaller median step.",
        "",
    ]
    summaries = []
    for arch in args.archs:
        libs = [lib for lib in args.libs if lib != "ours" or arch in fz.FLOWS]
        lines, summary = bench_arch_compiled(arch, libs, args)
        out += lines
        summaries.append(summary)
        print("\n".join(lines), flush=True)
    out += [
        "| arch | ours best (ms) | fastest peer best (ms) | ours / fastest peer | target <= "
        f"{args.target:g} | ours compile (s) |",
        "|---|---|---|---|---|---|",
    ]
    for sm in summaries:
        if "ratio" in sm:
            oc = sm["ours_compile"]
            out.append(
                f"| {sm['arch']} | {fmt_ms(sm['ours_ms'])} ({sm['ours_variant']}) | {fmt_ms(sm['peer_ms'])} "
                f"({sm['fastest_variant']}) | {sm['ratio']:.2f} ({sm['lo']:.2f}-{sm['hi']:.2f}) | "
                f"{'met' if sm['met'] else 'missed'} | "
                f"{'-' if oc is None else f'{oc:.1f} (< 60 s: ' + ('met' if oc < 60 else 'missed') + ')'} |"
            )
    out += ["", f"Total run time: {time.perf_counter() - start:.0f} s."]
    print("\n\n" + "\n".join(out))


if __name__ == "__main__":
    main()
