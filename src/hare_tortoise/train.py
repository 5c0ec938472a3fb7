"""The one supervised training loop: phases x epochs x batches, calling the method's hooks; resumable.

Per phase a fresh AdamW (betas 0.9/0.999, eps 1e-8) with a linear warm-up over the first `warmup_fraction` of the
phase's steps, then a constant learning rate, and global gradient-norm clipping (the paper's recipe,
docs/METHODS.md). Before the run the method sees the phases and steps it will get (`check_loop`), and a method that
would never act is refused before anything is written. After each epoch: the method's epoch hook, then evaluation of
the trained network and of the network the method reports (and of the EMA shadow, if any), then a metrics row (with
the method's counters) and a checkpoint. Losses and accuracies are accumulated on
the device and read once per epoch.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import data, methods
from .config import Config, ConfigError
from .core import HareTortoise
from .data import streams
from .data.batches import Inputs, batch_inputs, shuffled_batches
from .distributed import World, resolve_device
from .evaluation import accuracies, autocast, evaluation_batch, matrix_columns, task_test
from .flat import FlatGradients
from .metrics import activation_calls, plasticity_metrics
from .nn import models
from .optim import adamw
from .runs import ReadOnlyRunStore, RunStore, TrainingDiverged, counter_fields, execute
from .tensors import evaluating, snapshot
from .tracing import trace


def _epoch_seed(seed: int, phase: int, epoch: int) -> int:
    return (seed * 1_000_003 + phase * 10_007 + epoch) % (2**63)


def prepare_dataset(config: Config) -> data.Dataset:
    """The configured dataset, cut to the configured sizes (`data.prepare`)."""
    return data.prepare(config.dataset, config.data_dir, config.train_size, config.test_size)


def check_batches(model: torch.nn.Module, phases: list[streams.Phase], batch_size: int) -> None:
    """Refuse a batch of one sample where the model has BatchNorm: its training statistics need two (torch raises
    in the middle of the run otherwise)."""
    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return
    if batch_size == 1:
        raise ConfigError("batch_size=1 with BatchNorm: BatchNorm needs at least 2 samples per training batch; "
                          "use batch_size >= 2, or norm=layer or norm=none")
    for phase in phases:
        if len(phase.indices) % batch_size == 1:
            raise ConfigError(f"phase {phase.name!r} has {len(phase.indices)} samples: with batch_size={batch_size} "
                              "its last batch is a batch of 1 sample, which BatchNorm cannot normalise; choose "
                              f"another batch_size (e.g. {batch_size + 1}) or train_size")


class Trainer:
    """Trains one run of `config` into `store`; `dataset` replaces the configured one (a user's own tensors).
    In a `world` of several processes (torchrun), each trains on its slice of every batch under
    DistributedDataParallel; see `distributed.py`."""

    def __init__(self, config: Config, store: RunStore, dataset: data.Dataset | None = None, progress: bool = True,
                 world: World = World()):
        self.config = config.validate()
        self.store = store
        self.progress = progress
        self.world = world
        self.device = world.device(resolve_device(config.device))
        dataset = dataset if dataset is not None else prepare_dataset(config)
        settings = {k: getattr(config, k) for name in streams.PROTOCOLS for k in streams.options(name)}
        self.phases = streams.build(config.protocol, dataset.y_train, dataset.num_classes,
                                    math.prod(dataset.input_shape), config.epochs, config.seed, **settings)
        for phase in self.phases:  # once, not every epoch
            phase.indices, phase.labels = phase.indices.to(self.device), phase.labels.to(self.device)
        self.data = dataset.to(self.device)
        self.inputs = Inputs(dataset.mean, dataset.std, augment=config.augment)
        self.eval_inputs = Inputs(dataset.mean, dataset.std)
        self.sequence = config.protocol in streams.SEQUENCES  # tasks with tests of their own: the matrix is kept

        torch.manual_seed(config.seed)
        self.method = methods.create(config.method, **config.method_settings)
        self.method.check_loop(methods.Loop(
            f"protocol {config.protocol!r}", phase_epochs=tuple(p.epochs for p in self.phases),
            steps=sum(math.ceil(len(p.indices) / config.batch_size) * p.epochs for p in self.phases), owns_model=True))
        model = models.build(config.model, dataset.input_shape, dataset.num_classes, config.width, config.norm,
                             config.activation, config.depth)
        self.model = self.method.prepare_model(model).to(self.device)
        check_batches(self.model, self.phases, config.batch_size)
        if self.device.type == "cuda" and self.data.is_image:
            # Module.to takes memory_format (torch's docs), its annotations do not
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.initial = snapshot(self.model)
        self.gradients = FlatGradients(self.model.parameters())  # zeroed, clipped and normed as one buffer
        # before the method's hooks (ReDo's see every forward)
        self.eval_batch = evaluation_batch(self.model, self.eval_inputs(self.data.x_test[:1]), config.batch_size)
        self.method.attach(self.model)
        with evaluating(self.model):  # checks before the run; in eval mode, so that no dropout draws random numbers
            example = self.eval_inputs(self.data.x_test[:2])
            self.method.check_model(example)
            activation_calls(self.model, trace(self.model, example))  # the phase ends' unit metrics need them
        self.shadow = (HareTortoise(self.model, config.ema_shadow, share_storage=True)
                       if config.ema_shadow is not None else None)
        self.forward: Callable[..., torch.Tensor] = self.model
        if world.size > 1:
            self.forward = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.forward = torch.compile(self.forward) if config.compile else self.forward
        self.step = 0
        self.elapsed = 0.0
        self.last_checkpoint = time.perf_counter()
        self.fresh()

    def release_wrapper(self) -> None:
        """Let go of the DistributedDataParallel wrapper, which must be freed before its process group (see
        `World.close`). Called by `train` after the run, and after a run that raised: the traceback still holds
        the Trainer then."""
        self.forward = self.model

    def _optimizer(self) -> torch.optim.Optimizer:
        return adamw(self.model.parameters(), self.config.lr, self.config.weight_decay,
                     self.method.optimizer_overrides())

    def _checkpoint(self, phase: int, epoch: int, optimizer) -> None:
        self.store.save_checkpoint({
            "position": {"phase": phase, "epoch": epoch}, "step": self.step, "elapsed": self.elapsed,
            "model": self.model.state_dict(), "optimizer": optimizer.state_dict(),
            "method": self.method.state_dict(), "shadow": self.shadow.state_dict() if self.shadow else None,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "device_type": self.device.type,
        })

    def fresh(self) -> None:
        """Start at the first epoch of the first phase (a new Trainer does)."""
        self._start, self._optimizer_state = (0, 0), None

    def restore(self, state: dict):
        """Load a checkpoint: the model, method, shadow, random state and counters; continue after its epoch."""
        trained_on = state.get("device_type", self.device.type)  # checkpoints from before the field: not known
        if trained_on != self.device.type:
            raise ConfigError(
                f"{self.store.dir} was trained on {trained_on} and would resume on {self.device.type}: the numbers "
                f"change with the device (kernels, and bf16 autocast, which runs on CUDA only), so one run would "
                f"mix two; resume it with device={trained_on}, or start a new run directory")
        self.model.load_state_dict(state["model"])
        self.method.load_state_dict(state["method"])
        if self.shadow:
            self.shadow.load_state_dict(state["shadow"])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        phase, epoch = state["position"]["phase"], state["position"]["epoch"]
        if epoch + 1 < self.phases[phase].epochs:
            self._start, self._optimizer_state = (phase, epoch + 1), state["optimizer"]
        else:
            self._start, self._optimizer_state = (phase + 1, 0), None
        return lambda row: (row["phase"], row["epoch"]) <= (phase, epoch)

    def run(self) -> dict:
        """Train to the end, from where `fresh` or `restore` put the run, and return the summary."""
        (start_phase, start_epoch), optimizer_state = self._start, self._optimizer_state
        total = sum(p.epochs for p in self.phases)
        done = sum(p.epochs for p in self.phases[:start_phase]) + start_epoch
        # disable=None: the bar shows on a terminal only, not in logs
        bar = tqdm(total=total, initial=done, disable=None if self.progress and self.world.main else True,
                   file=sys.stderr, unit="epoch", dynamic_ncols=True)
        for index in range(start_phase, len(self.phases)):
            optimizer = self._optimizer()
            if optimizer_state is not None:
                optimizer.load_state_dict(optimizer_state)
                optimizer_state = None
            else:
                self.method.on_phase_data(index, functools.partial(self._phase_batches, index), F.cross_entropy)
                self.method.on_phase_start(index, optimizer)
            first = start_epoch if index == start_phase else 0
            for epoch in range(first, self.phases[index].epochs):
                began = time.perf_counter()
                row = self._epoch(index, epoch, optimizer)
                self.elapsed += time.perf_counter() - began
                row["elapsed"] = round(self.elapsed, 3)
                self.store.append(row)
                # epochs replay exactly from any checkpoint (each epoch seeds its own generator), so short epochs
                # need not pay for a checkpoint each; a phase end always gets one (between-phase methods)
                due = time.perf_counter() - self.last_checkpoint >= self.config.checkpoint_every_seconds
                if due or epoch == self.phases[index].epochs - 1:
                    self._checkpoint(index, epoch, optimizer)
                    self.last_checkpoint = time.perf_counter()
                bar.update(1)
                bar.set_postfix_str(f"{self.phases[index].name} ep {epoch} loss {row['train_loss']:.3f} "
                                    f"acc {row['train_acc']:.3f}"
                                    + (f" test {row['test_acc']:.3f}" if "test_acc" in row else ""))
        bar.close()
        self.world.barrier()  # rank 0 has written every row
        finals = [r for r in self.store.rows() if r.get("phase_end")]
        summary = {"final": finals[-1], "phases": finals, "seconds": round(self.elapsed, 1)}
        if self.world.size > 1:
            networks = [self.model, self.method.eval_model()]
            summary["ranks"] = self.world.size
            summary["ranks_agree"] = self.world.agree([t for n in networks for t in n.state_dict().values()])
        return summary

    def _epoch(self, index: int, epoch: int, optimizer) -> dict:
        phase, config, method = self.phases[index], self.config, self.method
        generator = torch.Generator(self.device).manual_seed(_epoch_seed(config.seed, index, epoch))
        indices, permutation = phase.indices, phase.input_permutation
        batches = shuffled_batches(indices, phase.labels, config.batch_size, generator)
        steps = len(batches) * phase.epochs
        warmup = max(1, round(config.warmup_fraction * steps)) if config.warmup_fraction > 0 else 0
        loss_sum = torch.zeros((), device=self.device)
        answers: list[tuple[torch.Tensor, torch.Tensor]] = []  # each step's (logits, labels), counted at the end
        self.model.train()
        # every rank draws the whole batch and its augmentation, then keeps its slice: hooks that look at the
        # inputs (ReDo's dormant units) see the same batch on every rank
        inputs = batch_inputs(self.data.x_train, batches, self.inputs, generator, permutation)
        for i, ((_, targets), batch) in enumerate(zip(batches, inputs)):
            if batch.dim() == 4 and self.device.type == "cuda":
                batch = batch.contiguous(memory_format=torch.channels_last)
            x, y = self.world.shard(batch), self.world.shard(targets)
            t = epoch * len(batches) + i
            lr = config.lr * min(1.0, (t + 1) / warmup) if warmup else config.lr
            for group in optimizer.param_groups:
                group["lr"] = lr

            def closure():
                self.gradients.zero()
                with autocast(self.device, config.bf16):
                    logits = self.forward(x)
                    loss = F.cross_entropy(logits, y)
                    terms = method.loss_terms(x, logits, y)
                    total = loss + sum(terms.values()) if terms else loss
                total.backward()
                return loss, logits

            loss, logits = closure()
            method.after_backward(lambda: closure()[0])
            if config.grad_clip is not None:
                self.gradients.clip(config.grad_clip)
            optimizer.step()
            self.world.share_buffers(self.model)
            method.after_step(optimizer, batch)
            if self.shadow:
                self.shadow.update()
            self.step += 1
            loss_sum.add_(loss.detach(), alpha=len(y))
            # correct answers counted once an epoch, not in 4 small ops a step (17 us of a 2 ms MNIST-1D MLP step,
            # benchmarks/step_pieces.py), for an epoch's logits in memory (80 MB for Tiny-ImageNet's 100,000 x 200)
            answers.append((logits.detach(), y))
        method.on_epoch_end(epoch, optimizer)
        train_loss = self.world.sum(loss_sum).item() / len(indices)
        logits, labels = (torch.cat(parts) for parts in zip(*answers))
        correct = (logits.argmax(1) == labels).sum()
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"the training loss became {train_loss} in phase {index} ({phase.name}), epoch {epoch}; the run "
                f"stopped. {self.store.dir} keeps its config, metrics and its last checkpoint (from before the NaN). "
                "Lower lr (or enable grad_clip) and start a new run directory.")
        row = {"phase": index, "phase_name": phase.name, "epoch": epoch, "step": self.step, "lr": lr,
               "train_loss": train_loss, "train_acc": self.world.sum(correct).item() / len(indices)}
        last = epoch == phase.epochs - 1
        if last or (epoch + 1) % config.eval_every == 0:
            row.update(self._evaluate(phase))
        if last:
            if self.sequence:  # the networks test_acc saw, before the method's phase end
                row.update(self._matrix_row(index, row))
            method.on_phase_end(index, optimizer)
            row["phase_end"] = True
            probe = indices[: config.probe_size]
            measured = plasticity_metrics(self.model, self.eval_inputs(self.data.x_train[probe], None, permutation),
                                          phase.labels[: config.probe_size], initial=self.initial)
            row.update({f"metrics/{k}": v for k, v in measured.items()})
        row.update(counter_fields(method))
        return row

    def _phase_batches(self, index: int):
        """The phase's training data in order, normalised and permuted as in training but not augmented, in
        training batches: what `Method.on_phase_data` shows a method (each rank sees all of it)."""
        phase, size = self.phases[index], self.config.batch_size
        for rows, labels in zip(phase.indices.split(size), phase.labels.split(size)):
            yield self.eval_inputs(self.data.x_train.index_select(0, rows), None, phase.input_permutation), labels

    def _accuracies(self, models: list[torch.nn.Module], phase: streams.Phase, size: int | None = None) -> list[float]:
        """Each network's accuracy on the phase's test, its inputs made once for all of them."""
        x, y = task_test(phase, self.data, size)
        inputs = functools.partial(self.eval_inputs, permutation=phase.input_permutation)
        return accuracies(models, x, y, inputs, self.eval_batch, bf16=self.config.bf16)

    def _evaluate(self, phase: streams.Phase) -> dict:
        """Test accuracy on the phase's own test (`Phase.test`; in a task sequence on `task_test_size` samples of
        it, the matrix's) of the trained network, the one the method reports, and the evaluation-only EMA shadow."""
        size = self.config.task_test_size if self.sequence else None
        reported = self.method.eval_model()
        networks = {"test_acc_hare": self.model, "test_acc": reported}
        if self.shadow:
            networks["test_acc_shadow"] = self.shadow.tortoise
        distinct = list({id(model): model for model in networks.values()}.values())  # the Hare once if reported
        found = dict(zip(map(id, distinct), self._accuracies(distinct, phase, size)))
        return {key: found[id(model)] for key, model in networks.items()}

    def _matrix_row(self, index: int, own: dict) -> dict:
        """Row `index` of the task-accuracy matrix R[i][j] (Lopez-Paz & Ranzato 2017): after task i, the accuracy on
        the tasks `evaluation.matrix_columns` picks, on `task_test_size` samples of each, for the reported network
        and, where it is another one, the trained one; None where a task was not tested. R[i][i] is the task's own
        test in `own` (the row's test_acc and test_acc_hare)."""
        config, tasks = self.config, len(self.phases)
        columns = matrix_columns(index, tasks, config.matrix_tasks)
        networks = {"task_acc": (self.method.eval_model(), own["test_acc"])}
        if networks["task_acc"][0] is not self.model:
            networks["task_acc_hare"] = (self.model, own["test_acc_hare"])
        row: dict[str, list[float | None]] = {key: [None] * tasks for key in networks}
        for key, (_, accuracy_here) in networks.items():
            row[key][index] = accuracy_here
        models = [model for model, _ in networks.values()]
        for j in columns:
            if j != index:
                for key, value in zip(networks, self._accuracies(models, self.phases[j], config.task_test_size)):
                    row[key][j] = value
        return row


def train(config: Config, out, dataset: data.Dataset | None = None, progress: bool = True) -> dict:
    """Run (or resume) `config` into the run directory `out`; returns the summary. A finished run returns at once.

    Nothing is written before the data has loaded and the method has accepted the run, so bad input leaves no
    half-made run directory (`runs.execute`). Under torchrun every process calls this; rank 0 writes the directory.
    """
    world = World.from_environment(resolve_device(config.validate().device))
    store = RunStore(out) if world.main else ReadOnlyRunStore(out)
    trainers: list[Trainer] = []

    def build() -> Trainer:
        trainers.append(Trainer(config, store, dataset, progress, world))
        return trainers[-1]

    try:
        summary = execute(store, config, build)
        # Leave together: a gloo rank whose peer has already torn down its connections can abort at exit.
        world.barrier()
        return summary
    finally:
        for trainer in trainers:
            trainer.release_wrapper()
        world.close()
