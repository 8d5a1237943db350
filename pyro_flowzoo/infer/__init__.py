"""Flows as Pyro guides: :class:`AutoFlowGuide`, amortized flow encoders, and test posteriors."""

from .amortized import ENCODER_DEFAULTS, FlowEncoder, encoder_flows, start_encoder_at_identity
from .autoguide import GUIDE_DEFAULTS, INVERTED_BY_DEFAULT, VECTOR_BUILDERS, AutoFlowGuide, prefix_layers
from .fit import evidence, fit_svi
from .models import BananaPosterior, GaussianLinearPosterior, funnel_model, logistic_regression_model
from .posterior import FlowPosterior

__all__ = [
    "AutoFlowGuide",
    "FlowPosterior",
    "FlowEncoder",
    "ENCODER_DEFAULTS",
    "encoder_flows",
    "start_encoder_at_identity",
    "prefix_layers",
    "VECTOR_BUILDERS",
    "GUIDE_DEFAULTS",
    "INVERTED_BY_DEFAULT",
    "fit_svi",
    "evidence",
    "BananaPosterior",
    "GaussianLinearPosterior",
    "funnel_model",
    "logistic_regression_model",
]
