"""Glow on a GPU, side by side with normflows: training images/s and bits/dim after equal steps.

The Glow paper's CIFAR-10 configuration (L=3, K=32, 512 hidden channels) at batch 256 on 3x32x32.
One process; each round runs every configuration for ``--iters`` timed steps (after warm-up), rounds
interleaved, medians reported. A training step is zero_grad, ``-log_prob(x).mean()``, backward,
Adam step. Data: synthetic 8-bit images (smooth random blobs plus noise), uniformly dequantized and
scaled to [-0.5, 0.5), the same tensors for both libraries; ours is built with ``logit_alpha=None``
(normflows' Glow has no logit either). Differences that remain: ours has Glow's learned priors
(normflows' example: fixed standard normals) and a tanh-bounded coupling log-scale (normflows:
``sigmoid(raw + 2)``).

Configurations: ``normflows`` (float32; PyTorch's default TF32 for cuDNN convolutions),
``normflows+bf16`` (autocast), ``ours`` (float32), ``ours+cl+bf16`` (channels_last, bf16 autocast in the
coupling networks; log-determinants in float32), ``ours+cl+bf16+compile`` (the same with every coupling
network compiled by ``torch.compile``). ``--train-steps N`` then trains normflows (float32) and our
fastest configuration for N steps on the same 2,560 images and reports test bits/dim on 256 held-out
images.

    python benchmarks/glow_gpu.py --device cuda                 # full: L=3, K=32, 512, batch 256
    python benchmarks/glow_gpu.py --device cpu --quick          # smoke run, seconds
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))
from glow_cpu_vs_normflows import normflows_glow  # noqa: E402
from glow_throughput import synthetic_images  # noqa: E402

import pyro_flowzoo as fz  # noqa: E402
from pyro_flowzoo.nn import GlowNet  # noqa: E402


def dataset(n: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    levels = synthetic_images(n, g)
    return (levels + torch.rand(levels.shape, generator=g)) / 256 - 0.5


class Config:
    def __init__(self, name: str, module: nn.Module, log_prob: Callable[[Tensor], Tensor], bf16: bool,
                 channels_last: bool) -> None:
        self.name, self.module, self._log_prob = name, module, log_prob
        self.bf16, self.channels_last = bf16, channels_last
        self.opt = torch.optim.Adam(module.parameters(), lr=1e-3)
        self.rates: list[float] = []

    def loss(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            lp = self._log_prob(x)
        return -lp.float().mean()

    def step(self, x: Tensor) -> Tensor:
        self.opt.zero_grad(set_to_none=True)
        loss = self.loss(x)
        loss.backward()
        self.opt.step()
        return loss.detach()


def make(name: str, args: argparse.Namespace, device: torch.device, init_batch: Tensor) -> Config:
    torch.manual_seed(args.seed)
    shape = (3, args.size, args.size)
    bf16 = "bf16" in name
    cl = "+cl" in name
    if name.startswith("normflows"):
        m = normflows_glow(shape, args.levels, args.steps, args.hidden).to(device)
        with torch.no_grad():
            m.log_prob(init_batch, None)  # ActNorm's data-dependent init
        return Config(name, m, lambda x: m.log_prob(x, None), bf16, cl)
    flow = fz.build("glow", shape, levels=args.levels, steps=args.steps, hidden_channels=args.hidden,
                    logit_alpha=None).to(device)
    flow.validate = False  # no per-step host sync for the NaN check
    if cl:
        flow = flow.to(memory_format=torch.channels_last)
    with torch.no_grad():
        flow.log_prob(init_batch)
    if "compile" in name:
        for m in flow.modules():
            if isinstance(m, GlowNet):
                m.compile()
    return Config(name, flow, flow.log_prob, bf16, cl)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=32, help="K, steps per level")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--iters", type=int, default=10, help="timed steps per configuration per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=0)
    parser.add_argument("--configs", nargs="+",
                        default=["normflows", "normflows+bf16", "ours", "ours+cl+bf16", "ours+cl+bf16+compile"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.levels, args.steps, args.hidden, args.batch = 2, 2, 16, 8
        args.iters, args.warmup, args.rounds = 2, 1, 1
        args.configs = [c for c in args.configs if "compile" not in c]
        args.train_steps = min(args.train_steps, 3)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    x = dataset(args.batch, args.seed).to(device)
    configs = [make(n, args, device, x) for n in args.configs]
    for c in configs:
        for _ in range(args.warmup):
            c.step(x)
        sync(device)
        print(json.dumps({"config": c.name, "params": sum(p.numel() for p in c.module.parameters()),
                          "warm": True}), flush=True)
    for _ in range(args.rounds):
        for c in configs:
            sync(device)
            t0 = time.perf_counter()
            for _ in range(args.iters):
                loss = c.step(x)
            sync(device)
            c.rates.append(args.batch * args.iters / (time.perf_counter() - t0))
            if not math.isfinite(loss.item()):
                print(json.dumps({"config": c.name, "error": "non-finite loss"}), flush=True)
    base = statistics.median(configs[0].rates)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"\n{name}, torch {torch.__version__}; L={args.levels} K={args.steps} hidden={args.hidden} "
          f"batch={args.batch}; median of {args.rounds} rounds x {args.iters} steps")
    print("| configuration | images/s (median) | per round | vs " + configs[0].name + " |")
    print("|---|---|---|---|")
    for c in configs:
        med = statistics.median(c.rates)
        print(f"| {c.name} | {med:.0f} | {', '.join(f'{v:.0f}' for v in c.rates)} | {med / base:.2f}x |")
    if args.train_steps:
        data = dataset(10 * args.batch, args.seed + 1).to(device)
        test = dataset(args.batch, args.seed + 2).to(device)
        fastest = max(configs[1:], key=lambda c: statistics.median(c.rates)) if len(configs) > 1 else configs[0]
        print(f"\nbits/dim after {args.train_steps} steps on the same {len(data)} images (test: {len(test)} "
              "held-out images)")
        for cname in dict.fromkeys([configs[0].name, fastest.name]):
            c = make(cname, args, device, data[: args.batch])
            t0 = time.perf_counter()
            for i in range(args.train_steps):
                j = (i * args.batch) % len(data)
                c.step(data[j : j + args.batch])
            sync(device)
            with torch.no_grad():
                nll = c.loss(test).item()
            d = 3 * args.size * args.size
            bpd = (nll + d * math.log(256)) / (d * math.log(2))
            print(f"| {cname} | test bits/dim {bpd:.3f} | train time {time.perf_counter() - t0:.1f} s |")


if __name__ == "__main__":
    main()
