"""The registry the property battery runs over: every transform and every flow builder.

Each family adds its cases in its own ``tests/cases_<family>.py`` (a ``TRANSFORMS`` list and a
``FLOWS`` list); ``test_properties.py`` checks that every exported transform class and every
registered builder has at least one case.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch

CASE_MODULES = ["cases_foundation", "cases_image", "cases_autoregressive", "cases_conditional"]


@dataclass
class TransformCase:
    """One transform configuration, built fresh (float64 is applied by the battery)."""

    id: str
    make: Callable[[], Any]
    event_shape: tuple[int, ...]
    context_shape: Optional[tuple[int, ...]] = None
    # Draws inputs of the forward direction (domain) for a batch shape; default: standard normal.
    sample_x: Optional[Callable[[tuple[int, ...]], torch.Tensor]] = None
    autoregressive: Union[bool, str] = False  # True: Jacobian lower triangular in flattened order; "reversed": upper
    perturb: float = 0.1  # std of the noise added to parameters so no layer is the identity
    tol: float = 1e-6
    # Classes this case covers (default: the class of make()); used by the coverage test.
    covers: tuple[type, ...] = ()

    def x(self, batch_shape: tuple[int, ...] = ()) -> torch.Tensor:
        if self.sample_x is not None:
            return self.sample_x(batch_shape).double()
        return torch.randn(batch_shape + self.event_shape, dtype=torch.float64)

    def context(self, batch_shape: tuple[int, ...] = ()) -> Optional[torch.Tensor]:
        if self.context_shape is None:
            return None
        return torch.randn(batch_shape + self.context_shape, dtype=torch.float64)


@dataclass
class FlowCase:
    """One builder configuration, small enough for the battery."""

    builder: str
    event_shape: tuple[int, ...]
    kwargs: dict = field(default_factory=dict)
    id: str = ""
    context_shape: Optional[tuple[int, ...]] = None
    # Draws data for a batch shape; default: standard normal.
    sample_x: Optional[Callable[[tuple[int, ...]], torch.Tensor]] = None
    perturb: float = 0.05
    # Half-width of the integration grid for 1-D/2-D flows, and points per axis.
    grid: tuple[float, int] = (8.0, 400)
    tol: float = 1e-6

    def __post_init__(self) -> None:
        if not self.id:
            self.id = f"{self.builder}-{'x'.join(map(str, self.event_shape))}"

    def x(self, batch_shape: tuple[int, ...] = ()) -> torch.Tensor:
        if self.sample_x is not None:
            return self.sample_x(batch_shape).double()
        return torch.randn(batch_shape + self.event_shape, dtype=torch.float64)

    def context(self, batch_shape: tuple[int, ...] = ()) -> Optional[torch.Tensor]:
        if self.context_shape is None:
            return None
        return torch.randn(batch_shape + self.context_shape, dtype=torch.float64)


def _collect(attr: str) -> list:
    cases = []
    for name in CASE_MODULES:
        if (Path(__file__).parent / f"{name}.py").exists():  # families not yet written are skipped
            cases.extend(getattr(importlib.import_module(name), attr, []))
    return cases


TRANSFORM_CASES: list[TransformCase] = _collect("TRANSFORMS")
FLOW_CASES: list[FlowCase] = _collect("FLOWS")
