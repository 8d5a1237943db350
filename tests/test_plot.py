"""pyro_flowzoo.plot: every picture writes a non-empty PNG from tiny flows; bad inputs get one-line errors."""

from __future__ import annotations

import pytest
import torch

from pyro_flowzoo import build, plot
from pyro_flowzoo.data import load
from pyro_flowzoo.train import FitResult

PNG = b"\x89PNG"


def _png(path):
    data = path.read_bytes()
    assert data[:4] == PNG and len(data) > 300
    return data


@pytest.fixture
def flow2d():
    return build("realnvp", (2,), num_layers=2, hidden_dims=(8,))


@pytest.fixture
def image_flow():
    return build("realnvp", (1, 4, 4), num_scales=1, num_blocks=1, hidden_channels=4)


def test_density_2d_and_grid_mass(tmp_path, flow2d):
    d = load("moons", n=100)
    fig = plot.density_2d(
        flow2d,
        d.x,
        true_log_prob=d.true_log_prob,
        resolution=40,
        n_samples=100,
        bounds=(-6, 6, -6, 6),
        path=tmp_path / "d.png",
        title="t",
    )
    _png(tmp_path / "d.png")
    assert len(fig.axes) == 4
    # the grid mass printed on the panels comes from a density that integrates to 1 over a wide box
    titles = [ax.get_title() for ax in fig.axes]
    mass = float(titles[2].split("mass ")[1].rstrip(")"))
    assert abs(mass - 1) < 0.05


def test_latent_and_1d(tmp_path, flow2d):
    d = load("smiley", n=60)
    plot.latent_2d(flow2d, d.x, d.labels, path=tmp_path / "z.png")
    _png(tmp_path / "z.png")
    one = load("mog", n=200, dim=1)
    plot.density_1d(
        build("planar", (1,)), one.x, true_log_prob=one.true_log_prob, resolution=50, path=tmp_path / "one.png"
    )
    _png(tmp_path / "one.png")


def test_image_pictures(tmp_path, image_flow):
    plot.image_grid(load("digits", n=9).x, n_levels=17, path=tmp_path / "grid.png")
    plot.sample_grid(image_flow, 4, temperature=0.7, path=tmp_path / "s.png")
    plot.floored_samples(image_flow, 4, 2, path=tmp_path / "f.png")
    plot.interpolations(
        image_flow, torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4), steps=4, mode="slerp", path=tmp_path / "i.png"
    )
    for name in ("grid", "s", "f", "i"):
        _png(tmp_path / f"{name}.png")


def test_conditional_samples(tmp_path):
    flow = build("cglow", (1, 4, 4), context_shape=(3,), levels=1, steps=1, hidden_channels=4)
    context = torch.nn.functional.one_hot(torch.arange(3), 3).float()
    plot.sample_grid(flow, 3, context=context, path=tmp_path / "c.png")
    _png(tmp_path / "c.png")


def test_training_curves(tmp_path):
    r = FitResult(train_nll=[2.0, 1.5, 1.2], valid_nll=[2.1, 1.6, 1.4])
    plot.training_curves({"realnvp": r, "maf": {"train_nll": [1.9, 1.1]}}, path=tmp_path / "c.png")
    _png(tmp_path / "c.png")


def test_bad_inputs(flow2d, image_flow):
    cases = [
        (lambda: plot.density_2d(flow2d, torch.zeros(5, 3)), r"expects data of shape \(N, 2\)"),
        (lambda: plot.density_2d(image_flow), "needs a flow with event_shape"),
        (lambda: plot.density_2d(flow2d, bounds=(1, 0, 0, 1)), "bounds must be"),
        (lambda: plot.image_grid(torch.zeros(2, 2, 4, 4)), "expects images of shape"),
        (lambda: plot.sample_grid(flow2d), "needs an image flow"),
        (lambda: plot.interpolations(image_flow, torch.rand(2, 1, 4, 4), torch.rand(3, 1, 4, 4)), "same number"),
        (lambda: plot.interpolations(image_flow, torch.rand(2, 1, 5, 4), torch.rand(2, 1, 5, 4)), "expected x0"),
        (lambda: plot.training_curves({"a": 3}), "expected a FitResult"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match) as info:
            call()
        assert "\n" not in str(info.value)


def test_conditional_2d_density_and_latent(tmp_path):
    from pyro_flowzoo import Flow, StandardNormal
    from pyro_flowzoo.nn import MLP
    from pyro_flowzoo.transforms import ConditionalAffineCoupling, half_mask

    flow = Flow(
        StandardNormal((2,)),
        [ConditionalAffineCoupling(half_mask(2), MLP(2, 4, (8,), context_features=3), (3,))],
        context_shape=(3,),
    )
    fig = plot.density_2d(
        flow,
        torch.randn(30, 2),
        context=torch.tensor([0.0, 1.0, 0.0]),
        resolution=30,
        n_samples=20,
        bounds=(-6, 6, -6, 6),
        path=tmp_path / "c.png",
    )
    mass = float(fig.axes[1].get_title().split("mass ")[1].rstrip(")"))
    assert abs(mass - 1) < 0.05
    plot.latent_2d(flow, torch.randn(30, 2), context=torch.randn(30, 3), path=tmp_path / "z.png")
    for name in ("c", "z"):
        _png(tmp_path / f"{name}.png")
