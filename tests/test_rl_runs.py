"""RL runs through the real CLI and run directories: presets, resume, report."""

import pytest
import torch

from conftest import stop_after_first_checkpoint
from hare_tortoise.cli import main
from hare_tortoise.presets import resolve
from hare_tortoise.rl.config import RLConfig
from hare_tortoise.rl.loop import train_rl
from hare_tortoise.runs import RunStore


@pytest.mark.parametrize("method", ["base", "hare_tortoise", "ema", "shrink_perturb", "redo"])
def test_rl_smoke_runs_every_kind_of_method(method, tmp_path, capsys):
    out = tmp_path / method
    assert main(["run", "rl-smoke", "--method", method, "--out", str(out), "--no-progress"]) == 0
    assert "evaluation return" in capsys.readouterr().out
    store = RunStore(out)
    rows = store.rows()
    assert [r["step"] for r in rows] == [100, 200, 300, 300] and rows[-1]["final"]
    assert len(rows[-1]["eval_returns"]) == 2 and store.config(RLConfig).method == method
    assert rows[-2]["updates"] == 200  # one update per step after the 100-step warm-up
    total = sum(r["seconds"] for r in rows[:-1])
    assert abs(rows[-1]["steps_per_second"] - 300 / total) < 1e-6 * rows[-1]["steps_per_second"]
    assert 0 < rows[-1]["update_share"] < 1


