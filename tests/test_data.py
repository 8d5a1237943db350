"""pyro_flowzoo.data: registry, splits, seeds, exact toy densities, shapes, digits, IDX and torchvision paths."""

from __future__ import annotations

import gzip
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pyro_flowzoo.data import DATASETS, DataSplit, data_root, dequantize, load, make_shapes, quantize, toy
from pyro_flowzoo.data.images import read_idx

ISSUE_NAMES = [
    "moons",
    "smiley",
    "two_gaussians",
    "mog",
    "8gaussians",
    "checkerboard",
    "2spirals",
    "rings",
    "pinwheel",
    "circles",
    "swissroll",
    "shapes",
    "digits",
    "mnist",
    "fashion_mnist",
    "cifar10",
    "celeba",
    "flowers102",
]
TOYS = [n for n, info in DATASETS.items() if info.kind == "toy"]
MNIST_DIR = data_root() / "mnist"  # conftest points $PYRO_FLOWZOO_DATA at the offline files where present


def test_registry_has_the_issue_names():
    assert sorted(DATASETS) == sorted(ISSUE_NAMES)


@pytest.mark.parametrize("name", TOYS)
def test_toy_split_shapes_seeds_and_labels(name):
    a = load(name, "train", n=300)
    assert isinstance(a, DataSplit) and a.x.shape == (300, 2) and a.x.dtype == torch.float32
    assert a.event_shape == (2,) and not a.discrete and a.labels.shape == (300,)
    assert torch.equal(a.x, load(name, "train", n=300).x)  # fixed seed per split
    assert not torch.equal(a.x, load(name, "valid", n=300).x)  # splits differ
    assert not torch.equal(a.x, load(name, "train", n=300, seed=1).x)
    assert len(load(name, "test")) == 20000 and len(load(name, "valid")) == 1000
    lp = a.true_log_prob(a.x)
    assert lp.shape == (300,) and bool(torch.isfinite(lp).all())  # samples lie where the density is positive


@pytest.mark.parametrize("name", TOYS)
def test_toy_true_density_integrates_to_one(name):
    # a wrong normaliser or Jacobian (pinwheel's change of variables) moves the mass away from 1
    d = load(name, "test", n=2000)
    lim = float(d.x.abs().max().ceil()) + 1.0
    grid = -lim + (torch.arange(80, dtype=torch.float64) + 0.5) * (2 * lim / 80)  # cell midpoints
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
    mass = d.true_log_prob(pts).exp().sum() * (grid[1] - grid[0]) ** 2
    assert abs(mass.item() - 1) < 0.02


def test_true_log_prob_matches_a_histogram_of_samples():
    # mean log-density of samples ~ mean log of a fine histogram estimate (checks the sampler and density agree)
    d = load("pinwheel", "test", n=5000)
    h, edges = torch.histogramdd(d.x.double(), bins=[40, 40], range=[-5.0, 5.0, -5.0, 5.0])
    cell = (10 / 40) ** 2
    idx = ((d.x.double() + 5) / (10 / 40)).long().clamp(0, 39)
    hist_lp = (h[idx[:, 0], idx[:, 1]] / (len(d) * cell)).log().mean()
    assert abs(hist_lp.item() - d.true_log_prob(d.x).double().mean().item()) < 0.1


def test_mog_in_one_and_two_dimensions():
    one = load("mog", n=50, dim=1)
    assert one.x.shape == (50, 1) and one.event_shape == (1,)
    grid = torch.linspace(-8, 8, 4001, dtype=torch.float64)[:, None]
    assert abs(one.true_log_prob(grid).exp().sum().item() * 16 / 4000 - 1) < 1e-4
    assert load("mog", n=5).x.shape == (5, 2)


