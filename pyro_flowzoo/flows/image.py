"""Image flows (RealNVP multi-scale, Glow, conditional Glow, NICE on images): to be written."""

from __future__ import annotations

__all__: list[str] = []


def realnvp_image(event_shape: tuple[int, ...], **hparams):
    raise ValueError(f"realnvp on images is not available yet; got event_shape {event_shape}")


def nice_image(event_shape: tuple[int, ...], **hparams):
    raise ValueError(f"nice on images is not available yet; got event_shape {event_shape}")
