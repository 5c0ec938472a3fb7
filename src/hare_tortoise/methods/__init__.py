"""Plasticity methods as plugins with hooks, and the registry that names them.

`available()` lists the names, `create(name, **settings)` builds one, `describe(name)` says what it does.
A method in another package joins the registry through an entry point in the group `hare_tortoise.methods`
(`my_method = "my_package.methods:MyMethod"` under `[project.entry-points."hare_tortoise.methods"]`).
The hook protocol (what a phase, an epoch and a step are in every loop), the counters and the refusal of a method
that would not act, with a complete training loop that calls every hook, are in `methods.base`.
"""

# each of these modules registers its methods (and `base` those of installed plugins, on first use)
from . import (  # noqa: F401
    architecture,
    averaging,
    continual_backprop,
    dash,
    injection,
    normalize_project,
    redo,
    regularizers,
    resets,
    sam,
)
from .base import Loop, Method, MethodRefused, available, create, describe, get, register

__all__ = ["Loop", "Method", "MethodRefused", "available", "create", "describe", "get", "register"]
