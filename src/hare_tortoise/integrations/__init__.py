"""Hare & Tortoise inside the trainers researchers already use; each module needs its own package (an extra)."""

from __future__ import annotations

from ..errors import InvalidInput


def check_callback_settings(reset_every_steps: int | None, reset_every_epochs: int | None, evaluate: str,
                            choices: tuple[str, ...] = ("tortoise", "hare")) -> None:
    """The checks every trainer callback makes of its schedule and of the network it evaluates (one of `choices`)."""
    if reset_every_steps is not None and reset_every_epochs is not None:
        raise InvalidInput("give reset_every_steps or reset_every_epochs, not both")
    if reset_every_epochs is not None and reset_every_epochs < 1:
        raise InvalidInput(f"reset_every_epochs must be >= 1, got {reset_every_epochs!r}")
    if evaluate not in choices:
        hint = "" if "both" in choices else (
            " (to see both: `trainer.evaluate()`, then `with callback.tortoise_in_hare(): "
            "trainer.evaluate(metric_key_prefix='eval_tortoise')`)")
        raise InvalidInput(f"evaluate must be {' or '.join(map(repr, choices))}, got {evaluate!r}{hint}")
