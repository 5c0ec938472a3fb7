"""Plasticity methods as plugins with hooks, and the registry that names them.

`available()` lists the names, `create(name, **settings)` builds one, `describe(name)` says what it does.
The hook protocol and a complete training loop that calls it are in `methods.base`.
"""

from . import architecture, averaging, redo, regularizers, resets, sam  # noqa: F401  (each registers its methods)
from .base import Method, available, create, describe, get, register

__all__ = ["Method", "available", "create", "describe", "get", "register"]
