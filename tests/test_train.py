"""fit(): SVI vs torch paths, schedule, EMA, early stopping, checkpoints, exact resume, NaN handling."""

from __future__ import annotations

import csv
import math

import pyro
import pytest
import torch

from pyro_flowzoo import build
from pyro_flowzoo.checkpoint import (
    FORMAT,
    CheckpointError,
    flow_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from pyro_flowzoo.data import sample_moons
from pyro_flowzoo.train import dequantize, evaluate_nll, fit, lr_factor

pytestmark = pytest.mark.usefixtures("one_thread")


def _flow(seed: int = 1, **kw):
    torch.manual_seed(seed)
    hp = {"num_layers": 2, "hidden_dims": (16,)} | kw
    return build("realnvp", (2,), **hp).double()


def _data(n: int = 300, seed: int = 0):
    return sample_moons(n, generator=torch.Generator().manual_seed(seed)).double()


def _params(flow):
    return [p.detach().clone() for p in flow.parameters()]


def _same(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("weight_decay,clip_grad", [(0.0, 5.0), (1e-3, 0.05)])
def test_svi_and_torch_paths_match(weight_decay, clip_grad):
    train, valid = _data(300), _data(100, 1)
    out = {}
    for method in ("torch", "svi"):
        flow = _flow()
        losses = []
        res = fit(
            flow,
            train,
            valid,
            steps=12,
            batch_size=64,
            lr=3e-3,
            method=method,
            seed=5,
            weight_decay=weight_decay,
            clip_grad=clip_grad,
            callback=lambda i, losses=losses: losses.append(i["loss"]),
        )
        out[method] = (_params(flow), losses, res)
    (pt, lt, rt), (ps, ls, rs) = out["torch"], out["svi"]
    assert len(lt) == len(ls) == 12
    for a, b in zip(lt, ls):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12)
    for a, b in zip(pt, ps):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    # the loss did change over training (the comparison is not vacuous)
    assert lt[0] != lt[-1]
    assert rt.valid_nll == pytest.approx(rs.valid_nll, rel=1e-10)


def test_svi_path_leaves_the_users_param_store_alone():
    pyro.param("mine", torch.ones(2))
    fit(_flow(), _data(64), steps=2, batch_size=32, method="svi", seed=0)
    assert set(pyro.get_param_store().keys()) == {"mine"}


def test_fit_reduces_nll_and_keeps_best():
    train, valid = _data(512), _data(256, 1)
    flow = _flow()
    before = evaluate_nll(flow, valid)
    res = fit(flow, train, valid, epochs=6, batch_size=64, lr=5e-3, seed=0)
    assert res.steps == 6 * 8 and len(res.train_nll) == 6 == len(res.valid_nll)
    assert res.best_valid_nll == min(res.valid_nll) and res.valid_nll[res.best_epoch] == res.best_valid_nll
    assert evaluate_nll(flow, valid) == pytest.approx(res.best_valid_nll, rel=1e-9)
    assert res.best_valid_nll < before
    assert not flow.training


def test_early_stopping_counts_patience():
    train, valid = _data(128), _data(64, 1)
    flow = _flow()
    # lr 0 after warm-up: no improvement after the first epoch, so it stops after `patience` more epochs
    res = fit(flow, train, valid, epochs=50, batch_size=64, lr=0.0, patience=2, seed=0)
    assert res.stopped == "early_stopping" and len(res.valid_nll) == 3 and res.best_epoch == 0


def test_budget_in_steps_or_epochs():
    flow = _flow()
    assert fit(flow, _data(100), steps=7, batch_size=30, seed=0).steps == 7
    assert fit(flow, _data(100), epochs=2, batch_size=30, seed=0).steps == 8
    with pytest.raises(ValueError, match="not both"):
        fit(flow, _data(100), epochs=2, steps=3)


def test_lr_schedule_warmup_then_cosine():
    lrs = []
    fit(
        _flow(),
        _data(100),
        steps=20,
        batch_size=10,
        lr=1.0,
        warmup_steps=4,
        seed=0,
        callback=lambda i: lrs.append(i["lr"]),
    )
    # lr recorded after each step: warm-up increases, cosine decreases to 0 at the end
    assert lrs[:3] == pytest.approx([lr_factor(s, 20, 4) for s in (1, 2, 3)])
    assert max(lrs) == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))


def test_gradient_clipping_uses_the_global_norm():
    def grad_norms(clip):
        flow, norms = _flow(), []

        def look(info):  # the clipped gradients are still in .grad right after the step
            norms.append(torch.cat([p.grad.flatten() for p in flow.parameters()]).norm().item())

        fit(flow, _data(64), steps=4, batch_size=64, clip_grad=clip, seed=0, callback=look)
        return norms

    free = grad_norms(None)
    assert max(free) > 0.05
    assert all(n <= 0.05 * (1 + 1e-9) for n in grad_norms(0.05))


def test_ema_weights_are_kept_and_evaluated():
    train, valid = _data(256), _data(128, 1)
    flow = _flow()
    raw = {}

    def grab(info):
        raw["w"] = _params(flow)

    res = fit(flow, train, valid, epochs=2, batch_size=32, lr=1e-2, ema_decay=0.9, seed=0, callback=grab)
    # the flow ends with the EMA weights (best epoch), which differ from the raw last weights
    assert not _same(_params(flow), raw["w"])
    assert evaluate_nll(flow, valid) == pytest.approx(res.best_valid_nll, rel=1e-9)


