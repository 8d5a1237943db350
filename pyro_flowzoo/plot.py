r"""Pictures of flows: 2-D and 1-D densities, latent spaces, sample grids, floored samples, interpolations, curves.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (no global state, no
display needed: it renders with Agg) and, given ``path=``, also writes it there (PNG by the suffix; parent
directories are created). To show one in a notebook, display the returned figure; from pyplot code, call
:func:`matplotlib.pyplot.figure` on nothing: just ``fig.savefig`` or ``IPython.display.display(fig)``.

Images are drawn with :func:`torchvision.utils.make_grid`. A flow trained on dequantized levels
(``x = (k + u) / n_levels``, see :func:`pyro_flowzoo.data.dequantize`) samples values in ``[0, 1]``;
"floored" samples are the levels ``k = floor(n_levels x)`` shown as ``k / (n_levels - 1)``.

References:
    Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", arXiv:1605.08803 (latent spaces,
    interpolations); Kingma, Dhariwal, "Glow", arXiv:1807.03039 (temperature samples).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .flow import Flow, StandardLogistic, StandardStudentT, StandardUniform

if TYPE_CHECKING:
    from .data import DataSplit

__all__ = [
    "density_2d",
    "latent_2d",
    "density_1d",
    "image_grid",
    "sample_grid",
    "floored_samples",
    "interpolations",
    "training_curves",
    "scatter_2d",
    "samples_picture",
    "training_pictures",
    "save_figure",
]

PathLike = Union[str, os.PathLike]
Density = Union[Flow, Callable[[Tensor], Tensor]]
Bounds = tuple[float, float, float, float]


# -- helpers ----------------------------------------------------------------------------------------------
def save_figure(fig: Figure, path: PathLike, dpi: int = 100) -> Path:
    """Writes ``fig`` to ``path`` (parents created) and returns the path.

    Example:
        >>> import tempfile
        >>> p = save_figure(Figure(figsize=(1, 1)), Path(tempfile.mkdtemp()) / "a" / "f.png")
        >>> p.stat().st_size > 0
        True
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def _finish(fig: Figure, path: Optional[PathLike], title: Optional[str], dpi: int = 100) -> Figure:
    if title:
        fig.suptitle(title)
    if path is not None:
        save_figure(fig, path, dpi)
    return fig


def _dtype(flow: Flow) -> torch.dtype:
    for t in list(flow.parameters()) + list(flow.buffers()):
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def _device(flow: Flow) -> torch.device:
    for t in list(flow.parameters()) + list(flow.buffers()):
        return t.device
    return torch.device("cpu")


@torch.no_grad()
def _log_prob(density: Density, x: Tensor, context: Optional[Tensor] = None, chunk: int = 4096) -> Tensor:
    """Log-density of ``x`` (N, D) in chunks, in eval mode, returned on the CPU as float64."""
    if isinstance(density, Flow):
        was = density.training
        density.eval()
        dt, dev = _dtype(density), _device(density)
        out = []
        for i in range(0, x.shape[0], chunk):
            ctx = None
            if context is not None:  # one context for every point, or one per point
                one = density.context_shape is not None and context.dim() == len(density.context_shape)
                ctx = (
                    context.to(dev, dt).expand(x[i : i + chunk].shape[0], *context.shape)
                    if one
                    else context[i : i + chunk].to(dev, dt)
                )
            out.append(density.log_prob(x[i : i + chunk].to(dev, dt), ctx).double().cpu())
        density.train(was)
        return torch.cat(out)
    return density(x).double()


@torch.no_grad()
def _samples(flow: Flow, n: int, temperature: float = 1.0, context: Optional[Tensor] = None) -> Tensor:
    """``n`` samples on the CPU (float32); ``context`` is one context or ``n`` of them."""
    was = flow.training
    flow.eval()
    dt, dev = _dtype(flow), _device(flow)
    if context is None:
        x = flow.sample((n,), temperature=temperature)
    else:
        ctx = context.to(dev, dt)
        if flow.context_shape is not None and ctx.dim() == len(flow.context_shape):
            ctx = ctx.expand(n, *ctx.shape)
        x = flow.sample((), temperature=temperature, context=ctx)
    flow.train(was)
    return x.detach().float().cpu()


