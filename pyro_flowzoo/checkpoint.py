"""Checkpoints: atomic writes, ``weights_only`` loads, and rebuilding a flow from its builder name.

A checkpoint is a plain dictionary of tensors and primitive containers (so that
``torch.load(weights_only=True)`` reads it without executing any pickled code)::

    {"format": "pyro_flowzoo/1", "builder": "realnvp", "hparams": {"event_shape": [2], ...},
     "defaults": 6,               # the builders' defaults it was saved under (DEFAULTS_VERSION)
     "state_dict": {...},         # the weights to use (best on validation / EMA when on)
     "metrics": {...},            # per-epoch history and the best validation NLL
     "train_state": {...} | None, # raw weights, optimizer, scheduler, RNG states: exact resume
     "extra": {...}}              # what the caller adds (e.g. the data set name)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .flow import Flow

__all__ = [
    "CheckpointError",
    "FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "flow_from_checkpoint",
    "checkpoint_payload",
    "DEFAULTS_VERSION",
    "defaults_of_version",
]

FORMAT = "pyro_flowzoo/1"

#: The version of the builders' defaults a new checkpoint records. ``hparams`` holds only what the user
#: passed, so a checkpoint saved under older defaults is rebuilt with those (:func:`defaults_of_version`).
DEFAULTS_VERSION = 6
PathLike = Union[str, os.PathLike]

_PRIMITIVES = (str, int, float, bool, type(None))

#: Builders whose unconditional 2-D flows have a Student-t base since defaults version 6.
T_BASE_BUILDERS = ("realnvp", "maf")


def error_line(e: BaseException) -> str:
    """The first line of an exception's message; for ``load_state_dict``'s, the first error under its header.

    Example:
        >>> error_line(RuntimeError("Error(s) in loading state_dict for Flow:\\n\\tsize mismatch for w."))
        'size mismatch for w.'
    """
    lines = [line.strip() for line in str(e).strip().splitlines()] or [type(e).__name__]
    return lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt, or not a pyro_flowzoo checkpoint."""


def _check_plain(obj: Any, where: str = "checkpoint") -> None:
    """Raises TypeError unless ``obj`` is made of tensors and primitive containers only."""
    if isinstance(obj, (torch.Tensor, torch.Size) + _PRIMITIVES):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, _PRIMITIVES):
                raise TypeError(
                    f"{where}: key {k!r} is a {type(k).__name__}; only str/int/float/bool keys load "
                    "with weights_only=True"
                )
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(obj).__name__}; a checkpoint holds only tensors and primitive "
        "containers (so that torch.load(weights_only=True) can read it)"
    )


