"""Every pyro_flowzoo transform: each a Pyro ``TransformModule`` (or ``ConditionalTransformModule``).

One family per module; each module lists its public names in ``__all__`` and they are re-exported
here (the property battery checks that every exported transform class has a test case).
"""

from . import (
    autoregressive,
    conditional,
    conv,
    coupling,
    elementwise,
    elementwise_spline,
    mixture_cdf,
    multiscale,
    normalization,
    permute,
    pixelcnn,
    planar_radial,
    reshape,
    spline,
    standardize,
    support,
)
from .autoregressive import *  # noqa: F403
from .base import ConditionalFlowTransform, ConditionedTransform, FlowTransform
from .conditional import *  # noqa: F403
from .conv import *  # noqa: F403
from .coupling import *  # noqa: F403
from .elementwise import *  # noqa: F403
from .elementwise_spline import *  # noqa: F403
from .mixture_cdf import *  # noqa: F403
from .multiscale import *  # noqa: F403
from .normalization import *  # noqa: F403
from .permute import *  # noqa: F403
from .pixelcnn import *  # noqa: F403
from .planar_radial import *  # noqa: F403
from .reshape import *  # noqa: F403
from .spline import *  # noqa: F403
from .standardize import *  # noqa: F403
from .support import *  # noqa: F403

__all__ = ["FlowTransform", "ConditionalFlowTransform", "ConditionedTransform"]
for _module in (
    coupling,
    normalization,
    permute,
    conv,
    reshape,
    elementwise,
    multiscale,
    mixture_cdf,
    autoregressive,
    spline,
    planar_radial,
    pixelcnn,
    conditional,
    standardize,
    elementwise_spline,
    support,
):
    __all__ += _module.__all__
del _module
