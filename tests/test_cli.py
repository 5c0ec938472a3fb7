"""The command line, driven as a user would (Mammoth style; every method on the smoke presets: test_method_loops.py):
listings, reports, and every kind of bad input exiting non-zero with its message and no traceback."""

import json
import pathlib
import subprocess
import sys

import pytest

from hare_tortoise.cli import main
from hare_tortoise.runs import RunStore


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


def test_report_prints_the_table_and_writes_plots(runs, capsys, tmp_path):
    for method in ("base", "hare_tortoise"):
        if not (runs / method / "summary.json").exists():
            main(["run", "smoke", "--method", method, "--out", str(runs / method), "--no-progress"])
    main(["run", "smoke", "--out", str(runs / "cold"), "--no-progress", "protocol=cold", "ema_shadow=0.9"])
    capsys.readouterr()
    assert main(["report", str(runs), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| mnist1d/mlp/warm_start | hare_tortoise |" in printed and "| mnist1d/mlp/warm_start | warm |" in printed
    assert "| mnist1d/mlp/cold | cold EMA (shadow) |" in printed
    # the smoke H&T resets after epochs 0, 2, ... of each phase: 10 + 1 resets over 20 + 2 epochs of 1 and 7 steps
    assert "resets 11, updates 34" in next(line for line in printed.splitlines()
                                            if line.startswith("| mnist1d/mlp/warm_start | hare_tortoise |"))
    pngs = sorted(tmp_path.glob("*.png"))  # per setting: test, train-vs-test, final bars, plasticity
    assert len(pngs) == 8 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "⚠ fewer than 5 finished seeds" in printed and "test acc [t]" in printed and "P(> base) [boot]" in printed and "report.csv" in {p.name for p in tmp_path.iterdir()}
    assert "![mnist1d_mlp_warm_start-test]" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("what, expected", [("presets", "mnist1d-warm"), ("methods", "hare_tortoise"),
                                            ("datasets", "tiny_imagenet"), ("models", "vit_tiny"),
                                            ("protocols", "shuffled_labels")])
def test_list(what, expected, capsys):
    assert main(["list", what]) == 0
    assert expected in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["run", "nope"], "unknown preset 'nope'; available: atari100k-drq, cifar10-cold"),
    (["run", "smoke", "--method", "nope"], "unknown method 'nope'; available: base"),
    (["run", "smoke", "bogus=1"], "unknown key 'bogus'; valid keys"),
    (["run", "smoke", "epochs=many"], "epochs must be an integer, got 'many'"),
    (["run", "smoke", "lr=-1"], "lr must be > 0"),
    (["run", "smoke", "--method", "shrink_perturb", "method.alpha=2"], r"alpha must be in \(0, 1\]"),
    (["run", "smoke", "dataset=cifar10", "model=resnet18", "data_dir={tmp}"],
     "none of cifar-10-batches-py, cifar-10-python.tar.gz found in: "),
    (["run", "smoke", "--resume", "--out", "{tmp}/none"], "--resume: .* holds no run to resume"),
    (["report", "{tmp}/empty"], "does not exist"),
    (["run", "cifar100-warm", "--method", "crelu", "data_dir={tmp}", "--out", "{tmp}/run"], "none of cifar-100-python"),
])
def test_bad_input_exits_2_with_a_message_and_no_traceback(argv, message, capsys, tmp_path):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "run" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "run")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("hare-tortoise: error: ") and "Traceback" not in error
    assert __import__("re").search(message, error), error
    assert not (tmp_path / "run").exists()  # a run that could not start leaves no directory behind


def test_divergence_exits_3_and_keeps_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "smoke", "--out", str(out), "--no-progress", "lr=1e30", "grad_clip=none",
                 "checkpoint_every_seconds=0"]) == 3
    error = capsys.readouterr().err
    assert "the training loss became nan" in error and "Traceback" not in error
    assert (out / "config.json").exists() and (out / "checkpoint.pt").exists()


def test_a_different_config_in_an_existing_run_directory(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["run", "smoke", "--out", out, "--no-progress"]) == 0
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert main(["run", "smoke", "--out", out, "--no-progress", "epochs=3"]) == 2
    assert "differs in: epochs" in capsys.readouterr().err
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 2


def test_a_run_made_before_a_config_field_existed_continues_at_that_fields_default(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "smoke", "--out", str(out), "--no-progress"]) == 0
    (out / "summary.json").unlink()  # as if killed before its end: the next call resumes it
    stored = json.loads((out / "config.json").read_text())
    del stored["bf16"]  # the file of a run made before `bf16` was added (at True: what ran before it existed)
    (out / "config.json").write_text(json.dumps(stored))
    assert main(["run", "smoke", "--out", str(out), "--no-progress"]) == 0
    assert main(["run", "smoke", "--out", str(out), "--no-progress", "bf16=false"]) == 2
    assert "differs in: bf16" in capsys.readouterr().err


