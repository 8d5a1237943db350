"""The command line end to end: list, train, sample, eval on moons and digits; one-line errors."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pyro_flowzoo.checkpoint import load_checkpoint
from pyro_flowzoo.cli import dataset_names, main
from pyro_flowzoo.flows import FLOWS

TINY_2D = ["--hparam", "num_layers=2", "--hparam", "hidden_dims=(16,)"]
TINY_IMAGE = ["--hparam", "levels=1", "--hparam", "steps=1", "--hparam", "hidden_channels=8"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyro-flowzoo"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, err)


@pytest.fixture(autouse=True)
def _no_progress_bar(monkeypatch):
    monkeypatch.setenv("CI", "true")


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("moons")
    code = main(
        [
            "train",
            "--flow",
            "realnvp",
            "--data",
            "moons",
            "--steps",
            "30",
            "--batch-size",
            "128",
            "--lr",
            "3e-3",
            "--seed",
            "1",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--data-arg",
            "n=2000",
            *TINY_2D,
        ]
    )
    assert code == 0
    return out


def test_list_shows_every_flow_and_data_set(capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0
    for name in list(FLOWS) + dataset_names():
        assert f"  {name}" in out


def test_train_writes_model_metrics_and_density_picture(moons_run):
    assert (moons_run / "model.pt").is_file() and (moons_run / "density.png").stat().st_size > 1000
    assert (moons_run / "curves.png").stat().st_size > 1000
    rows = list(csv.DictReader((moons_run / "metrics.csv").read_text().splitlines()))
    assert rows and int(rows[-1]["step"]) == 30 and float(rows[-1]["valid_nll"]) > 0
    ck = load_checkpoint(moons_run / "model.pt")
    assert ck["builder"] == "realnvp" and ck["hparams"]["hidden_dims"] == (16,) and ck["extra"]["data"] == "moons"


def test_eval_prints_nll_and_true_entropy(capsys, moons_run):
    code, out, _ = _run(
        capsys, "eval", "--checkpoint", str(moons_run / "model.pt"), "--data", "moons", "--data-arg", "n=2000"
    )
    assert code == 0 and "test NLL on moons (2000 points)" in out and "true density" in out
    nll = float(out.split(":")[1].split()[0])
    ck = load_checkpoint(moons_run / "model.pt")
    # a held-out split scores close to the validation figure of the same model
    assert abs(nll - ck["metrics"]["best_valid_nll"]) < 0.25


def test_sample_writes_a_picture(capsys, moons_run, tmp_path):
    png = tmp_path / "s.png"
    code, out, _ = _run(
        capsys,
        "sample",
        "--checkpoint",
        str(moons_run / "model.pt"),
        "--num-samples",
        "50",
        "--temperature",
        "0.7",
        "--out",
        str(png),
    )
    assert code == 0 and png.stat().st_size > 1000


def test_train_svi_method_and_epochs_budget(capsys, tmp_path):
    code, out, err = _run(
        capsys,
        "train",
        "--flow",
        "nice",
        "--data",
        "moons",
        "--epochs",
        "1",
        "--batch-size",
        "512",
        "--method",
        "svi",
        "--out",
        str(tmp_path),
        "--no-plots",
        "--data-arg",
        "n=1024",
        "--hparam",
        "num_layers=2",
        "--hparam",
        "hidden_dims=(8,)",
    )
    assert code == 0, err
    assert load_checkpoint(tmp_path / "model.pt")["metrics"]["steps"] == 2


def test_resume_continues_to_the_budget(capsys, tmp_path):
    args = [
        "train",
        "--flow",
        "realnvp",
        "--data",
        "moons",
        "--steps",
        "6",
        "--batch-size",
        "64",
        "--out",
        str(tmp_path),
        "--no-plots",
        "--data-arg",
        "n=256",
        *TINY_2D,
    ]
    assert _run(capsys, *args)[0] == 0
    before = load_checkpoint(tmp_path / "model.pt")
    code, out, err = _run(capsys, *args, "--resume")
    assert code == 0, err
    after = load_checkpoint(tmp_path / "model.pt")
    assert after["metrics"]["steps"] == 6  # already done: nothing more to train
    for k, v in before["state_dict"].items():
        assert torch.equal(v, after["state_dict"][k])


@pytest.mark.parametrize(
    "argv,needles",
    [
        (["train", "--flow", "nope", "--data", "moons"], ["unknown flow 'nope'", "realnvp"]),
        (["train", "--flow", "nice", "--data", "nope"], ["unknown data set 'nope'", "moons"]),
        (["train", "--flow", "nice", "--data", "moons", "--hparam", "bogus=1"], ["bogus"]),
        (["train", "--flow", "nice", "--data", "moons", "--hparam", "oops"], ["key=value"]),
        (["train", "--flow", "nice", "--data", "moons", "--epochs", "1", "--steps", "1"], ["not allowed"]),
        (["train", "--flow", "nice", "--data", "moons", "--steps", "0"], ["positive integer"]),
        (["train", "--flow", "glow", "--data", "moons", "--steps", "1"], ["(C, H, W)"]),
        (["train", "--flow", "nice", "--data", "moons", "--device", "tpu:x"], ["device"]),
        (["eval", "--checkpoint", "/no/such/file.pt", "--data", "moons"], ["no such file"]),
        (["sample", "--checkpoint", "/no/such/file.pt", "--out", "x.png"], ["no such file"]),
        (["frobnicate"], ["invalid choice"]),
        (
            ["train", "--flow", "glow", "--data", "mnist", "--data-arg", "root='/no/such/dir'", "--steps", "1"],
            ["mnist", "not found"],
        ),
        (["train", "--flow", "nice", "--data", "moons", "--data-arg", "bogus=1", "--steps", "1"], ["bogus"]),
        (["eval", "--checkpoint", "x.pt", "--data", "moons", "--split", "nope"], ["unknown split 'nope'"]),
        (
            ["train", "--flow", "pixelcnn_flow", "--data", "moons", "--context", "labels", "--steps", "1"],
            ["cannot be conditional"],
        ),
    ],
)
def test_bad_input_gives_one_line_errors(capsys, argv, needles):
    code, _, err = _run(capsys, *argv)
    _assert_one_line_error(code, err, *needles)


def test_truncated_checkpoint_and_wrong_shapes(capsys, moons_run, tmp_path):
    data = (moons_run / "model.pt").read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data[: len(data) // 3])
    code, _, err = _run(capsys, "eval", "--checkpoint", str(bad), "--data", "moons")
    _assert_one_line_error(code, err, "truncated")
    code, _, err = _run(capsys, "sample", "--checkpoint", str(bad), "--out", str(tmp_path / "x.png"))
    _assert_one_line_error(code, err, "truncated")
    code, _, err = _run(capsys, "sample", "--checkpoint", str(moons_run / "model.pt"), "--out", str(tmp_path / "x.jpg"))
    _assert_one_line_error(code, err, ".png")
    if "digits" in dataset_names():
        code, _, err = _run(capsys, "eval", "--checkpoint", str(moons_run / "model.pt"), "--data", "digits")
        _assert_one_line_error(code, err, "event shape")


def test_module_and_console_script_entry_points(tmp_path):
    env = dict(os.environ, CI="true", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pyro_flowzoo", "train", "--flow", "nope", "--data", "moons"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2 and "unknown flow 'nope'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    script = Path(sys.executable).with_name("pyro-flowzoo")
    if not script.exists():
        pytest.skip("console script not installed (package not installed with pip -e)")
    proc = subprocess.run([str(script), "list"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and "realnvp" in proc.stdout


@pytest.mark.skipif("digits" not in dataset_names(), reason="the digits data set is not available")
@pytest.mark.parametrize("flow,context", [("glow", ()), ("cglow", ()), ("glow", ("--context", "labels"))])
def test_digits_train_eval_sample_end_to_end(capsys, tmp_path, flow, context):
    code, out, err = _run(
        capsys,
        "train",
        "--flow",
        flow,
        "--data",
        "digits",
        "--steps",
        "4",
        "--batch-size",
        "64",
        "--out",
        str(tmp_path),
        *TINY_IMAGE,
        *context,
    )
    assert code == 0, err
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "model.pt").is_file()
    assert "bits/dim" in out
    ck = load_checkpoint(tmp_path / "model.pt")
    if flow == "cglow" or context:  # conditioned on one-hot digit labels
        assert tuple(ck["hparams"]["context_shape"]) == (10,)
    else:
        assert ck["hparams"].get("context_shape") is None
    code, out, err = _run(capsys, "eval", "--checkpoint", str(tmp_path / "model.pt"), "--data", "digits")
    assert code == 0, err
    assert "nats/dim" in out and "bits/dim" in out
    bpd = float(out.split(",")[-1].split()[0])
    assert 0 < bpd < 32
    png = tmp_path / "grid.png"
    code, _, err = _run(
        capsys, "sample", "--checkpoint", str(tmp_path / "model.pt"), "--num-samples", "20", "--out", str(png)
    )
    assert code == 0 and png.stat().st_size > 100, err


def test_diverging_training_exits_with_status_1_and_one_line(capsys, monkeypatch, tmp_path):
    import pyro_flowzoo.train as train_module

    def diverge(*args, **kwargs):
        raise FloatingPointError("non-finite loss nan at step 3 (epoch 0); training stopped")

    monkeypatch.setattr(train_module, "fit", diverge)
    code, _, err = _run(
        capsys,
        "train",
        "--flow",
        "nice",
        "--data",
        "moons",
        "--steps",
        "5",
        "--out",
        str(tmp_path),
        "--data-arg",
        "n=64",
    )
    assert code == 1 and err.strip().count("\n") == 0
    assert "training diverged: non-finite loss nan at step 3" in err and "Traceback" not in err
