"""Sweeps: the grid and its names, idempotence, a failing run that neither stops the others nor escapes its
retry, the Ray backend writing the same runs as the local one, and the CLI."""

import json
import pathlib
import shutil

import pytest

from hare_tortoise import sweep
from hare_tortoise.cli import main
from hare_tortoise.config import ConfigError
from hare_tortoise.runs import RunStore


def test_grid_names_each_run_after_the_coordinates_that_vary(tmp_path):
    specs = sweep.grid("smoke", ["base", "ema"], [1, 2], ["lr=0.01,0.02", "epochs=3"], tmp_path)
    assert [s.name for s in specs] == [f"{m}/lr={lr}/seed{seed}" for m in ("base", "ema")
                                       for lr in ("0.01", "0.02") for seed in (1, 2)]
    first = specs[0]
    assert first.overrides == ("lr=0.01", "epochs=3")  # a fixed override is applied but not part of the name
    assert first.out == str(tmp_path.resolve() / "base/lr=0.01/seed1")
    assert first.command()[-2:] == ["lr=0.01", "epochs=3"] and "--seed" in first.command()


def test_grid_over_games_and_seed_ranges(tmp_path):
    games = sweep.parse_games("all", "minatar-dqn")
    assert games == ["asterix", "breakout", "freeway", "seaquest", "space_invaders"]
    assert sweep.parse_games("Pong, MsPacman,up_n_down", "atari100k-drq") == ["pong", "ms_pacman", "up_n_down"]
    specs = sweep.grid("minatar-dqn", ["base", "hare_tortoise"], sweep.parse_seeds("1-3"), [], tmp_path, games)
    assert len(specs) == 5 * 2 * 3 and specs[0].name == "asterix/base/seed1" and specs[0].game == "asterix"
    assert sweep.parse_seeds("1-3,10") == [1, 2, 3, 10]


@pytest.mark.parametrize("bad", [
    lambda p: sweep.grid("smoke", ["nonsense"], [1], [], p),
    lambda p: sweep.grid("smoke", ["base"], [1], ["no_such_key=1,2"], p),
    lambda p: sweep.grid("smoke", ["base"], [1], ["lr"], p),
    lambda p: sweep.parse_seeds("one"),
    lambda p: sweep.parse_seeds("1,1"),
    lambda p: sweep.parse_games("pong", "smoke"),
    lambda p: sweep.grid("minatar-dqn", ["base"], [1], [], p, ["pong"]),
])
def test_bad_input_stops_the_sweep_before_anything_runs(bad, tmp_path):
    with pytest.raises(ConfigError):
        bad(tmp_path)
    assert not any(tmp_path.iterdir())


def final_rows(root: pathlib.Path) -> dict[str, dict]:
    """Each finished run's final row without its timings (elapsed, seconds), keyed by its path under root."""
    rows = {}
    for summary in sorted(root.rglob("summary.json")):
        final = RunStore(summary.parent).rows()[-1]
        timings = {k for k in final if k == "elapsed" or "second" in k}
        rows[str(summary.parent.relative_to(root))] = {k: v for k, v in final.items() if k not in timings}
    return rows


def test_a_failing_run_is_retried_once_and_reported_while_the_others_finish(tmp_path):
    # lr=1e30 makes the loss NaN: the run exits 3 (diverged) on both attempts
    outcome = sweep.sweep("smoke", ["base"], [1], ["lr=0.01,1e30"], tmp_path, workers=2)
    assert [s.name for s in outcome.finished] == ["base/lr=0.01/seed1"]
    [(spec, code, tail)] = outcome.failed
    assert spec.name == "base/lr=1e30/seed1" and code == 3 and "became nan" in tail
    log = pathlib.Path(sweep.log_path(tmp_path, spec)).read_text()
    assert log.count("$ ") == 2  # tried, then retried once
    assert "FAILED base/lr=1e30/seed1 (exit 3" in sweep.summary_text(outcome, tmp_path)


def test_a_second_sweep_runs_nothing_and_the_ray_backend_writes_the_same_runs(tmp_path):
    local, again = tmp_path / "local", None
    first = sweep.sweep("smoke", ["base", "hare_tortoise"], [1], [], local, workers=2)
    assert len(first.finished) == 2 and not first.failed
    stamps = {p: p.stat().st_mtime_ns for p in local.rglob("*") if p.is_file()}
    again = sweep.sweep("smoke", ["base", "hare_tortoise"], [1], [], local, workers=2)
    assert not again.finished and len(again.skipped) == 2
    assert {p: p.stat().st_mtime_ns for p in local.rglob("*") if p.is_file()} == stamps

    pytest.importorskip("ray")
    remote = tmp_path / "ray"
    outcome = sweep.sweep("smoke", ["base", "hare_tortoise"], [1], [], remote, backend="ray", workers=2)
    assert len(outcome.finished) == 2 and not outcome.failed
    assert final_rows(remote) == final_rows(local) and len(final_rows(local)) == 2
    configs = [json.loads((root / "hare_tortoise/seed1/config.json").read_text()) for root in (local, remote)]
    assert configs[0] == configs[1]


