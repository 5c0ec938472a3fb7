"""Hare & Tortoise inside the trainers researchers already use; each module needs its own package (an extra)."""

from __future__ import annotations

import contextlib

from torch import nn

from ..core import HareTortoise
from ..errors import InvalidInput

EVALUATE = ("tortoise", "hare", "both")  # the networks a trainer callback can evaluate


def check_callback_settings(reset_every_steps: int | None, reset_every_epochs: int | None, evaluate: str) -> None:
    """The checks every trainer callback makes of its schedule and of the network it evaluates (one of EVALUATE)."""
    if reset_every_steps is not None and reset_every_epochs is not None:
        raise InvalidInput("give reset_every_steps or reset_every_epochs, not both")
    if reset_every_epochs is not None and reset_every_epochs < 1:
        raise InvalidInput(f"reset_every_epochs must be >= 1, got {reset_every_epochs!r}")
    if evaluate not in EVALUATE:
        raise InvalidInput(f"evaluate must be {' or '.join(map(repr, EVALUATE))}, got {evaluate!r}")


class PairCallback:
    """What the trainer callbacks share: the Hare & Tortoise pair, made once the trainer has started (`built_when`
    says when), and the Tortoise's values swapped into the Hare for an evaluation and back."""

    built_when = "the trainer has started"
    pair: HareTortoise | None
    _swapped: contextlib.ExitStack | None

    @property
    def built(self) -> HareTortoise:
        """The Hare & Tortoise pair."""
        if self.pair is None:
            raise InvalidInput(f"the Tortoise exists once {self.built_when}")
        return self.pair

    @property
    def tortoise(self) -> nn.Module:
        """The Tortoise (an eval-mode copy of the Hare)."""
        return self.built.tortoise

    def tortoise_in_hare(self) -> contextlib.AbstractContextManager[nn.Module]:
        """A context in which the Hare holds the Tortoise's values (HareTortoise.tortoise_in_hare)."""
        return self.built.tortoise_in_hare()

    def _swap_in(self) -> None:
        """The Tortoise's values into the Hare until `_swap_back` (once, however often it is called)."""
        if self._swapped is None:
            self._swapped = contextlib.ExitStack()
            self._swapped.enter_context(self.tortoise_in_hare())

    def _swap_back(self) -> None:
        if self._swapped is not None:
            self._swapped.close()  # the Hare's own values back, bit for bit
            self._swapped = None
