"""Conditioner networks (they never import transforms). One module per family, re-exported here."""

from . import embedding, glow, made, mlp, pixelcnn, resnet
from .embedding import *  # noqa: F403
from .glow import *  # noqa: F403
from .made import *  # noqa: F403
from .mlp import *  # noqa: F403
from .pixelcnn import *  # noqa: F403
from .resnet import *  # noqa: F403

__all__: list[str] = []
for _module in (mlp, made, pixelcnn, resnet, glow, embedding):
    __all__ += _module.__all__
del _module
