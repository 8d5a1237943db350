"""Data sets: 2-D toys with exact densities, shapes, and image sets."""

from .toy import moons_log_prob, sample_moons, sample_smiley, smiley_log_prob

__all__ = ["sample_moons", "moons_log_prob", "sample_smiley", "smiley_log_prob"]
