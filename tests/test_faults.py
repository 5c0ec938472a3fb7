"""A battery of bad input and faults, driven through the real CLI as a user would meet them: each case exits with
the code the CLI promises (2: bad input, 1: a bug), says what is wrong and how to fix it, and changes nothing that
was already written."""

import json
import pathlib

import pytest

from hare_tortoise.cli import main
from hare_tortoise.presets import resolve


def snapshot(root: pathlib.Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes: what a refused command must leave as it was."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# (argv, message): bad values and bad combinations, refused before a run directory is written
BAD_RUNS = [
    (["smoke", "lr=inf"], "lr must be a finite number, got inf"),
    (["smoke", "lr=nan"], "lr must be a finite number, got nan"),
    (["smoke", "weight_decay=-inf"], "weight_decay must be a finite number, got -inf"),
    (["smoke", "weight_decay=-0.1"], "weight_decay must be a finite number >= 0, got -0.1"),
    (["smoke", "--seed", "-1"], r"seed must be an integer in \[0, 2\*\*63\), got -1"),
    (["smoke", "--seed", str(2**64)], r"seed must be an integer in \[0, 2\*\*63\)"),
    (["smoke", "epochs=2", "epochs=3"], "epochs is given twice .epochs=2, epochs=3.: give it once"),
    (["smoke", "method.momentum=0.9", "method.momentum=0.8", "--method", "ema"], "method.momentum is given twice"),
    (["smoke", "model=cnn"], r"model 'cnn' takes images \(channels, height, width\); the inputs have shape \(40,\): use model=mlp"),
    (["smoke", "model=resnet18"], "model 'resnet18' takes images"),
    (["smoke", "data_dir={tmp}/nowhere"], "data_dir={tmp}/nowhere does not exist"),
    (["smoke", "batch_size=1"], "batch_size=1 with BatchNorm"),
    (["smoke", "train_size=193", "batch_size=32"], "phase 'full' has 193 samples: with batch_size=32 its last batch is a batch of 1 sample"),
    (["smoke", "--method", "hare_tortoise", "method.reset_every_epochs=2", "method.reset_every_steps=5"],
     "set exactly one of reset_every_epochs and reset_every_steps"),
    (["smoke", "--method", "redo", "method.every_epochs=1", "method.every_steps=5"],
     "set exactly one of every_epochs and every_steps"),
    (["rl-smoke", "--seed", "-3"], r"seed must be an integer in \[0, 2\*\*63\)"),
    (["rl-smoke", "agent.lr=inf"], "agent.lr must be a finite number, got inf"),
    (["rl-smoke", "steps=300", "steps=400"], "steps is given twice"),
]


@pytest.mark.parametrize("argv, message", BAD_RUNS)
def test_a_bad_run_exits_2_names_the_problem_and_writes_nothing(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    message = message.replace("{tmp}", str(tmp_path))
    assert main(["run", *argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("hare-tortoise: error: ") and "Traceback" not in error
    assert __import__("re").search(message, error), error
    assert not (tmp_path / "run").exists()


def test_the_config_defaults_are_the_papers_cifar10_settings_and_work_together():
    from hare_tortoise.config import Config

    config = Config()
    assert (config.dataset, config.model, config.lr, config.weight_decay) == ("cifar10", "resnet18", 1e-3, 1e-3)
    config.validate()


def test_setting_the_step_schedule_alone_switches_hare_tortoise_to_it():
    config = resolve("smoke", "hare_tortoise", 1, None, ["method.reset_every_steps=5"])
    assert config.method_settings["reset_every_steps"] == 5 and config.method_settings["reset_every_epochs"] is None
    config = resolve("smoke", "redo", 1, None, ["method.every_steps=7"])
    assert config.method_settings["every_steps"] == 7 and config.method_settings["every_epochs"] is None


@pytest.mark.parametrize("make", ["file", "run"])
def test_out_that_is_a_file_or_inside_one_is_refused_and_left_untouched(make, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("my notes\n")
    out = target if make == "file" else target / "run"
    assert main(["run", "smoke", "--out", str(out), "--no-progress"]) == 2
    assert "is a file, not a run directory" in capsys.readouterr().err
    assert target.read_text() == "my notes\n"


def test_a_sweep_override_that_contradicts_methods_is_refused(tmp_path, capsys):
    assert main(["sweep", "smoke", "--methods", "base", "--seeds", "1", "--out", str(tmp_path / "s"),
                 "method=ema,l2"]) == 2
    assert "method=... cannot be swept as an override: list the methods in --methods (--methods ema,l2)" in \
        capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_a_folder_with_another_tools_config_json_is_no_run_in_the_report(tmp_path, capsys):
    assert main(["run", "smoke", "--out", str(tmp_path / "runs" / "ours"), "--no-progress"]) == 0
    other = tmp_path / "runs" / "wandb" / "files"
    other.mkdir(parents=True)
    (other / "config.json").write_text(json.dumps({"_wandb": {"value": 1}, "learning_rate": 0.1}))
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / "config.json").write_text("{not json")
    capsys.readouterr()
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    captured = capsys.readouterr()
    table_rows = [line for line in captured.out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert table_rows == [next(r for r in table_rows if r.startswith("| mnist1d/mlp/warm_start | warm |"))]
    assert f"skipped {other}: its config.json is not a hare-tortoise run" in captured.err
    assert "broken: its config.json is not valid JSON" in captured.err


def test_a_finished_runs_final_numbers_come_from_its_summary_not_a_cut_last_row(tmp_path, capsys):
    out = tmp_path / "runs" / "ours"
    assert main(["run", "smoke", "--out", str(out), "--no-progress"]) == 0
    final = json.loads((out / "summary.json").read_text())["final"]["test_acc"]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    capsys.readouterr()
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    assert f"| mnist1d/mlp/warm_start | warm | {100 * final:.2f} |" in capsys.readouterr().out


def test_refused_commands_on_an_existing_run_change_none_of_its_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "smoke", "--out", str(out), "--no-progress"]) == 0
    before = snapshot(out)
    for bad in (["epochs=3"], ["lr=inf"], ["epochs=2", "epochs=2"], ["--method", "head_reset", "protocol=cold"],
                ["model=cnn"], ["batch_size=1"]):
        assert main(["run", "smoke", *bad, "--out", str(out), "--no-progress"]) == 2, bad
        assert snapshot(out) == before, bad
    assert "differs in: epochs" in capsys.readouterr().err


@pytest.mark.parametrize("bug", [ValueError("an internal value went wrong"), ZeroDivisionError("division by zero")])
def test_a_bug_is_not_reported_as_bad_input_it_shows_its_traceback_and_exits_1(bug, tmp_path, capsys, monkeypatch):
    from hare_tortoise import cli

    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(cli, "resolve", broken)
    assert main(["run", "smoke", "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert "Traceback" in error and str(bug) in error and "this is a bug in hare-tortoise" in error
    assert "hare-tortoise: error:" not in error


DAMAGED_JSON = {"garbage": b"\x00\xff not json", "truncated": b'{"dataset": "mnist1d", "epo', "empty": b"",
                "a list": b"[1, 2, 3]", "a number": b"7"}


@pytest.mark.parametrize("damage", DAMAGED_JSON)
@pytest.mark.parametrize("name", ["config.json", "summary.json"])
def test_a_damaged_json_file_of_a_run_is_named_with_what_to_do_and_left_as_it_is(name, damage, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "smoke", "--out", str(out), "--no-progress"]) == 0
    (out / name).write_bytes(DAMAGED_JSON[damage])
    before = snapshot(out)
    assert main(["run", "smoke", "--out", str(out), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert f"{out / name} is damaged" in error and "Traceback" not in error
    assert ("delete it and run the same command again" if name == "summary.json" else "choose another --out") in error
    assert snapshot(out) == before


# --- the library API -------------------------------------------------------------------------------------------

def test_hare_tortoise_refuses_an_integer_parameter_at_construction():
    import torch
    from torch import nn

    from hare_tortoise import HareTortoise

    model = nn.Linear(3, 2)
    model.steps = nn.Parameter(torch.zeros(2, dtype=torch.long), requires_grad=False)
    with pytest.raises(ValueError, match="the hare's parameter steps is torch.int64: .* needs floating-point"):
        HareTortoise(model)


def test_loading_another_architectures_state_leaves_the_tortoise_whole():
    import torch
    from torch import nn

    from hare_tortoise import HareTortoise

    torch.manual_seed(0)
    ht = HareTortoise(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)))
    before = {k: v.clone() if torch.is_tensor(v) else v for k, v in ht.state_dict().items()}
    other = HareTortoise(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 5))).state_dict()  # another head
    with pytest.raises(ValueError, match=r"other shapes: tortoise.2.bias \(5,\) \(here \(3,\)\).*nothing was loaded"):
        ht.load_state_dict(other)
    assert all(torch.equal(v, before[k]) for k, v in ht.state_dict().items() if torch.is_tensor(v))
    with pytest.raises(ValueError, match="missing tortoise.0.bias"):
        ht.load_state_dict({k: v for k, v in before.items() if k != "tortoise.0.bias"})
    # held in a parent module, loaded through the parent's load_state_dict: the same check, the same whole Tortoise
    parent = nn.ModuleDict({"ht": ht})
    with pytest.raises(ValueError, match=r"other shapes: tortoise.2.bias \(5,\) \(here \(3,\)\)"):
        parent.load_state_dict({f"ht.{k}": v for k, v in other.items()})
    assert all(torch.equal(v, before[k]) for k, v in ht.state_dict().items() if torch.is_tensor(v))
    parent.load_state_dict({f"ht.{k}": v for k, v in before.items()})  # a state that fits loads


@pytest.mark.parametrize("metric", ["effective_rank", "stable_rank", "approximate_rank", "dormant_fraction",
                                    "zero_activation_fraction"])
def test_metrics_refuse_an_empty_or_nan_holding_matrix(metric):
    import torch

    from hare_tortoise import metrics

    function = getattr(metrics, metric)
    with pytest.raises(ValueError, match="is empty"):
        function(torch.zeros(0, 4))
    with pytest.raises(ValueError, match="holds NaN or infinite values"):
        function(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))


def test_two_seeds_that_differ_only_in_where_or_how_often_they_checkpoint_are_one_cell(tmp_path, capsys):
    for seed, every in ((1, "30"), (2, "0")):
        assert main(["run", "smoke", "--seed", str(seed), f"checkpoint_every_seconds={every}", "--no-progress",
                     "--out", str(tmp_path / "runs" / f"seed{seed}")]) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| mnist1d/mlp/warm_start |")]
    assert len(rows) == 1 and rows[0].endswith("| 2 ⚠ |")


def test_a_run_trained_on_one_device_type_is_not_resumed_on_another(tmp_path, capsys):
    import torch

    out = tmp_path / "run"
    assert main(["run", "smoke", "--out", str(out), "--no-progress", "checkpoint_every_seconds=0"]) == 0
    (out / "summary.json").unlink()  # as if killed after its last checkpoint
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["device_type"] == "cpu"
    state["device_type"] = "cuda"  # as if it had been trained on a GPU
    torch.save(state, out / "checkpoint.pt")
    before = snapshot(out)
    assert main(["run", "smoke", "--out", str(out), "--no-progress", "checkpoint_every_seconds=0"]) == 2
    assert "was trained on cuda and would resume on cpu" in capsys.readouterr().err
    assert snapshot(out) == before


# --- damaged run files never cost data ------------------------------------------------------------------------

def comparable(rows):
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in rows]