def test_labelled_moons_and_smiley_match_the_plain_samplers():
    g = torch.Generator().manual_seed(3)
    x, y = toy.moons_with_labels(200, generator=g)
    assert torch.equal(x, toy.sample_moons(200, generator=torch.Generator().manual_seed(3)))
    # inner-moon points (label 1) sit below the outer ones on average
    assert x[y == 1, 1].mean() < x[y == 0, 1].mean()
    x, y = toy.smiley_with_labels(300, generator=torch.Generator().manual_seed(4))
    assert torch.equal(x, toy.sample_smiley(300, generator=torch.Generator().manual_seed(4)))
    assert x[y == 2, 1].mean() < 0 < x[y == 0, 1].mean()  # the mouth is below the eyes


def test_shapes():
    d = load("shapes", "valid", n=200)
    assert d.x.shape == (200, 1, 20, 20) and d.discrete and d.n_levels == 2
    assert set(d.x.unique().tolist()) <= {0.0, 1.0} and d.classes[:2] == ("circle", "square")
    assert torch.equal(d.x, load("shapes", "valid", n=200).x)
    area = d.x.sum((1, 2, 3))
    assert bool((area > 5).all())  # every image holds a visible shape
    # a circle fills pi/4 of its bounding box, a diamond only 1/2 of its own: mean fill ratio differs by class
    x, y = make_shapes(500, size=20, generator=torch.Generator().manual_seed(0))
    rows, cols = x[:, 0].amax(2) > 0, x[:, 0].amax(1) > 0
    fill = x.sum((1, 2, 3)) / (rows.sum(1) * cols.sum(1))
    assert fill[y == 0].mean() > fill[y == 4].mean() + 0.15  # circles fill more than stars


def test_digits():
    tr, va, te = (load("digits", s) for s in ("train", "valid", "test"))
    assert (len(tr), len(va), len(te)) == (1200, 197, 400)
    assert tr.event_shape == (1, 8, 8) and tr.n_levels == 17 and tr.x.max() == 16 and tr.x.min() == 0
    assert torch.equal(tr.x, tr.x.round()) and tr.labels.shape == (1200,)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)


def test_idx_reader_and_mnist_offline_split(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (50, 28, 28))
    labels = np.arange(50) % 10
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    assert torch.equal(read_idx(tmp_path / "t10k-labels-idx1-ubyte"), torch.as_tensor(labels, dtype=torch.uint8))
    tr, va, te = (load("mnist", s, root=str(tmp_path)) for s in ("train", "valid", "test"))
    assert (len(tr), len(va), len(te)) == (35, 5, 10)  # 70% / 10% / 20% of the test file
    assert tr.x.shape == (35, 1, 28, 28) and tr.n_levels == 256 and tr.discrete
    assert torch.equal(te.x[:, 0], torch.as_tensor(images[40:], dtype=torch.float32))
    assert torch.equal(va.labels, torch.as_tensor(labels[35:40]))


def test_mnist_with_training_files(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5010, 2, 2)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5010))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.ones((7, 2, 2)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(7))
    assert [len(load("fashion_mnist", s, root=str(tmp_path))) for s in ("train", "valid", "test")] == [10, 5000, 7]


def test_bad_idx_file(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        load("mnist", root=str(tmp_path))


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="no mnist directory in the data root ($PYRO_FLOWZOO_DATA)")
def test_mnist_from_the_data_root():
    d = load("mnist", "test", n=16)
    assert d.x.shape == (16, 1, 28, 28) and d.x.max() > 200 and d.labels.max() <= 9


