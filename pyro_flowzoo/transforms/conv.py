"""Glow's invertible 1x1 convolution, LU-parametrised (default) or as a plain matrix."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .base import FlowTransform

__all__ = ["InvertibleConv1x1"]


class InvertibleConv1x1(FlowTransform):
    r"""Glow's invertible 1x1 convolution: the same learned ``C x C`` matrix mixes the channels everywhere.

    The data -> latent direction (``log_prob``) applies ``W`` (as in Glow), sampling applies ``W^{-1}``:

    .. math::
        z = W x \text{ at each pixel}, \qquad W = P L (U + \mathrm{diag}(\mathrm{sign}(s) e^{\log|s|})),
        \qquad \log\left|\det \frac{\partial x}{\partial z}\right| = -H W \textstyle\sum_c \log|s_c|

    With ``lu=False``, ``W`` is a free matrix and ``log|det W|`` comes from ``slogdet``. ``W`` starts as a
    random rotation. Outside gradient computation (evaluation, sampling) ``W``, ``W^{-1}`` and the
    log-determinant are cached, keyed on the parameters' storage, version counters and values, so an
    optimizer step (fused kernels included), ``load_state_dict`` or ``.to()`` invalidates them; with
    gradients on, or while ``torch.compile`` traces, nothing is cached. Under autocast the weights and the
    convolution stay in the input's dtype (float32), so the map keeps the determinant its log-det reports.

    Args:
        num_channels: the number of channels ``C``.
        lu: LU parametrisation (cheap log-det and inverse) or a plain matrix.

    References:
        Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", arXiv:1807.03039.

    Example:
        >>> t = InvertibleConv1x1(4)
        >>> x = torch.randn(2, 4, 3, 3)
        >>> torch.allclose(t.inv(t(x)), x, atol=1e-5)
        True
    """

    def __init__(self, num_channels: int, lu: bool = True) -> None:
        super().__init__(event_dim=3)
        self.num_channels = num_channels
        self.lu = lu
        # contiguous: QR returns a column-major Q, and Pyro's param store would silently copy it.
        q = torch.linalg.qr(torch.randn(num_channels, num_channels))[0].contiguous()
        if lu:
            p, lower, upper = torch.linalg.lu(q)
            s = upper.diagonal()
            self.register_buffer("permutation", p.contiguous())
            self.register_buffer("sign_s", torch.sign(s))
            self.register_buffer("lower_mask", torch.tril(torch.ones(num_channels, num_channels), -1))
            self.register_buffer("eye", torch.eye(num_channels))
            self.lower = nn.Parameter(lower.contiguous())
            self.upper = nn.Parameter(torch.triu(upper, 1).contiguous())
            self.log_s = nn.Parameter(torch.log(s.abs()))
        else:
            self.weight = nn.Parameter(q)
        self.__dict__["_cache"] = {}

    # -- weights ------------------------------------------------------------------------------
    def _lu_factors(self) -> tuple[Tensor, Tensor]:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return lower, upper

    def _compute(self, which: str) -> Tensor:
        if which == "log_det_w":
            return self.log_s.sum() if self.lu else torch.linalg.slogdet(self.weight).logabsdet
        if which == "w":
            if not self.lu:
                return self.weight
            lower, upper = self._lu_factors()
            return self.permutation @ lower @ upper
        if not self.lu:
            return torch.linalg.inv(self.weight)
        lower, upper = self._lu_factors()
        # W^{-1} = U^{-1} L^{-1} P^T by two triangular solves (stabler than a general inverse).
        lp = torch.linalg.solve_triangular(lower, self.permutation.T, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, lp, upper=True)

    def _get(self, which: str) -> Tensor:
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            # Training: a fresh graph every call, nothing to go stale. Compiling: the key below compares data
            # pointers (a graph break); the weights are cheap to rebuild inside the graph, same values.
            return self._compute(which)
        # (no self.parameters() here: it hashes modules, which torch.compile cannot trace)
        params = (self.lower, self.upper, self.log_s) if self.lu else (self.weight,)
        key = (which,) + tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)
        hit = self._cache.get(which)
        # The values are compared too: an in-place update need not bump the version counter (torch's fused
        # Adam kernel does not), and a stale W would silently score with old weights.
        if hit is not None and hit[0] == key and all(torch.equal(p, q) for p, q in zip(params, hit[2])):
            return hit[1]
        value = self._compute(which).detach()
        self._cache[which] = (key, value, tuple(p.detach().clone() for p in params))
        return value

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_cache"] = {}
        return state

    def _pair(self, x: Tensor, which: str) -> tuple[Tensor, Tensor]:
        if x.dim() < 3 or x.shape[-3] != self.num_channels:
            raise ValueError(
                f"InvertibleConv1x1 expected inputs (..., {self.num_channels}, H, W), got {tuple(x.shape)}"
            )
        if torch.is_autocast_enabled(x.device.type):
            # Autocast off for the weights too, not only the convolution: W = P L U multiplied out in bf16
            # would no longer have the determinant that log_s gives, and the density would not normalise.
            with torch.autocast(x.device.type, enabled=False):
                return self._pair_in_dtype(x, which)
        return self._pair_in_dtype(x, which)

    def _pair_in_dtype(self, x: Tensor, which: str) -> tuple[Tensor, Tensor]:
        batch, event = x.shape[:-3], x.shape[-3:]
        kernel = self._get(which).to(x.dtype)[:, :, None, None]
        out = F.conv2d(x.reshape((-1,) + event), kernel).reshape(batch + event)
        spatial = x.shape[-1] * x.shape[-2]
        return out, (-spatial * self._get("log_det_w")).to(x.dtype).expand(batch)

    def forward_and_log_det(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._pair(x, "w_inv")

    def inverse_and_log_det(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._pair(y, "w")

    def extra_repr(self) -> str:
        return f"num_channels={self.num_channels}, lu={self.lu}"