def killed_after(out, checkpoints: int, monkeypatch, *settings):
    """Run smoke into `out`, stopped (as by a kill) right after its `checkpoints`-th checkpoint."""
    from hare_tortoise.runs import RunStore

    original, written = RunStore.save_checkpoint, []

    def save_then_maybe_stop(self, state):
        original(self, state)
        written.append(1)
        if len(written) == checkpoints:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunStore, "save_checkpoint", save_then_maybe_stop)
    assert main(["run", "smoke", "--out", str(out), "--no-progress", *settings]) == 130
    monkeypatch.undo()


DAMAGED_CHECKPOINT = {"random bytes": lambda data: bytes(range(256)) * 40, "truncated": lambda data: data[: len(data) // 2],
                      "empty": lambda data: b""}


@pytest.mark.parametrize("damage", DAMAGED_CHECKPOINT)
def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before_and_the_run_reaches_the_same_rows(
        damage, tmp_path, monkeypatch, capsys):
    from hare_tortoise.runs import RunStore

    settings = ["checkpoint_every_seconds=0", "--method", "hare_tortoise"]
    assert main(["run", "smoke", "--out", str(tmp_path / "reference"), "--no-progress", *settings]) == 0
    out = tmp_path / "run"
    killed_after(out, 5, monkeypatch, *settings)
    latest = out / "checkpoint.pt"
    latest.write_bytes(DAMAGED_CHECKPOINT[damage](latest.read_bytes()))
    assert main(["run", "smoke", "--out", str(out), "--no-progress", *settings]) == 0
    assert "checkpoint.pt (" in capsys.readouterr().err  # said which one was damaged, and resumed from the other
    assert comparable(RunStore(out).rows()) == comparable(RunStore(tmp_path / "reference").rows())


def test_every_checkpoint_damaged_is_named_and_nothing_is_touched(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    killed_after(out, 3, monkeypatch, "checkpoint_every_seconds=0")
    for name in ("checkpoint.pt", "checkpoint.prev.pt"):
        (out / name).write_bytes(b"not a checkpoint")
    before = snapshot(out)
    assert main(["run", "smoke", "--out", str(out), "--no-progress", "checkpoint_every_seconds=0"]) == 2
    error = capsys.readouterr().err
    assert "every checkpoint is damaged: checkpoint.pt (" in error and "checkpoint.prev.pt (" in error
    assert snapshot(out) == before


def test_a_damaged_middle_row_stops_the_resume_with_its_line_and_a_cut_last_row_does_not(tmp_path, monkeypatch, capsys):
    from hare_tortoise.runs import RunStore

    out = tmp_path / "run"
    killed_after(out, 6, monkeypatch, "checkpoint_every_seconds=0")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    (out / "metrics.jsonl").write_text("\n".join(lines) + "\n" + lines[-1][:20])  # a row cut short by a kill
    assert len(RunStore(out).rows()) == len(lines)
    lines[2] = lines[2][:15] + "#garbled#"
    (out / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    before = snapshot(out)
    assert main(["run", "smoke", "--out", str(out), "--no-progress", "checkpoint_every_seconds=0"]) == 2
    assert f"metrics.jsonl line 3 of {len(lines)} is damaged" in capsys.readouterr().err
    assert snapshot(out) == before


def test_a_checkpoint_never_holds_non_finite_weights(tmp_path, capsys, monkeypatch):
    import torch

    out = tmp_path / "run"
    real_step = torch.optim.AdamW.step
    steps = []

    def poisoned(self, *args, **kwargs):  # the 5th step (epoch 4 of the warm phase, one step an epoch) leaves a NaN
        result = real_step(self, *args, **kwargs)  # in the weights, while the loss, computed before it, is finite
        steps.append(1)
        if len(steps) == 5:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("nan"))
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", poisoned)
    assert main(["run", "smoke", "--out", str(out), "--no-progress", "checkpoint_every_seconds=0"]) == 3
    assert __import__("re").search(r"holds NaN or infinite values \(in model\.backbone\.\d\.weight\), so it was not "
                                   "written", capsys.readouterr().err)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())


# --- data ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", [b"", b"garbage", "a list"])
def test_a_damaged_dataset_cache_is_made_again_with_a_word(damage, tmp_path, capsys):
    import torch

    from hare_tortoise.data.mnist1d import load_mnist1d

    first = load_mnist1d(train_size=40, test_size=20, data_dir=tmp_path)
    cache = tmp_path / "mnist1d-40-20-seed42.pt"
    if damage == "a list":
        torch.save([1, 2, 3], cache)
    else:
        cache.write_bytes(damage)
    again = load_mnist1d(train_size=40, test_size=20, data_dir=tmp_path)
    assert f"the cache {cache} is damaged" in capsys.readouterr().err
    assert torch.equal(again.x_train, first.x_train) and torch.equal(again.y_test, first.y_test)
    assert torch.equal(load_mnist1d(train_size=40, test_size=20, data_dir=tmp_path).x_train, first.x_train)
    assert capsys.readouterr().err == ""  # made again: read without a word now


# --- runs are labelled by what they trained ---------------------------------------------------------------------

def test_a_tuple_valued_key_is_swept_with_brackets_and_refused_without(tmp_path, capsys):
    from hare_tortoise import sweep

    specs = sweep.grid("smoke", ["base"], [1], ["protocol=continual", "chunks=2", "noise_schedule=[0.5,0.0],[0.2,0.2]"],
                       tmp_path / "s")
    assert [s.name for s in specs] == ["base/noise_schedule=[0.5,0.0]/seed1", "base/noise_schedule=[0.2,0.2]/seed1"]
    assert resolve("smoke", "base", 1, None, ["protocol=continual", "chunks=2", "noise_schedule=[0.5,0.0]"]) \
        .noise_schedule == (0.5, 0.0)
    assert main(["sweep", "smoke", "--methods", "base", "--seeds", "1", "--out", str(tmp_path / "t"),
                 "noise_schedule=0.5,0.0"]) == 2
    assert "noise_schedule takes several numbers: in a sweep write each of its values in brackets" in \
        capsys.readouterr().err


def test_a_checkpoint_of_another_run_in_the_directory_is_named_and_nothing_is_touched(tmp_path, monkeypatch, capsys):
    import shutil

    out, other = tmp_path / "run", tmp_path / "other"
    killed_after(out, 3, monkeypatch, "checkpoint_every_seconds=0")
    assert main(["run", "smoke", "--out", str(other), "--no-progress", "width=16"]) == 0
    shutil.copy(other / "checkpoint.pt", out / "checkpoint.pt")  # another architecture's checkpoint
    before = snapshot(out)
    assert main(["run", "smoke", "--out", str(out), "--no-progress", "checkpoint_every_seconds=0"]) == 2
    assert "its checkpoint does not fit this run (RuntimeError: Error(s) in loading state_dict" in capsys.readouterr().err
    assert snapshot(out) == before


def test_a_run_directory_of_the_other_kind_is_refused_and_left_as_it_is(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "rl-smoke", "--out", str(out), "--no-progress"]) == 0
    before = snapshot(out)
    assert main(["run", "smoke", "--out", str(out), "--no-progress"]) == 2
    assert "holds a run with a different config (differs in: " in capsys.readouterr().err
    assert snapshot(out) == before