def test_data_root_from_argument_else_env_else_home_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("PYRO_FLOWZOO_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "pyro_flowzoo"
    monkeypatch.setenv("PYRO_FLOWZOO_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"


def test_loaders_read_the_env_root_unless_given_root(tmp_path, monkeypatch):
    env, arg = tmp_path / "env", tmp_path / "arg"
    (env / "mnist").mkdir(parents=True)
    arg.mkdir()
    _write_idx(env / "mnist" / "t10k-images-idx3-ubyte", np.zeros((20, 2, 2)))
    _write_idx(arg / "t10k-images-idx3-ubyte", np.zeros((10, 2, 2)))
    monkeypatch.setenv("PYRO_FLOWZOO_DATA", str(env))
    assert len(load("mnist", "test")) == 4  # 20% of the 20 images under $PYRO_FLOWZOO_DATA/mnist
    assert len(load("mnist", "test", root=str(arg))) == 2  # root= wins over the variable
    with pytest.raises(FileNotFoundError, match=re.escape(str(env))):  # the torchvision sets look there too
        load("cifar10", "test")


def test_cifar10_from_fake_batches(tmp_path, monkeypatch):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)

    def batch(n):
        return {"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8), "labels": list(range(n))}

    for i in range(1, 6):
        with open(base / f"data_batch_{i}", "wb") as f:
            pickle.dump(batch(1001), f)
    with open(base / "test_batch", "wb") as f:
        pickle.dump(batch(3), f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    pytest.importorskip("torchvision")
    import torchvision.datasets.cifar as tv_cifar

    # the fake files have other checksums than the real ones: let torchvision's integrity checks pass
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    tr = load("cifar10", "train", root=str(tmp_path))
    te = load("cifar10", "test", root=str(tmp_path), n=2)
    assert len(tr) == 5005 - 5000 and len(te) == 2 and tr.event_shape == (3, 32, 32) and tr.n_levels == 256
    x, label = tr.x[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 255
    assert tr.tensor().shape == (5, 3, 32, 32)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "celeba", "flowers102"])
def test_missing_image_files_give_one_line(tmp_path, name):
    with pytest.raises(FileNotFoundError) as info:
        load(name, root=str(tmp_path / "nothing"))
    msg = str(info.value)
    assert "\n" not in msg and name in msg and ("root=" in msg and "download=True" in msg)


def test_bad_inputs_give_one_line_errors():
    for call, match in [
        (lambda: load("nope"), "unknown data set 'nope'; choose one of: moons"),
        (lambda: load("moons", "training"), "split must be one of"),
        (lambda: load("moons", colour=1), r"unknown option\(s\) \['colour'\]"),
        (lambda: load("mog", dim=3), "dim must be 1 or 2"),
        (lambda: load("digits", n=-1), "n must be >= 0"),
        (lambda: load("celeba", n_bits=9), "n_bits must be in 1..8"),
    ]:
        with pytest.raises(ValueError, match=match) as info:
            call()
        assert "\n" not in str(info.value)


def test_dequantize_and_quantize_round_trip():
    k = torch.randint(0, 17, (100,)).float()
    y = dequantize(k, 17)
    assert bool(((y >= 0) & (y < 1)).all()) and torch.equal(quantize(y, 17), k)
    with pytest.raises(ValueError, match="n_levels must be >= 2"):
        dequantize(k, 1)


class _FakeTorchvision:
    """Stands in for a torchvision data set class: three constant RGB PIL images of a given size."""

    def __init__(self, root, split="train", download=False, target_type=None, height=218, width=178):
        from PIL import Image

        self.split = split
        self.image = Image.fromarray(np.full((height, width, 3), 200, np.uint8))

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return self.image, torch.zeros(40) if self.split in ("train", "valid", "test") else 0


def test_celeba_and_flowers_through_torchvision(tmp_path, monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    monkeypatch.setattr(torchvision.datasets, "CelebA", _FakeTorchvision)
    d = load("celeba", "valid", root=str(tmp_path), n_bits=5, n=2)
    x, _ = d.x[0]
    assert len(d) == 2 and d.n_levels == 32 and d.event_shape == (3, 32, 32)
    assert x.shape == (3, 32, 32) and torch.equal(x, torch.full((3, 32, 32), 200.0 // 8))  # top 5 bits of 200
    monkeypatch.setattr(
        torchvision.datasets,
        "Flowers102",
        lambda root, split, download=False: _FakeTorchvision(root, split, height=500, width=600),
    )
    f = load("flowers102", "test", root=str(tmp_path), size=16)
    assert f.tensor().shape == (3, 3, 16, 16) and f.n_levels == 256 and float(f.tensor().max()) == 200.0
