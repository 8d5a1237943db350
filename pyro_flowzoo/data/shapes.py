"""Procedural 20x20 binary images of one filled shape each (circle, square, triangle, diamond, star)."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

__all__ = ["SHAPE_NAMES", "make_shapes"]

SHAPE_NAMES = ("circle", "square", "triangle", "diamond", "star")


def _inside(kind: int, q: Tensor) -> Tensor:
    """Whether local points ``q`` (..., 2) (shape frame: circumradius 1, upright) lie in shape ``kind``."""
    x, y = q[..., 0], q[..., 1]
    if kind == 0:  # circle
        return x * x + y * y <= 1
    if kind == 1:  # square
        return torch.maximum(x.abs(), y.abs()) <= 1 / math.sqrt(2)
    if kind == 2:  # equilateral triangle, a vertex up: inradius 1/2, edge normals at -90, 30 and 150 degrees
        h = math.cos(math.pi / 6)
        return (-y <= 0.5) & (x * h + y * 0.5 <= 0.5) & (-x * h + y * 0.5 <= 0.5)
    if kind == 3:  # diamond: a rhombus 1.2 wide and 2 tall
        return x.abs() / 0.6 + y.abs() <= 1
    # five-pointed star (outer radius 1, inner 0.45, a point up): fold the angle into one half-sector where
    # beta = 0 points at an outer vertex O = (1, 0) and beta = pi/5 at an inner vertex I; inside = origin's side of OI.
    rho = q.norm(dim=-1)
    phi = torch.remainder(torch.atan2(y, x) - math.pi / 2, 2 * math.pi / 5)
    beta = math.pi / 5 - (phi - math.pi / 5).abs()
    px, py = rho * torch.cos(beta), rho * torch.sin(beta)
    ix, iy = 0.45 * math.cos(math.pi / 5), 0.45 * math.sin(math.pi / 5)
    return (ix - 1) * py - iy * (px - 1) >= 0


def make_shapes(n: int, size: int = 20, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """``n`` binary ``size x size`` images, each one filled shape; returns ``(images (n, 1, size, size), labels)``.

    The shape (label, an index into :data:`SHAPE_NAMES`) is uniform; its circumradius is uniform in
    ``[0.2, 0.45] * size``, its rotation uniform in ``[0, 2 pi)``, and its centre uniform over the positions
    that keep the circumscribed circle inside the image. A pixel is 1 when its centre is inside the shape.
    Images are float32 with values in {0, 1}.

    Example:
        >>> x, y = make_shapes(4, generator=torch.Generator().manual_seed(0))
        >>> x.shape, sorted(x.unique().tolist())
        (torch.Size([4, 1, 20, 20]), [0.0, 1.0])
    """
    if n < 0 or size < 4:
        raise ValueError(f"make_shapes: expected n >= 0 and size >= 4, got n={n}, size={size}")
    labels = torch.randint(0, len(SHAPE_NAMES), (n,), generator=generator)
    radius = (0.2 + 0.25 * torch.rand(n, generator=generator, dtype=torch.float64)) * size
    angle = torch.rand(n, generator=generator, dtype=torch.float64) * 2 * math.pi
    centre = radius[:, None] + torch.rand(n, 2, generator=generator, dtype=torch.float64) * (size - 2 * radius[:, None])
    grid = torch.arange(size, dtype=torch.float64) + 0.5
    # row i is y = size - i - 0.5 so shapes appear upright (y up) when shown as an image
    yy, xx = torch.meshgrid(size - grid, grid, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1)  # (P, 2)
    rel = (points[None] - centre[:, None]) / radius[:, None, None]  # (n, P, 2)
    c, s = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    local = torch.stack([c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1]], -1)  # R(-angle)
    images = torch.zeros(n, points.shape[0], dtype=torch.bool)
    for k in range(len(SHAPE_NAMES)):
        rows = (labels == k).nonzero(as_tuple=True)[0]
        images[rows] = _inside(k, local[rows])
    return images.reshape(n, 1, size, size).float(), labels
