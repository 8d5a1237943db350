"""Normalisation-style elementwise affine transforms: NICE's scaling, Glow's ActNorm, RealNVP's batch norm."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .base import FlowTransform, sum_rightmost

__all__ = ["Scaling", "ActNorm", "BatchNorm"]


class Scaling(FlowTransform):
    r"""NICE's learned diagonal scaling layer.

    .. math:: y = \exp(s) \odot x, \qquad \log|\det| = \textstyle\sum_i s_i

    Args:
        event_shape: the shape of ``s`` (the event shape, e.g. ``(D,)``).

    References:
        Dinh, Krueger, Bengio, "NICE: Non-linear Independent Components Estimation", arXiv:1410.8516.

    Example:
        >>> t = Scaling((3,))
        >>> t(torch.ones(3))
        tensor([1., 1., 1.], grad_fn=<MulBackward0>)
    """

    def __init__(self, event_shape: Sequence[int]) -> None:
        super().__init__(event_dim=len(event_shape))
        self.log_scale = nn.Parameter(torch.zeros(tuple(event_shape)))

    def _log_det(self, like: Tensor) -> Tensor:
        batch = like.shape[: like.dim() - self.event_dim]
        return sum_rightmost(self.log_scale, self.event_dim).expand(batch)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x * torch.exp(self.log_scale), self._log_det(x)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y * torch.exp(-self.log_scale), self._log_det(y)


def _channel_shape(num_channels: int, event_dim: int) -> tuple[int, ...]:
    return (num_channels,) + (1,) * (event_dim - 1)


def _check_channels(name: str, x: Tensor, num_channels: int, event_dim: int) -> None:
    if x.dim() < event_dim or x.shape[x.dim() - event_dim] != num_channels:
        raise ValueError(
            f"{name} expected inputs (..., {num_channels}{', H, W' if event_dim == 3 else ''}), got {tuple(x.shape)}"
        )


def _per_channel_stats(y: Tensor, event_dim: int) -> tuple[Tensor, Tensor]:
    """Mean and (biased) variance per channel over the batch and the spatial positions."""
    channel_axis = y.dim() - event_dim
    flat = y.movedim(channel_axis, 0).reshape(y.shape[channel_axis], -1)
    var, mean = torch.var_mean(flat, dim=1, unbiased=False)
    return mean, var


class ActNorm(FlowTransform):
    r"""Glow's activation normalisation: a per-channel affine map with data-dependent initialisation.

    .. math:: y = x \odot e^{s} + b, \qquad \log|\det| = H W \textstyle\sum_c s_c

    The first call in the data -> latent direction (:meth:`inverse_and_log_det`, i.e. ``log_prob``) in
    training mode sets ``b`` and ``s`` from that batch so the latent side has zero mean and unit variance
    per channel. Whether that happened is the ``initialized`` buffer, saved in the ``state_dict``, so
    ``load_state_dict`` never triggers a re-initialisation (nflows issue #4).

    Args:
        num_channels: the number of channels ``C`` (the first event dimension).
        event_dim: 3 for ``(C, H, W)`` images, 1 for vectors ``(C,)``.

    References:
        Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", arXiv:1807.03039.

    Example:
        >>> t = ActNorm(2)
        >>> z, _ = t.inverse_and_log_det(3 + 5 * torch.randn(64, 2, 4, 4))  # initialises
        >>> bool(t.initialized), round(z.std().item(), 3)
        (True, 1.0)
    """

    def __init__(self, num_channels: int, event_dim: int = 3) -> None:
        super().__init__(event_dim=event_dim)
        shape = _channel_shape(num_channels, event_dim)
        self.num_channels = num_channels
        self.loc = nn.Parameter(torch.zeros(shape))
        self.log_scale = nn.Parameter(torch.zeros(shape))
        self.register_buffer("initialized", torch.tensor(False))
        self._init_seen = False  # python mirror of the buffer, so steady state never syncs a device

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._init_seen = bool(self.initialized)  # one read at load time, never in a training step

    def _init_values(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """The ``(b, s)`` that give ``inverse(y)`` zero mean and unit variance per channel."""
        mean, var = _per_channel_stats(y.to(self.loc.dtype), self.event_dim)
        return mean.reshape(self.loc.shape), torch.log(var.sqrt() + 1e-6).reshape(self.log_scale.shape)

    @torch.no_grad()
    def initialize(self, y: Tensor) -> None:
        """Sets ``b`` and ``s`` so that ``inverse(y)`` has zero mean and unit variance per channel."""
        loc, log_scale = self._init_values(y)
        self.loc.copy_(loc)
        self.log_scale.copy_(log_scale)
        self.initialized.fill_(True)
        self._init_seen = True

    @torch.no_grad()
    def _initialize_traced(self, y: Tensor) -> None:
        """:meth:`initialize` as a select on the ``initialized`` buffer (no Python branch on a tensor), for
        ``torch.compile``: a graph traced before any eager call initialises on its first batch as eager
        mode does, and leaves the parameters alone once the buffer is set."""
        loc, log_scale = self._init_values(y)
        done = self.initialized
        self.loc.copy_(torch.where(done, self.loc, loc))
        self.log_scale.copy_(torch.where(done, self.log_scale, log_scale))
        self.initialized.fill_(True)

    @torch.no_grad()
    def set_identity(self) -> None:
        """Makes the layer the identity (``b = 0, s = 0``), marked initialised: no data-dependent init follows
        (what a variational guide or an amortized encoder wants: its first inputs are its own samples)."""
        self.loc.zero_()
        self.log_scale.zero_()
        self.initialized.fill_(True)
        self._init_seen = True

    def _maybe_initialize(self, y: Tensor) -> None:
        if self._init_seen or not self.training:
            return
        if torch.compiler.is_compiling():
            self._initialize_traced(y.detach())
            return
        if bool(self.initialized):
            self._init_seen = True
        else:
            self.initialize(y.detach())

    def _log_det(self, like: Tensor) -> Tensor:
        spatial = math.prod(like.shape[like.dim() - self.event_dim + 1 :])
        batch = like.shape[: like.dim() - self.event_dim]
        return (spatial * self.log_scale.sum()).expand(batch)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _check_channels("ActNorm", x, self.num_channels, self.event_dim)
        return x * torch.exp(self.log_scale) + self.loc, self._log_det(x)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        _check_channels("ActNorm", y, self.num_channels, self.event_dim)
        self._maybe_initialize(y)
        return (y - self.loc) * torch.exp(-self.log_scale), self._log_det(y)


class BatchNorm(FlowTransform):
    r"""RealNVP's batch normalisation as a flow layer, per channel, with its log-determinant.

    In the data -> latent direction (``log_prob``) in training mode the batch's per-channel mean and
    variance are used (and folded into running averages); in eval mode, and always in the latent ->
    data direction (sampling), the running averages are used.

    .. math::
        z = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} e^{\gamma} + \beta, \qquad
        \log\left|\det \frac{\partial x}{\partial z}\right|
        = H W \sum_c \left(\tfrac12 \log(\sigma_c^2 + \epsilon) - \gamma_c\right)

    The batch statistics are treated as constants of the map, as in the paper; a training-mode pass is
    therefore a function of the whole batch, so exact reconstruction holds in eval mode.

    Args:
        num_channels: the number of channels ``C``.
        event_dim: 3 for images, 1 for vectors.
        momentum: weight of the new batch in the running averages.
        eps: variance floor.

    References:
        Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", arXiv:1605.08803;
        Ioffe, Szegedy, "Batch Normalization", arXiv:1502.03167.

    Example:
        >>> t = BatchNorm(2).eval()
        >>> x = torch.randn(3, 2, 4, 4)
        >>> torch.allclose(t.forward_and_log_det(t.inverse_and_log_det(x)[0])[0], x, atol=1e-6)
        True
    """

    def __init__(self, num_channels: int, event_dim: int = 3, momentum: float = 0.05, eps: float = 1e-4) -> None:
        super().__init__(event_dim=event_dim)
        shape = _channel_shape(num_channels, event_dim)
        self.num_channels = num_channels
        self.momentum = momentum
        self.eps = eps
        self.log_gamma = nn.Parameter(torch.zeros(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))

    def _log_det(self, var: Tensor, like: Tensor) -> Tensor:
        spatial = math.prod(like.shape[like.dim() - self.event_dim + 1 :])
        batch = like.shape[: like.dim() - self.event_dim]
        return (spatial * (0.5 * torch.log(var + self.eps) - self.log_gamma).sum()).expand(batch)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        _check_channels("BatchNorm", x, self.num_channels, self.event_dim)
        mean, var = self.running_mean, self.running_var
        y = (x - self.beta) * torch.exp(-self.log_gamma) * torch.sqrt(var + self.eps) + mean
        return y, self._log_det(var, x)

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        _check_channels("BatchNorm", y, self.num_channels, self.event_dim)
        if self.training:
            if y.shape[: y.dim() - self.event_dim].numel() * math.prod(y.shape[y.dim() - self.event_dim + 1 :]) < 2:
                raise ValueError("BatchNorm in training mode needs more than one value per channel; call .eval()")
            mean, var = _per_channel_stats(y, self.event_dim)
            mean, var = mean.reshape(self.running_mean.shape), var.reshape(self.running_var.shape)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(var.detach().to(self.running_var.dtype), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        x = (y - mean) / torch.sqrt(var + self.eps) * torch.exp(self.log_gamma) + self.beta
        return x, self._log_det(var, y)
