"""Smoke test: every ``examples/*.py`` (helpers ``_*.py`` aside) runs with ``--quick`` and writes its pictures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


# the examples of the result list, each of which must draw its pictures
PICTURES = {
    "ar_realnvp_2d",
    "pixelcnn_shapes",
    "realnvp_images",
    "nice",
    "glow_images",
    "cglow_classes",
    "mog_to_gaussian",
    "autoencoder_mnist",
}


def test_there_are_examples():
    assert PICTURES <= {p.stem for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_example_runs_quick(script, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="error::RuntimeWarning", OMP_NUM_THREADS="1", CI="true")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(out)],
        cwd=EXAMPLES.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written and all(p.stat().st_size > 0 for p in written), f"{script.name} wrote nothing into --out"
    if script.stem in PICTURES:
        assert any(p.suffix == ".png" for p in written), f"{script.name} wrote no picture into --out"
