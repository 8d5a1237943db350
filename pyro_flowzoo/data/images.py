"""Image data: scikit-learn digits, MNIST-style IDX files, and torchvision sets (CIFAR-10, CelebA, Flowers102).

Images are returned as float32 tensors of integer levels ``0 .. n_levels - 1`` with shape (N, C, H, W);
see :func:`pyro_flowzoo.data.dequantize` to turn them into continuous values in ``[0, 1]``.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["read_idx", "find_idx_dir", "data_root", "DATA_ENV", "LevelsDataset"]

PathLike = Union[str, os.PathLike]


def read_idx(path: PathLike) -> Tensor:
    """Reads an IDX file (the MNIST format; gzipped or not) into a uint8 tensor.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x-idx1-ubyte")
        >>> with open(p, "wb") as f:
        ...     _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
        >>> read_idx(p).tolist()
        [7, 8, 9]
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex() if data else 'empty'})")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but the file holds {body.size} values")
    return torch.from_numpy(body.reshape(shape).copy())


DATA_ENV = "PYRO_FLOWZOO_DATA"


def data_root(root: Optional[PathLike] = None) -> Path:
    """The directory data files are read from (and downloaded to).

    ``root`` when given, else ``$PYRO_FLOWZOO_DATA`` when set, else ``~/.cache/pyro_flowzoo``.

    Example:
        >>> data_root("/data/sets")
        PosixPath('/data/sets')
    """
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return Path("~/.cache/pyro_flowzoo").expanduser()


def _idx_file(directory: Path, stem: str) -> Optional[Path]:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    # torchvision / Kaggle spellings with a dot before idx
    for name in (stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def find_idx_dir(roots: Sequence[Path], subdirs: Sequence[str]) -> Optional[Path]:
    """The first ``root`` or ``root/subdir`` holding ``t10k-images-idx3-ubyte[.gz]``, or None."""
    for root in roots:
        for sub in ("", *subdirs):
            d = root / sub if sub else root
            if d.is_dir() and _idx_file(d, "t10k-images-idx3-ubyte") is not None:
                return d
    return None


def load_idx_pair(directory: Path, prefix: str) -> Optional[tuple[Tensor, Tensor]]:
    """``(images uint8 (N, 28, 28), labels int64)`` for ``prefix`` in {"train", "t10k"}, or None if absent."""
    img = _idx_file(directory, f"{prefix}-images-idx3-ubyte")
    lab = _idx_file(directory, f"{prefix}-labels-idx1-ubyte")
    if img is None:
        return None
    images = read_idx(img)
    if images.dim() != 3:
        raise ValueError(f"{img}: expected images of shape (N, H, W), got {tuple(images.shape)}")
    labels = read_idx(lab).long() if lab is not None else torch.full((images.shape[0],), -1, dtype=torch.long)
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{lab}: {labels.shape[0]} labels for {images.shape[0]} images")
    return images, labels


class LevelsDataset(Dataset):
    """Wraps a torchvision data set of PIL images: items are ``(levels (C, H, W) float32, label int)``.

    ``prepare`` (optional) maps the PIL image before conversion (crop, resize); ``n_bits < 8`` keeps the top
    ``n_bits`` bits, so levels are ``0 .. 2**n_bits - 1``.
    """

    def __init__(
        self, base: Dataset, n_bits: int = 8, prepare: Optional[Callable] = None, label: Optional[Callable] = None
    ) -> None:
        self.base, self.n_bits, self.prepare, self.label = base, n_bits, prepare, label

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        image, target = self.base[i]
        if self.prepare is not None:
            image = self.prepare(image)
        if isinstance(image, Tensor):
            arr = image.numpy() if image.dtype == torch.uint8 else (image * 255).round().to(torch.uint8).numpy()
        else:
            arr = np.asarray(image, dtype=np.uint8)
        t = torch.from_numpy(np.array(arr, copy=True))
        if t.dim() == 2:
            t = t[None]
        elif t.shape[-1] in (1, 3) and t.shape[0] not in (1, 3):
            t = t.permute(2, 0, 1)
        t = t.float()
        if self.n_bits < 8:
            t = torch.floor(t / 2 ** (8 - self.n_bits))
        target = self.label(target) if self.label is not None else target
        return t, int(target) if not isinstance(target, Tensor) or target.numel() == 1 else target
