"""Glow on 3x32x32 on CPU: pyro_flowzoo against normflows' Glow with the same L, K and hidden channels.

normflows' model follows its Glow example: ``L`` levels, each of ``K`` ``GlowBlock`` (affine coupling
with a 3x3 / 1x1 / 3x3 conv net and a sigmoid scale, LU-parametrised 1x1 conv, ActNorm) after a
``Squeeze``, half the channels factored out between levels (``Merge``), one standard-normal
``DiagGaussian`` per level (not trainable), assembled by ``normflows.MultiscaleFlow``.
Ours: ``pyro_flowzoo.build("glow", (3, 32, 32), levels=L, steps=K, hidden_channels=H, logit_alpha=None)``
(no logit, as normflows has none). Differences that remain: ours has Glow's learned priors (a zero-init
conv giving the factored-out half's mean and scale from the kept half, and a learned top prior), where
normflows' example uses fixed standard normals; ours bounds the coupling log-scale with tanh, normflows
uses ``sigmoid(raw + 2)``.

One process, one thread, fixed seeds, interleaved rounds (ours, normflows, ours, ...). Reported:
training images/s (zero_grad, ``-log_prob(x).mean()``, backward, Adam step; batch ``--batch``),
``log_prob`` images/s without gradients, sampling images/s, with the per-round ratio
ours/normflows (above 1 = ours faster in images/s). Data: synthetic 8-bit images (uniform integers
0..255, uniformly dequantized, scaled to [-0.5, 0.5)), the same tensor for both libraries: the
images' content does not change the arithmetic, only the losses.

    python benchmarks/glow_cpu_vs_normflows.py                 # L=2, K=4, hidden 64, batch 16
    python benchmarks/glow_cpu_vs_normflows.py --quick         # smoke run, seconds
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
import warnings
from importlib.metadata import version
from typing import Callable

import torch
from torch import Tensor, nn

# normflows' LU 1x1 convolution calls the deprecated torch.lu at construction; not ours to fix.
warnings.filterwarnings("ignore", message="torch.lu is deprecated")


def normflows_glow(shape: tuple[int, int, int], levels: int, steps: int, hidden: int) -> nn.Module:
    """normflows' multi-scale Glow, as in its ``examples/glow.ipynb`` (unconditional base)."""
    import normflows as nf

    c, h, w = shape
    q0, merges, flows = [], [], []
    for i in range(levels):
        level = [
            nf.flows.GlowBlock(c * 2 ** (levels + 1 - i), hidden, split_mode="channel", scale=True)
            for _ in range(steps)
        ]
        level.append(nf.flows.Squeeze())
        flows.append(level)
        if i > 0:
            merges.append(nf.flows.Merge())
            latent = (c * 2 ** (levels - i), h // 2 ** (levels - i), w // 2 ** (levels - i))
        else:
            latent = (c * 2 ** (levels + 1), h // 2**levels, w // 2**levels)
        q0.append(nf.distributions.DiagGaussian(latent, trainable=False))
    return nf.MultiscaleFlow(q0, flows, merges, class_cond=False)


class Lib:
    def __init__(
        self, name: str, module: nn.Module, log_prob: Callable[[Tensor], Tensor], sample: Callable[[int], Tensor]
    ) -> None:
        self.name, self.module, self.log_prob, self.sample = name, module, log_prob, sample


def build(lib: str, shape: tuple[int, int, int], args: argparse.Namespace) -> Lib:
    torch.manual_seed(args.seed)
    if lib == "normflows":
        m = normflows_glow(shape, args.levels, args.steps_per_level, args.hidden)
        return Lib(lib, m, lambda x: m.log_prob(x, None), lambda n: m.sample(n)[0])
    import pyro_flowzoo as fz

    # No logit on the data side: normflows' Glow models the scaled pixels directly, so neither does ours.
    flow = fz.build(
        "glow", shape, levels=args.levels, steps=args.steps_per_level, hidden_channels=args.hidden, logit_alpha=None
    )
    return Lib(lib, flow, flow.log_prob, lambda n: flow.sample((n,)))


def images(n: int, shape: tuple[int, ...], seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), generator=g).float()
    return (x + torch.rand(x.shape, generator=g)) / 256 - 0.5


def train_rate(lib: Lib, opt: torch.optim.Optimizer, batches: list[Tensor]) -> float:
    t0 = time.perf_counter()
    for x in batches:
        opt.zero_grad(set_to_none=True)
        loss = -lib.log_prob(x).mean()
        loss.backward()
        opt.step()
        if not math.isfinite(loss.item()):
            print(f"  {lib.name}: non-finite loss", flush=True)
    return len(batches) * len(batches[0]) / (time.perf_counter() - t0)


@torch.no_grad()
def rate(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def profile(libs: dict[str, Lib], opts: dict, x: Tensor, steps: int, rows: int = 25) -> None:
    """Self CPU time and calls per training step of each op, the libraries interleaved in one session."""
    from collections import Counter

    from torch.profiler import ProfilerActivity, record_function
    from torch.profiler import profile as tprofile

    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            for n, lib in libs.items():
                with record_function(f"step:{n}"):
                    train_rate(lib, opts[n], [x])
    self_us = {n: Counter() for n in libs}
    calls = {n: Counter() for n in libs}
    step_us = dict.fromkeys(libs, 0.0)
    for e in prof.events():
        if e.name.startswith("step:"):
            step_us[e.name[5:]] += e.cpu_time_total
            continue
        root = e.cpu_parent
        while root is not None and not root.name.startswith("step:"):
            root = root.cpu_parent
        if root is not None:
            self_us[root.name[5:]][e.name] += e.self_cpu_time_total
            calls[root.name[5:]][e.name] += 1
    for n in libs:
        ops = sum(c for k, c in calls[n].items() if k.startswith("aten::"))
        print(
            f"{n}: profiled {step_us[n] / steps / 1e3:.1f} ms/step, {ops / steps:.0f} aten ops/step, "
            f"Python and framework overhead {(step_us[n] - sum(self_us[n].values())) / steps / 1e3:.1f} ms/step"
        )
    names: Counter = Counter()
    for n in libs:
        for k, us in self_us[n].items():
            names[k] = max(names[k], us)
    print("\n| op (self CPU) | " + " | ".join(f"{n} ms/step | {n} calls/step" for n in libs) + " |")
    print("|---|" + "---|---|" * len(libs))
    for k, _ in names.most_common(rows):
        print(
            f"| {k[:60]} | "
            + " | ".join(f"{self_us[n][k] / steps / 1e3:.2f} | {calls[n][k] / steps:.0f}" for n in libs)
            + " |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, default=2)
    parser.add_argument("--steps-per-level", type=int, default=4, help="K")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per library per round")
    parser.add_argument("--n-sample", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--libs", nargs="+", default=["ours", "normflows"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="torch.profiler over --steps training steps per library, interleaved"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        args.rounds, args.steps, args.n_sample, args.batch, args.size = 2, 1, 8, 4, 16
    shape = (3, args.size, args.size)
    libs = {}
    for name in args.libs:
        try:
            libs[name] = build(name, shape, args)
        except Exception as e:
            print(f"{name}: not built ({type(e).__name__}: {e})", flush=True)
    opts = {n: torch.optim.Adam(lib.module.parameters(), lr=1e-3) for n, lib in libs.items()}
    data = images(args.batch * (2 + args.rounds * args.steps), shape, args.seed)
    batches = list(data.split(args.batch))
    for n, lib in libs.items():  # warm-up (also ActNorm's data-dependent initialisation)
        train_rate(lib, opts[n], batches[:2])
        rate(lambda: lib.sample(2), 2)  # noqa: B023
    if args.profile:
        profile(libs, opts, batches[2], args.steps)
        return
    tr: dict[str, list[float]] = {n: [] for n in libs}
    lp: dict[str, list[float]] = {n: [] for n in libs}
    sp: dict[str, list[float]] = {n: [] for n in libs}
    for r in range(args.rounds):
        chunk = batches[2 + r * args.steps : 2 + (r + 1) * args.steps]
        for n, lib in libs.items():
            gc.collect()
            tr[n].append(train_rate(lib, opts[n], chunk))
            lp[n].append(rate(lambda: lib.log_prob(chunk[0]), len(chunk[0])))  # noqa: B023
            sp[n].append(rate(lambda: lib.sample(args.n_sample), args.n_sample))  # noqa: B023

    def cell(values: dict[str, list[float]], n: str) -> str:
        med = f"{statistics.median(values[n]):.1f}"
        if n == "ours" or "ours" not in values:
            return f"{med} | -"
        r = [a / b for a, b in zip(values["ours"], values[n])]
        return f"{med} | {statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f})"

    print(
        f"### Glow {shape[0]}x{shape[1]}x{shape[2]}: L={args.levels}, K={args.steps_per_level}, "
        f"hidden {args.hidden}, batch {args.batch}\n"
    )
    print(f"Command: `python benchmarks/glow_cpu_vs_normflows.py {' '.join(sys.argv[1:])}`  ")
    print(
        f"1 torch thread on a 2-core VM shared with other busy processes; torch {torch.__version__}, "
        f"normflows {version('normflows')}. {args.rounds} interleaved rounds of {args.steps} training steps; "
        f"log_prob on one batch, sampling {args.n_sample} images per round. Ratio cells: ours/normflows "
        "images/s per round, median (min-max); above 1 = ours faster.\n"
    )
    print("| library | params | train img/s | ours/lib | log_prob img/s | ours/lib | sample img/s | ours/lib |")
    print("|---|---|---|---|---|---|---|---|")
    for n, lib in libs.items():
        params = sum(p.numel() for p in lib.module.parameters() if p.requires_grad)
        print(f"| {n} | {params:,} | {cell(tr, n)} | {cell(lp, n)} | {cell(sp, n)} |")


if __name__ == "__main__":
    main()