def save_checkpoint(path: PathLike, payload: dict[str, Any]) -> None:
    """Writes ``payload`` to ``path`` atomically (a temporary file in the same folder, then ``os.replace``).

    A crash while writing leaves the previous file intact. ``payload`` must hold only tensors and
    primitive containers.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> save_checkpoint(os.path.join(d, "c.pt"), {"format": FORMAT, "x": torch.ones(2)})
        >>> load_checkpoint(os.path.join(d, "c.pt"))["x"]
        tensor([1., 1.])
    """
    _check_plain(payload)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device, None] = "cpu") -> dict[str, Any]:
    """Reads a checkpoint with ``torch.load(weights_only=True)``; bad files raise a one-line CheckpointError.

    Example:
        >>> load_checkpoint("/nonexistent/model.pt")
        Traceback (most recent call last):
        ...
        pyro_flowzoo.checkpoint.CheckpointError: checkpoint /nonexistent/model.pt: no such file
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError/UnpicklingError/EOFError/ValueError for bad files
        first = error_line(e)
        raise CheckpointError(
            f"checkpoint {path}: cannot be read (truncated or corrupt?): {type(e).__name__}: {first[:160]}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path}: not a pyro_flowzoo checkpoint (expected format {FORMAT!r})")
    return payload


def checkpoint_payload(
    flow: Flow,
    state_dict: Optional[dict[str, torch.Tensor]] = None,
    metrics: Optional[dict[str, Any]] = None,
    train_state: Optional[dict[str, Any]] = None,
    extra: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    """Builds the checkpoint dictionary of ``flow`` (its builder name, hyper-parameters and weights).

    Example:
        >>> from pyro_flowzoo import build
        >>> checkpoint_payload(build("realnvp", (2,), num_layers=2, hidden_dims=(8,)))["builder"]
        'realnvp'
    """
    sd = flow.state_dict() if state_dict is None else state_dict
    return {
        "format": FORMAT,
        "builder": getattr(flow, "builder", None),
        "hparams": dict(getattr(flow, "hparams", {}) or {}),
        "defaults": DEFAULTS_VERSION,
        "state_dict": {k: v.detach().cpu().clone() for k, v in sd.items()},
        "metrics": metrics or {},
        "train_state": train_state,
        "extra": extra or {},
    }


def defaults_of_version(version: int, builder: str, hparams: dict[str, Any]) -> dict[str, Any]:
    """``hparams`` plus the defaults of ``version`` that later versions changed (explicit values win).

    Version 1 (checkpoints without a ``"defaults"`` entry): ``maf`` for ``D >= 3`` read its inputs through
    ``tanh`` (now ``asinh``), 2-D ``nsf_ar`` and ``nsf_coupling`` had uniform knots (now centered; the knots
    only set the initialisation), and 2-D ``nsf_coupling`` had 4 layers (now 3).

    Versions 1 and 2: the alternating masks of vector ``nice``, ``realnvp`` and ``nsf_coupling`` were anchored
    at the latent side (``mask_anchor="latent"``; now at the data side, except 2-D ``realnvp``), and ``realnvp``
    for ``D >= 3`` read its inputs through ``tanh`` (now ``asinh``).

    Versions 1 to 3: unconditional vector ``maf`` and ``realnvp`` for ``D >= 3`` added their shift on the data
    side (``shift_side="data"``; now ``"latent"``), and ``maf`` there, conditional or not, had 5 layers of
    ``max(32, 2 D)`` units (now 3 of ``max(64, 2 D)``).

    Versions 1 to 4: unconditional ``nsf_ar`` and ``nsf_coupling`` for ``D >= 3`` had no affine layer in front
    of the splines (``affine_layer=False``).

    Versions 1 to 5: unconditional 2-D ``realnvp`` and ``maf`` had a normal base (``base_df=False``; now Student-t).

    Example:
        >>> defaults_of_version(1, "nsf_coupling", {"event_shape": [2]})["num_layers"]
        4
        >>> defaults_of_version(2, "realnvp", {"event_shape": [6], "num_layers": 4})
        {'mask_anchor': 'latent', 'input_squash': 'tanh', 'shift_side': 'data', 'event_shape': [6], 'num_layers': 4}
        >>> defaults_of_version(5, "maf", {"event_shape": [2]})
        {'base_df': False, 'event_shape': [2]}
    """
    if version >= DEFAULTS_VERSION:
        return dict(hparams)
    shape = list(hparams.get("event_shape") or [])
    dim = shape[0] if len(shape) == 1 else None
    old: dict[str, Any] = {}
    if version < 2:
        if builder == "maf" and dim is not None and dim >= 3:
            old["input_squash"] = "tanh"
        if builder in ("nsf_ar", "nsf_coupling") and dim == 2:
            old["knots"] = "uniform"
        if builder == "nsf_coupling" and dim == 2:
            old["num_layers"] = 4
    if version < 3:
        if builder in ("nice", "realnvp", "nsf_coupling") and dim is not None and dim >= 2:
            old["mask_anchor"] = "latent"
        if builder == "realnvp" and dim is not None and dim >= 3:
            old["input_squash"] = "tanh"
    unconditional = hparams.get("context_shape") is None
    if version < 4 and dim is not None and dim >= 3:
        if builder in ("maf", "realnvp") and unconditional:
            old["shift_side"] = "data"
        if builder == "maf":
            old.update(num_layers=5, hidden_dims=[max(32, 2 * dim)] * 2)
    if version < 5 and builder in ("nsf_ar", "nsf_coupling") and dim is not None and dim >= 3 and unconditional:
        old["affine_layer"] = False
    if version < 6 and builder in T_BASE_BUILDERS and dim == 2 and unconditional:
        old["base_df"] = False
    # an explicit None is the builder's default, which is what the version's defaults replace
    return {**old, **{k: v for k, v in hparams.items() if not (v is None and k in old)}}


def flow_from_checkpoint(
    checkpoint: Union[PathLike, dict[str, Any]], map_location: Union[str, torch.device, None] = "cpu"
) -> tuple[Flow, dict[str, Any]]:
    """Rebuilds the flow saved in ``checkpoint`` (a path or a loaded dict) and loads its weights.

    Returns ``(flow, payload)``; the flow is in eval mode.

    Example:
        >>> import tempfile, os
        >>> from pyro_flowzoo import build
        >>> flow = build("realnvp", (2,), num_layers=2, hidden_dims=(8,))
        >>> _ = flow.log_prob(torch.randn(64, 2))  # the first batch sets the data-side standardization
        >>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
        >>> save_checkpoint(path, checkpoint_payload(flow))
        >>> again, _ = flow_from_checkpoint(path)
        >>> x = torch.randn(3, 2)
        >>> bool(torch.allclose(again.log_prob(x), flow.log_prob(x)))
        True
    """
    from .flows import build
    from .flows.registry import flow_info

    payload = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint, map_location)
    name = payload.get("builder")
    where = "checkpoint" if isinstance(checkpoint, dict) else f"checkpoint {checkpoint}"
    if name is None:
        raise CheckpointError(
            f"{where}: no builder name (the flow was built by hand); build it yourself and load payload['state_dict']"
        )
    try:
        flow_info(name)
    except ValueError as e:
        raise CheckpointError(f"{where}: {e}") from None
    try:
        hparams = defaults_of_version(int(payload.get("defaults", 1)), name, dict(payload.get("hparams") or {}))
        event_shape = hparams.pop("event_shape")
        flow = build(name, event_shape, **hparams)
        dtype = next((v.dtype for v in payload["state_dict"].values() if v.is_floating_point()), None)
        if dtype is not None:
            flow.to(dtype)  # a flow trained in float64 comes back in float64
        flow.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = error_line(e)
        raise CheckpointError(f"{where}: cannot rebuild flow {name!r}: {first[:200]}") from None
    flow.to(map_location if map_location is not None else "cpu")
    flow.eval()
    return flow, payload
