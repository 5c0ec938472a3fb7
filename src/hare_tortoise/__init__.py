"""hare-tortoise: Hare & Tortoise networks (Lee et al., ICML 2024), plasticity baselines and metrics for PyTorch."""

from . import methods, metrics
from .core import HareTortoise

__all__ = ["HareTortoise", "methods", "metrics"]
__version__ = "0.1.0"
