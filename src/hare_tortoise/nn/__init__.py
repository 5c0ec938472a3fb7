"""Building blocks for plasticity experiments, in plain torch."""

from .layers import CReLU

__all__ = ["CReLU"]
