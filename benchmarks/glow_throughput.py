"""Images/second of a Glow training step at 3x32x32 (CPU, or GPU with channels_last / bf16 / torch.compile).

One training step = ``zero_grad``, ``loss = bits_per_dim(flow.log_prob(x)).mean()``, ``backward``,
gradient-norm clipping at 5 (the library's training default), ``Adam.step`` (lr 1e-3 after a linear
warm-up over ``--lr-warmup`` = 200 steps, as Glow trains; the timed steps run inside the warm-up). Warm-up steps first
(ActNorm's data-dependent initialisation runs eagerly on the first batch before any compilation),
then ``--iters`` timed steps between ``torch.cuda.synchronize()`` calls. Data: a fixed batch of
synthetic 8-bit images (smooth random blobs plus noise, integer levels 0..255, uniformly dequantized to
[0, 1]), so the loss is meaningful but no data set is needed. Input checks that force a host sync
(``Flow.validate``, ``Logit.validate``) are switched off for the timing.

One JSON line per configuration: images/s, ms/step, parameter count, the loss (bits/dim) after the
steps, warm-up seconds (includes compilation), peak GPU memory. ``--all`` runs float32, float32+TF32,
channels_last, bf16 autocast, bf16+channels_last and the compiled variants in one process (compiled
last: compiling ~100 flow steps can take minutes). Under bf16 autocast only the coupling networks run
in bf16; ActNorm, the 1x1 convolutions, the affine coupling maths and every log-determinant stay in float32.

    python benchmarks/glow_throughput.py --device cpu --levels 2 --steps 2 --hidden 32 --batch 8 --iters 3
    python benchmarks/glow_throughput.py --device cuda --levels 3 --steps 32 --hidden 512 --batch 256 --all
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import sys
import time
import traceback

import torch

import pyro_flowzoo as fz


def synthetic_images(batch: int, generator: torch.Generator) -> torch.Tensor:
    """Integer levels 0..255 of smooth coloured blobs with noise, shape (batch, 3, 32, 32)."""
    coarse = torch.rand(batch, 3, 4, 4, generator=generator)
    smooth = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bicubic", align_corners=False)
    noisy = smooth + 0.05 * torch.randn(batch, 3, 32, 32, generator=generator)
    return (noisy.clamp(0, 1) * 255).round()


def run_config(
    args: argparse.Namespace, *, channels_last: bool, bf16: bool, compile_: bool, tf32: bool, scope: str = "loss"
) -> dict:
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    flow = fz.build(
        "glow", (3, 32, 32), levels=args.levels, steps=args.steps, hidden_channels=args.hidden, coupling=args.coupling
    )
    flow.validate = False
    for m in flow.modules():
        if hasattr(m, "validate"):
            m.validate = False
    flow = flow.to(device=device, dtype=dtype)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        flow = flow.to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    levels = synthetic_images(args.batch, g)
    x = fz.data.dequantize(levels, 256, generator=g).to(device=device, dtype=dtype)
    x = x.contiguous(memory_format=memory_format)
    event_shape = flow.event_shape

    def loss_fn(batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            lp = flow.log_prob(batch)
        return fz.bits_per_dim(lp.float(), event_shape, 256).mean()

    with torch.no_grad():
        flow.log_prob(x[: max(1, min(len(x), 512))])  # ActNorm's data-dependent init, eagerly
    step_loss = loss_fn
    if compile_ and scope == "loss":  # one graph for the whole forward (and backward): slow to compile
        step_loss = torch.compile(loss_fn, mode=args.compile_mode)
    elif compile_:  # regional: each coupling network, compiled code shared by same-shaped nets
        for m in flow.modules():
            if isinstance(m, fz.nn.GlowNet):
                m.compile(mode=args.compile_mode)
    opt = torch.optim.Adam(flow.parameters(), lr=args.lr)
    # Glow's linear learning-rate warm-up: without it, Adam's first step (every weight moves by ~lr, the
    # same way) blows the 512-wide, 96-step model up to a loss of 1e31 at lr 1e-3.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, args.lr_warmup)))

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = step_loss(x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(flow.parameters(), 5.0)
        opt.step()
        sched.step()
        return loss.detach()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    t0 = time.perf_counter()
    for _ in range(args.warmup):
        loss = step()
    sync()
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.iters):
        loss = step()
    sync()
    elapsed = time.perf_counter() - t0
    loss_value = loss.item()
    if not math.isfinite(loss_value):
        raise FloatingPointError(f"non-finite loss {loss_value}")
    return {
        "config": "+".join(
            [args.dtype]
            + [
                n
                for n, on in (
                    ("tf32", tf32 and cuda),
                    ("channels_last", channels_last),
                    ("bf16", bf16),
                    (f"compile[{scope}]", compile_),
                )
                if on
            ]
        ),
        "device": torch.cuda.get_device_name(device)
        if cuda
        else f"cpu ({platform.processor() or 'unknown'}, {torch.get_num_threads()} threads)",
        "levels": args.levels,
        "steps": args.steps,
        "hidden": args.hidden,
        "coupling": args.coupling,
        "batch": args.batch,
        "params": flow.num_parameters,
        "images_per_s": round(args.batch * args.iters / elapsed, 2),
        "ms_per_step": round(1000 * elapsed / args.iters, 2),
        "loss_bpd": round(loss_value, 4),
        "timed_iters": args.iters,
        "warmup_iters": args.warmup,
        "warmup_s": round(warmup_s, 2),
        "lr_now": opt.param_groups[0]["lr"],
        "peak_mem_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if cuda else None,
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--coupling", choices=["affine", "additive"], default="affine")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-warmup", type=int, default=200, help="steps of linear learning-rate warm-up")
    parser.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default="float32",
        help="parameter/data dtype (use --bf16 for bfloat16 autocast)",
    )
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast around log_prob")
    parser.add_argument("--compile", action="store_true", help="torch.compile the loss (forward + backward)")
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode (default, max-autotune, ...)")
    parser.add_argument(
        "--compile-scope",
        choices=["loss", "nets"],
        default="loss",
        help="compile the whole loss (forward+backward graph; minutes to compile) or only the "
        "coupling networks (seconds)",
    )
    parser.add_argument("--tf32", action="store_true", help="allow TF32 matmuls/convolutions on CUDA")
    parser.add_argument("--all", action="store_true", help="run every variant in one process")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default 1 on CPU)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("--device cuda requested but CUDA is not available")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    elif not args.device.startswith("cuda"):
        torch.set_num_threads(1)
    if args.all:
        variants = [
            dict(channels_last=False, bf16=False, compile_=False, tf32=False),
            dict(channels_last=False, bf16=False, compile_=False, tf32=True),
            dict(channels_last=True, bf16=False, compile_=False, tf32=True),
            dict(channels_last=False, bf16=True, compile_=False, tf32=True),
            dict(channels_last=True, bf16=True, compile_=False, tf32=True),
            dict(channels_last=False, bf16=False, compile_=True, tf32=True, scope="nets"),
            dict(channels_last=False, bf16=True, compile_=True, tf32=True, scope="nets"),
            dict(channels_last=True, bf16=True, compile_=True, tf32=True, scope="nets"),
            dict(channels_last=False, bf16=True, compile_=True, tf32=True, scope="loss"),
        ]
        if not args.device.startswith("cuda"):
            variants = [v for v in variants if not v["tf32"] or v["compile_"] or v["bf16"] or v["channels_last"]]
    else:
        variants = [
            dict(
                channels_last=args.channels_last,
                bf16=args.bf16,
                compile_=args.compile,
                tf32=args.tf32,
                scope=args.compile_scope,
            )
        ]
    failures = 0
    for v in variants:
        try:
            row = run_config(args, **v)
        except Exception as error:  # one failing variant must not hide the others
            failures += 1
            row = {"config": v, "error": f"{type(error).__name__}: {error}"[:2000]}
            traceback.print_exc(file=sys.stderr)
        print(json.dumps(row), flush=True)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if failures == len(variants):
        sys.exit(1)


if __name__ == "__main__":
    main()
