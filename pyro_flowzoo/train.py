"""Maximum-likelihood training: the public names of :mod:`pyro_flowzoo.training` in one place.

``from pyro_flowzoo.train import fit, evaluate_nll`` keeps working; the parts live in
:mod:`pyro_flowzoo.training`.
"""

from .training import FitResult, TrainConfig, evaluate_nll, fit, lr_factor
from .transforms.elementwise import dequantize

__all__ = ["fit", "FitResult", "TrainConfig", "evaluate_nll", "dequantize", "lr_factor"]
