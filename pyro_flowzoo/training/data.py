r"""The batch stream: what users hand to :func:`~pyro_flowzoo.fit`, turned into mini-batches.

:func:`as_source` accepts a tensor, a numpy array, a ``(data, context)`` pair, any map-style
``torch.utils.data.Dataset`` whose items are tensors or ``(x, context)`` tuples, and a ``DataLoader``
(used as given: its batch size, sampler, workers). Tensors and data sets are shuffled here, one seeded
order per epoch (split across processes as ``DistributedSampler`` does), so a resumed run sees the
same batches; a ``DataLoader`` keeps its own order and a resumed run skips the batches already seen.

Integer image levels are dequantized per step with noise drawn from ``(seed, step, rank)`` alone
(:func:`step_generator`): there is no noise state to save for an exact resume.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Union

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from ..transforms.elementwise import dequantize

__all__ = ["Source", "TensorSource", "DatasetSource", "LoaderSource", "as_source", "step_generator", "Batch"]

Batch = tuple[Tensor, Optional[Tensor]]
_EXPECTED = "a tensor, a numpy array, a (data, context) pair, a torch Dataset or a DataLoader"


def step_generator(device: Union[str, torch.device], *keys: int) -> torch.Generator:
    """A generator seeded from ``keys`` only: per-step noise without state to save (exact resume)."""
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k) + 7919) % (2**62)
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def _tensor(obj: Any, name: str) -> Tensor:
    if isinstance(obj, Tensor):
        return obj
    if type(obj).__module__ == "numpy" and hasattr(obj, "dtype"):
        if obj.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected a numeric numpy array, got dtype {obj.dtype}")
        return torch.as_tensor(obj)
    raise TypeError(f"{name}: expected {_EXPECTED}, got {type(obj).__name__}")


def _split_item(item: Any, name: str) -> Batch:
    """A batch or data-set item: a tensor, or a sequence ``(x,)`` / ``(x, context)``."""
    if isinstance(item, (tuple, list)):
        if len(item) == 1:
            return _tensor(item[0], name), None
        if len(item) == 2:
            return _tensor(item[0], name), _tensor(item[1], name)
        raise TypeError(f"{name}: expected items x or (x, context), got a sequence of {len(item)}")
    return _tensor(item, name), None


class _IndexSet(Dataset):
    """The index set ``0..n-1`` (what ``DistributedSampler`` needs to split an order across processes)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