def _check_flow_dim(flow: Flow, dim: int, what: str) -> None:
    if tuple(flow.event_shape) != (dim,):
        raise ValueError(f"{what} needs a flow with event_shape ({dim},), got {tuple(flow.event_shape)}")


def _bounds(data: Optional[Tensor], bounds: Optional[Bounds], default: float = 4.0) -> Bounds:
    if bounds is not None:
        if len(bounds) != 4 or bounds[0] >= bounds[1] or bounds[2] >= bounds[3]:
            raise ValueError(f"bounds must be (xmin, xmax, ymin, ymax) with min < max, got {bounds}")
        return tuple(float(b) for b in bounds)  # type: ignore[return-value]
    if data is None or data.shape[0] == 0:
        return (-default, default, -default, default)
    d = data.detach().double().cpu()
    lo = torch.quantile(d, 0.005, dim=0)
    hi = torch.quantile(d, 0.995, dim=0)
    pad = 0.15 * (hi - lo) + 1e-3
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1]))


def _grid(bounds: Bounds, resolution: int) -> tuple[Tensor, np.ndarray, np.ndarray]:
    xs = torch.linspace(bounds[0], bounds[1], resolution, dtype=torch.float64)
    ys = torch.linspace(bounds[2], bounds[3], resolution, dtype=torch.float64)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], -1), xs.numpy(), ys.numpy()


def _heat(ax: Any, density: Density, bounds: Bounds, resolution: int, context: Optional[Tensor]) -> float:
    """Draws exp(log p) on a grid; returns the grid's probability mass (a check that the density integrates)."""
    pts, xs, ys = _grid(bounds, resolution)
    lp = _log_prob(density, pts, context)
    p = torch.nan_to_num(lp.exp(), nan=0.0, posinf=0.0).reshape(resolution, resolution).numpy()
    ax.imshow(p, origin="lower", extent=bounds, cmap="viridis", aspect="auto", interpolation="nearest")
    cell = (bounds[1] - bounds[0]) * (bounds[3] - bounds[2]) / (resolution - 1) ** 2
    return float(p.sum() * cell)


def _scatter(ax: Any, x: Tensor, labels: Optional[Tensor] = None, s: float = 2.0) -> None:
    x = x.detach().float().cpu().numpy()
    if labels is None:
        ax.scatter(x[:, 0], x[:, 1], s=s, alpha=0.5, color="k", linewidths=0)
    else:
        ax.scatter(x[:, 0], x[:, 1], s=s, alpha=0.7, c=labels.cpu().numpy(), cmap="tab10", linewidths=0, vmin=0, vmax=9)


def _style(ax: Any, bounds: Optional[Bounds], title: str) -> None:
    if bounds is not None:
        ax.set_xlim(bounds[0], bounds[1])
        ax.set_ylim(bounds[2], bounds[3])
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal" if bounds is None else "auto")