def test_data_dependent_init_runs_before_training():
    calls = []
    flow = _flow()
    orig = flow.log_prob

    def counting(x, context=None):
        calls.append(x.shape[0])
        return orig(x, context)

    flow.log_prob = counting
    fit(flow, _data(100), steps=1, batch_size=50, init_batch_size=20, seed=0)
    assert calls[0] == 20  # the init batch went first, with its own size


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    flow = _flow()
    fit(flow, _data(64), epochs=1, batch_size=32, checkpoint=path, seed=0)
    good = load_checkpoint(path)
    with torch.no_grad():
        next(flow.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite loss.*step 0.*last good checkpoint"):
        fit(flow, _data(64), epochs=1, batch_size=32, checkpoint=path, seed=0, init_batch_size=0)
    kept = load_checkpoint(path)
    for k, v in good["state_dict"].items():
        assert torch.equal(v, kept["state_dict"][k])


def test_nan_loss_under_svi_raises_before_updating():
    flow = _flow()
    with torch.no_grad():
        next(flow.parameters()).fill_(float("inf"))
    with pytest.raises(FloatingPointError, match="non-finite"):
        fit(flow, _data(64), steps=1, batch_size=32, method="svi", init_batch_size=0, seed=0)


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))],
)
@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_exact_resume_mid_epoch(tmp_path, ema_decay, device):
    train, valid = _data(200), _data(64, 1)
    kw = dict(steps=14, batch_size=32, lr=5e-3, seed=7, ema_decay=ema_decay, warmup_steps=3, device=device)
    straight = _flow()
    r1 = fit(straight, train, valid, **kw)

    path = tmp_path / "ck.pt"
    half = _flow()
    r_half = fit(half, train, valid, checkpoint=path, callback=lambda i: i["step"] >= 5, **kw)  # mid-epoch 0
    assert r_half.stopped == "callback" and r_half.steps == 5
    torch.manual_seed(123)  # a different global RNG state must not matter
    resumed = _flow(seed=99)  # different initial weights: everything comes from the checkpoint
    r2 = fit(resumed, train, valid, resume=path, **kw)
    assert r2.steps == 14
    assert _same(_params(straight), _params(resumed))
    assert r1.train_nll == r2.train_nll and r1.valid_nll == r2.valid_nll


def test_checkpoint_contents_and_rebuild(tmp_path):
    path, csv_path = tmp_path / "m.pt", tmp_path / "metrics.csv"
    flow = _flow()
    res = fit(
        flow,
        _data(128),
        _data(64, 1),
        epochs=3,
        batch_size=64,
        checkpoint=path,
        metrics_csv=csv_path,
        checkpoint_extra={"data": "moons"},
        seed=0,
    )
    ck = load_checkpoint(path)  # weights_only=True inside
    assert ck["format"] == FORMAT and ck["builder"] == "realnvp"
    assert ck["hparams"]["event_shape"] == [2] and ck["extra"] == {"data": "moons"}
    assert ck["metrics"]["best_valid_nll"] == res.best_valid_nll
    again, _ = flow_from_checkpoint(path)
    x = _data(10, 3)
    torch.testing.assert_close(again.log_prob(x), flow.log_prob(x))
    assert again.log_prob(x).dtype == torch.float64
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert float(rows[-1]["valid_nll"]) == pytest.approx(res.valid_nll[-1])
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_truncated_or_foreign_checkpoint_gives_one_line_error(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, {"format": FORMAT, "builder": "realnvp", "hparams": {}, "state_dict": {}})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value) and "truncated" in str(info.value)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a pyro_flowzoo checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_refuses_non_primitive_objects(tmp_path):
    with pytest.raises(TypeError, match="primitive"):
        save_checkpoint(tmp_path / "x.pt", {"format": FORMAT, "f": object()})
    assert not (tmp_path / "x.pt").exists()


def test_integer_image_levels_are_dequantized():
    torch.manual_seed(0)
    levels = torch.randint(0, 17, (64, 2))
    flow = _flow()
    res = fit(flow, levels, levels[:32], steps=4, batch_size=32, n_bins=17, seed=0)
    assert "valid_bpd" in res.history[-1]
    bpd = res.history[-1]["valid_bpd"]
    assert bpd == pytest.approx((res.valid_nll[-1] + math.log(17)) / math.log(2))
    x = dequantize(levels, 17)
    assert bool(((x * 17).floor() == levels).all())
    with pytest.raises(ValueError, match="n_bins"):
        fit(flow, levels, steps=1)


def test_bad_shapes_give_clear_errors():
    flow = _flow()
    with pytest.raises(ValueError, match=r"expected data of shape \(N, 2\).*got \(10, 3\)"):
        fit(flow, torch.zeros(10, 3, dtype=torch.float64), steps=1)
    with pytest.raises(ValueError, match="NaN"):
        fit(flow, torch.full((10, 2), float("nan"), dtype=torch.float64), steps=1)
    with pytest.raises(ValueError, match="method"):
        fit(flow, _data(10), steps=1, method="sgd")


def test_conditional_data_pairs_are_split_consistently():
    with pytest.raises(ValueError, match="same length"):
        fit(_flow(), (_data(10), torch.zeros(9, 1)), steps=1)


def test_progress_bar_shows_loss_per_dim(capsys, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    fit(_flow(), _data(64), _data(32, 1), epochs=1, batch_size=32, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "nats/dim" in err and "epoch 0: train" in err
    levels = torch.randint(0, 4, (64, 2))
    fit(_flow(), levels, epochs=1, batch_size=32, seed=0, progress=True, n_bins=4)
    assert "bits/dim" in capsys.readouterr().err
    # off by default when stderr is not a terminal (as under pytest) or when CI=true
    monkeypatch.setenv("CI", "true")
    fit(_flow(), _data(64), epochs=1, batch_size=32, seed=0)
    assert "nats/dim" not in capsys.readouterr().err
