"""fit() takes what users have in hand: tensors, numpy arrays, (x, c) pairs, Datasets, DataLoaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from pyro_flowzoo import build, evaluate_nll, fit
from pyro_flowzoo.data import sample_moons
from pyro_flowzoo.training import TrainConfig, Updater, as_source

pytestmark = pytest.mark.usefixtures("one_thread")


def _flow(seed: int = 1):
    torch.manual_seed(seed)
    return build("realnvp", (2,), num_layers=2, hidden_dims=(16,)).double()


def _data(n: int = 128, seed: int = 0):
    return sample_moons(n, generator=torch.Generator().manual_seed(seed)).double()


def _params(flow):
    return torch.cat([p.detach().flatten() for p in flow.parameters()])


class _Items(Dataset):
    """A plain map-style Dataset (no TensorDataset shortcut): items are single tensors."""

    def __init__(self, x):
        self.x = x

    def __len__(self):
        return self.x.shape[0]

    def __getitem__(self, i):
        return self.x[i]


def test_numpy_dataset_and_tensordataset_give_the_tensor_trajectory():
    x = _data()
    ref = _flow()
    fit(ref, x, steps=6, batch_size=32, seed=3)
    for data in (x.numpy(), TensorDataset(x), _Items(x)):
        flow = _flow()
        res = fit(flow, data, steps=6, batch_size=32, seed=3)
        assert res.steps == 6
        torch.testing.assert_close(_params(flow), _params(ref), rtol=1e-12, atol=1e-12)


def test_a_dataloader_is_used_as_given():
    x = _data(100)
    loader = DataLoader(TensorDataset(x), batch_size=25, shuffle=True, generator=torch.Generator().manual_seed(0))
    sizes = []
    flow = _flow()
    res = fit(flow, loader, loader, epochs=2, seed=0, batch_size=7, callback=lambda info: sizes.append(info["step"]))
    # the loader's batch size (25) decides the epoch length: 4 steps per epoch, not ceil(100 / 7)
    assert res.steps == 8 and len(res.valid_nll) == 2
    assert res.valid_nll[-1] == pytest.approx(evaluate_nll(flow, x), rel=1e-9)


def test_conditional_pairs_in_every_form():
    torch.manual_seed(0)
    flow = build("cglow", (1, 4, 4), context_shape=(3,), levels=1, steps=1, hidden_channels=8).double()
    x, c = torch.rand(16, 1, 4, 4, dtype=torch.float64), torch.randn(16, 3, dtype=torch.float64)
    for data in ((x, c), (x.numpy(), c.numpy()), TensorDataset(x, c), DataLoader(TensorDataset(x, c), batch_size=8)):
        res = fit(flow, data, steps=2, batch_size=8, seed=0)
        assert res.steps == 2 and np.isfinite(res.train_nll[-1])
    with pytest.raises(ValueError, match="conditional: give"):
        fit(flow, x, steps=1)


@pytest.mark.parametrize(
    "bad,match",
    [
        ("moons", r"expected a tensor, a numpy array, a \(data, context\) pair, a torch Dataset or a DataLoader"),
        ((torch.zeros(4, 2),), "length 1"),
        (np.array(["a", "b"]), "numeric numpy array"),
        (torch.zeros(8, 3), r"expected data of shape \(N, 2\)"),
    ],
)
def test_wrong_inputs_give_one_line_errors(bad, match):
    with pytest.raises((TypeError, ValueError), match=match) as info:
        fit(_flow(), bad, steps=1)
    assert "\n" not in str(info.value)


def test_unknown_hyper_parameter_and_bad_config_values():
    with pytest.raises(TypeError, match="unknown argument.*learning_rate"):
        fit(_flow(), _data(), steps=1, learning_rate=0.1)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="compile=True needs method='torch'"):
        TrainConfig(method="svi", compile=True)


def test_config_object_and_keywords_combine():
    cfg = TrainConfig(steps=3, batch_size=16, seed=1)
    assert fit(_flow(), _data(), config=cfg).steps == 3
    assert fit(_flow(), _data(), config=cfg, steps=5).steps == 5


def test_sample_and_rsample_take_an_int():
    flow = _flow()
    assert flow.sample(36).shape == (36, 2) == flow.sample((36,)).shape
    assert flow.rsample(5).shape == (5, 2)
    x, lp = flow.rsample_and_log_prob(7)
    assert x.shape == (7, 2) and lp.shape == (7,)
    assert flow.device == torch.device("cpu") and flow.dtype == torch.float64


def test_the_parts_make_a_hand_written_loop():
    flow, x = _flow(), _data(256)
    source = as_source(x).place(flow.device, flow.dtype)
    up = Updater(flow.parameters(), lr=1e-2, clip_grad=5.0, total_steps=40, warmup_steps=2)
    before = evaluate_nll(flow, x)
    for epoch in range(5):
        for xb, _ in source.epoch(epoch, batch_size=32, seed=0):
            up.zero_grad()
            (-flow.log_prob(xb).mean()).backward()
            up.step()
    assert evaluate_nll(flow, x) < before - 0.1