# -- 2-D / 1-D densities --------------------------------------------------------------------------------
def density_2d(
    density: Density,
    data: Optional[Tensor] = None,
    *,
    true_log_prob: Optional[Callable] = None,
    n_samples: int = 2000,
    bounds: Optional[Bounds] = None,
    resolution: int = 200,
    context: Optional[Tensor] = None,
    title: Optional[str] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    r"""Panels: the data, the true density (if given), the model density :math:`p(x)` as a heat map, samples.

    The heat map shows :math:`\exp \log p(x)` on a ``resolution``-square grid over ``bounds`` (default:
    the data's 0.5-99.5% range, padded); its panel title reports the grid mass :math:`\sum p \, \Delta A`
    (close to 1 when the density integrates to 1 and the grid covers it).

    Args:
        density: a 2-D :class:`~pyro_flowzoo.Flow` (samples are drawn from it) or a log-density callable.
        data: (N, 2) points to show (first panel).
        true_log_prob: the data's exact log-density, drawn as its own panel.
        n_samples: number of flow samples in the last panel (0: none).
        bounds: ``(xmin, xmax, ymin, ymax)``.
        resolution: grid points per axis.
        context: one context vector (conditional flows).
        title: figure title.
        path: where to write the PNG.

    Example:
        >>> from pyro_flowzoo import build
        >>> fig = density_2d(build("realnvp", (2,), num_layers=2, hidden_dims=(8,)), torch.randn(50, 2),
        ...                  resolution=20, n_samples=50)
        >>> len(fig.axes)
        3
    """
    if isinstance(density, Flow):
        _check_flow_dim(density, 2, "density_2d")
    if data is not None and (data.dim() != 2 or data.shape[1] != 2):
        raise ValueError(f"density_2d expects data of shape (N, 2), got {tuple(data.shape)}")
    box = _bounds(data, bounds)
    panels: list[str] = (["data"] if data is not None else []) + (["true"] if true_log_prob is not None else [])
    panels += ["model"] + (["samples"] if isinstance(density, Flow) and n_samples > 0 else [])
    fig = Figure(figsize=(2.6 * len(panels), 2.8), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, kind in zip(axes, panels):
        if kind == "data":
            _scatter(ax, data)
            _style(ax, box, f"data ({data.shape[0]})")
        elif kind == "true":
            mass = _heat(ax, true_log_prob, box, resolution, None)
            _style(ax, box, f"true density (mass {mass:.3f})")
        elif kind == "model":
            mass = _heat(ax, density, box, resolution, context)
            _style(ax, box, f"model density (mass {mass:.3f})")
        else:
            _scatter(ax, _samples(density, n_samples, context=context))
            _style(ax, box, f"samples ({n_samples})")
    return _finish(fig, path, title)


def latent_2d(
    flow: Flow,
    x: Tensor,
    labels: Optional[Tensor] = None,
    *,
    context: Optional[Tensor] = None,
    bounds: Optional[Bounds] = None,
    title: Optional[str] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    r"""Data and their latent codes :math:`z = T^{-1}(x)` side by side, coloured by label.

    For a standard normal base the right panel should look like :math:`N(0, I)` (circles mark radii 1, 2, 3), for
    a Student-t base (2-D ``realnvp`` and ``maf``) like it with a few points farther out (the title names the
    base); for a uniform base (mixture-CDF flows) like the uniform unit square.
    Vector flows of any dimension are accepted: the first two coordinates are shown.

    Example:
        >>> from pyro_flowzoo import build
        >>> fig = latent_2d(build("realnvp", (2,), num_layers=2, hidden_dims=(8,)), torch.randn(40, 2),
        ...                 torch.arange(40) % 2)
        >>> len(fig.axes)
        2
    """
    if len(flow.event_shape) != 1 or flow.event_shape[0] < 2:
        raise ValueError(f"latent_2d needs a vector flow with event_shape (D,), D >= 2; got {tuple(flow.event_shape)}")
    if x.dim() != 2 or x.shape[1] != flow.event_shape[0]:
        raise ValueError(f"latent_2d expects x of shape (N, {flow.event_shape[0]}), got {tuple(x.shape)}")
    if labels is not None and labels.shape[0] != x.shape[0]:
        raise ValueError(f"latent_2d: {labels.shape[0]} labels for {x.shape[0]} points")
    was = flow.training
    flow.eval()
    with torch.no_grad():
        dt, dev = _dtype(flow), _device(flow)
        z = flow.to_latent(x.to(dev, dt), None if context is None else context.to(dev, dt))[0].float().cpu()
    flow.train(was)
    fig = Figure(figsize=(5.4, 2.8), layout="constrained")
    ax_x, ax_z = fig.subplots(1, 2)
    _scatter(ax_x, x[:, :2], labels, s=3)
    _style(ax_x, _bounds(x[:, :2], bounds), "data x")
    _scatter(ax_z, z[:, :2], labels, s=3)
    if isinstance(flow.base, StandardUniform):  # mixture-CDF flows: the latent is the unit square
        ax_z.plot([0, 1, 1, 0, 0], [0, 0, 1, 1, 0], color="0.6", lw=0.6)
        _style(ax_z, (-0.05, 1.05, -0.05, 1.05), "latent z = T^-1(x) (uniform base)")
    else:
        t = np.linspace(0, 2 * math.pi, 200)
        for r in (1, 2, 3):
            ax_z.plot(r * np.cos(t), r * np.sin(t), color="0.6", lw=0.6)
        lim = 6.0 if isinstance(flow.base, StandardLogistic) else 4.0
        t_base = f" (Student-t base, {float(flow.base.df):g} df)" if isinstance(flow.base, StandardStudentT) else ""
        _style(ax_z, (-lim, lim, -lim, lim), "latent z = T^-1(x)" + t_base)
    return _finish(fig, path, title)


def density_1d(
    density: Density,
    data: Optional[Tensor] = None,
    *,
    true_log_prob: Optional[Callable] = None,
    bounds: Optional[tuple[float, float]] = None,
    resolution: int = 500,
    bins: int = 60,
    ax: Any = None,
    label: Optional[str] = None,
    title: Optional[str] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    r"""A 1-D density :math:`p(x)` on a grid, over a histogram of the data and the true density (dashed).

    Pass ``ax=`` to draw into an existing axes (several models in one picture); the figure is returned.

    Example:
        >>> from pyro_flowzoo import build
        >>> fig = density_1d(build("planar", (1,)), torch.randn(100, 1), resolution=50)
        >>> len(fig.axes)
        1
    """
    if isinstance(density, Flow):
        _check_flow_dim(density, 1, "density_1d")
    if data is not None and (data.dim() != 2 or data.shape[1] != 1):
        raise ValueError(f"density_1d expects data of shape (N, 1), got {tuple(data.shape)}")
    if bounds is None:
        if data is not None and data.shape[0]:
            d = data[:, 0].double()
            lo, hi = float(d.min()), float(d.max())
            pad = 0.1 * (hi - lo) + 1e-3
            bounds = (lo - pad, hi + pad)
        else:
            bounds = (-4.0, 4.0)
    if ax is None:
        fig = Figure(figsize=(4.0, 2.8), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    grid = torch.linspace(bounds[0], bounds[1], resolution, dtype=torch.float64)[:, None]
    if data is not None:
        ax.hist(data[:, 0].detach().cpu().numpy(), bins=bins, range=bounds, density=True, color="0.85", label="data")
    if true_log_prob is not None:
        ax.plot(grid[:, 0].numpy(), torch.exp(true_log_prob(grid)).numpy(), "k--", lw=1, label="true")
    ax.plot(
        grid[:, 0].numpy(), torch.nan_to_num(_log_prob(density, grid).exp()).numpy(), lw=1.5, label=label or "model"
    )
    ax.set_xlim(*bounds)
    ax.legend(fontsize=7, frameon=False)
    return _finish(fig, path, title)


# -- images -----------------------------------------------------------------------------------------------
def _to_display(images: Tensor, n_levels: Optional[int], value_range: tuple[float, float]) -> Tensor:
    x = images.detach().float().cpu()
    if n_levels is not None:
        return (x / (n_levels - 1)).clamp(0, 1)
    lo, hi = value_range
    return ((x - lo) / (hi - lo)).clamp(0, 1)


def image_grid(
    images: Tensor,
    *,
    nrow: Optional[int] = None,
    n_levels: Optional[int] = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    ax: Any = None,
    title: Optional[str] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    """A grid of images (N, C, H, W) via :func:`torchvision.utils.make_grid`.

    Values are integer levels ``0 .. n_levels - 1`` when ``n_levels`` is given, else continuous in
    ``value_range`` (clamped). ``nrow`` images per row (default: about the square root of N).

    Example:
        >>> fig = image_grid(torch.randint(0, 17, (6, 1, 8, 8)).float(), n_levels=17)
        >>> len(fig.axes)
        1
    """
    from torchvision.utils import make_grid

    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"image_grid expects images of shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    n = images.shape[0]
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    grid = make_grid(_to_display(images, n_levels, value_range), nrow=nrow, padding=1, pad_value=0.5)
    if ax is None:
        cols, rows = nrow, math.ceil(n / nrow)
        fig = Figure(figsize=(min(12.0, 0.5 + 0.6 * cols), min(12.0, 0.5 + 0.6 * rows)), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    return _finish(fig, path, title)


def sample_grid(
    flow: Flow,
    n: int = 36,
    *,
    temperature: float = 1.0,
    context: Optional[Tensor] = None,
    nrow: Optional[int] = None,
    value_range: tuple[float, float] = (0.0, 1.0),
    title: Optional[str] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    r"""``n`` samples of an image flow at ``temperature`` (the base scale, as in Glow), as one grid.

    ``context`` (conditional flows): one context per sample, shape (n, *context_shape).

    Example:
        >>> from pyro_flowzoo import build
        >>> flow = build("realnvp", (1, 4, 4), num_scales=1, num_blocks=1, hidden_channels=4)
        >>> len(sample_grid(flow, 4).axes)
        1
    """
    if len(flow.event_shape) != 3:
        raise ValueError(f"sample_grid needs an image flow (C, H, W), got event_shape {tuple(flow.event_shape)}")
    if context is not None and context.shape[0] != n:
        raise ValueError(f"sample_grid: expected {n} contexts (one per sample), got {context.shape[0]}")
    x = _samples(flow, n, temperature, context)
    return image_grid(x, nrow=nrow, value_range=value_range, title=title, path=path)


def floored_samples(
    flow: Flow,
    n: int = 36,
    n_levels: int = 2,
    *,
    temperature: float = 1.0,
    context: Optional[Tensor] = None,
    nrow: Optional[int] = None,
    title: Optional[str] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    r"""Samples of a flow on dequantized levels, raw (left) and floored to levels (right).

    With data ``x = (k + u) / n_levels``, the discrete sample is :math:`k = \lfloor n_{\text{levels}} x \rfloor`
    (clamped), shown as ``k / (n_levels - 1)``.

    Example:
        >>> from pyro_flowzoo import build
        >>> flow = build("realnvp", (1, 4, 4), num_scales=1, num_blocks=1, hidden_channels=4)
        >>> len(floored_samples(flow, 4, 2).axes)
        2
    """
    from .data import quantize

    if len(flow.event_shape) != 3:
        raise ValueError(f"floored_samples needs an image flow (C, H, W), got {tuple(flow.event_shape)}")
    if n_levels < 2:
        raise ValueError(f"floored_samples: n_levels must be >= 2, got {n_levels}")
    x = _samples(flow, n, temperature, context)
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    fig = Figure(figsize=(min(12.0, 1.0 + 1.2 * nrow), min(8.0, 0.8 + 0.6 * rows)), layout="constrained")
    ax_raw, ax_floor = fig.subplots(1, 2)
    image_grid(x, nrow=nrow, ax=ax_raw)
    ax_raw.set_title("samples", fontsize=9)
    image_grid(quantize(x, n_levels), nrow=nrow, n_levels=n_levels, ax=ax_floor)
    ax_floor.set_title(f"floored to {n_levels} levels", fontsize=9)
    return _finish(fig, path, title)


def interpolations(
    flow: Flow,
    x0: Tensor,
    x1: Tensor,
    steps: int = 8,
    *,
    context: Optional[Tensor] = None,
    mode: str = "linear",
    value_range: tuple[float, float] = (0.0, 1.0),
    title: Optional[str] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    r"""Latent interpolations: row ``i`` decodes :math:`z(t)` between :math:`T^{-1}(x_0^i)` and :math:`T^{-1}(x_1^i)`.

    ``mode="linear"``: :math:`z(t) = (1 - t) z_0 + t z_1`; ``mode="slerp"`` interpolates on the great circle
    (keeps the norm typical of the Gaussian base). The endpoints are the reconstructions of ``x0``/``x1``.

    Example:
        >>> from pyro_flowzoo import build
        >>> flow = build("realnvp", (1, 4, 4), num_scales=1, num_blocks=1, hidden_channels=4)
        >>> len(interpolations(flow, torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4), steps=3).axes)
        1
    """
    if mode not in ("linear", "slerp"):
        raise ValueError(f"interpolations: mode must be 'linear' or 'slerp', got {mode!r}")
    if steps < 2:
        raise ValueError(f"interpolations: steps must be >= 2, got {steps}")
    shape = tuple(flow.event_shape)
    for name, x in (("x0", x0), ("x1", x1)):
        if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise ValueError(
                f"interpolations: expected {name} of shape (N, {', '.join(map(str, shape))}), got {tuple(x.shape)}"
            )
    if x0.shape[0] != x1.shape[0]:
        raise ValueError(
            f"interpolations: x0 and x1 need the same number of images, got {x0.shape[0]} and {x1.shape[0]}"
        )
    was = flow.training
    flow.eval()
    dt, dev = _dtype(flow), _device(flow)
    ctx = None if context is None else context.to(dev, dt)
    with torch.no_grad():
        z0 = flow.to_latent(x0.to(dev, dt), ctx)[0]
        z1 = flow.to_latent(x1.to(dev, dt), ctx)[0]
        t = torch.linspace(0, 1, steps, dtype=dt, device=dev)
        rows = []
        for i in range(z0.shape[0]):
            a, b = z0[i], z1[i]
            if mode == "linear":
                zs = torch.stack([(1 - s) * a + s * b for s in t])
            else:
                omega = torch.arccos(((a * b).sum() / (a.norm() * b.norm())).clamp(-1 + 1e-7, 1 - 1e-7))
                zs = torch.stack(
                    [(torch.sin((1 - s) * omega) * a + torch.sin(s * omega) * b) / torch.sin(omega) for s in t]
                )
            c = None if ctx is None else ctx[i : i + 1].expand(steps, *ctx.shape[1:])
            rows.append(flow.from_latent(zs, c)[0].float().cpu())
    flow.train(was)
    images = torch.cat(rows)
    if images.dim() != 4:
        raise ValueError(f"interpolations draws images (C, H, W); this flow has event_shape {shape}")
    return image_grid(images, nrow=steps, value_range=value_range, title=title, path=path)


# -- training ---------------------------------------------------------------------------------------------
def training_curves(
    results: Union[Any, Mapping[str, Any]],
    *,
    unit: str = "nats/dim",
    log_x: bool = False,
    title: Optional[str] = None,
    path: Optional[PathLike] = None,
) -> Figure:
    """Train (solid) and validation (dashed) NLL per epoch for one or several runs.

    ``results``: a :class:`~pyro_flowzoo.train.FitResult` (or anything with ``train_nll``/``valid_nll``
    lists, or a dict with those keys), or a mapping ``run name -> such a result``.

    Example:
        >>> fig = training_curves({"a": {"train_nll": [2.0, 1.5], "valid_nll": [2.1, 1.7]}})
        >>> len(fig.axes)
        1
    """

    def curves(r: Any) -> tuple[Sequence[float], Sequence[float]]:
        if isinstance(r, Mapping):
            return r.get("train_nll", []), r.get("valid_nll", [])
        if hasattr(r, "train_nll"):
            return r.train_nll, getattr(r, "valid_nll", [])
        raise ValueError(f"training_curves: expected a FitResult or a dict with train_nll, got {type(r).__name__}")

    if isinstance(results, Mapping) and "train_nll" not in results:
        runs = dict(results)
    else:
        runs = {"": results}
    fig = Figure(figsize=(4.2, 3.0), layout="constrained")
    ax = fig.subplots()
    for i, (name, r) in enumerate(runs.items()):
        tr, va = curves(r)
        color = f"C{i % 10}"
        prefix = f"{name} " if name else ""
        if len(tr):
            ax.plot(np.arange(1, len(tr) + 1), tr, color=color, label=f"{prefix}train")
        if len(va):
            ax.plot(np.arange(1, len(va) + 1), va, color=color, ls="--", label=f"{prefix}valid")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"NLL ({unit})")
    if log_x:
        ax.set_xscale("log")
    ax.legend(fontsize=7, frameon=False)
    return _finish(fig, path, title)


# -- pictures of a trained flow (what the command line writes) ------------------------------------------
def scatter_2d(
    x: Tensor, labels: Optional[Tensor] = None, *, title: Optional[str] = None, path: Optional[PathLike] = None
) -> Figure:
    """A scatter plot of 2-D points ``(N, 2)``, coloured by ``labels`` where given.

    Example:
        >>> len(scatter_2d(torch.randn(20, 2), title="points").axes)
        1
    """
    if x.dim() != 2 or x.shape[1] != 2:
        raise ValueError(f"scatter_2d expects points of shape (N, 2), got {tuple(x.shape)}")
    fig = Figure(figsize=(4, 4), layout="constrained")
    ax = fig.subplots()
    _scatter(ax, x, labels, s=3.0)
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title, fontsize=9)
    return _finish(fig, path, None)


def _class_contexts(flow: Flow, n: int) -> Optional[Tensor]:
    """One-hot contexts for ``n`` samples of a conditional flow: the classes in turn, sorted (a row per class)."""
    if not flow.is_conditional:
        return None
    shape = tuple(flow.context_shape or ())
    if len(shape) != 1:
        raise ValueError(
            f"cannot draw a flow conditioned on contexts of shape {shape} as one picture; "
            f"expected one-hot class labels (K,)"
        )
    labels = (torch.arange(n) % shape[0]).sort().values
    return torch.nn.functional.one_hot(labels, shape[0]).float()


def samples_picture(
    flow: Flow, n: int = 64, *, temperature: float = 1.0, title: Optional[str] = None, path: Optional[PathLike] = None
) -> Figure:
    """``n`` samples of a flow as one picture: a grid for images (C, H, W), a scatter for 2-D points.

    A flow conditioned on one-hot class labels (context shape ``(K,)``) draws the classes in turn, one grid
    row (or one colour) per class.

    Example:
        >>> from pyro_flowzoo import build
        >>> len(samples_picture(build("realnvp", (2,), num_layers=2, hidden_dims=(8,)), 30).axes)
        1
    """
    context = _class_contexts(flow, n)
    shape = tuple(flow.event_shape)
    if len(shape) != 3 and shape != (2,):
        raise ValueError(f"cannot draw samples of shape {shape} as a picture (2-D points or (C, H, W) images)")
    x = _samples(flow, n, temperature, context)
    if len(shape) == 3:
        nrow = math.ceil(n / context.shape[1]) if context is not None else None
        return image_grid(x, nrow=nrow, title=title, path=path)
    labels = None if context is None else context.argmax(-1)
    return scatter_2d(x, labels, title=title, path=path)


def training_pictures(flow: Flow, data: DataSplit, out_dir: PathLike, result: Any = None) -> list[Path]:
    """The pictures of a training run in ``out_dir``; returns their paths.

    ``density.png``: data, true and model densities, samples (unconditional 2-D flows); ``samples.png``: a
    sample grid (images; 10 per class for conditional flows); ``curves.png``: the training curves of
    ``result`` (a :class:`~pyro_flowzoo.train.FitResult`) where it has any.
    """
    out = Path(out_dir)
    paths = []
    title = f"{flow.builder} on {data.name}"
    if tuple(data.event_shape) == (2,) and not flow.is_conditional:
        paths.append(out / "density.png")
        density_2d(
            flow,
            data.tensor(2000),
            true_log_prob=data.true_log_prob,
            resolution=120,
            n_samples=1000,
            title=title,
            path=paths[-1],
        )
    elif len(data.event_shape) == 3:
        paths.append(out / "samples.png")
        n = 10 * flow.context_shape[0] if flow.is_conditional and len(flow.context_shape or ()) == 1 else 64
        samples_picture(flow, n, title=title, path=paths[-1])
    if result is not None and result.train_nll:
        paths.append(out / "curves.png")
        training_curves(result, unit="nats/dim", title=title, path=paths[-1])
    return paths
