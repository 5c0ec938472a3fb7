"""Hare & Tortoise as a Hugging Face Transformers `TrainerCallback` (needs the `transformers` extra).

```python
from hare_tortoise.integrations.transformers import HareTortoiseCallback
callback = HareTortoiseCallback(momentum=0.999, reset_every_epochs=1)
transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[callback]).train()
callback.tortoise   # the Tortoise (Lee et al., ICML 2024, arXiv:2406.02596)
```
Continual fine-tuning is where warm starting hurts language models too. The Hare is the Trainer's model. The
Tortoise follows it after every optimizer step (`on_step_end`: with gradient accumulation, once per accumulated
step), and the Hare is reset to the Tortoise every `reset_every_steps` optimizer steps or at the end of every
`reset_every_epochs`-th epoch. The evaluations the Trainer schedules (`eval_strategy`) run on the network
`evaluate` names: for the Tortoise, its values go into the model just before the Trainer evaluates and the Hare's
come back, bit for bit, when the evaluation ends. An evaluation you start yourself runs on the model as it is, the
Hare (a callback hears of it only after its first batch); for the Tortoise:
```python
with callback.tortoise_in_hare():
    tortoise = trainer.evaluate(metric_key_prefix="eval_tortoise")
```
`evaluate="both"` does that in every evaluation, scheduled or started by hand: the Hare's metrics as the Trainer
names them (`eval_loss`), then the Tortoise's with `_tortoise` after the prefix (`eval_tortoise_loss`), each logged by
the Trainer's own `evaluate`. A callback is handed neither the Trainer nor its evaluation, so "both" needs the
Trainer: `HareTortoiseCallback(evaluate="both").add_to(trainer)` adds the callback and wraps `trainer.evaluate`.
Training is then as with `evaluate="hare"`, bit for bit (the Tortoise's evaluation leaves torch's random state as
it found it).
The Tortoise is saved beside each checkpoint
(`hare_tortoise.pt`) and restored when training resumes from one.
"""

from __future__ import annotations

import pathlib
from typing import Any, Literal

import torch
import transformers
from torch import nn

from ..core import HareTortoise
from ..errors import InvalidInput
from . import PairCallback, check_callback_settings

STATE_FILE = "hare_tortoise.pt"  # beside the Trainer's own files in each checkpoint folder


def _checkpoint_folder(args: transformers.TrainingArguments, state: transformers.TrainerState) -> pathlib.Path:
    """The folder the Trainer saves the checkpoint of this step in."""
    # TrainingArguments fills in None with its own default, "trainer_output"
    return pathlib.Path(args.output_dir or "trainer_output") / f"checkpoint-{state.global_step}"


