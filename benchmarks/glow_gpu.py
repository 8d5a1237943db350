"""Glow on a GPU, side by side with normflows: training images/s and bits/dim after equal steps.

The Glow paper's CIFAR-10 configuration (L=3, K=32, 512 hidden channels, 44M parameters) at batch 256 on
3x32x32. One process, five phases, each followed by the elapsed wall-clock and (with ``--out``) an updated
``results.json`` / ``results.md``, so a time-out still leaves the phases done so far:

1. build every configuration (ActNorm's data-dependent initialisation runs eagerly on the timing batch);
2. warm-up: ``--warmup`` training steps per configuration; the first step is timed on its own (it
   includes compilation for the compiled configurations; ``compile_s`` = first step - steady step) and
   its loss and gradients are checked against eager ones at the same parameters;
3. timing: ``--rounds`` interleaved rounds of ``--iters`` steps per configuration on one fixed batch,
   median images/s, ratios against normflows float32, peak GPU memory, and the issue-16 target line
   (our fastest over normflows float32 and over normflows' fastest);
4. profile: ``--profile-steps`` steps of normflows and of our fastest under torch.profiler: GPU busy time
   against wall-clock, kernels and host syncs per step, time by kernel kind (``profile.md`` holds the
   profiler's tables) -- where the time goes when the target is missed;
5. training: normflows (float32) and our fastest configuration train ``--train-steps`` steps from the
   same seed on the same images (a stream of ``--train-images`` synthetic images, cycled), then report
   test bits/dim on ``--test-images`` held-out images (ours also in float32 without autocast).

``--budget-s`` (seconds since start-up) keeps the whole run inside the device command's time-out: a
compiled configuration whose warm-up would start after 45% of it is skipped, timing stops after 60% (at
least 2 rounds), the profile is skipped after 70%, and the training steps are cut, for both libraries
alike and loudly, to what the measured step times say fits (skipped below 20 steps).

A training step (timing and training alike, both libraries alike): zero_grad, loss = bits/dim of
``-log_prob(x)``, backward, global gradient-norm clip at ``--clip-grad``, Adam (fused on CUDA) with a
linear learning-rate warm-up from ``lr / lr_warmup`` to ``--lr`` over ``--lr-warmup`` steps (without it
the paper configuration diverges at lr 1e-3: 6.6 -> 1e31 bits/dim after one step), scheduler step.
Losses and gradient norms are kept on the device (no per-step host sync) and read after each round; any
non-finite loss is reported as a JSON line and in the results, never dropped.

Data: synthetic 8-bit images (smooth random blobs plus noise), uniformly dequantized and scaled to
[-0.5, 0.5), the same tensors for both libraries; ours is built with ``logit_alpha=None`` (normflows'
Glow has no logit either). Differences that remain: ours has Glow's learned priors (normflows' example:
fixed standard normals) and a tanh-bounded coupling log-scale (normflows: ``sigmoid(raw + 2)``).

Configurations (names compose: ``+cl`` channels_last, ``bf16`` autocast, ``+compile`` per network,
``+regional`` per flow step, ``+cg`` CUDA graphs). Default: ``normflows`` (float32; PyTorch's default TF32
for cuDNN convolutions), ``normflows+bf16`` (autocast), ``ours`` (float32), ``ours+cl+bf16`` (channels_last,
bf16 autocast; only the coupling and prior networks run in bf16: ActNorm, the 1x1 convolutions, the affine
maths and every log-determinant stay float32), ``ours+cl+bf16+regional`` (the same, every flow step --
ActNorm, 1x1 convolution, coupling -- compiled as one region with ``fullgraph=True``; the steps of one level
share one compiled graph, so 3 regions are compiled, not 96), ``ours+cl+bf16+regional+cg`` (the same regions
under inductor's ``reduce-overhead`` mode: each region replayed as a CUDA graph, which removes the launch
cost of its kernels; ``cudagraph_skips`` in the dynamo stats says if inductor declined). Opt-in:
``ours+cl+bf16+compile`` (every coupling network compiled) and ``normflows+compile`` (each GlowBlock's
inverse compiled, not fullgraph: normflows' ActNorm reads a tensor on the host on every call).

Expected wall-clock on an H100/H200 (an estimate from normflows' ~760 images/s on an H100, not measured):
start-up and builds ~30 s; warm-up ~10 s plus compilation (3 region graphs forward and backward, then again
for CUDA graphs: 1-3 min); timing 6 configurations x 40 steps at ~0.05-0.35 s ~ 50 s; profile ~15 s; then
training takes what is left of ``--budget-s`` (default 270 s: ~100 steps at ~0.4 s per pair of steps).
``--out`` (default ``$OUT``) receives results.json, results.md and profile.md.

    python benchmarks/glow_gpu.py --device cuda --budget-s 270        # the device run: time-out 330 s
    python benchmarks/glow_gpu.py --device cpu --quick                # smoke run (aot_eager), ~15-30 s
    python benchmarks/glow_gpu.py --device cpu --quick --compile-backend inductor --configs ours+regional

The device machine has torch but not pyro-ppl, pyro-api or normflows: carry them as wheels in ``.whl``
(``pip download --no-deps pyro-ppl==1.9.2 pyro-api==0.1.2``; normflows 1.7.3 is an sdist: ``pip wheel
--no-deps normflows==1.7.3``), with a snapshot of the committed package in ``.gpu`` (see RESULTS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import math
import os
import statistics
import sys
import time
import traceback
from importlib.metadata import version
from pathlib import Path
from typing import Callable, Optional

import torch
import torch._dynamo
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))
from glow_cpu_vs_normflows import normflows_glow  # noqa: E402
from glow_throughput import synthetic_images  # noqa: E402

import pyro_flowzoo as fz  # noqa: E402
from pyro_flowzoo.nn import GlowNet  # noqa: E402
from pyro_flowzoo.transforms import ActNorm, FactorOut, FlowTransform, InvertibleConv1x1  # noqa: E402
from pyro_flowzoo.transforms.coupling import _Coupling  # noqa: E402

SHAPE = (3, 32, 32)
DIMS = math.prod(SHAPE)
# Warm-up runs in this order and a compiled configuration is skipped once the budget runs short, so the
# likeliest fastest (regional) comes before the riskier CUDA-graph variant. ``ours+cl+bf16+compile`` (each
# coupling net compiled) and ``normflows+compile`` are opt-in: each adds a minute or so of compilation.
DEFAULT_CONFIGS = [
    "normflows",
    "normflows+bf16",
    "ours",
    "ours+cl+bf16",
    "ours+cl+bf16+regional",
    "ours+cl+bf16+regional+cg",
]
TARGET = 8.0  # issue 16: ours >= 8x normflows' float32 images/s, at equal bits/dim after equal steps
# Fractions of --budget-s (seconds since start-up) past which a phase is shortened, so that the images/s
# table, then the profile, then the training comparison come back inside the device command's time-out.
WARMUP_END = 0.45  # a compiled configuration still waiting for its warm-up (compilation) is skipped
TIMING_END = 0.6  # after at least 2 rounds, no further timing rounds
PROFILE_END = 0.7  # no profile
MIN_TRAIN_STEPS = 20  # fewer fit: the training comparison is skipped


def dataset(n: int, seed: int, chunk: int = 4096) -> Tensor:
    """``n`` dequantized synthetic images in [-0.5, 0.5), generated in chunks (bounded host memory)."""
    g = torch.Generator().manual_seed(seed)
    parts = []
    for start in range(0, n, chunk):
        levels = synthetic_images(min(chunk, n - start), g)
        parts.append((levels + torch.rand(levels.shape, generator=g)) / 256 - 0.5)
    return torch.cat(parts)


def bits_per_dim(log_prob: Tensor) -> Tensor:
    """Mean bits/dim of 8-bit data from the density of its dequantized version (shift to [-0.5, 0.5) is volume 1)."""
    return fz.bits_per_dim(log_prob.float(), SHAPE, 256).mean()


# -- regional compilation: one compiled graph per flow-step shape -----------------------------------------
def _step_inverse(actnorm: ActNorm, conv: InvertibleConv1x1, coupling: nn.Module, y: Tensor) -> tuple[Tensor, Tensor]:
    """One Glow step in the data -> latent direction (what ``log_prob`` runs): ActNorm, 1x1 conv, coupling."""
    y, a = actnorm.inverse_and_log_det(y)
    y, b = conv.inverse_and_log_det(y)
    y, c = coupling.inverse_and_log_det(y)
    return y, a + b + c


@functools.cache
def compiled_step(backend: str, mode: Optional[str]) -> Callable:
    # The modules are arguments, not closed over: dynamo lifts their parameters to graph inputs and guards
    # on shapes, so every step of a level reuses one graph (checked in tests/test_compile.py).
    return torch.compile(
        _step_inverse, backend=backend, fullgraph=True, dynamic=False, **({"mode": mode} if mode else {})
    )


class GlowStep(FlowTransform):
    """ActNorm + invertible 1x1 conv + coupling as one transform whose ``log_prob`` direction is compiled."""

    def __init__(self, actnorm: ActNorm, conv: InvertibleConv1x1, coupling: FlowTransform, fn: Callable) -> None:
        super().__init__(event_dim=3)
        self.actnorm, self.conv, self.coupling = actnorm, conv, coupling
        self.__dict__["_fn"] = fn  # a plain attribute: not a module, not in the state_dict

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        if torch.is_grad_enabled() and not y.requires_grad:
            # The first step meets the data, which needs no gradient: dynamo guards on requires_grad, so
            # compiling it would add a fourth graph (minutes of inductor time on the paper's model) for 1 step of 96.
            return _step_inverse(self.actnorm, self.conv, self.coupling, y)
        return self._fn(self.actnorm, self.conv, self.coupling, y)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:  # sampling: eager
        x, c = self.coupling.forward_and_log_det(x)
        x, b = self.conv.forward_and_log_det(x)
        x, a = self.actnorm.forward_and_log_det(x)
        return x, a + b + c


def _group_steps(transforms: list, fn: Callable) -> tuple[list, int]:
    """Replaces each (coupling, 1x1 conv, ActNorm) run of a latent -> data list by one GlowStep."""
    out, i, n = [], 0, 0
    while i < len(transforms):
        run = transforms[i : i + 3]
        if (
            len(run) == 3
            and isinstance(run[0], _Coupling)
            and isinstance(run[0], FlowTransform)
            and isinstance(run[1], InvertibleConv1x1)
            and isinstance(run[2], ActNorm)
        ):
            out.append(GlowStep(run[2], run[1], run[0], fn))
            i, n = i + 3, n + 1
        else:
            out.append(transforms[i])
            i += 1
    return out, n


def compile_regions(flow: fz.Flow, backend: str = "inductor", mode: Optional[str] = None) -> int:
    """Groups every Glow step of ``flow`` (top level and inside FactorOut) into a compiled GlowStep; returns the count.

    The parameters stay the same objects (build the optimizer afterwards: their order changes).
    """
    fn = compiled_step(backend, mode)
    new, n = _group_steps(list(flow._transforms), fn)
    flow._transforms = new
    flow.transforms = nn.ModuleList([t for t in new if isinstance(t, nn.Module)])
    for m in list(flow.modules()):
        if isinstance(m, FactorOut):
            inner, k = _group_steps(list(m.inner), fn)
            m.inner, n = nn.ModuleList(inner), n + k
    return n


def eager_stance():
    """Runs compiled code eagerly (torch >= 2.6), for the eager reference and the float32 evaluation."""
    stance = getattr(torch.compiler, "set_stance", None)
    return stance("force_eager") if stance is not None else contextlib.nullcontext()


# -- configurations ---------------------------------------------------------------------------------------
class Config:
    def __init__(
        self,
        name: str,
        module: nn.Module,
        log_prob: Callable[[Tensor], Tensor],
        args: argparse.Namespace,
        device: torch.device,
    ) -> None:
        self.name, self.module, self._log_prob = name, module, log_prob
        self.bf16, self.channels_last = "bf16" in name, "+cl" in name
        self.compiled = "compile" in name or "regional" in name
        self.cudagraphs = "+cg" in name
        self.params = [p for p in module.parameters() if p.requires_grad]
        impl = args.adam if args.adam != "auto" else ("fused" if device.type == "cuda" else "foreach")
        self.opt = torch.optim.Adam(
            self.params,
            lr=args.lr,
            fused=True if impl == "fused" else None,
            foreach={"foreach": True, "for-loop": False}.get(impl),
        )
        warm = max(1, args.lr_warmup)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: min(1.0, (s + 1) / warm))
        self.clip = args.clip_grad
        self.device = device
        self.rates: list[float] = []
        self.info: dict = {
            "params": sum(p.numel() for p in self.params),
            "bf16": self.bf16,
            "channels_last": self.channels_last,
            "compiled": self.compiled,
            "cudagraphs": self.cudagraphs,
            "adam": impl,
        }

    def state_bytes(self) -> int:
        """Bytes held between steps: parameters, buffers and the optimizer's state."""
        tensors = [*self.module.parameters(), *self.module.buffers()]
        tensors += [v for st in self.opt.state.values() for v in st.values() if isinstance(v, Tensor)]
        return sum(t.numel() * t.element_size() for t in tensors)

    def prepare(self, x: Tensor) -> Tensor:
        """The input in this configuration's memory format (once per tensor, not per step)."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def loss(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            lp = self._log_prob(x)
        return bits_per_dim(lp)

    def step(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """One training step on a prepared batch; returns (loss, pre-clip gradient norm), both on the device."""
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(x)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip if self.clip > 0 else math.inf, foreach=True)
        self.opt.step()
        self.sched.step()
        return loss.detach(), norm.detach()

    def run(self, batches: Callable[[int], Tensor], n: int) -> tuple[Tensor, Tensor]:
        losses = torch.empty(n, device=self.device)
        norms = torch.empty(n, device=self.device)
        for i in range(n):
            losses[i], norms[i] = self.step(batches(i))
        return losses, norms


def make(name: str, args: argparse.Namespace, device: torch.device, init_batch: Tensor) -> Config:
    torch.manual_seed(args.seed)
    mode = args.compile_mode if args.compile_backend == "inductor" and args.compile_mode != "default" else None
    if "+cg" in name and args.compile_backend == "inductor":
        mode = "reduce-overhead"  # inductor's CUDA-graph trees: every compiled region replayed as a CUDA graph
    if name.startswith("normflows"):
        m = normflows_glow(SHAPE, args.levels, args.steps, args.hidden).to(device)
        with torch.no_grad():
            m.log_prob(init_batch, None)  # ActNorm's data-dependent init, eagerly
        if "compile" in name:
            # normflows' best compiled form we know: each GlowBlock's inverse compiled (one graph per level
            # shape, parameters lifted to inputs). Not fullgraph: its ActNorm branches on a tensor each call.
            import normflows as nf

            for blk in m.modules():
                if isinstance(blk, nf.flows.GlowBlock):
                    blk.inverse = torch.compile(
                        blk.inverse, backend=args.compile_backend, dynamic=False, **({"mode": mode} if mode else {})
                    )
        return Config(name, m, lambda x: m.log_prob(x, None), args, device)
    flow = fz.build(
        "glow", SHAPE, levels=args.levels, steps=args.steps, hidden_channels=args.hidden, logit_alpha=None
    ).to(device)
    flow.validate = False  # the NaN check reads the data on the host: a sync, and a graph break when compiled
    if "+cl" in name:
        flow = flow.to(memory_format=torch.channels_last)
    with torch.no_grad():
        flow.log_prob(init_batch)  # ActNorm's data-dependent init, eagerly, before anything is compiled
    regions = None
    if "regional" in name:
        regions = compile_regions(flow, args.compile_backend, mode)
    elif "compile" in name:
        for m in flow.modules():
            if isinstance(m, GlowNet):
                m.compile(backend=args.compile_backend, **({"mode": mode} if mode else {}))
    c = Config(name, flow, flow.log_prob, args, device)
    if regions is not None:
        c.info["compiled_regions"] = regions
    return c


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def dynamo_stats(since: Optional[dict] = None) -> dict:
    """Graphs compiled, graph breaks and CUDA-graph skips so far (minus ``since``).

    A recompilation per step would show in ``graphs``; ``cudagraph_skips`` counts regions that inductor ran
    without a CUDA graph (a CPU tensor, a mutated input, ...): a ``+cg`` configuration with skips is not one.
    """
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return {}
    now = {
        "graphs": counters["stats"].get("unique_graphs", 0),
        "graph_breaks": sum(counters["graph_break"].values()),
        "cudagraph_skips": counters["inductor"].get("cudagraph_skips", 0),
    }
    return {k: v - (since or {}).get(k, 0) for k, v in now.items()}


# -- results ----------------------------------------------------------------------------------------------
class Report:
    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        self.t0 = time.perf_counter()
        self.out = Path(args.out) if args.out else None
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
        cuda = device.type == "cuda"
        self.data: dict = {
            "command": "python benchmarks/glow_gpu.py " + " ".join(sys.argv[1:]),
            "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)",
            "torch": torch.__version__,
            "normflows": _version("normflows"),
            "pyro": _version("pyro-ppl"),
            "cuda": torch.version.cuda,
            "cudnn_tf32": torch.backends.cudnn.allow_tf32 if cuda else None,
            "matmul_tf32": torch.backends.cuda.matmul.allow_tf32 if cuda else None,
            "args": vars(args),
            "phases": [],
            "configs": {},
            "train": {},
            "profile": {},
            "target": {},
            "events": [],
        }

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def event(self, **row) -> None:
        """A JSON line now, and the same row in results.json."""
        print(json.dumps(row), flush=True)
        self.data["events"].append(row)

    def phase(self, name: str) -> None:
        t = round(self.elapsed(), 1)
        self.data["phases"].append({"phase": name, "wall_s": t})
        print(f"[{t:7.1f} s] phase done: {name}", flush=True)
        self.write()

    def target(self) -> None:
        """The issue's target from what was measured: our best images/s over normflows' (float32 and best)."""
        rates = {n: c["median"] for n, c in self.data["configs"].items() if "median" in c}
        ours = {n: v for n, v in rates.items() if n.startswith("ours")}
        peers = {n: v for n, v in rates.items() if n.startswith("normflows")}
        t: dict = {"target": TARGET}
        if ours and "normflows" in rates:
            best = max(ours, key=ours.get)
            peer = max(peers, key=peers.get)
            t |= {
                "ours_best": best,
                "ours_best_img_s": ours[best],
                "normflows_img_s": rates["normflows"],
                "ratio_vs_normflows_fp32": round(ours[best] / rates["normflows"], 2),
                "normflows_best": peer,
                "ratio_vs_normflows_best": round(ours[best] / peers[peer], 2),
                "speed_met": ours[best] >= TARGET * rates["normflows"],
            }
        train = self.data["train"]
        pair = [n for n in train if n.startswith("normflows")][:1] + [n for n in train if n.startswith("ours")][:1]
        if len(pair) == 2 and all("test_bpd" in train[n] for n in pair):
            t |= {
                "bpd_pair": pair,
                "steps": train[pair[1]]["steps"],
                "test_bpd_ours_minus_normflows": round(train[pair[1]]["test_bpd"] - train[pair[0]]["test_bpd"], 4),
            }
        self.data["target"] = t

    def markdown(self) -> str:
        d = self.data
        a = d["args"]
        lines = [
            f"### Glow 3x32x32, L={a['levels']} K={a['steps']} hidden {a['hidden']}, batch {a['batch']}",
            "",
            f"Command: `{d['command']}`  ",
            f"{d['device']}, torch {d['torch']} (CUDA {d['cuda']}), normflows {d['normflows']}; cuDNN TF32 "
            f"{d['cudnn_tf32']}, matmul TF32 {d['matmul_tf32']}; Adam lr {a['lr']} after a {a['lr_warmup']}-step "
            f"linear warm-up, gradient-norm clip {a['clip_grad']}. Median of {a['rounds']} interleaved rounds "
            f"x {a['iters']} steps on one batch.",
            "",
        ]
        configs = d["configs"]
        if any("median" in c for c in configs.values()):
            lines += [
                "| configuration | params | images/s (median) | per round | vs normflows | ms/step | "
                "peak GPU GiB (alone) | first step s | compile s (est.) | "
                "compiled vs eager: bpd diff, grad rel. diff | non-finite |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for n, c in configs.items():
                if "median" not in c:
                    lines.append(
                        f"| {n} | {c.get('params', '-')} | failed: {c.get('error', '?')[:120]} | | | | | | | | |"
                    )
                    continue
                lines.append(
                    f"| {n} | {c['params']:,} | {c['median']:.0f} | {', '.join(f'{v:.0f}' for v in c['rates'])} | "
                    f"{_fmt(c.get('vs_normflows'), '{:.2f}x')} | {c['ms_per_step']:.1f} | "
                    f"{_fmt(c.get('peak_mem_gib'), '{:.1f}')} | {_fmt(c.get('first_step_s'), '{:.1f}')} | "
                    f"{_fmt(c.get('compile_s'), '{:.1f}')} | {_check(c.get('check'))} | "
                    f"{c.get('nonfinite_steps', 0)} |"
                )
        if d["train"]:
            t0 = next(iter(d["train"].values()))
            lines += [
                "",
                f"Bits/dim after {t0.get('steps')} training steps on the same stream of "
                f"{a['train_images']} images (test: {a['test_images']} held-out images)",
                "",
                "| configuration | steps | train bpd, first 10 | train bpd, last 10 | test bpd (as trained) | "
                "test bpd (float32, eager) | train s | steps/s | clipped steps | non-finite |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for n, t in d["train"].items():
                if "error" in t:
                    lines.append(f"| {n} | failed: {t['error'][:120]} | | | | | | | | |")
                    continue
                lines.append(
                    f"| {n} | {t['steps']} | {t['train_bpd_first10']:.3f} | {t['train_bpd_last10']:.3f} | "
                    f"{t['test_bpd']:.4f} | {_fmt(t.get('test_bpd_float32'), '{:.4f}')} | "
                    f"{t['train_s']:.1f} | {t['steps_per_s']:.2f} | {t['clipped_fraction']:.0%} | "
                    f"{t['nonfinite_steps']} |"
                )
        t = d.get("target") or {}
        if "ratio_vs_normflows_fp32" in t:
            lines += [
                "",
                f"**Target (issue 16): ours >= {t['target']:g}x normflows float32 images/s at equal bits/dim "
                f"after equal steps.** Our fastest, {t['ours_best']}: {t['ours_best_img_s']:.0f} images/s = "
                f"**{t['ratio_vs_normflows_fp32']:.2f}x** normflows float32 ({t['normflows_img_s']:.0f}); "
                f"{t['ratio_vs_normflows_best']:.2f}x normflows' fastest measured ({t['normflows_best']}). "
                f"Speed target {'met' if t['speed_met'] else 'missed'}."
                + (
                    f" Test bits/dim after {t['steps']} equal steps, {t['bpd_pair'][1]} minus "
                    f"{t['bpd_pair'][0]}: {t['test_bpd_ours_minus_normflows']:+.4f}."
                    if "test_bpd_ours_minus_normflows" in t
                    else " No training comparison (yet)."
                ),
            ]
        prof = {n: p for n, p in d.get("profile", {}).items() if "busy_ms_per_step" in p}
        if prof:
            kinds = sorted({k for p in prof.values() for k in p["kinds_ms_per_step"]})
            lines += [
                "",
                f"Where a training step's time goes (torch.profiler, steps: {a['profile_steps']}; wall is "
                "inflated by the profiler; busy = summed self time of "
                + ("GPU kernels" if "cuda" == a["device"].split(":")[0] else "CPU operators")
                + ", ms/step)",
                "",
                "| configuration | wall ms | busy ms | busy % | kernels (CPU: ops) | "
                "host syncs (CPU: scalar reads) | " + " | ".join(kinds) + " |",
                "|---" * (6 + len(kinds)) + "|",
            ]
            for n, p in prof.items():
                lines.append(
                    f"| {n} | {p['wall_ms_per_step']:.1f} | {p['busy_ms_per_step']:.1f} | "
                    f"{p['busy_fraction']:.0%} | {p['rows_per_step']:.0f} | {p['host_syncs_per_step']:.0f} | "
                    + " | ".join(f"{p['kinds_ms_per_step'].get(k, 0.0):.1f}" for k in kinds)
                    + " |"
                )
        notable = [
            e
            for e in d["events"]
            if e.get("error")
            or e.get("nonfinite_steps")
            or e.get("skipped")
            or "train_steps_cut_from" in e
            or "rounds_cut_from" in e
        ]
        if notable:
            lines += ["", "Events: " + "; ".join(json.dumps(e) for e in notable)]
        lines += ["", "Phases (elapsed wall-clock): " + ", ".join(f"{p['phase']} {p['wall_s']} s" for p in d["phases"])]
        return "\n".join(lines) + "\n"

    def write(self) -> None:
        if not self.out:
            return
        (self.out / "results.json").write_text(json.dumps(self.data, indent=1, default=str))
        (self.out / "results.md").write_text(self.markdown())


def _check(check: Optional[dict]) -> str:
    return "-" if not check else f"{check['compiled_minus_eager_bpd']:.1e}, {check['grad_rel_diff']:.1e}"


def _fmt(v, f: str) -> str:
    return "-" if v is None else f.format(v)


def _version(dist: str) -> Optional[str]:
    try:
        return version(dist)
    except Exception:
        return None


def _nonfinite(losses: list[float]) -> list[int]:
    return [i for i, v in enumerate(losses) if not math.isfinite(v)]


# -- phases -----------------------------------------------------------------------------------------------
def check_compiled(c: Config, x: Tensor) -> dict:
    """Compiled against eager at the current parameters: loss (bits/dim) and the gradient of every parameter."""
    out = {}
    for label, stance in (("eager", eager_stance), ("compiled", contextlib.nullcontext)):
        with stance():
            loss = c.loss(x)
            grads = torch.autograd.grad(loss, c.params, allow_unused=True)
        flat = torch.cat([(torch.zeros_like(p) if g is None else g.float()).flatten() for p, g in zip(c.params, grads)])
        out[label] = (loss.item(), flat)
    (le, ge), (lc, gc_) = out["eager"], out["compiled"]
    return {
        "eager_bpd": le,
        "compiled_minus_eager_bpd": lc - le,
        "grad_rel_diff": ((gc_ - ge).norm() / ge.norm().clamp_min(1e-30)).item(),
        "grad_max_abs_diff": (gc_ - ge).abs().max().item(),
    }


def warm_up(c: Config, x: Tensor, args: argparse.Namespace, report: Report) -> None:
    info = report.data["configs"][c.name]
    before = dynamo_stats()
    sync(c.device)
    t0 = time.perf_counter()
    loss, _ = c.step(x)
    first = loss.item()
    info["first_step_s"] = round(time.perf_counter() - t0, 3)
    info["first_step_bpd"] = first
    t0 = time.perf_counter()
    losses, _ = c.run(lambda i: x, max(0, args.warmup - 1))
    sync(c.device)
    info["warmup_rest_s"] = round(time.perf_counter() - t0, 3)
    bad = _nonfinite([first] + losses.tolist())
    if bad:
        info["nonfinite_steps"] = len(bad)
        report.event(config=c.name, phase="warmup", nonfinite_steps=bad, losses=[first] + losses.tolist())
    if c.compiled:
        info["dynamo"] = dynamo_stats(before)
        # After the warm-up steps the coupling nets are no longer zero, so this checks them too.
        info["check"] = check_compiled(c, x)
    report.event(
        config=c.name,
        phase="warmup",
        params=info["params"],
        first_step_s=info["first_step_s"],
        first_step_bpd=round(first, 4),
        dynamo=info.get("dynamo"),
        check=info.get("check"),
        elapsed_s=round(report.elapsed(), 1),
    )


def time_rounds(configs: list[Config], x: dict[str, Tensor], args: argparse.Namespace, report: Report) -> None:
    device = configs[0].device
    for r in range(args.rounds):
        if r >= 2 and report.elapsed() > TIMING_END * args.budget_s:
            report.event(
                phase="timing",
                rounds_cut_from=args.rounds,
                to=r,
                budget_s=args.budget_s,
                elapsed_s=round(report.elapsed(), 1),
            )
            break
        for c in configs:
            info = report.data["configs"][c.name]
            if "error" in info:
                continue
            try:
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    resident = torch.cuda.memory_allocated(device)
                xc = x[c.name]
                sync(device)
                t0 = time.perf_counter()
                losses, norms = c.run(lambda i: xc, args.iters)  # noqa: B023
                sync(device)
                c.rates.append(args.batch * args.iters / (time.perf_counter() - t0))
                if device.type == "cuda":
                    # Every configuration's model and Adam state stay resident; count this one's alone:
                    # its step's peak above what was resident, plus its own parameters and optimizer state.
                    peak = torch.cuda.max_memory_allocated(device)
                    alone = (peak - resident + c.state_bytes()) / 2**30
                    info["peak_mem_gib"] = round(max(alone, info.get("peak_mem_gib", 0.0)), 2)
                    info["process_peak_mem_gib"] = round(max(peak / 2**30, info.get("process_peak_mem_gib", 0.0)), 2)
                values = losses.tolist()
                info.setdefault("round_last_bpd", []).append(values[-1])
                info.setdefault("round_grad_norm_median", []).append(statistics.median(norms.tolist()))
                bad = _nonfinite(values)
                if bad:
                    info["nonfinite_steps"] = info.get("nonfinite_steps", 0) + len(bad)
                    report.event(config=c.name, phase="timing", round=r, nonfinite_steps=bad, losses=values)
            except Exception as error:  # one failing configuration must not hide the others
                info["error"] = f"{type(error).__name__}: {error}"[:2000]
                traceback.print_exc()
                report.event(config=c.name, phase="timing", error=info["error"][:300])
            info["rates"] = [round(v, 1) for v in c.rates]
        report.write()
    base = report.data["configs"].get("normflows", {}).get("rates")
    base_med = statistics.median(base) if base else None
    for c in configs:
        info = report.data["configs"][c.name]
        if not c.rates:
            continue
        med = statistics.median(c.rates)
        info["median"] = round(med, 1)
        info["ms_per_step"] = round(1000 * args.batch / med, 2)
        if base_med:
            info["vs_normflows"] = round(med / base_med, 3)
        if "first_step_s" in info:  # what the first step cost beyond a steady one: compilation, cuDNN autotuning
            info["compile_s"] = round(info["first_step_s"] - args.batch / med, 2)


_KERNEL_KINDS = (  # first match wins, on lower-cased CUDA kernel names (cuDNN, cuBLAS, inductor) or CPU op names
    ("optimizer", ("adam", "multi_tensor", "_foreach")),
    ("inductor (fused)", ("triton",)),
    ("convolution", ("conv", "cudnn", "fprop", "dgrad", "wgrad", "implicit", "winograd")),
    ("matmul", ("gemm", "matmul", "cutlass", "nvjet", "cublas", "aten::mm", "aten::addmm", "aten::bmm")),
    ("copy / layout", ("nchwtonhwc", "nhwctonchw", "transpose", "permute", "copy", "memcpy", "memset", "cat", "fill")),
    ("reduction", ("reduce_kernel", "reduction", "welford", "logsumexp", "aten::sum", "aten::mean", "aten::std")),
    (
        "elementwise",
        (
            "elementwise",
            "vectorized",
            "unrolled",
            "pointwise",
            "aten::mul",
            "aten::add",
            "aten::sub",
            "aten::div",
            "aten::exp",
            "aten::log",
            "aten::tanh",
            "aten::sigmoid",
            "aten::neg",
            "aten::where",
        ),
    ),
)


def _kind(name: str) -> str:
    low = name.lower()
    return next((kind for kind, keys in _KERNEL_KINDS if any(k in low for k in keys)), "other")


def profile_steps(c: Config, x: Tensor, steps: int) -> tuple[dict, str]:
    """Where a training step's time goes: GPU busy time against wall-clock, kernels, host syncs, by kind.

    On CUDA the rows are kernels (device self time); on the CPU, operators (CPU self time). Returns a summary
    and the profiler's own table. Profiling slows the host side, so wall ms/step here is above the timed one.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = c.device.type == "cuda"
    c.step(x)  # one unprofiled step: nothing left to compile or autotune
    sync(c.device)
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            c.step(x)
        sync(c.device)
        wall = time.perf_counter() - t0
    avgs = prof.key_averages()

    def self_us(e) -> float:
        if cuda:
            return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0.0)
        return e.self_cpu_time_total

    rows = [e for e in avgs if (e.device_type == DeviceType.CUDA) == cuda and self_us(e) > 0]
    if not cuda:
        rows = [e for e in rows if e.key.startswith("aten::")]
    busy_ms = sum(self_us(e) for e in rows) / 1000 / steps
    kinds: dict[str, float] = {}
    for e in rows:
        kinds[_kind(e.key)] = kinds.get(_kind(e.key), 0.0) + self_us(e) / 1000 / steps
    # A tensor read on the host (``.item()``, ``if tensor:``) is one cudaStreamSynchronize on CUDA (the timing's
    # own torch.cuda.synchronize is a cudaDeviceSynchronize, not counted); on the CPU, count the scalar reads.
    sync_names = ("cudaStreamSynchronize", "cudaMemcpy") if cuda else ("aten::_local_scalar_dense",)
    syncs = sum(e.count for e in avgs if e.key in sync_names) / steps
    top = sorted(rows, key=self_us, reverse=True)[:12]
    summary = {
        "steps": steps,
        "wall_ms_per_step": round(1000 * wall / steps, 2),
        "busy_ms_per_step": round(busy_ms, 2),
        "busy_fraction": round(busy_ms / (1000 * wall / steps), 3),
        "rows_per_step": round(sum(e.count for e in rows) / steps, 1),
        "host_syncs_per_step": round(syncs, 1),
        "kinds_ms_per_step": {k: round(v, 2) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
        "top": [[e.key[:100], round(self_us(e) / 1000 / steps, 3), round(e.count / steps, 1)] for e in top],
    }
    table = ""
    for sort in ("self_device_time_total", "self_cuda_time_total") if cuda else ("self_cpu_time_total",):
        try:  # the device sort key was renamed across torch versions
            table = avgs.table(sort_by=sort, row_limit=30, max_name_column_width=90)
            break
        except Exception as error:
            table = f"(profiler table failed: {type(error).__name__}: {error})"
    return summary, table


def profile_phase(configs: list[Config], x: dict[str, Tensor], args: argparse.Namespace, report: Report) -> None:
    """Profiles normflows float32 and our fastest configuration (or ``--profile-configs``); ``profile.md`` in --out."""
    timed = {c.name: statistics.median(c.rates) for c in configs if c.rates}
    names = args.profile_configs
    if names is None:
        ours = [n for n in timed if n.startswith("ours")]
        names = [n for n in ["normflows"] if n in timed] + ([max(ours, key=timed.get)] if ours else [])
    texts = []
    for c in configs:
        if c.name not in names or c.name not in timed:
            continue
        try:
            summary, table = profile_steps(c, x[c.name], args.profile_steps)
        except Exception as error:
            summary, table = {"error": f"{type(error).__name__}: {error}"[:2000]}, ""
            traceback.print_exc()
        report.data["profile"][c.name] = summary
        report.event(
            config=c.name,
            phase="profile",
            **{k: v for k, v in summary.items() if k != "top"},
            elapsed_s=round(report.elapsed(), 1),
        )
        texts.append(f"## {c.name}\n\n```\n{json.dumps(summary, indent=1)}\n\n{table}\n```\n")
        report.write()
    if report.out and texts:
        head = f"# Training-step profiles ({report.data['device']})\n\n"
        (report.out / "profile.md").write_text(head + "\n".join(texts))


def test_bpd(c: Config, test: Tensor, bf16: bool, batch: int) -> float:
    """Mean bits/dim on held-out images, eagerly (no compilation for the no-grad graph), bf16 autocast or not."""
    as_trained, c.bf16 = c.bf16, bf16
    try:
        with torch.no_grad(), eager_stance():
            return statistics.fmean(c.loss(b).item() for b in test.split(batch))
    finally:
        c.bf16 = as_trained


def train_compare(
    names: list[str], args: argparse.Namespace, device: torch.device, report: Report, step_s: dict[str, float]
) -> None:
    steps = args.train_steps
    # Both libraries get the same number of steps; cut it (loudly) if the measured step times say the phase
    # would overrun the budget, so a time-out still leaves the training numbers.
    per_step = sum(step_s.get(n, 0.0) for n in names)
    left = args.budget_s - report.elapsed() - 30.0 * len(names)  # build, data, evaluation
    if per_step > 0 and steps * per_step > left:
        cut = max(0, int(left / per_step))
        if cut < MIN_TRAIN_STEPS:  # bits/dim after a handful of warm-up steps would compare nothing
            report.event(
                phase="train",
                skipped=f"budget: {cut} steps would fit",
                budget_s=args.budget_s,
                elapsed_s=round(report.elapsed(), 1),
            )
            return
        if cut < steps:
            report.event(
                phase="train",
                train_steps_cut_from=steps,
                to=cut,
                budget_s=args.budget_s,
                elapsed_s=round(report.elapsed(), 1),
                est_s_per_step_pair=round(per_step, 3),
            )
            steps = cut
    n_train = min(args.train_images, steps * args.batch)
    data = dataset(n_train, args.seed + 1).to(device)
    test = dataset(args.test_images, args.seed + 2).to(device)
    report.event(phase="train", steps=steps, train_images=n_train, test_images=len(test), configs=names)
    for name in names:
        row: dict = {"steps": steps}
        report.data["train"][name] = row
        try:
            before = dynamo_stats()
            c = make(name, args, device, data[: args.batch])
            d = c.prepare(data)
            t = c.prepare(test)
            n_batches = len(d) // args.batch
            sync(device)
            t0 = time.perf_counter()
            losses, norms = c.run(
                lambda i: d[(i % n_batches) * args.batch : (i % n_batches + 1) * args.batch],  # noqa: B023
                steps,
            )
            sync(device)
            row["train_s"] = round(time.perf_counter() - t0, 2)
            if c.compiled:  # a fresh model of the same shapes: the compiled graphs should be reused
                row["dynamo"] = dynamo_stats(before)
            row["steps_per_s"] = round(steps / row["train_s"], 3)
            values, gn = losses.tolist(), norms.tolist()
            bad = _nonfinite(values)
            row["nonfinite_steps"] = len(bad)
            if bad:
                report.event(config=name, phase="train", nonfinite_steps=bad[:50], first_nonfinite=bad[0])
            row["train_bpd_first10"] = statistics.fmean(values[:10])
            row["train_bpd_last10"] = statistics.fmean(values[-10:])
            every = max(1, steps // 20)
            row["train_bpd_curve"] = {i: round(values[i], 4) for i in range(0, steps, every)} | {steps - 1: values[-1]}
            row["grad_norm_median"] = statistics.median(gn)
            row["clipped_fraction"] = sum(v > args.clip_grad for v in gn) / len(gn) if args.clip_grad > 0 else 0.0

            row["test_bpd"] = test_bpd(c, t, c.bf16, args.batch)
            if name.startswith("ours"):  # the same weights scored in float32 without autocast
                row["test_bpd_float32"] = test_bpd(c, t, False, args.batch)
            report.event(
                config=name,
                phase="train",
                **{k: v for k, v in row.items() if k != "train_bpd_curve"},
                elapsed_s=round(report.elapsed(), 1),
            )
        except Exception as error:
            row["error"] = f"{type(error).__name__}: {error}"[:2000]
            traceback.print_exc()
            report.event(config=name, phase="train", error=row["error"][:300])
        c = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        report.write()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=32, help="K, steps per level")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--iters", type=int, default=10, help="timed steps per configuration per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per configuration (the first compiles)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-warmup", type=int, default=200, help="steps of linear learning-rate warm-up")
    parser.add_argument("--clip-grad", type=float, default=5.0, help="global gradient-norm clip (0: none)")
    parser.add_argument(
        "--adam",
        choices=["auto", "fused", "foreach", "for-loop"],
        default="auto",
        help="Adam implementation for both libraries (auto: fused on CUDA, foreach on CPU)",
    )
    parser.add_argument("--train-steps", type=int, default=500, help="training steps per library (0: skip)")
    parser.add_argument("--train-images", type=int, default=51200)
    parser.add_argument("--test-images", type=int, default=1024)
    parser.add_argument(
        "--train-configs", nargs="+", default=None, help="configurations to train (default: normflows and our fastest)"
    )
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    parser.add_argument("--compile-backend", default=None, help="inductor (default on CUDA) or aot_eager (CPU default)")
    parser.add_argument("--compile-mode", default="default", help="inductor mode: default, max-autotune, ...")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=270.0,
        help="wall-clock budget from start-up: compiled warm-ups, timing rounds, the profile and the "
        "training steps (both libraries alike) are cut to fit; keep ~60 s below the time-out",
    )
    parser.add_argument("--profile-steps", type=int, default=1, help="profiled training steps per config (0: none)")
    parser.add_argument(
        "--profile-configs",
        nargs="+",
        default=None,
        help="configurations to profile (default: normflows and our fastest)",
    )
    parser.add_argument(
        "--out",
        default=os.environ.get("OUT") or None,
        help="folder for results.json and results.md (default: $OUT if set)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default 1 on CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny model, few steps: a smoke run in seconds")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda requested but CUDA is not available")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    elif device.type == "cpu":
        torch.set_num_threads(1)
    if args.compile_backend is None:
        args.compile_backend = "inductor" if device.type == "cuda" else "aot_eager"
    if args.quick:
        args.levels, args.steps, args.hidden, args.batch = 2, 2, 16, 8
        args.iters, args.warmup, args.rounds = 2, 2, 2
        args.train_steps = min(args.train_steps, 6)
        args.train_images, args.test_images, args.lr_warmup = 4 * args.batch, 2 * args.batch, 3
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    # One graph per (shape, autocast state, memory format) of a flow step, a few per configuration: stay well
    # below the recompile limit, past which dynamo would silently run the steps eagerly.
    limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"
    setattr(torch._dynamo.config, limit, max(64, getattr(torch._dynamo.config, limit)))
    report = Report(args, device)
    print(
        f"{report.data['device']}, torch {torch.__version__}, normflows {report.data['normflows']}; "
        f"L={args.levels} K={args.steps} hidden={args.hidden} batch={args.batch}; compile backend "
        f"{args.compile_backend}",
        flush=True,
    )

    x = dataset(args.batch, args.seed).to(device)
    configs: list[Config] = []
    inputs: dict[str, Tensor] = {}
    for name in args.configs:
        report.data["configs"][name] = {}
        try:
            c = make(name, args, device, x)
            report.data["configs"][name].update(c.info)
            configs.append(c)
            inputs[name] = c.prepare(x)
        except Exception as error:
            report.data["configs"][name]["error"] = f"{type(error).__name__}: {error}"[:2000]
            traceback.print_exc()
            report.event(config=name, phase="build", error=report.data["configs"][name]["error"][:300])
    report.phase("build")

    for c in configs:
        if c.compiled and report.elapsed() > WARMUP_END * args.budget_s:
            report.data["configs"][c.name]["error"] = "skipped: budget"
            report.event(
                config=c.name,
                phase="warmup",
                skipped="budget",
                budget_s=args.budget_s,
                elapsed_s=round(report.elapsed(), 1),
            )
            continue
        try:
            warm_up(c, inputs[c.name], args, report)
        except Exception as error:
            report.data["configs"][c.name]["error"] = f"{type(error).__name__}: {error}"[:2000]
            traceback.print_exc()
            report.event(config=c.name, phase="warmup", error=report.data["configs"][c.name]["error"][:300])
        report.write()
    report.phase("warm-up (compilation included)")

    time_rounds(configs, inputs, args, report)
    report.target()
    print()
    print(report.markdown(), flush=True)
    report.phase("timing")

    if args.profile_steps and report.elapsed() < PROFILE_END * args.budget_s:
        profile_phase(configs, inputs, args, report)
        report.phase("profile")
    elif args.profile_steps:
        report.event(phase="profile", skipped="budget", elapsed_s=round(report.elapsed(), 1))

    if args.train_steps:
        timed = {c.name: args.batch / statistics.median(c.rates) for c in configs if c.rates}
        names = args.train_configs
        if names is None:
            ours = [n for n in timed if n.startswith("ours")]
            names = [n for n in ["normflows"] if n in timed] + ([min(ours, key=timed.get)] if ours else [])
        del configs, inputs, c
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        train_compare(names, args, device, report, timed)
        report.target()
        report.phase("training")
    print()  # the whole table last: the device tool's reply carries the end of the output
    print(report.markdown(), flush=True)


if __name__ == "__main__":
    main()