class Source:
    """Training or validation data as a stream of ``(x, context)`` batches on the flow's device.

    ``epoch(e, batch_size, start)`` yields the raw batches of epoch ``e`` from position ``start``
    (integer levels stay integers: :meth:`prepare` dequantizes them); ``ordered(batch_size, rank,
    world)`` yields this process's share for evaluation.
    """

    length: Optional[int] = None
    device: Optional[torch.device] = None
    dtype: Optional[torch.dtype] = None

    def place(self, device: torch.device, dtype: torch.dtype) -> Source:
        self.device, self.dtype = device, dtype
        return self

    def _to(self, t: Optional[Tensor]) -> Optional[Tensor]:
        if t is None or self.device is None:
            return t
        return t.to(self.device, self.dtype) if t.is_floating_point() else t.to(self.device)

    def steps_per_epoch(self, batch_size: int, rank: int = 0, world: int = 1) -> Optional[int]:
        raise NotImplementedError

    def epoch(
        self, epoch: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1
    ) -> Iterator[Batch]:
        raise NotImplementedError

    def ordered(self, batch_size: int, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        raise NotImplementedError

    def first(self, n: Optional[int] = None) -> Batch:
        """Up to ``n`` examples (the shape check and the data-dependent init)."""
        raise NotImplementedError


class _Indexed(Source):
    """A source read by index: in-memory tensors or a map-style data set."""

    def _take(self, idx: Tensor) -> Batch:
        raise NotImplementedError

    def _order(self, epoch: int, seed: int, rank: int, world: int) -> Tensor:
        sampler = DistributedSampler(_IndexSet(self.length), num_replicas=world, rank=rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return torch.tensor(list(iter(sampler)), dtype=torch.long)

    def steps_per_epoch(self, batch_size: int, rank: int = 0, world: int = 1) -> int:
        per_rank = -(-self.length // world)
        return -(-per_rank // batch_size)

    def epoch(
        self, epoch: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1
    ) -> Iterator[Batch]:
        order = self._order(epoch, seed, rank, world)
        for pos in range(start, self.steps_per_epoch(batch_size, rank, world)):
            yield self._take(order[pos * batch_size : (pos + 1) * batch_size])

    def ordered(self, batch_size: int, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        share = torch.arange(rank, self.length, world)
        for i in range(0, share.numel(), batch_size):
            yield self._take(share[i : i + batch_size])

    def first(self, n: Optional[int] = None) -> Batch:
        return self._take(torch.arange(min(n or self.length, self.length)))


class TensorSource(_Indexed):
    """In-memory data ``x`` (and ``context``), moved to the flow's device once."""

    def __init__(self, x: Tensor, context: Optional[Tensor], name: str) -> None:
        if context is not None and x.shape[0] != context.shape[0]:
            raise ValueError(
                f"{name}: data and context must have the same length, got {x.shape[0]} and {context.shape[0]}"
            )
        if x.dim() < 1 or x.shape[0] < 1:
            raise ValueError(f"{name}: expected at least one example, got a tensor of shape {tuple(x.shape)}")
        self.x, self.context, self.length, self.whole = x, context, x.shape[0], True

    def place(self, device: torch.device, dtype: torch.dtype) -> Source:
        super().place(device, dtype)
        self.x, self.context = self._to(self.x), self._to(self.context)
        return self

    def _take(self, idx: Tensor) -> Batch:
        idx = idx.to(self.x.device)
        return self.x[idx], None if self.context is None else self.context[idx]


class DatasetSource(_Indexed):
    """A map-style data set: items are fetched and stacked per batch (``default_collate``)."""

    def __init__(self, dataset: Dataset, name: str) -> None:
        self.dataset, self.name, self.whole = dataset, name, False
        self.length = len(dataset)
        if self.length < 1:
            raise ValueError(f"{name}: the data set is empty")

    def _take(self, idx: Tensor) -> Batch:
        batch = torch.utils.data.default_collate([self.dataset[int(i)] for i in idx])
        x, c = _split_item(batch, self.name)
        return self._to(x), self._to(c)


class LoaderSource(Source):
    """A ``DataLoader`` used as given; a resumed epoch skips the batches already taken."""

    def __init__(self, loader: DataLoader, name: str) -> None:
        self.loader, self.name, self.whole = loader, name, False
        try:
            self.length = len(loader.dataset)
        except TypeError:
            self.length = None

    def steps_per_epoch(self, batch_size: int, rank: int = 0, world: int = 1) -> Optional[int]:
        try:
            return len(self.loader)
        except TypeError:
            return None

    def _batches(self) -> Iterator[Batch]:
        for item in self.loader:
            x, c = _split_item(item, self.name)
            yield self._to(x), self._to(c)

    def epoch(
        self, epoch: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1
    ) -> Iterator[Batch]:
        if hasattr(getattr(self.loader, "sampler", None), "set_epoch"):
            self.loader.sampler.set_epoch(epoch)
        for pos, batch in enumerate(self._batches()):
            if pos >= start:
                yield batch

    def ordered(self, batch_size: int, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        return self._batches()

    def first(self, n: Optional[int] = None) -> Batch:
        try:
            x, c = next(iter(self._batches()))
        except StopIteration:
            raise ValueError(f"{self.name}: the DataLoader yields no batches") from None
        return (x, c) if n is None else (x[:n], None if c is None else c[:n])


def as_source(data: Any, name: str = "train") -> Source:
    """The :class:`Source` for what a user has in hand (see the module docstring); one-line errors."""
    if isinstance(data, Source):
        return data
    if isinstance(data, DataLoader):
        return LoaderSource(data, name)
    if isinstance(data, TensorDataset) and len(data.tensors) in (1, 2):
        return TensorSource(data.tensors[0], data.tensors[1] if len(data.tensors) == 2 else None, name)
    if isinstance(data, IterableDataset):
        raise TypeError(f"{name}: an IterableDataset has no indices to shuffle; wrap it in a DataLoader")
    if isinstance(data, Dataset):
        return DatasetSource(data, name)
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise TypeError(f"{name}: expected {_EXPECTED}, got a {type(data).__name__} of length {len(data)}")
        return TensorSource(_tensor(data[0], name), _tensor(data[1], name), name)
    return TensorSource(_tensor(data, name), None, name)


def prepare(batch: Batch, n_bins: Optional[int], dtype: torch.dtype, generator: Optional[torch.Generator]) -> Batch:
    """Dequantizes integer levels (``x = (k + u) / n_bins``); float data pass unchanged."""
    x, c = batch
    if not x.is_floating_point():
        x = dequantize(x, n_bins, generator, dtype=dtype, validate=False)
    return x, c
