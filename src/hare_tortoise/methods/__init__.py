"""Plasticity methods as plugins with hooks, and the registry that names them.

`available()` lists the names, `create(name, **settings)` builds one, `describe(name)` says what it does.
The hook protocol (what a phase, an epoch and a step are in every loop), the counters and the refusal of a method
that would not act, with a complete training loop that calls every hook, are in `methods.base`.
"""

from . import (  # noqa: F401
               architecture,
               averaging,
               continual_backprop,
               dash,
               injection,
               normalize_project,
               redo,  # each registers its methods
               regularizers,
               resets,
               sam,
)
from .base import Loop, Method, MethodRefused, available, create, describe, get, register

__all__ = ["Loop", "Method", "MethodRefused", "available", "create", "describe", "get", "register"]