def test_the_installed_command_and_python_m():
    version = subprocess.run([sys.executable, "-m", "hare_tortoise", "list", "methods"], capture_output=True, text=True)
    assert version.returncode == 0 and "shrink_perturb_noise" in version.stdout
    script = pathlib.Path(sys.executable).with_name("hare-tortoise")
    helped = subprocess.run([str(script), "run", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "method.NAME=VALUE" in helped.stdout
    bad = subprocess.run([str(script), "data", "download", "imagenet", "--data-dir", "/tmp"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'imagenet'" in bad.stderr


def test_show_prints_every_key_with_its_value_and_its_help(capsys):
    assert main(["show", "mnist1d-warm", "--method", "hare_tortoise", "lr=0.01"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "lr = 0.01  # AdamW learning rate (after the warm-up)" in lines
    assert "method.momentum = 0.995  # m" in lines and "method.reset_every_epochs = 5  # k; None when resetting by steps" in lines
    # a comment carried on over lines is one line of help; a section heading belongs to no key
    assert next(line for line in lines if line.startswith("checkpoint_every_seconds")).endswith("results do not depend on it")
    assert next(line for line in lines if line.startswith("augment")).endswith("images only")
    assert main(["show", "rl-sequence-smoke", "--method", "base"]) == 0
    assert "games = breakout,freeway  # continual RL" in capsys.readouterr().out


def test_every_key_of_every_config_and_method_has_its_help():
    import dataclasses

    from hare_tortoise import methods
    from hare_tortoise.config import Config
    from hare_tortoise.config_files import field_help
    from hare_tortoise.rl.agents import AGENTS
    from hare_tortoise.rl.config import RLConfig

    for cls in [Config, RLConfig, *(a.settings for a in AGENTS.values()), *map(methods.get, methods.available())]:
        helps = field_help(cls)
        assert {f.name for f in dataclasses.fields(cls) if f.init} <= set(helps), cls.__name__


def test_a_settings_file_sets_a_run_and_the_command_line_wins(tmp_path, capsys):
    settings = tmp_path / "run.toml"
    settings.write_text('preset = "smoke"\nmethod = "hare_tortoise"\nseed = 4\nlr = 0.02\n\n'
                        '[method_settings]\nmomentum = 0.95\nreset_every_epochs = 1\n')
    out = tmp_path / "run"
    assert main(["run", "--config", str(settings), "--out", str(out), "--no-progress", "lr=0.03"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["method"], config["seed"], config["lr"]) == ("hare_tortoise", 4, 0.03)
    assert config["method_settings"].items() >= {"momentum": 0.95, "reset_every_epochs": 1}.items()
    capsys.readouterr()
    for text, message in (('preset = "smoke"\nlr = [', "is not valid TOML"), ('preset = "smoke"\nno_such_key = 1\n',
                          "unknown key 'no_such_key'"), ("lr = 0.1\n", "give a preset")):
        settings.write_text(text)
        assert main(["run", "--config", str(settings), "--out", str(tmp_path / "bad")]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_from_repeats_a_run_with_changes_into_a_new_directory(tmp_path, capsys):
    first = tmp_path / "first"
    assert main(["run", "smoke", "--method", "hare_tortoise", "--seed", "2", "--out", str(first), "--no-progress",
                 "lr=0.02", "method.momentum=0.9"]) == 0
    again = tmp_path / "again"
    assert main(["run", "--from", str(first), "--out", str(again), "--no-progress", "weight_decay=0.01"]) == 0
    old, new = (json.loads((d / "config.json").read_text()) for d in (first, again))
    assert new == {**old, "weight_decay": 0.01}
    other = tmp_path / "other"
    assert main(["run", "--from", str(first), "--method", "ema", "--out", str(other), "--no-progress"]) == 0
    changed = json.loads((other / "config.json").read_text())
    assert changed["method"] == "ema" and changed["method_settings"] == {} and changed["lr"] == 0.02
    capsys.readouterr()
    for argv, message in ((["--from", str(first)], "give --out"), (["smoke", "--from", str(first), "--out", "x"],
                          "a preset (smoke) cannot be given too"), (["--from", str(tmp_path / "none"), "--out", "x"],
                          "no config.json there")):
        assert main(["run", *argv]) == 2 and message in capsys.readouterr().err


def test_load_runs_gives_a_dataframe_of_every_row_of_every_run_with_its_config(runs):
    from hare_tortoise.report import load_runs

    for method in ("base", "hare_tortoise"):  # the module's runs (the report test makes them; either order)
        if not (runs / method / "summary.json").exists():
            main(["run", "smoke", "--method", method, "--out", str(runs / method), "--no-progress"])
    frame = load_runs(runs / "base", runs / "hare_tortoise")
    rows = {m: RunStore(runs / m).rows() for m in ("base", "hare_tortoise")}
    assert len(frame) == sum(map(len, rows.values()))
    ht = frame[frame["method"] == "hare_tortoise"]
    assert list(ht["test_acc"].dropna()) == [r["test_acc"] for r in rows["hare_tortoise"] if "test_acc" in r]
    stored = json.loads((runs / "hare_tortoise" / "config.json").read_text())
    assert (ht["method.momentum"] == stored["method_settings"]["momentum"]).all()
    # a row's own `lr` (the warm-up's) keeps its name; the config's is `config.lr`
    assert (ht["config.lr"] == stored["lr"]).all() and list(ht["lr"]) == [r["lr"] for r in rows["hare_tortoise"]]
    assert list(frame.columns[:5]) == ["run", "setting", "label", "variant", "finished"] and frame["finished"].all()
    assert frame[frame["method"] == "base"]["method.momentum"].isna().all()  # base has no such setting
