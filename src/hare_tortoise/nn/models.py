"""The model registry: every network of the experiments, each split into `backbone` and `head`."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from ..errors import InvalidInput
from .cnn import cnn
from .mlp import mlp
from .resnet import resnet18
from .surgery import use_crelu
from .vgg import vgg16
from .vit import vit_tiny

MODELS = {f.__name__: f for f in (mlp, cnn, resnet18, vgg16, vit_tiny)}
IMAGE_MODELS = {"cnn", "resnet18", "vgg16", "vit_tiny"}  # they take (channels, height, width) inputs


def available() -> list[str]:
    return sorted(MODELS)


def build(name: str, input_shape, num_classes: int, width: int | None = None, norm: str | None = None,
          activation: str = "relu", depth: int | None = None) -> nn.Module:
    """Model `name` for inputs of `input_shape` (without the batch dimension). `width`/`norm`/`depth` left as None
    take the model's own default (`depth`: the MLP's hidden layers; other models have none); activation 'crelu'
    rewrites the ReLUs that follow a layer (see `use_crelu`)."""
    if name not in MODELS:
        raise InvalidInput(f"unknown model {name!r}; available: {', '.join(available())}")
    if activation not in ("relu", "crelu"):
        raise InvalidInput(f"activation must be 'relu' or 'crelu', got {activation!r}")
    if name in IMAGE_MODELS and len(input_shape) != 3:
        raise InvalidInput(f"model {name!r} takes images (channels, height, width); the inputs have shape "
                         f"{tuple(input_shape)}: use model=mlp for them, or a dataset of images")
    if depth is not None and "depth" not in inspect.signature(MODELS[name]).parameters:
        raise InvalidInput(f"model {name!r} has no depth setting; leave depth unset (only mlp has one)")
    options: dict[str, Any] = {k: v for k, v in (("width", width), ("norm", norm), ("depth", depth)) if v is not None}
    model = MODELS[name](tuple(input_shape), num_classes, **options)
    if activation == "crelu" and use_crelu(model) == 0:
        raise InvalidInput(f"{name} has no ReLU that crelu can replace")
    return model


def defaults(name: str) -> dict:
    """The default keyword settings of model `name`."""
    return {k: p.default for k, p in inspect.signature(MODELS[name]).parameters.items() if p.default is not p.empty}
