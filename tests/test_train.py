"""The training loop: what a run writes, resuming after SIGKILL to identical numbers, divergence, user data."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import smoke
from hare_tortoise.config import Config
from hare_tortoise.data import Dataset, streams
from hare_tortoise.runs import RunStore
from hare_tortoise.train import Trainer, TrainingDiverged, train


def test_a_run_writes_config_rows_checkpoint_and_summary(tmp_path):
    config = smoke("hare_tortoise", eval_every=5)
    summary = train(config, tmp_path, progress=False)
    store = RunStore(tmp_path)
    assert store.config() == config
    rows = store.rows()
    assert [(r["phase"], r["epoch"]) for r in rows] == [(0, e) for e in range(20)] + [(1, e) for e in range(2)]
    evaluated = [i for i, r in enumerate(rows) if "test_acc" in r]
    assert evaluated == [4, 9, 14, 19, 21]  # every 5th epoch of a phase, and the last of each phase
    phase_ends = [r for r in rows if r.get("phase_end")]
    assert len(phase_ends) == 2 and all("metrics/effective_rank" in r for r in phase_ends)
    assert all("test_acc_hare" in r and 0 <= r["test_acc"] <= 1 for r in phase_ends)
    assert summary["final"] == rows[-1] and store.load_checkpoint()["position"] == {"phase": 1, "epoch": 1}
    assert rows[-1]["step"] == 20 * 1 + 2 * 7  # 20 samples in 1 batch; 200 samples in 7 batches of 32


def test_train_loss_and_accuracy_are_the_epochs_sample_weighted_loss_and_fraction_correct(tmp_path, monkeypatch):
    from hare_tortoise import train as training

    seen = []

    def cross_entropy(logits, targets):
        loss = torch.nn.functional.cross_entropy(logits, targets)
        seen.append((loss.item(), (logits.argmax(1) == targets).sum().item(), len(targets)))
        return loss

    monkeypatch.setattr(training, "F", type("F", (), {"cross_entropy": staticmethod(cross_entropy)}))
    train(smoke(), tmp_path, progress=False)
    rows = RunStore(tmp_path).rows()
    steps = [r["step"] for r in rows]
    for row, begin in zip(rows, [0, *steps]):
        epoch = seen[begin:row["step"]]  # each step's one loss (no method here adds a second forward)
        samples = sum(n for _, _, n in epoch)
        assert row["train_loss"] == pytest.approx(sum(loss * n for loss, _, n in epoch) / samples, rel=1e-6)
        assert row["train_acc"] == sum(correct for _, correct, _ in epoch) / samples
    assert len(seen) == steps[-1] and len({r["train_acc"] for r in rows}) > 3  # accuracies that vary


def test_a_finished_run_is_not_trained_again(tmp_path):
    first = train(smoke(), tmp_path, progress=False)
    modified = os.path.getmtime(tmp_path / "metrics.jsonl")
    assert train(smoke(), tmp_path, progress=False) == first
    assert os.path.getmtime(tmp_path / "metrics.jsonl") == modified


def comparable(rows):
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in rows]


def wait_for_rows(directory, count, process, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the run ended before it could be killed (exit {process.returncode})")
        if len(RunStore(directory).rows()) >= count:
            return
        time.sleep(0.005)
    pytest.fail("the run made no progress")


def test_sigkill_at_any_moment_then_resume_gives_the_uninterrupted_numbers(tmp_path):
    # 60 warm-start epochs then 6 on the full set: long enough to be killed in each phase
    settings = ["train_size=2000", "test_size=500", "epochs=6", "checkpoint_every_seconds=0"]
    config = smoke("hare_tortoise", train_size=2000, test_size=500, epochs=6, checkpoint_every_seconds=0)
    reference = train(config, tmp_path / "reference", progress=False)
    command = [sys.executable, "-m", "hare_tortoise", "run", "smoke", "--method", "hare_tortoise", "--out",
               str(tmp_path / "killed"), "--no-progress", *settings]
    for rows_before_kill in (10, 62):  # once in phase 0, once in phase 1
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_rows(tmp_path / "killed", rows_before_kill, process)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert RunStore(tmp_path / "killed").summary() is None
    resumed = train(config, tmp_path / "killed", progress=False)
    rows, expected = RunStore(tmp_path / "killed").rows(), RunStore(tmp_path / "reference").rows()
    assert [(r["phase"], r["epoch"]) for r in rows] == [(r["phase"], r["epoch"]) for r in expected]
    assert comparable(rows) == comparable(expected)
    assert comparable([resumed["final"]]) == comparable([reference["final"]])


def test_resume_exactly_at_a_phase_boundary_applies_the_between_phase_method(tmp_path, monkeypatch):
    config = smoke("shrink_perturb")
    reference = train(config, tmp_path / "reference", progress=False)
    original = Trainer._checkpoint

    def stop_after_phase_0(self, phase, epoch, optimizer):
        original(self, phase, epoch, optimizer)
        if (phase, epoch) == (0, 19):
            raise KeyboardInterrupt  # killed right after the last checkpoint of phase 0

    monkeypatch.setattr(Trainer, "_checkpoint", stop_after_phase_0)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", progress=False)
    monkeypatch.setattr(Trainer, "_checkpoint", original)
    resumed = train(config, tmp_path / "cut", progress=False)
    assert comparable(RunStore(tmp_path / "cut").rows()) == comparable(RunStore(tmp_path / "reference").rows())
    assert resumed["final"]["test_acc"] == reference["final"]["test_acc"]


def test_divergence_stops_with_a_clear_error_and_keeps_what_was_written(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(200, 8), torch.randint(0, 3, (200,))
    config = Config(dataset="mnist1d", model="mlp", width=16, protocol="warm_start", epochs=2, batch_size=32,
                    probe_size=32)
    warm = streams.build("warm_start", y, 3, 8, 2, config.seed)[0].indices
    poisoned = next(i for i in range(200) if i not in set(warm.tolist()))
    x[poisoned] = float("nan")  # only phase 1 (the full set) sees it
    dataset = Dataset("custom", x, y, x[:50].nan_to_num(), y[:50], num_classes=3)
    with pytest.raises(TrainingDiverged, match=r"loss became nan in phase 1 \(full\), epoch 0.*keeps its config, metrics and its last checkpoint"):
        train(config, tmp_path, dataset=dataset, progress=False)
    store = RunStore(tmp_path)
    assert len(store.rows()) == 20 and all(r["phase"] == 0 for r in store.rows())
    assert store.load_checkpoint()["position"] == {"phase": 0, "epoch": 19}
    assert store.config() == config and store.summary() is None


def test_a_users_own_numpy_arrays(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(300, 5)
    y = (x[:, 0] > 0).long()  # learnable
    dataset = Dataset.of(x[:200].numpy(), y[:200].numpy(), x[200:].numpy(), y[200:].numpy())
    assert dataset.num_classes == 2 and dataset.x_train.dtype == torch.float32
    with pytest.raises(ValueError, match="differ in length"):
        Dataset.of(x[:200], y[:100], x[200:], y[200:])
    config = Config(dataset="mnist1d", model="mlp", width=16, protocol="cold", epochs=15, batch_size=50, lr=1e-2)
    summary = train(config, tmp_path, dataset=dataset, progress=False)
    assert summary["final"]["test_acc"] > 0.9


def test_another_config_in_the_same_directory_is_refused(tmp_path):
    train(smoke(), tmp_path, progress=False)
    with pytest.raises(ValueError, match="holds a run with a different config \\(differs in: lr\\)"):
        train(smoke(lr=0.5), tmp_path, progress=False)
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == smoke().lr
    # where the data lives and where the run computes are not part of what it computes
    assert train(smoke(data_dir=str(tmp_path), device="cpu"), tmp_path, progress=False)["final"]


@pytest.mark.parametrize("seconds, expected", [(0, [(0, e) for e in range(20)] + [(1, 0), (1, 1)]),
                                               (3600, [(0, 19), (1, 1)])])
def test_checkpoints_after_every_epoch_or_only_at_phase_ends(seconds, expected, tmp_path, monkeypatch):
    written = []
    original = Trainer._checkpoint

    def record(self, phase, epoch, optimizer):
        written.append((phase, epoch))
        original(self, phase, epoch, optimizer)

    monkeypatch.setattr(Trainer, "_checkpoint", record)
    train(smoke("hare_tortoise", checkpoint_every_seconds=seconds), tmp_path, progress=False)
    assert written == expected


def test_the_optimizer_is_the_recipes_adamw_with_the_methods_own_settings(tmp_path):
    from hare_tortoise.train import prepare_dataset

    config = smoke("l2", weight_decay=1e-3)
    trainer = Trainer(config, RunStore(tmp_path), prepare_dataset(config), progress=False)
    [group] = trainer._optimizer().param_groups
    assert group["weight_decay"] == 0.1 and group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8  # L2's 0.1 wins
    assert group["lr"] == config.lr and group["fused"] is True
    [group] = Trainer(smoke("base"), RunStore(tmp_path / "b"), prepare_dataset(config), progress=False) \
        ._optimizer().param_groups
    assert group["weight_decay"] == smoke("base").weight_decay


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_bf16_autocasts_forward_passes_on_cuda_only(device):
    from hare_tortoise.evaluation import autocast as _autocast

    layer, x = torch.nn.Linear(4, 3).to(device), torch.randn(2, 4, device=device)
    for bf16 in (True, False):
        with _autocast(torch.device(device), bf16):
            out = layer(x)
        assert out.dtype == (torch.bfloat16 if bf16 and device == "cuda" else torch.float32)
        assert layer.weight.dtype == torch.float32  # the weights stay float32


def test_the_evaluation_batch_keeps_a_cpu_batchs_largest_activation_under_8_mb_but_not_under_the_training_batch():
    from hare_tortoise.data.batches import Inputs
    from hare_tortoise.evaluation import EVAL_BATCH, accuracy, evaluation_batch
    from hare_tortoise.nn import models

    torch.manual_seed(0)
    mlp = models.build("mlp", (40,), 10, 256, "batch")  # 1 KB a sample: 8 MB holds 8,192, so 4,096
    cnn = models.build("cnn", (1, 28, 28), 10, 16, "batch").train()  # 16 x 28 x 28 floats: 50 KB a sample
    wide = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2**21))  # 8 MB a sample
    assert evaluation_batch(mlp, torch.randn(1, 40), 256) == EVAL_BATCH
    assert evaluation_batch(cnn, torch.randn(1, 1, 28, 28), 128) == 8 * 2**20 // (16 * 28 * 28 * 4) == 167
    assert evaluation_batch(cnn, torch.randn(1, 1, 28, 28), 256) == 256  # never under the training batch
    assert evaluation_batch(wide, torch.randn(1, 4), 32) == 32
    assert evaluation_batch(cnn, torch.empty(1, 1, 28, 28, device="meta"), 256) == EVAL_BATCH  # not the CPU
    # the probe leaves no trace: the mode is restored, the hooks removed, the BatchNorm statistics unchanged
    assert cnn.training and not any(m._forward_hooks for m in cnn.modules())
    assert all(torch.equal(b, torch.zeros_like(b)) for n, b in cnn.named_buffers() if n.endswith("running_mean"))
    # and the accuracy is the same in any batch
    x, y = torch.randint(0, 256, (600, 1, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (600,))
    inputs = Inputs([0.3], [0.35])
    assert accuracy(cnn, x, y, inputs, 4096) == accuracy(cnn, x, y, inputs, 167) == accuracy(cnn, x, y, inputs, 7)


def test_a_trainer_evaluates_in_the_batch_it_picked(tmp_path, monkeypatch):
    from hare_tortoise import train as training
    from hare_tortoise.evaluation import EVAL_BATCH

    batches = []
    real = training.accuracies
    monkeypatch.setattr(training, "accuracies", lambda *args, **kwargs: batches.append(args[4]) or real(*args, **kwargs))
    trainer = Trainer(smoke(epochs=1), RunStore(tmp_path), progress=False)
    assert trainer.eval_batch == EVAL_BATCH  # the smoke MLP's activations are small
    trainer.eval_batch = 3
    trainer.run()
    assert batches and set(batches) == {3}