class HareTortoiseCallback(PairCallback, transformers.TrainerCallback):
    """Hare & Tortoise for a Transformers `Trainer` (see the module docstring)."""

    built_when = "training has begun (Trainer.train)"

    def __init__(self, momentum: float = 0.999,            # m in tortoise <- m * tortoise + (1 - m) * hare
                 reset_every_steps: int | None = None,      # reset the Hare every this many optimizer steps
                 reset_every_epochs: int | None = None,     # ... or after every this many epochs
                 evaluate: Literal["tortoise", "hare", "both"] = "tortoise"):  # the network(s) evaluations run on
        check_callback_settings(reset_every_steps, reset_every_epochs, evaluate)
        self.momentum, self.reset_every_steps, self.reset_every_epochs = momentum, reset_every_steps, reset_every_epochs
        self.evaluate = evaluate
        self.pair = None
        self.resets = 0
        self._swapped = None
        self._trainer: transformers.Trainer | None = None

    def add_to(self, trainer: transformers.Trainer) -> HareTortoiseCallback:
        """Add this callback to `trainer`; with `evaluate="both"` also make each of its evaluations run twice, on the
        Hare, then on the Tortoise (its metrics under `PREFIX_tortoise_`). Returns the callback."""
        if self._trainer is not None:
            raise InvalidInput("this callback was already added to a Trainer: make one callback per Trainer")
        self._trainer = trainer
        trainer.add_callback(self)
        if self.evaluate == "both":
            trainer.evaluate = self._evaluating_both(trainer.evaluate)  # type: ignore[method-assign]
        return self

    def _evaluating_both(self, evaluate: Any) -> Any:
        """`evaluate` (the Trainer's, bound), then the same inside `tortoise_in_hare` under `PREFIX_tortoise`; a call
        made from inside either (the Trainer evaluates a dict of datasets by calling itself per dataset) runs once."""
        inside = False

        def evaluate_both(eval_dataset: Any = None, ignore_keys: list[str] | None = None,
                          metric_key_prefix: str = "eval") -> dict[str, float]:
            nonlocal inside
            if inside:
                return evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            pair = self.built  # before the Hare's evaluation: refused whole before training has begun
            inside = True
            try:
                metrics = evaluate(eval_dataset, ignore_keys, metric_key_prefix)
                # torch's random state as the Hare's evaluation left it (each DataLoader draws a seed from it), so
                # that the Tortoise's evaluation leaves training as it would be without it
                devices = list(range(torch.cuda.device_count()))
                with pair.tortoise_in_hare(), torch.random.fork_rng(devices=devices):
                    metrics |= evaluate(eval_dataset, ignore_keys, f"{metric_key_prefix}_tortoise")
            finally:
                inside = False
            return metrics
        return evaluate_both

    def on_train_begin(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
                       control: transformers.TrainerControl, model: nn.Module | None = None, **kwargs: Any) -> None:
        if model is None:
            raise InvalidInput("HareTortoiseCallback needs the Trainer's model: use it inside transformers.Trainer")
        if self.evaluate == "both" and self._trainer is None:
            raise InvalidInput('evaluate="both" needs the Trainer, which a callback is not given: add the callback '
                               "with `callback.add_to(trainer)` instead of `Trainer(callbacks=[callback])`")
        if self.pair is None:
            self.pair = HareTortoise(model, self.momentum, reset_every=self.reset_every_steps)
        saved = _checkpoint_folder(args, state) / STATE_FILE
        if state.global_step and saved.exists():  # resumed from that checkpoint
            stored = torch.load(saved, weights_only=True, map_location="cpu")
            self.pair.load_state_dict(stored["pair"])
            self.resets = int(stored["resets"])

    def _before_evaluation(self, control: transformers.TrainerControl) -> None:
        if self.evaluate == "tortoise" and control.should_evaluate:
            self._swap_in()

    def on_step_begin(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
            control: transformers.TrainerControl, **kwargs: Any) -> None:
        self._swap_back()  # an evaluation that ended without on_evaluate must not leave the Tortoise in training

    def on_step_end(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
            control: transformers.TrainerControl, **kwargs: Any) -> None:
        self.resets += self.built.step()
        self._before_evaluation(control)  # the Trainer evaluates right after this hook when it set should_evaluate

    def on_epoch_end(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
            control: transformers.TrainerControl, **kwargs: Any) -> None:
        if self.reset_every_epochs and round(state.epoch) % self.reset_every_epochs == 0:
            self.built.reset_hare()
            self.resets += 1
        self._before_evaluation(control)

    def on_evaluate(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
            control: transformers.TrainerControl, **kwargs: Any) -> None:
        self._swap_back()

    def on_save(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
            control: transformers.TrainerControl, **kwargs: Any) -> None:
        self._swap_back()
        folder = _checkpoint_folder(args, state)
        if folder.is_dir():
            torch.save({"pair": self.built.state_dict(), "resets": self.resets}, folder / STATE_FILE)

    def on_train_end(self, args: transformers.TrainingArguments, state: transformers.TrainerState,
            control: transformers.TrainerControl, **kwargs: Any) -> None:
        self._swap_back()
