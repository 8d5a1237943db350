"""Autoregressive and other vector flows (ar_flow, pixelcnn_flow, maf, nsf_*, planar, radial): to be written."""

from __future__ import annotations

__all__: list[str] = []