def test_out_in_a_folder_that_cannot_be_written_is_refused_and_the_folder_left_as_it_is(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "notes.txt").write_text("kept\n")
    before = snapshot(tmp_path)
    real_mkdir = pathlib.Path.mkdir

    def mkdir(self, *args, **kwargs):  # what a folder without write permission answers (the tests may run as root)
        if locked in (self, *self.parents):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "mkdir", mkdir)
    assert main(["run", "smoke", "--out", str(locked / "run"), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert f"cannot write the run directory {locked / 'run'} (Permission denied)" in error and "Traceback" not in error
    assert snapshot(tmp_path) == before


def _cut(raw: bytes) -> bytes:
    return raw[: len(raw) // 2]


@pytest.mark.parametrize("extracted", [True, False])
@pytest.mark.parametrize("damage", [_cut, lambda raw: b"not a pickle at all"])
def test_a_damaged_member_of_a_cifar_archive_is_named_before_a_run_directory_is_written(
        extracted, damage, tmp_path, capsys):
    import numpy as np

    import cifar_writer

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, 60)
    files = cifar_writer.members("cifar10", images[:50], labels[:50], images[50:], labels[50:])
    files["data_batch_3"] = damage(files["data_batch_3"])
    data = tmp_path / "data"
    data.mkdir()
    cifar_writer.write_archive(data, "cifar10", files, extracted=extracted)
    before = snapshot(data)
    argv = ["run", "smoke", "dataset=cifar10", "model=cnn", f"data_dir={data}", "--out", str(tmp_path / "run"),
            "--no-progress"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "data_batch_3 is not a valid CIFAR batch" in error and "Traceback" not in error, error
    assert snapshot(data) == before and not (tmp_path / "run").exists()