def test_resume_continues_from_the_last_checkpoint_without_repeating_rows(tmp_path, monkeypatch):
    config = resolve("rl-smoke", "hare_tortoise", 1, None, ["steps=400", "checkpoint_every=200"])
    resume = stop_after_first_checkpoint(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_rl(config, tmp_path, progress=False)
    resume()
    store = RunStore(tmp_path)
    assert [r["step"] for r in store.rows()] == [100, 200] and store.load_checkpoint()["steps"] == 200
    store.append({"step": 300, "note": "written after the checkpoint by a run that was then killed"})
    summary = train_rl(config, tmp_path, progress=False)
    assert [r["step"] for r in store.rows()] == [100, 200, 300, 400, 400]
    assert all("note" not in r for r in store.rows())
    # the method's counters are part of its checkpoint: a reset every 100 updates, counted across the resume
    assert [r["method/resets"] for r in store.rows()] == [0, 1, 2, 3, 3]
    assert summary["final"]["step"] == 400 and store.load_checkpoint()["updates"] == 300


def test_env_picks_the_game_and_is_refused_elsewhere(capsys, tmp_path):
    assert resolve("minatar-dqn", None, None, None, [], env="seaquest").game == "seaquest"
    # the issue's own spelling, the score tables' names: --env Pong, --env BankHeist, --env SpaceInvaders
    assert resolve("atari100k-drq", "hare_tortoise", 1, None, [], env="Pong").game == "pong"
    assert resolve("atari100k-drq", None, None, None, [], env="BankHeist").game == "bank_heist"
    assert resolve("minatar-dqn", None, None, None, [], env="SpaceInvaders").game == "space_invaders"
    assert main(["run", "smoke", "--env", "breakout", "--out", str(tmp_path / "x")]) == 2
    assert "--env picks the game of an RL preset" in capsys.readouterr().err
    assert main(["run", "rl-smoke", "--env", "pong", "--out", str(tmp_path / "y")]) == 2
    assert "is not a minatar game" in capsys.readouterr().err
    assert main(["run", "rl-smoke", "agent.gamma=high", "--out", str(tmp_path / "z")]) == 2
    assert "agent.gamma must be a number" in capsys.readouterr().err


def test_report_has_an_rl_table_and_learning_curves(tmp_path, capsys):
    for method in ("base", "hare_tortoise"):
        main(["run", "rl-smoke", "--method", method, "--out", str(tmp_path / "runs" / method), "--no-progress"])
    capsys.readouterr()
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "| minatar/breakout/dqn | hare_tortoise |" in printed and "| minatar/breakout/dqn | base |" in printed
    # what each method did, from its counters: rl-smoke's H&T resets every 100 of its 200 updates
    assert "method actions (mean per run)" in printed
    hare_tortoise_row = next(line for line in printed.splitlines() if line.startswith("| minatar/breakout/dqn | hare_tortoise |"))
    assert "| resets 2, updates 200 |" in hare_tortoise_row
    assert (tmp_path / "report" / "minatar_breakout_dqn-returns.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "report" / "minatar-final-returns.png").read_bytes()[:4] == b"\x89PNG"


def fake_rl_run(directory, game, method, seed, score, env="atari100k", agent="drq_eps"):
    """A finished single-game RL run directory (Atari-100k unless told) whose final evaluation return is `score`."""
    store = RunStore(directory)
    store.start(RLConfig(env=env, game=game, agent=agent, method=method, seed=seed))
    final = {"step": 100_000, "final": True, "eval_return": score, "eval_return_online": score, "eval_returns": [score],
             "eval_returns_online": [score], "steps_per_second": 50.0, "update_share": 0.9}
    store.append(final)
    store.finish({"final": final})


def test_report_averages_each_methods_probability_of_improvement_over_the_games(tmp_path, capsys):
    from hare_tortoise.report import read_runs
    from hare_tortoise.report.rl import across_games_cells

    returns = {  # game -> method -> returns of seeds 1, 2, 3
        "breakout": {"base": [1, 2, 3], "hare_tortoise": [5, 6, 7], "reset": [0, 0, 0]},
        "asterix": {"base": [5, 6, 7], "hare_tortoise": [1, 2, 3]},
        "seaquest": {"base": [1, 3, 5], "hare_tortoise": [2, 4, 5]},
        "freeway": {"hare_tortoise": [9, 9, 9]},  # no base runs to compare with: left out
    }
    for game, methods_ in returns.items():
        for method, scores in methods_.items():
            for seed, score in enumerate(scores, 1):
                fake_rl_run(tmp_path / game / method / str(seed), game, method, seed, float(score), "minatar", "dqn")
    [cell] = across_games_cells(read_runs([tmp_path]))  # reset has one game with base: no average
    assert (cell.setting, cell.label, cell.seeds) == ("minatar/3 games: asterix, breakout, seaquest/dqn",
                                                      "hare_tortoise", 3)
    # Breakout: H&T wins all 9 pairs; Asterix none; Seaquest 5 and a tie (5 = 5) of 9
    chance = cell.columns["P(> base), mean over games"]
    assert chance.mean == pytest.approx((1 + 0 + 5.5 / 9) / 3) and 1 / 3 <= chance.low < chance.mean < chance.high <= 2 / 3
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    assert "| minatar/3 games: asterix, breakout, seaquest/dqn | hare_tortoise | 0.54 [" in capsys.readouterr().out


def test_report_scores_atari_runs_against_human_and_published_scores(tmp_path, capsys):
    from hare_tortoise.rl import scores

    random, human = scores.reference_scores()["Pong"]
    breakout_random, breakout_human = scores.reference_scores()["Breakout"]
    for seed in (1, 2):
        fake_rl_run(tmp_path / f"pong-base-{seed}", "pong", "base", seed, random)       # HNS 0
        fake_rl_run(tmp_path / f"pong-ht-{seed}", "pong", "hare_tortoise", seed, human)  # HNS 1
        fake_rl_run(tmp_path / f"breakout-base-{seed}", "breakout", "base", seed, breakout_human)
        fake_rl_run(tmp_path / f"breakout-ht-{seed}", "breakout", "hare_tortoise", seed, breakout_human)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    # below every published run
    assert "| Pong | base | -20.70 [-20.70, -20.70] | 0.000 [0.000, 0.000] | 0.0 [0.0, 0.0] | 2 ⚠ |" in printed
    published = scores.published_scores("DrQ(eps)")["Pong"]
    share = 100 * ((published < human).sum() + 0.5 * (published == human).sum()) / len(published)
    assert (f"| Pong | hare_tortoise | 14.60 [14.60, 14.60] | 1.000 [1.000, 1.000] | {share:.1f} [{share:.1f}, "
            f"{share:.1f}] | 2 ⚠ |") in printed
    # base: HNS 0 on Pong and 1 on Breakout -> mean 0.5, optimality gap 0.5; H&T: 1 and 1 -> mean 1, gap 0
    assert "| base | 2 | 2 ⚠ | 0.500 [0.500, 0.500] | 0.500 [0.500, 0.500] | 0.500 [0.500, 0.500] | 0.500 [0.500, 0.500] |" in printed
    assert "| hare_tortoise | 2 | 2 ⚠ | 1.000 [1.000, 1.000] |" in printed
    assert "| IQM [strat] |" in printed and "[strat]: 95% stratified-bootstrap interval" in printed
    assert "| atari100k/pong/drq_eps | hare_tortoise | 14.60 [14.60, 14.60] | 14.60 [14.60, 14.60] | 35.30 [35.30, 35.30]" in printed
    assert (tmp_path / "report" / "atari100k-performance-profile.png").read_bytes()[:4] == b"\x89PNG"
    assert scores.reference_name("up_n_down") == "UpNDown" and scores.reference_name("bank_heist") == "BankHeist"


def test_evaluation_during_training_scores_both_networks_and_leaves_training_unchanged(tmp_path):
    plain = resolve("rl-smoke", "hare_tortoise", 1, None, [])
    evaluated = resolve("rl-smoke", "hare_tortoise", 1, None, ["eval_every=100", "eval_every_episodes=2"])
    train_rl(plain, tmp_path / "plain", progress=False)
    train_rl(evaluated, tmp_path / "evaluated", progress=False)
    plain_rows, rows = RunStore(tmp_path / "plain").rows(), RunStore(tmp_path / "evaluated").rows()
    assert [("eval_return" in r, len(r.get("eval_returns_online", []))) for r in rows[:-1]] == [(True, 2), (True, 2),
                                                                                                 (False, 0)]
    for a, b in zip(plain_rows[:-1], rows[:-1]):
        assert (a["loss"], a["recent_return"], a["episodes"]) == (b["loss"], b["recent_return"], b["episodes"])
    assert plain_rows[-1]["eval_returns"] == rows[-1]["eval_returns"]
    with pytest.raises(Exception, match="multiple of log_every"):
        resolve("rl-smoke", None, 1, None, ["eval_every=150"])


def test_the_final_evaluation_counts_its_episodes_on_a_bar(tmp_path, monkeypatch):
    """An Atari-100k evaluation (2 networks x 100 whole games) can take most of an hour: a bar counts its episodes."""
    from hare_tortoise.rl import loop

    bars = []

    class Recorder(loop.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "disable": True})
            self.asked, self.ticks, self.postfixes = kwargs, 0, []
            bars.append(self)

        def update(self, n=1):
            self.ticks += n

        def set_postfix_str(self, text="", refresh=True):
            self.postfixes.append(text)

    monkeypatch.setattr(loop, "tqdm", Recorder)
    config = resolve("rl-smoke", "hare_tortoise", 1, None, ["eval_episodes=3"])
    train_rl(config, tmp_path, progress=True)
    [evaluation] = [bar for bar in bars if bar.asked.get("desc") == "evaluation"]
    final = RunStore(tmp_path).rows()[-1]
    assert evaluation.asked["total"] == evaluation.ticks == 6 and evaluation.asked["disable"] is None
    # the online network's episodes first, then the Tortoise's, each shown as it ends
    assert evaluation.postfixes == [f"last return {r:g}" for r in final["eval_returns_online"] + final["eval_returns"]]


def test_the_agent_runs_on_the_device_asked_for(tmp_path, capsys):
    if torch.cuda.is_available():
        assert main(["run", "rl-smoke", "--method", "hare_tortoise", "--out", str(tmp_path / "gpu"), "--no-progress",
                     "device=cuda"]) == 0
        assert RunStore(tmp_path / "gpu").summary() is not None
    else:
        assert main(["run", "rl-smoke", "--out", str(tmp_path / "gpu"), "device=cuda"]) == 2
        assert "no CUDA device is available" in capsys.readouterr().err and not (tmp_path / "gpu").exists()
    assert main(["run", "rl-smoke", "--out", str(tmp_path / "cpu"), "--no-progress", "device=cpu"]) == 0
