"""The training core in small parts: config, batch stream, optimizer, steps, EMA, checkpoints, progress.

:func:`pyro_flowzoo.fit` composes these parts (:class:`~.fit.Trainer`); a hand-written loop can use
them one by one, e.g. :func:`~.data.as_source` for the batches, :class:`~.optim.Updater` for Adam with
the warm-up + cosine schedule and the global gradient clip, :class:`~.ema.EMA` for averaged weights.
"""

from .config import TrainConfig
from .data import Source, as_source, step_generator
from .ema import EMA
from .evaluate import evaluate_nll
from .fit import FitResult, Trainer, fit
from .optim import PyroUpdater, Updater, clip_global_norm, lr_factor
from .progress import Progress
from .steps import MLEStep, SVIStep
from .stopping import BestKeeper

__all__ = [
    "TrainConfig",
    "Source",
    "as_source",
    "step_generator",
    "EMA",
    "evaluate_nll",
    "FitResult",
    "Trainer",
    "fit",
    "PyroUpdater",
    "Updater",
    "clip_global_norm",
    "lr_factor",
    "Progress",
    "MLEStep",
    "SVIStep",
    "BestKeeper",
]
