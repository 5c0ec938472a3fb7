"""Building blocks and models for plasticity experiments, in plain torch."""

from .layers import Classifier, CReLU, norm_layer
from .models import available, build

__all__ = ["CReLU", "Classifier", "available", "build", "norm_layer"]
