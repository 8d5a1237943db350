"""Training state in and out of checkpoints (exact resume), and the metrics CSV."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..checkpoint import DEFAULTS_VERSION, CheckpointError, defaults_of_version, load_checkpoint
from ..flow import Flow

__all__ = ["open_resume", "rng_state", "restore_rng", "write_csv"]

PathLike = Union[str, os.PathLike]


def open_resume(flow: Flow, resume: Union[PathLike, dict[str, Any]], device: torch.device) -> dict[str, Any]:
    """The checkpoint to resume from (a path or a loaded dict), checked to hold training state for ``flow``."""
    ckpt = resume if isinstance(resume, dict) else load_checkpoint(resume, map_location=device)
    if ckpt.get("train_state") is None:
        raise CheckpointError("checkpoint has no training state to resume from (saved without fit?)")
    if flow.builder is not None and ckpt.get("builder") not in (None, flow.builder):
        raise CheckpointError(f"checkpoint is for flow {ckpt.get('builder')!r}, not {flow.builder!r}")
    version, saved = int(ckpt.get("defaults", 1)), dict(ckpt.get("hparams") or {})
    if flow.builder is not None and version < DEFAULTS_VERSION:
        # built today with the saved hyper-parameters, the flow would have today's defaults, not the checkpoint's
        former = defaults_of_version(version, flow.builder, saved)
        missing = {k: v for k, v in former.items() if saved.get(k) is None and _plain(flow.hparams.get(k)) != _plain(v)}
        if missing:
            args = ", ".join(f"{k}={v!r}" for k, v in missing.items())
            raise CheckpointError(
                f"checkpoint was saved under the defaults of version {version}: build the flow with {args} to resume"
            )
    return ckpt


def _plain(value: Any) -> Any:
    """A hyper-parameter compared as a checkpoint stores it: tuples as lists."""
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


def rng_state(device: torch.device) -> dict[str, Optional[torch.Tensor]]:
    """torch's RNG states (CPU, and the device's on CUDA) as CPU byte tensors."""
    return {
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device).cpu() if device.type == "cuda" else None,
    }


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    # RNG states are CPU byte tensors, whatever map_location did to the rest of the checkpoint
    torch.set_rng_state(state["rng"].cpu())
    if state.get("cuda_rng") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)


def write_csv(path: PathLike, rows: list[dict[str, Any]]) -> None:
    """Rewrites the whole metrics CSV atomically (the rows come from the checkpointed history)."""
    if not rows:
        return
    path = Path(path)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in keys})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)
