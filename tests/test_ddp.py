"""DistributedDataParallel: `train` under torchrun with 2 CPU processes (gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from pyro_flowzoo import build
from pyro_flowzoo.checkpoint import flow_from_checkpoint, load_checkpoint

# Each rank runs the CLI's main() (what `torchrun -m pyro_flowzoo train ...` runs), keeping hold of the
# trained flow, then saves its own final parameters so that the test can compare the ranks.
WORKER = textwrap.dedent(
    """
    import os, sys
    import torch
    torch.set_num_threads(1)
    import pyro_flowzoo.cli as cli
    out = sys.argv[1]
    kept = {}
    train_command = cli.train_command
    cli.train_command = lambda args: kept.setdefault("flow", train_command(args))
    code = cli.main(["train", "--flow", "realnvp", "--data", "moons", "--steps", "12", "--batch-size", "64",
                     "--device", "cpu", "--out", out, "--no-plots", "--hparam", "num_layers=2",
                     "--hparam", "hidden_dims=(8,)", "--data-arg", "n=256"])
    assert code == 0, code
    torch.save({k: v.clone() for k, v in kept["flow"].state_dict().items()},
               os.path.join(out, f"rank{os.environ['RANK']}.pt"))
    """
)


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)
def test_torchrun_two_cpu_processes_gloo(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", CI="true")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 logged and wrote the checkpoint and metrics; rank 1 printed nothing of its own
    assert proc.stdout.count("training realnvp") == 1 and "with 2 processes" in proc.stdout
    assert (out / "model.pt").is_file() and (out / "metrics.csv").is_file()
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for k in ranks[0]:
        assert torch.equal(ranks[0][k], ranks[1][k]), k
    # the checkpoint holds the same (best) weights, and records the 2-process run
    flow, payload = flow_from_checkpoint(out / "model.pt")
    for k, v in flow.state_dict().items():
        assert torch.equal(v, ranks[0][k]), k
    ck = load_checkpoint(out / "model.pt")
    assert ck["train_state"]["config"]["world_size"] == 2 and ck["metrics"]["steps"] == 12
    # training moved the weights away from the seeded initialisation (the equality above is not trivial)
    torch.manual_seed(0)
    fresh = build("realnvp", (2,), num_layers=2, hidden_dims=(8,))
    assert any(not torch.equal(v, ranks[0][k]) for k, v in fresh.state_dict().items())
