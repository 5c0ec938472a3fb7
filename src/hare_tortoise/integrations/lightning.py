"""Hare & Tortoise as a PyTorch Lightning callback (needs the `lightning` extra).

```python
from hare_tortoise.integrations.lightning import HareTortoiseCallback
callback = HareTortoiseCallback(momentum=0.999, reset_every_epochs=10)
lightning.Trainer(callbacks=[callback]).fit(module)
callback.tortoise   # the Tortoise: the network Lee et al. (ICML 2024, arXiv:2406.02596) evaluate
```
The Hare is your LightningModule (or its submodule `module="net"`), trained as usual. The Tortoise follows it as an
EMA after every optimizer step (through the optimizer's step hook, so gradient accumulation and skipped steps count
as Lightning counts them), and the Hare is reset to the Tortoise every `reset_every_steps` optimizer steps or at the
end of every `reset_every_epochs`-th epoch. Validation runs on the network `evaluate` names; for the Tortoise the
Hare's tensors are swapped out and restored bit for bit afterwards, so training goes on as if nothing happened.
`evaluate="both"` validates the Hare as usual and runs each validation batch again on the Tortoise, its metrics
logged as `tortoise/NAME` (your `validation_step` logs through `self.log` or `self.log_dict`). The
Tortoise and the update count are saved in Lightning's checkpoints and restored when a fit resumes from one.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..core import HareTortoise
from ..errors import InvalidInput
from . import PairCallback, check_callback_settings


class HareTortoiseCallback(PairCallback, pl.Callback):
    """Hare & Tortoise for a Lightning `Trainer` (see the module docstring)."""

    built_when = "the Trainer has set the callback up (fit, validate, test)"

    def __init__(self, momentum: float = 0.999,            # m in tortoise <- m * tortoise + (1 - m) * hare
                 reset_every_steps: int | None = None,      # reset the Hare every this many optimizer steps
                 reset_every_epochs: int | None = None,     # ... or after every this many epochs
                 evaluate: Literal["tortoise", "hare", "both"] = "tortoise",  # the network(s) validation runs on
                 module: str | None = None):                # the attribute of the Hare in the LightningModule
        check_callback_settings(reset_every_steps, reset_every_epochs, evaluate)
        self.momentum, self.reset_every_steps, self.reset_every_epochs = momentum, reset_every_steps, reset_every_epochs
        self.evaluate, self.module = evaluate, module
        self.pair = None
        self.resets = 0
        self._pending: dict | None = None  # a checkpoint's state, read before the Tortoise exists
        self._hook: RemovableHandle | None = None
        self._swapped = None

    def _hare(self, pl_module: pl.LightningModule) -> nn.Module:
        if self.module is None:
            return pl_module
        hare = getattr(pl_module, self.module, None)
        if not isinstance(hare, nn.Module):
            raise InvalidInput(f"module={self.module!r}: {type(pl_module).__name__} has no submodule of that name")
        return hare

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.pair is None:
            self.pair = HareTortoise(self._hare(pl_module), self.momentum, reset_every=self.reset_every_steps)
        if self._pending is not None:
            self.pair.load_state_dict(self._pending["pair"])
            self.resets, self._pending = self._pending["resets"], None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.built.hare is not self._hare(pl_module):
            raise InvalidInput("this callback's Hare is another module than the one being fitted: use one "
                               "HareTortoiseCallback per LightningModule")
        self._follow_device()
        if len(trainer.optimizers) != 1:
            raise InvalidInput(f"HareTortoiseCallback follows one optimizer; this module has {len(trainer.optimizers)}")
        self._hook = trainer.optimizers[0].register_step_post_hook(lambda optimizer, args, kwargs: self._step())

    def _follow_device(self) -> None:
        """Lightning moves the Hare to its device after `setup`: the Tortoise goes along."""
        self.built.to(next(self.built.hare.parameters()).device)

    def _step(self) -> None:
        self.resets += self.built.step()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.reset_every_epochs and (trainer.current_epoch + 1) % self.reset_every_epochs == 0:
            self.built.reset_hare()
            self.resets += 1

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._follow_device()  # `trainer.validate` alone calls no on_fit_start
        if self.evaluate == "tortoise":
            self._swap_in()

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        """With evaluate="both": the batch again through `validation_step` with the Tortoise's values in the Hare,
        each metric it logs named `tortoise/NAME` beside the Hare's `NAME`."""
        if self.evaluate != "both":
            return
        log = pl_module.log

        def prefixed(name: str, value: Any, *args: Any, **kwargs: Any) -> None:
            return log(f"tortoise/{name}", value, *args, **kwargs)

        # an instance attribute: `self.log` inside validation_step (and log_dict) finds it first
        pl_module.log = prefixed  # type: ignore[method-assign]
        try:
            with self.tortoise_in_hare():
                several = len(trainer.num_val_batches) > 1  # Lightning passes dataloader_idx only then
                pl_module.validation_step(batch, batch_idx, *((dataloader_idx,) if several else ()))
        finally:
            del pl_module.log

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._swap_back()

    def state_dict(self) -> dict:
        return {"pair": self.pair.state_dict() if self.pair is not None else None, "resets": self.resets}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("pair") is not None:
            if self.pair is None:
                self._pending = state_dict
            else:
                self.pair.load_state_dict(state_dict["pair"])
                self.resets = state_dict["resets"]
