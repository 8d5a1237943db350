r"""Data sets: 2-D toys with their exact densities, procedural shapes, and image sets.

``load(name, split)`` returns a :class:`DataSplit`; ``DATASETS`` lists every name with its metadata.

2-D / 1-D toys (``moons``, ``smiley``, ``two_gaussians``, ``mog``, ``8gaussians``, ``checkerboard``, ``2spirals``,
``rings``, ``pinwheel``, ``circles``, ``swissroll``) are drawn afresh with a fixed seed per split: the generator
is seeded with ``3 * seed + {"train": 0, "valid": 1, "test": 2}[split]`` (``seed=0`` by default). Default sizes:
train 5,000, valid 1,000, test 20,000 points (``n=`` overrides). ``x`` is float32 (N, D); ``labels`` name the
mixture component / moon / arm; ``true_log_prob`` is the exact log-density (closed form, or quadrature that
has converged to float32 precision), so ``-true_log_prob(test.x).mean()`` estimates the true entropy.

``shapes``: 20x20 binary images (N, 1, 20, 20), one filled circle/square/triangle/diamond/star each
(``labels`` index ``classes``), seeded as above; defaults train 10,000, valid 1,000, test 2,000.

Images are float32 tensors of *integer levels* ``0 .. n_levels - 1`` with shape (N, C, H, W) (``discrete=True``);
use :func:`dequantize` for continuous values in ``[0, 1]`` and :func:`pyro_flowzoo.bits_per_dim` with
``n_bins=n_levels`` for the usual metric.

- ``digits``: scikit-learn's 8x8 digits (offline), 17 levels; a fixed permutation (seed 0) gives
  train 1,200 / valid 197 / test 400 images.
- ``mnist`` / ``fashion_mnist``: IDX files (``*-images-idx3-ubyte[.gz]``, ``*-labels-idx1-ubyte[.gz]``) in the
  data root or its ``mnist``/``MNIST/raw`` (``fashion_mnist``/``FashionMNIST/raw``) subdirectories; 256 levels. With the
  ``train-*`` files present: train = first 55,000 training images, valid = last 5,000, test = the 10,000 test
  images. With only the ``t10k-*`` files (the offline case): train = test images 0-6,999, valid = 7,000-7,999,
  test = 8,000-9,999. ``download=True`` fetches them through torchvision where the network allows.
- ``cifar10``, ``celeba``, ``flowers102``: torchvision sets under the data root (``download=True`` where the
  network allows); ``x`` is a torch ``Dataset`` of ``(levels (C, H, W), target)`` items. CIFAR-10: valid is
  the last 5,000 training images. CelebA: 148x148 centre crop resized to ``size`` (32) with ``n_bits``
  (8, or e.g. 5 or 2 as in Glow); targets are the 40 attributes. Flowers102: centre square crop resized to
  ``size`` (32); its own train/val/test splits.

Every loader takes ``n=`` (keep the first ``n`` items of the split). The loaders that read files take
``root=``, the data root; by default it is ``$PYRO_FLOWZOO_DATA`` when set, else ``~/.cache/pyro_flowzoo``
(see :func:`data_root`).
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from ..transforms.elementwise import dequantize
from . import exact, toy
from . import images as _images
from .exact import EXACT_SETS, ExactSet
from .images import data_root
from .shapes import SHAPE_NAMES, make_shapes
from .toy import moons_log_prob, sample_moons, sample_smiley, smiley_log_prob

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "DataSplit",
    "load",
    "data_root",
    "dequantize",
    "quantize",
    "make_shapes",
    "SHAPE_NAMES",
    "sample_moons",
    "moons_log_prob",
    "sample_smiley",
    "smiley_log_prob",
    "toy",
    "exact",
    "EXACT_SETS",
    "ExactSet",
]

SPLITS = ("train", "valid", "test")
_SPLIT_INDEX = {"train": 0, "valid": 1, "test": 2}


@dataclass
class DataSplit:
    """One split of a data set with its metadata (what :func:`load` returns).

    Attributes:
        name: the data set's name in :data:`DATASETS`.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        x: the data, a float32 tensor (N, *event_shape), or a torch ``Dataset`` of ``(x, target)`` items for
            large image sets (see :meth:`tensor`).
        labels: int64 (N,) class labels where the set has them, else None.
        event_shape: shape of one data point, e.g. ``(2,)`` or ``(1, 28, 28)``.
        discrete: True when the values are integer levels ``0 .. n_levels - 1``.
        n_levels: number of levels of discrete data (17 digits, 256 MNIST, 2 shapes), else None.
        true_log_prob: the exact log-density (tensor (..., D) -> (...)) where known, else None.
        classes: names of the labels where known.
        info: how the split was made (sizes, seeds, source files).
    """

    name: str
    split: str
    x: Union[Tensor, Dataset]
    labels: Optional[Tensor]
    event_shape: tuple[int, ...]
    discrete: bool
    n_levels: Optional[int] = None
    true_log_prob: Optional[Callable[[Tensor], Tensor]] = None
    classes: Optional[tuple[str, ...]] = None
    info: str = ""

    def __len__(self) -> int:
        return len(self.x)  # type: ignore[arg-type]

    @property
    def num_classes(self) -> Optional[int]:
        """Number of classes (from ``classes``, else from ``labels``), or None."""
        if self.classes is not None:
            return len(self.classes)
        if self.labels is not None and self.labels.numel():
            return int(self.labels.max()) + 1
        return None

    def tensor(self, n: Optional[int] = None, *, integer: bool = False) -> Tensor:
        """The (first ``n``) data points as one tensor, stacking a ``Dataset`` if need be.

        ``integer=True`` gives the levels of discrete data as an integer tensor (uint8 up to 256 levels, else
        int64): the form :func:`pyro_flowzoo.fit` and :func:`~pyro_flowzoo.train.evaluate_nll` dequantize
        with ``n_bins=n_levels``. Continuous data are returned as they are.

        Example:
            >>> load("digits", "test", n=3).tensor(integer=True).dtype
            torch.uint8
        """
        if isinstance(self.x, Tensor):
            x = self.x if n is None else self.x[:n]
        else:
            count = len(self) if n is None else min(n, len(self))
            x = torch.stack([self.x[i][0] for i in range(count)])
        if integer and self.discrete and x.is_floating_point():
            x = x.round().to(torch.uint8 if (self.n_levels or 256) <= 256 else torch.long)
        return x


@dataclass(frozen=True)
class DatasetInfo:
    """An entry of :data:`DATASETS`: how to load a set and what it holds (defaults; options may change them)."""

    name: str
    kind: str  # "toy" (vectors), "shapes" or "image"
    loader: Callable[..., DataSplit] = field(repr=False)
    event_shape: tuple[int, ...]
    discrete: bool
    n_levels: Optional[int]
    offline: bool  # available without any download
    description: str


def quantize(y: Tensor, n_levels: int) -> Tensor:
    r"""Inverse of :func:`dequantize`: :math:`k = \lfloor n_{\text{levels}} y \rfloor` clamped to the levels.

    Example:
        >>> quantize(torch.tensor([0.01, 0.5, 1.2]), 2)
        tensor([0., 1., 1.])
    """
    return torch.floor(y * n_levels).clamp(0, n_levels - 1)


# -- helpers ----------------------------------------------------------------------------------------
def _check_split(name: str, split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"{name}: split must be one of {SPLITS}, got {split!r}")


def _take(n: Optional[int], name: str, *tensors: Optional[Tensor]) -> list[Optional[Tensor]]:
    if n is None:
        return list(tensors)
    if n < 0:
        raise ValueError(f"{name}: n must be >= 0, got {n}")
    return [None if t is None else t[:n] for t in tensors]


def _generator(split: str, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(3 * int(seed) + _SPLIT_INDEX[split])


_TOY_SIZES = {"train": 5000, "valid": 1000, "test": 20000}


def _toy_loader(
    name: str,
    sampler: Callable[..., tuple[Tensor, Tensor]],
    log_prob: Callable[..., Tensor],
    classes: Optional[tuple[str, ...]] = None,
    **fixed: Any,
) -> Callable[..., DataSplit]:
    def load_toy(split: str = "train", n: Optional[int] = None, seed: int = 0, **params: Any) -> DataSplit:
        _check_split(name, split)
        count = _TOY_SIZES[split] if n is None else int(n)
        if count < 0:
            raise ValueError(f"{name}: n must be >= 0, got {n}")
        kw = {**fixed, **params}
        x, labels = sampler(count, generator=_generator(split, seed), **kw)
        return DataSplit(
            name,
            split,
            x,
            labels,
            tuple(x.shape[1:]),
            False,
            None,
            partial(log_prob, **kw),
            classes,
            info=f"{count} points drawn with generator seed {3 * int(seed) + _SPLIT_INDEX[split]}",
        )

    # the sampler's own options (noise=, sd=, dim=) are accepted by load()
    load_toy.options = tuple(p for p in inspect.signature(sampler).parameters if p not in ("n", "generator"))
    return load_toy


def _load_shapes(split: str = "train", n: Optional[int] = None, seed: int = 0, size: int = 20) -> DataSplit:
    _check_split("shapes", split)
    count = {"train": 10000, "valid": 1000, "test": 2000}[split] if n is None else int(n)
    if count < 0:
        raise ValueError(f"shapes: n must be >= 0, got {n}")
    x, labels = make_shapes(count, size=size, generator=_generator(split, seed))
    return DataSplit(
        "shapes",
        split,
        x,
        labels,
        (1, size, size),
        True,
        2,
        None,
        SHAPE_NAMES,
        info=f"{count} images drawn with generator seed {3 * int(seed) + _SPLIT_INDEX[split]}",
    )


def _load_digits(split: str = "train", n: Optional[int] = None) -> DataSplit:
    _check_split("digits", split)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.data, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.as_tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    bounds = {"train": (0, 1200), "valid": (1200, 1397), "test": (1397, x.shape[0])}[split]
    idx = order[bounds[0] : bounds[1]]
    xs, ys = _take(n, "digits", x[idx], y[idx])
    return DataSplit(
        "digits",
        split,
        xs,
        ys,
        (1, 8, 8),
        True,
        17,
        None,
        tuple(str(i) for i in range(10)),
        info=f"scikit-learn digits, permutation seed 0, items {bounds[0]}-{bounds[1] - 1}",
    )


def _missing(name: str, where: str, how: str) -> FileNotFoundError:
    return FileNotFoundError(f"{name}: data not found in {where}; {how}")


_IDX_SETS = {
    "mnist": (("mnist", "MNIST/raw", "MNIST"), "MNIST", tuple(str(i) for i in range(10))),
    "fashion_mnist": (
        ("fashion_mnist", "fashion-mnist", "FashionMNIST/raw", "FashionMNIST"),
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}


def _load_idx_set(
    name: str, split: str = "train", n: Optional[int] = None, root: Optional[str] = None, download: bool = False
) -> DataSplit:
    _check_split(name, split)
    subdirs, tv_name, classes = _IDX_SETS[name]
    target = data_root(root)
    directory = _images.find_idx_dir([target], subdirs)
    if directory is None and download:
        import torchvision

        try:
            getattr(torchvision.datasets, tv_name)(str(target), train=True, download=True)
            getattr(torchvision.datasets, tv_name)(str(target), train=False, download=True)
        except Exception as e:  # no network, a proxy, a corrupt archive: say so in one line
            raise _missing(
                name, str(target), f"download failed ({type(e).__name__}); copy the IDX files there by hand"
            ) from None
        directory = _images.find_idx_dir([target], subdirs)
    if directory is None:
        raise _missing(
            name,
            str(target),
            "pass root=DIR holding t10k-images-idx3-ubyte.gz (and train-*), set "
            "PYRO_FLOWZOO_DATA, or use download=True where the network allows",
        )
    test = _images.load_idx_pair(directory, "t10k")
    train = _images.load_idx_pair(directory, "train")
    assert test is not None
    if train is not None:
        images, labels = {
            "train": (train[0][:-5000], train[1][:-5000]),
            "valid": (train[0][-5000:], train[1][-5000:]),
            "test": test,
        }[split]
        info = f"{directory}: train = first {train[0].shape[0] - 5000} training images, valid = last 5000"
    else:
        m = test[0].shape[0]
        a, b = int(round(m * 0.7)), int(round(m * 0.8))
        lo, hi = {"train": (0, a), "valid": (a, b), "test": (b, m)}[split]
        images, labels = test[0][lo:hi], test[1][lo:hi]
        info = f"{directory}: only the test file; {split} = its images {lo}-{hi - 1}"
    x = images.float()[:, None]
    xs, ys = _take(n, name, x, labels)
    return DataSplit(name, split, xs, ys, tuple(x.shape[1:]), True, 256, None, classes, info=info)


class _UInt8Images(Dataset):
    """(N, C, H, W) uint8 array-backed data set: items ``(levels float32, label)``."""

    def __init__(self, data: Tensor, labels: Tensor) -> None:
        self.data, self.labels = data, labels

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.data[i].float(), int(self.labels[i])


def _torchvision(name: str, make: Callable[[], Any], root: Path) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return make()
    except Exception as e:  # torchvision raises RuntimeError (not found) or URLError/OSError (no network)
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _missing(
            name,
            str(root),
            f"torchvision says: {msg.rstrip('.')}; pass root=DIR holding torchvision's "
            f"files, or download=True where the network allows",
        ) from None


def _load_cifar10(
    split: str = "train", n: Optional[int] = None, root: Optional[str] = None, download: bool = False
) -> DataSplit:
    _check_split("cifar10", split)
    import torchvision

    base = data_root(root)
    ds = _torchvision(
        "cifar10", lambda: torchvision.datasets.CIFAR10(str(base), train=split != "test", download=download), base
    )
    data = torch.as_tensor(ds.data).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(ds.targets, dtype=torch.long)
    if split == "train":
        data, labels = data[:-5000], labels[:-5000]
    elif split == "valid":
        data, labels = data[-5000:], labels[-5000:]
    data, labels = _take(n, "cifar10", data, labels)
    return DataSplit(
        "cifar10",
        split,
        _UInt8Images(data, labels),
        labels,
        (3, 32, 32),
        True,
        256,
        None,
        tuple(ds.classes),
        info=f"torchvision CIFAR10 under {base}; valid = last 5000 training images",
    )


def _subset(ds: Dataset, n: Optional[int], name: str) -> Dataset:
    if n is None:
        return ds
    if n < 0:
        raise ValueError(f"{name}: n must be >= 0, got {n}")
    return Subset(ds, range(min(n, len(ds))))  # type: ignore[arg-type]


def _check_bits(name: str, n_bits: int) -> None:
    if not 1 <= n_bits <= 8:
        raise ValueError(f"{name}: n_bits must be in 1..8, got {n_bits}")


def _load_celeba(
    split: str = "train",
    n: Optional[int] = None,
    root: Optional[str] = None,
    download: bool = False,
    size: int = 32,
    n_bits: int = 8,
) -> DataSplit:
    _check_split("celeba", split)
    _check_bits("celeba", n_bits)
    import torchvision
    from torchvision import transforms as T

    base = data_root(root)
    ds = _torchvision(
        "celeba",
        lambda: torchvision.datasets.CelebA(str(base), split=split, target_type="attr", download=download),
        base,
    )
    prepare = T.Compose([T.CenterCrop(148), T.Resize(size, antialias=True)])
    data = _subset(_images.LevelsDataset(ds, n_bits, prepare), n, "celeba")
    return DataSplit(
        "celeba",
        split,
        data,
        None,
        (3, size, size),
        True,
        2**n_bits,
        None,
        None,
        info=f"torchvision CelebA under {base}: centre crop 148, resized to {size}, {n_bits} bits",
    )


def _square_crop(image: Any) -> Any:
    from torchvision.transforms import functional as F

    w, h = image.size
    return F.center_crop(image, [min(w, h), min(w, h)])


def _load_flowers102(
    split: str = "train",
    n: Optional[int] = None,
    root: Optional[str] = None,
    download: bool = False,
    size: int = 32,
    n_bits: int = 8,
) -> DataSplit:
    _check_split("flowers102", split)
    _check_bits("flowers102", n_bits)
    import torchvision
    from torchvision import transforms as T

    base = data_root(root)
    tv_split = {"train": "train", "valid": "val", "test": "test"}[split]
    ds = _torchvision(
        "flowers102", lambda: torchvision.datasets.Flowers102(str(base), split=tv_split, download=download), base
    )
    prepare = T.Compose([_square_crop, T.Resize(size, antialias=True)])
    data = _subset(_images.LevelsDataset(ds, n_bits, prepare), n, "flowers102")
    return DataSplit(
        "flowers102",
        split,
        data,
        None,
        (3, size, size),
        True,
        2**n_bits,
        None,
        None,
        info=f"torchvision Flowers102 ({tv_split}) under {base}: square crop resized to {size}",
    )


def _info(
    name: str,
    kind: str,
    loader: Callable[..., DataSplit],
    event_shape: tuple[int, ...],
    discrete: bool,
    n_levels: Optional[int],
    offline: bool,
    description: str,
) -> DatasetInfo:
    return DatasetInfo(name, kind, loader, event_shape, discrete, n_levels, offline, description)


_TOYS = {
    "moons": (toy.moons_with_labels, moons_log_prob, ("outer", "inner"), "two interleaved half circles, noise 0.1"),
    "smiley": (
        toy.smiley_with_labels,
        smiley_log_prob,
        ("left eye", "right eye", "mouth"),
        "two Gaussian eyes and an arc mouth, sd 0.2",
    ),
    "two_gaussians": (toy.sample_two_gaussians, toy.two_gaussians_log_prob, None, "two Gaussians at +-(1.5, 1.5)"),
    "mog": (toy.sample_mog, toy.mog_log_prob, None, "mixture of Gaussians, dim=1 or 2 (default 2)"),
    "8gaussians": (toy.sample_8gaussians, toy.eight_gaussians_log_prob, None, "FFJORD: 8 Gaussians on a circle"),
    "checkerboard": (toy.sample_checkerboard, toy.checkerboard_log_prob, None, "FFJORD: uniform checkerboard"),
    "2spirals": (toy.sample_2spirals, toy.two_spirals_log_prob, None, "FFJORD: two spirals"),
    "rings": (toy.sample_rings, toy.rings_log_prob, None, "FFJORD: four concentric rings"),
    "pinwheel": (toy.sample_pinwheel, toy.pinwheel_log_prob, None, "FFJORD: five-armed pinwheel"),
    "circles": (toy.sample_circles, toy.circles_log_prob, None, "FFJORD: two concentric circles"),
    "swissroll": (toy.sample_swissroll, toy.swissroll_log_prob, None, "FFJORD: 2-D swiss roll"),
}

DATASETS: dict[str, DatasetInfo] = {
    name: _info(name, "toy", _toy_loader(name, s, lp, c), (2,), False, None, True, d)
    for name, (s, lp, c, d) in _TOYS.items()
}
DATASETS.update(
    {
        "shapes": _info(
            "shapes",
            "shapes",
            _load_shapes,
            (1, 20, 20),
            True,
            2,
            True,
            "procedural 20x20 binary shapes (circle, square, triangle, diamond, star)",
        ),
        "digits": _info("digits", "image", _load_digits, (1, 8, 8), True, 17, True, "scikit-learn 8x8 digits"),
        "mnist": _info(
            "mnist",
            "image",
            partial(_load_idx_set, "mnist"),
            (1, 28, 28),
            True,
            256,
            False,
            "MNIST from IDX files (offline: the 10,000 test images)",
        ),
        "fashion_mnist": _info(
            "fashion_mnist",
            "image",
            partial(_load_idx_set, "fashion_mnist"),
            (1, 28, 28),
            True,
            256,
            False,
            "Fashion-MNIST from IDX files",
        ),
        "cifar10": _info("cifar10", "image", _load_cifar10, (3, 32, 32), True, 256, False, "CIFAR-10 (torchvision)"),
        "celeba": _info(
            "celeba",
            "image",
            _load_celeba,
            (3, 32, 32),
            True,
            256,
            False,
            "CelebA, centre crop 148 resized to 32 (torchvision)",
        ),
        "flowers102": _info(
            "flowers102",
            "image",
            _load_flowers102,
            (3, 32, 32),
            True,
            256,
            False,
            "Oxford Flowers102, square crop resized to 32 (torchvision)",
        ),
    }
)


def _accepted(loader: Callable[..., DataSplit]) -> list[str]:
    params = [p for p in inspect.signature(loader).parameters if p not in ("split", "params")]
    return params + list(getattr(loader, "options", ()))


def load(name: str, split: str = "train", **kw: Any) -> DataSplit:
    """Loads ``split`` of the data set ``name`` (see the module docstring for sizes, seeds and formats).

    Args:
        name: a key of :data:`DATASETS`.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        **kw: options of the set: ``n`` (all), ``seed`` (toys, shapes), ``dim`` (mog), ``noise`` (moons),
            ``sd`` (smiley), ``size`` (shapes, celeba, flowers102), ``root``/``download`` (mnist and the
            torchvision sets), ``n_bits`` (celeba, flowers102).

    Example:
        >>> d = load("moons", "valid", n=100)
        >>> d.x.shape, d.event_shape, d.discrete, d.true_log_prob(d.x).shape
        (torch.Size([100, 2]), (2,), False, torch.Size([100]))
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"{name}: split must be one of {SPLITS}, got {split!r}")
    loader = DATASETS[name].loader
    accepted = _accepted(loader)
    unknown = sorted(set(kw) - set(accepted))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {unknown}; accepted: {accepted}")
    return loader(split=split, **kw)
