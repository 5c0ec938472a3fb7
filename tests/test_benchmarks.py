"""The benchmark runner works and records what it measured (the figures themselves are checked by `make bench`,
never here: timings are not tests)."""

import json
import pathlib
import subprocess
import sys

import pytest

RUNNER = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.fixture
def benchmarks_importable(monkeypatch):
    """The benchmark scripts importable as modules for one test (they import each other by name)."""
    monkeypatch.syspath_prepend(str(RUNNER.parent))


def test_a_benchmark_writes_its_figures_with_targets(tmp_path):
    out = tmp_path / "latest.json"
    result = subprocess.run([sys.executable, str(RUNNER), "protocol", "--out", str(out)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    recorded = json.loads(out.read_text())
    [entry] = recorded["figures"]
    assert set(entry) >= {"name", "value", "target", "unit", "met"} and entry["name"].startswith("protocol/")
    assert entry["met"] == (entry["value"] <= entry["target"]) and recorded["machine"]["cpus"] >= 1
    assert "targets met" in result.stdout


def test_a_part_of_the_suite_is_recorded_beside_the_whole_suites_figures_not_over_them():
    sys.path.insert(0, str(RUNNER.parent))
    try:
        import run
    finally:
        sys.path.remove(str(RUNNER.parent))
    results = RUNNER.parent / "results"
    assert run.default_out([]) == run.default_out(list(run.SUITES)) == results / "latest.json"
    assert run.default_out(["engine", "tortoise"]) == results / "tortoise+engine.json"


def test_an_unknown_benchmark_is_refused(tmp_path):
    result = subprocess.run([sys.executable, str(RUNNER), "nonsense", "--out", str(tmp_path / "x.json")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "available: tortoise" in result.stderr and not (tmp_path / "x.json").exists()


def test_the_preset_cost_is_the_measured_time_per_image_times_the_preset_workload():
    from hare_tortoise import presets

    script = RUNNER.parent / "preset_cost.py"
    result = subprocess.run([sys.executable, str(script), "--batch", "2", "--steps", "1"], capture_output=True,
                            text=True, timeout=600, cwd=RUNNER.parent)
    assert result.returncode == 0, result.stderr
    rows = {cells[1]: cells[2:-1] for line in result.stdout.splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.split("|")]] if cells[1] not in ("preset", "---")}
    assert sorted(rows) == presets.paper_scale() and len(rows) == 15
    model, images, per_image, hours = rows["cifar10-warm"]
    # warm start: 10% of CIFAR-10 for 1000 epochs, then all of it for 111 (docs/METHODS.md)
    assert model == "resnet18" and int(images.replace(",", "")) == 5_000 * 1_000 + 50_000 * 111
    # the time per image is printed to 4 decimals, the hours to 1: each within half its last digit
    rounding = 10_550_000 * 0.00005 / 3600 + 0.05
    assert float(hours.replace(",", "")) == pytest.approx(10_550_000 * float(per_image) / 3600, abs=rounding + 1e-9)


def test_the_gpu_epoch_benchmark_times_each_variant_epoch_by_epoch(tmp_path):
    """On the CPU and a tiny random archive (CI has no GPU): every variant's epochs are timed, the steady figure is
    the middle epoch, and the archive written is the size asked for."""
    script, out = RUNNER.parent / "gpu_epoch.py", tmp_path / "gpu.json"
    result = subprocess.run([sys.executable, str(script), "--device", "cpu", "--no-compile", "--epochs", "3",
                             "--random", "--random-size", "16", "8", "--out", str(out)], capture_output=True, text=True,
                            timeout=600, cwd=RUNNER.parent)
    assert result.returncode == 0, result.stderr
    recorded = json.loads(out.read_text())
    assert [(r["bf16"], r["compile"]) for r in recorded["results"]] == [(True, False), (False, False)]
    for r in recorded["results"]:
        assert r["train_images"] == 16 and len(r["epoch_seconds"]) == 3 and min(r["epoch_seconds"]) > 0
        assert r["steady_epoch_seconds"] == r["epoch_seconds"][1]
        assert r["images_per_second"] == pytest.approx(16 / r["epoch_seconds"][1])
        assert all(u is None or 0 <= u <= 100 for u in r["utilisation"])
    assert "random CIFAR-10-format archive of 16 + 8 images" in recorded["data"] and "| False | False |" in result.stdout
    refused = subprocess.run([sys.executable, str(script), "--epochs", "2"], capture_output=True, text=True,
                             timeout=60, cwd=RUNNER.parent)
    assert refused.returncode == 2 and "--epochs must be at least 3" in refused.stderr


@pytest.mark.usefixtures("benchmarks_importable")
def test_step_pieces_times_every_piece_and_counts_the_runs_work_and_clipping():
    import step_pieces
    from hare_tortoise import train as training
    from hare_tortoise.presets import resolve

    # warm start: 20 epochs (B / 0.1) of 20 noisy samples, one batch each; then 2 epochs of 200 samples, 7 batches
    config = resolve("smoke", "hare_tortoise", 1, None, ["eval_every=1"])
    dataset = training.prepare_dataset(config)
    from hare_tortoise.flat import FlatGradients

    clip, metrics = FlatGradients.clip, training.plasticity_metrics
    pieces, norms = step_pieces.per_run(config, dataset)
    assert FlatGradients.clip is clip and training.plasticity_metrics is metrics  # put back
    assert len(norms) == 20 * 1 + 2 * 7 and min(norms) > 0  # one gradient norm per step
    assert {label: count for label, (_, count) in pieces.items()} == {
        "epoch shuffles": 22, "metric rows": 22, "evaluation": 22, "plasticity metrics": 2, "checkpoints": 2}
    assert all(value > 0 for value in step_pieces.per_step(config, dataset).values())
    assert set(step_pieces.bare_loops(config, dataset, steps=2)) == {"one random batch", "the run's batches"}


@pytest.mark.usefixtures("benchmarks_importable")
def test_the_engine_benchmark_trains_each_bare_loop_as_many_steps_after_every_engine_epoch(tmp_path):
    import engine
    from hare_tortoise import train as training
    from hare_tortoise.presets import resolve
    from hare_tortoise.runs import RunStore

    config = resolve("mnist1d-cold", "hare_tortoise", 1, None, ["epochs=3", "eval_every=3"])
    dataset = training.prepare_dataset(config)
    calls = []
    bare = {name: (lambda n, name=name: calls.append((name, n))) for name in ("a", "b")}
    trainer = engine._Interleaved(config, RunStore(tmp_path), dataset, progress=False, bare=bare)
    trainer.run()
    per_epoch = -(-len(dataset.y_train) // config.batch_size)
    # one call of each loop per epoch, with that epoch's steps, their places alternating
    assert calls == [("b", per_epoch), ("a", per_epoch), ("a", per_epoch), ("b", per_epoch),
                     ("b", per_epoch), ("a", per_epoch)]
    assert trainer.bare_steps == trainer.step == 3 * per_epoch and set(trainer.bare_seconds) == {"a", "b"}

    [speeds], steps = engine.rates(config, dataset, rounds=1)
    assert set(speeds) == {"engine", "bare", "bare_torch_clipping", "bare_engine_clipping"}
    assert steps == 3 * per_epoch and min(speeds.values()) > 0
    assert engine.median_ratio([{"a": 2.0, "b": 4.0}, {"a": 3.0, "b": 3.0}, {"a": 9.0, "b": 1.0}], "a", "b") == 1


@pytest.mark.usefixtures("benchmarks_importable")
def test_the_compile_benchmark_trains_the_eager_and_compiled_copies_in_turns(monkeypatch, tmp_path):
    import torch_compile
    from hare_tortoise.train import Trainer

    order = []
    monkeypatch.setattr(Trainer, "_epoch", lambda self, index, epoch, optimizer: order.append(
        (epoch, self.config.compile)) or {"train_loss": 1.0})
    measured = torch_compile.compare("mnist1d-cold", 3, "cpu", str(tmp_path))
    assert order == [(0, False), (0, True), (1, True), (1, False), (2, False), (2, True)]
    assert [len(s) for s in measured["seconds"].values()] == [3, 3] and measured["config"].epochs == 3


def test_the_compile_benchmark_times_both_copies_and_refuses_a_warm_start_preset(tmp_path):
    script = RUNNER.parent / "torch_compile.py"
    result = subprocess.run([sys.executable, str(script), "--epochs", "3", "--cache-dir", str(tmp_path / "cache")],
                            capture_output=True, text=True, timeout=600, cwd=RUNNER.parent)
    assert result.returncode == 0, result.stderr
    assert "| eager |" in result.stdout and "| compiled |" in result.stdout
    assert "compiled / eager steady epoch:" in result.stdout and any((tmp_path / "cache").iterdir())
    refused = subprocess.run([sys.executable, str(script), "--preset", "mnist1d-warm"], capture_output=True,
                             text=True, timeout=60, cwd=RUNNER.parent)
    assert refused.returncode == 2 and "pick a cold-start one" in refused.stderr


@pytest.mark.usefixtures("benchmarks_importable")
def test_the_sequence_evaluation_benchmark_times_every_own_task_test_and_matrix_row():
    import sequence_eval
    from hare_tortoise import train as training
    from hare_tortoise.presets import resolve

    config = resolve("smoke", "hare_tortoise", 1, None, ["protocol=permuted_inputs", "tasks=3", "epochs=2"])
    evaluate, matrix_row = training.Trainer._evaluate, training.Trainer._matrix_row
    share, calls, total = sequence_eval.evaluation_share(config)
    assert training.Trainer._evaluate is evaluate and training.Trainer._matrix_row is matrix_row  # put back
    assert calls == {"_evaluate": 3 * 2, "_matrix_row": 3}  # smoke evaluates every epoch; a row per task
    assert 0 < share and total > 0


@pytest.mark.usefixtures("benchmarks_importable")
def test_the_atari_benchmark_runs_both_pipelines_on_the_same_game():
    import atari_env

    rates = atari_env.speeds("pong", steps=20, rounds=1)
    assert set(rates) == {"ours", "gymnasium"} and all(rate > 0 for rate in rates.values())


def test_the_stacked_seeds_benchmark_times_a_learning_group_against_a_learning_lone_seed(benchmarks_importable,
                                                                                       monkeypatch):
    import stacked_seeds

    monkeypatch.setattr(stacked_seeds, "STEPS", 5)
    monkeypatch.setattr(stacked_seeds, "WARM_UP", 40)
    group = stacked_seeds.agent(stacked_seeds.SEEDS)
    assert len(group.lanes) == 5 and group.steps == 40 and group.updates == 0
    group.run(3)
    assert group.updates == 3  # learning from the step after the warm-up, as the timed runs do
    figures = stacked_seeds.run()
    assert [f["name"] for f in figures][0] == "rl/stacked_5_seeds_vs_one_1_thread"
    assert all(f["value"] > 0 and f["target"] == 2.0 for f in figures)
