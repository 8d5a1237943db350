"""Reshaping transforms (Squeeze / Unsqueeze, Reshape) and ``Inverse``, which swaps a transform's directions."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .base import FlowTransform

__all__ = ["Squeeze", "Unsqueeze", "Reshape", "Inverse"]


def _space_to_depth(x: Tensor, f: int) -> Tensor:
    *batch, c, h, w = x.shape
    if h % f or w % f:
        raise ValueError(f"Squeeze by {f} needs H and W divisible by {f}, got an image of shape {(c, h, w)}")
    x = x.reshape(*batch, c, h // f, f, w // f, f)
    n = len(batch)
    x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return x.reshape(*batch, c * f * f, h // f, w // f)


def _depth_to_space(x: Tensor, f: int) -> Tensor:
    *batch, c, h, w = x.shape
    if c % (f * f):
        raise ValueError(f"Unsqueeze by {f} needs C divisible by {f * f}, got an image of shape {(c, h, w)}")
    n = len(batch)
    x = x.reshape(*batch, c // (f * f), f, f, h, w)
    x = x.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return x.reshape(*batch, c // (f * f), h * f, w * f)


class Squeeze(FlowTransform):
    r"""Space-to-depth: each ``f x f`` block of pixels becomes ``f^2`` channels, ``(C, H, W) -> (4C, H/2, W/2)``.

    .. math:: y_{c f^2 + i f + j,\, h, w} = x_{c,\, f h + i,\, f w + j}, \qquad \log|\det| = 0

    In a :class:`~pyro_flowzoo.Flow` (transforms run latent -> data) the paper's "squeeze" of data is
    ``Inverse(Squeeze())``; see :class:`Unsqueeze` for the other direction.

    Args:
        factor: block size ``f`` (2 in RealNVP and Glow).

    References:
        Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", arXiv:1605.08803.

    Example:
        >>> Squeeze()(torch.arange(4.).reshape(1, 2, 2)).flatten().tolist()
        [0.0, 1.0, 2.0, 3.0]
        >>> tuple(Squeeze().forward_shape((3, 8, 8)))
        (12, 4, 4)
    """

    def __init__(self, factor: int = 2) -> None:
        super().__init__(event_dim=3)
        self.factor = factor

    def _check(self, shape: Sequence[int], to_depth: bool) -> None:
        if len(shape) < 3:
            raise ValueError(f"{type(self).__name__} expects (..., C, H, W), got {tuple(shape)}")

    def _squeezed(self, shape: Sequence[int]) -> torch.Size:
        *batch, c, h, w = shape
        f = self.factor
        if h % f or w % f:
            raise ValueError(f"Squeeze by {f} needs H and W divisible by {f}, got {(c, h, w)}")
        return torch.Size((*batch, c * f * f, h // f, w // f))

    def _unsqueezed(self, shape: Sequence[int]) -> torch.Size:
        *batch, c, h, w = shape
        f = self.factor
        if c % (f * f):
            raise ValueError(f"Unsqueeze by {f} needs C divisible by {f * f}, got {(c, h, w)}")
        return torch.Size((*batch, c // (f * f), h * f, w * f))

    def forward_shape(self, shape: Sequence[int]) -> torch.Size:
        return self._squeezed(shape)

    def inverse_shape(self, shape: Sequence[int]) -> torch.Size:
        return self._unsqueezed(shape)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x.shape, True)
        return _space_to_depth(x, self.factor), x.new_zeros(x.shape[:-3])

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        self._check(y.shape, False)
        return _depth_to_space(y, self.factor), y.new_zeros(y.shape[:-3])


class Unsqueeze(Squeeze):
    r"""Depth-to-space, the inverse of :class:`Squeeze`: ``(4C, H/2, W/2) -> (C, H, W)``.

    .. math:: y_{c,\, f h + i,\, f w + j} = x_{c f^2 + i f + j,\, h, w}, \qquad \log|\det| = 0

    References:
        Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", arXiv:1605.08803.

    Example:
        >>> tuple(Unsqueeze().forward_shape((12, 4, 4)))
        (3, 8, 8)
    """

    def forward_shape(self, shape: Sequence[int]) -> torch.Size:
        return self._unsqueezed(shape)

    def inverse_shape(self, shape: Sequence[int]) -> torch.Size:
        return self._squeezed(shape)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return Squeeze.inverse_and_log_det(self, x)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return Squeeze.forward_and_log_det(self, y)


class Reshape(FlowTransform):
    r"""Reshapes the event: ``in_shape -> out_shape`` (same number of entries), ``log|det| = 0``.

    .. math:: y = \mathrm{reshape}(x), \qquad \log|\det| = 0

    Like ``torch.distributions.ReshapeTransform``, but a module with our one-pass protocol, so it sits
    in a :class:`~pyro_flowzoo.Flow` next to the others (NICE on images flattens with it).

    Args:
        in_shape: event shape on the input (latent) side.
        out_shape: event shape on the output (data) side.

    References:
        Dinh, Krueger, Bengio, "NICE: Non-linear Independent Components Estimation", arXiv:1410.8516.

    Example:
        >>> Reshape((4,), (1, 2, 2))(torch.zeros(5, 4)).shape
        torch.Size([5, 1, 2, 2])
    """

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        in_shape, out_shape = torch.Size(in_shape), torch.Size(out_shape)
        if in_shape.numel() != out_shape.numel():
            raise ValueError(f"Reshape needs shapes with as many entries, got {tuple(in_shape)} and {tuple(out_shape)}")
        super().__init__(event_dim=len(in_shape), codomain_event_dim=len(out_shape))
        self.in_shape, self.out_shape = in_shape, out_shape

    def forward_shape(self, shape: Sequence[int]) -> torch.Size:
        shape = torch.Size(shape)
        return shape[: len(shape) - len(self.in_shape)] + self.out_shape

    def inverse_shape(self, shape: Sequence[int]) -> torch.Size:
        shape = torch.Size(shape)
        return shape[: len(shape) - len(self.out_shape)] + self.in_shape

    def _move(self, x: Tensor, src: torch.Size, dst: torch.Size) -> tuple[Tensor, Tensor]:
        n = len(src)
        if x.shape[x.dim() - n :] != src:
            raise ValueError(f"Reshape expected (..., {', '.join(map(str, src))}), got {tuple(x.shape)}")
        batch = x.shape[: x.dim() - n]
        return x.reshape(batch + dst), x.new_zeros(batch)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._move(x, self.in_shape, self.out_shape)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._move(y, self.out_shape, self.in_shape)


class Inverse(FlowTransform):
    r"""The inverse of one of our transforms, as a module of its own (picklable, unlike ``t.inv``).

    .. math:: \mathrm{Inverse}(T)(x) = T^{-1}(x), \qquad \log|\det J_{T^{-1}}(x)| = -\log|\det J_T(T^{-1}(x))|

    Used to place a data -> latent operation where the flow needs the latent -> data one, e.g.
    ``Inverse(Logit())`` as the data-side end of an image flow, or ``Inverse(Squeeze())``.
    Torch's ``_InverseTransform`` is not a module and loses its transform when pickled.

    Args:
        transform: a :class:`FlowTransform`.

    References:
        Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and Inference", arXiv:1912.02762.

    Example:
        >>> t = Inverse(Squeeze())
        >>> t(torch.zeros(4, 1, 1)).shape
        torch.Size([1, 2, 2])
    """

    def __init__(self, transform: FlowTransform) -> None:
        if not isinstance(transform, FlowTransform):
            raise ValueError(f"Inverse expects a pyro_flowzoo FlowTransform, got {type(transform).__name__}")
        super().__init__(event_dim=transform.codomain.event_dim, codomain_event_dim=transform.domain.event_dim)
        self.transform = transform
        self.domain, self.codomain = transform.codomain, transform.domain

    def forward_shape(self, shape: Sequence[int]) -> torch.Size:
        return torch.Size(self.transform.inverse_shape(shape))

    def inverse_shape(self, shape: Sequence[int]) -> torch.Size:
        return torch.Size(self.transform.forward_shape(shape))

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, log_det = self.transform.inverse_and_log_det(x)
        return y, -log_det

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x, log_det = self.transform.forward_and_log_det(y)
        return x, -log_det
