"""A tqdm progress bar over optimizer steps, shown only where someone is watching."""

from __future__ import annotations

import os
import sys
from typing import Optional

__all__ = ["Progress"]


class Progress:
    """A step bar with the loss in its postfix and one line per epoch.

    ``enabled=None`` shows it only when stderr is a terminal and ``CI`` is not ``true``; a process
    other than rank 0 never shows it.
    """

    def __init__(self, total: int, initial: int = 0, enabled: Optional[bool] = None, rank: int = 0) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty() and os.environ.get("CI", "").lower() != "true"
        self.bar = None
        if enabled and rank == 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=False)

    def step(self, message: str) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(message, refresh=False)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