def test_the_slurm_backend_submits_each_run_as_a_job_and_writes_the_same_runs(tmp_path, capsys):
    local = tmp_path / "local"
    sweep.sweep("smoke", ["base", "hare_tortoise"], [1], [], local, workers=2)
    submitted = tmp_path / "slurm"
    # the CLI's path, with submitit's local executor in place of sbatch
    assert main(["sweep", "smoke", "--methods", "base,hare_tortoise", "--seeds", "1", "--out", str(submitted),
                 "--backend", "slurm-local", "--time-minutes", "30"]) == 0
    assert "2 runs finished" in capsys.readouterr().out
    assert final_rows(submitted) == final_rows(local) and len(final_rows(local)) == 2
    jobs = list((submitted / "slurm").glob("*_submitted.pkl"))
    assert len(jobs) == 2  # one job per run, its pickled call kept by submitit
    if shutil.which("sbatch") is None:  # without SLURM the real backend says so, before anything is written
        assert main(["sweep", "smoke", "--out", str(tmp_path / "none"), "--backend", "slurm"]) == 2
        assert "sbatch, which is not on this machine" in capsys.readouterr().err
        assert not (tmp_path / "none").exists()


def test_the_sweep_command(tmp_path, capsys):
    assert main(["sweep", "smoke", "--methods", "base,ema", "--seeds", "1-2", "--out", str(tmp_path), "--dry-run",
                 "lr=0.01,0.02"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 8 and listed[0].split() == ["base/lr=0.01/seed1", "to", "run"]
    assert main(["sweep", "smoke", "--methods", "base", "--seeds", "1", "--out", str(tmp_path / "s"),
                 "--workers", "1", "epochs=1"]) == 0
    assert "1 runs finished, 0 were finished before, 0 failed" in capsys.readouterr().out
    assert main(["sweep", "smoke", "--methods", "bogus", "--out", str(tmp_path / "t")]) == 2
    assert "unknown method 'bogus'" in capsys.readouterr().err
    assert main(["sweep", "smoke", "--out", str(tmp_path / "t"), "--workers", "0"]) == 2


def test_the_report_draws_a_heat_map_of_a_grid_with_each_cells_mean_over_seeds(tmp_path):
    import dataclasses

    from conftest import smoke
    from hare_tortoise.report import read_runs, report
    from hare_tortoise.report.grid import grid_means, grids
    from hare_tortoise.train import train

    finals = {}
    for momentum, every, lr, seeds in ((0.9, 1, 0.01, (1, 2)), (0.9, 2, 0.01, (1,)), (0.99, 1, 0.01, (1,)),
                                       (0.9, 1, 0.03, (1,))):
        for seed in seeds:
            config = dataclasses.replace(smoke("hare_tortoise", seed=seed, lr=lr),
                                         method_settings={"momentum": momentum, "reset_every_epochs": every})
            out = tmp_path / f"m{momentum}-k{every}-lr{lr}-s{seed}"
            train(config, out, progress=False)
            finals.setdefault((every, momentum, lr), []).append(100 * RunStore(out).summary()["final"]["test_acc"])
    runs = read_runs([tmp_path])
    [(key, (axes, members))] = grids(runs).items()
    assert key == ("mnist1d/mlp/warm_start", "hare_tortoise")
    assert axes == ["lr", "method.momentum", "method.reset_every_epochs"]
    means, counts, values = grid_means(members, axes)
    assert values == [[0.01, 0.03], [0.9, 0.99], [1, 2]] and counts.sum() == 5
    for (every, momentum, lr), accuracies in finals.items():
        index = (values[0].index(lr), values[1].index(momentum), values[2].index(every))
        assert means[index] == pytest.approx(sum(accuracies) / len(accuracies)) and counts[index] == len(accuracies)
    assert counts[1, 1, 1] == 0 and str(means[1, 1, 1]) == "nan"  # a cell no run filled stays empty
    _, figures = report([tmp_path], tmp_path / "report")
    grid = tmp_path / "report" / "mnist1d_mlp_warm_start-hare_tortoise-grid.png"
    assert grid in figures and grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
