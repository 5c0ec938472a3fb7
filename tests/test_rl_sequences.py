"""Continual RL on MinAtar: a game sequence's config, frames padded to one shape, a replay cut at every switch, the
phases and evaluations of a run, its resume in the middle of the sequence, and the return matrix of the report."""

import json
import re

import numpy as np
import pytest
import torch

from conftest import stop_after_first_checkpoint
from hare_tortoise import metrics
from hare_tortoise.config import ConfigError
from hare_tortoise.presets import resolve
from hare_tortoise.rl.envs import MinAtar
from hare_tortoise.rl.loop import train_rl
from hare_tortoise.rl.replay import FrameReplay
from hare_tortoise.runs import RunStore


def sequence(*overrides, method="base"):
    return resolve("rl-sequence-smoke", method, 1, None, list(overrides))


@pytest.mark.parametrize("overrides, message", [
    (["env=atari100k"], "games= (a game sequence) needs env=minatar"),
    (["games=breakout"], "give two or more of"),
    (["games=breakout,pong"], "give two or more of"),
    (["game_steps=None"], "games= needs game_steps=N"),
    (["steps=350"], "steps=350 must be a multiple of 100"),
    (["game_steps=150", "steps=300"], "game_steps=150 must be a multiple of 100"),
    (["games=", "game_steps=100"], "game_steps applies to a game sequence"),
])
def test_a_sequence_that_cannot_run_as_asked_is_refused_with_the_fix(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        sequence(*overrides).validate()


def test_the_sequence_starts_with_its_first_game_and_names_games_as_the_suite_does():
    config = sequence("games=SpaceInvaders,asterix", "game=breakout").validate()
    assert config.games == ("space_invaders", "asterix") and config.game == "space_invaders"
    assert [config.phase_game(p) for p in range(4)] == ["space_invaders", "asterix"] * 2


def test_frames_are_padded_with_zero_channels_after_the_games_own():
    own, padded = MinAtar("breakout", seed=3), MinAtar("breakout", seed=3, channels=10)
    first, wide = own.reset(), padded.reset()
    assert padded.frame_shape == (10, 10, 10) and wide.shape == (10, 10, 10)
    for action in (1, 3, 3, 0):
        assert torch.equal(wide[:4], first) and not wide[4:].any()
        first, wide = own.step(action)[0], padded.step(action)[0]
    with pytest.raises(ValueError, match="seaquest frames have 10 channels; channels=4 cannot hold them"):
        MinAtar("seaquest", channels=4)


def test_no_sampled_transition_spans_a_cut():
    replay = FrameReplay(100, (1, 2, 2), stack=2, n_step=3)
    for stream in (1, 2, 3):  # three games, one after the other, with no terminal between them
        for _ in range(15):
            replay.add(torch.full((1, 2, 2), stream, dtype=torch.uint8), 0, 1.0, False)
        replay.cut()
    batch = replay.sample(2000, torch.Generator().manual_seed(0))
    obs, following = batch["obs"].amax((1, 2, 3, 4)), batch["next_obs"].amax((1, 2, 3, 4))
    assert torch.equal(obs, following) and set(obs.tolist()) == {1, 2, 3}
    # the stack of an observation holds no frame of the game before it
    assert all(set(stack.unique().tolist()) <= {0, int(top)} for stack, top in zip(batch["obs"], obs))


def test_a_run_switches_games_at_each_phase_and_tests_the_agent_on_every_game(tmp_path, monkeypatch):
    from hare_tortoise.rl import loop

    played = []
    original = loop.RLRun.phase_env
    monkeypatch.setattr(loop.RLRun, "phase_env", lambda self, phase: played.append(phase) or original(self, phase))
    summary = train_rl(sequence(method="hare_tortoise").validate(), tmp_path, progress=False)
    rows = RunStore(tmp_path).rows()
    assert played == [1, 2, 3]  # phase 0's environment is built with the agent
    ends = [r for r in rows if r.get("phase_end")]
    assert [r["step"] for r in ends] == [100, 200, 300, 400] and ends[-1] is rows[-1] and rows[-1]["final"]
    assert all(set(r["game_returns"]) == set(r["game_returns_online"]) == {"breakout", "freeway"} for r in ends)
    assert summary["final"]["game"] == "freeway"  # the last phase's game, which the final evaluation plays


def test_a_sequence_resumed_after_a_switch_goes_on_in_the_next_game(tmp_path, monkeypatch):
    config = sequence("checkpoint_every=100", method="hare_tortoise").validate()
    resume = stop_after_first_checkpoint(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train_rl(config, tmp_path, progress=False)
    resume()
    from hare_tortoise.rl.loop import RLRun

    run = RLRun(config, RunStore(tmp_path), progress=False)
    run.restore(RunStore(tmp_path).load_checkpoint())
    assert run.agent.steps == 100 and run.agent.env.game == "freeway"  # written after the switch to phase 1
    assert run.agent.env.frame_shape == (7, 10, 10)  # padded to Freeway's channels
    train_rl(config, tmp_path, progress=False)
    ends = [r for r in RunStore(tmp_path).rows() if r.get("phase_end")]
    assert [(r["phase"], r["game"]) for r in ends] == [(0, "breakout"), (1, "freeway"), (2, "breakout"),
                                                       (3, "freeway")]


def _run(tmp_path, name, config, rows):
    directory = tmp_path / name
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "summary.json").write_text(json.dumps({"final": rows[-1]}))


def test_the_report_builds_the_return_matrix_over_stints_divided_by_fresh_agents(tmp_path):
    from hare_tortoise.report import read_runs, report
    from hare_tortoise.report.rl_sequences import fresh_returns, game_sequence_cells, return_matrix

    base = json.loads(sequence().validate().to_json())
    # 2 games x 2 cycles; after stint i, the returns on each game
    after = [{"breakout": 4.0, "freeway": 1.0}, {"breakout": 2.0, "freeway": 6.0},
             {"breakout": 8.0, "freeway": 3.0}, {"breakout": 4.0, "freeway": 9.0}]
    rows = [{"step": 100 * (i + 1), "phase_end": True, "phase": i, "game_returns": g} for i, g in enumerate(after)]
    rows[-1].update(final=True, eval_return=9.0)
    _run(tmp_path, "sequence", base, rows)
    for game, value in (("breakout", 8.0), ("freeway", 3.0)):  # fresh agents: one stint of 100 steps on a game
        single = {**base, "games": [], "game_steps": None, "game": game, "steps": 100}
        _run(tmp_path, f"fresh-{game}", single, [{"step": 100, "final": True, "eval_return": value}])
    runs = read_runs([tmp_path])
    [run] = [r for r in runs if r.config["games"]]
    assert fresh_returns(runs, run) == {"breakout": 8.0, "freeway": 3.0}
    raw = return_matrix(run)
    assert raw[0, :2].tolist() == [4.0, 1.0] and np.isnan(raw[0, 2:]).all()  # the next game too, no further
    assert raw[3].tolist() == [4.0, 9.0, 4.0, 9.0]  # stints 0 and 2 are Breakout, 1 and 3 Freeway
    normalised = return_matrix(run, fresh={"breakout": 8.0, "freeway": 3.0})
    assert normalised[3].tolist() == [0.5, 3.0, 0.5, 3.0] and np.diagonal(normalised).tolist() == [0.5, 2.0, 1.0, 3.0]
    [cell] = game_sequence_cells(runs)
    assert cell.setting == "minatar/breakout>freeway/dqn (÷ fresh)"
    m = torch.from_numpy(normalised)
    assert cell.columns["average return"].mean == pytest.approx(1.75)
    assert cell.columns["backward transfer"].mean == pytest.approx(metrics.backward_transfer(m))
    assert cell.columns["forgetting"].mean == pytest.approx(metrics.forgetting(m))
    assert cell.columns["last-cycle own-game return"].mean == pytest.approx(2.0)  # stints 2 and 3: 1.0 and 3.0
    text, figures = report([tmp_path], tmp_path / "report")
    assert "Game sequences: the return matrix" in text
    assert any(p.name == "minatar_breakout-freeway_dqn-return-matrix.png" for p in figures)


def test_the_sequence_table_compares_each_method_with_base_seed_by_seed(tmp_path):
    from hare_tortoise.report.rl_sequences import game_sequence_cells

    # raw returns (no fresh agents); after each of the 4 stints the returns on (breakout, freeway)
    def rows(last_row):
        after = [(1.0, 1.0), (1.0, 1.0), (1.0, 1.0), last_row]
        ends = [{"step": 100 * (i + 1), "phase_end": True, "phase": i,
                 "game_returns": dict(zip(("breakout", "freeway"), g))} for i, g in enumerate(after)]
        return ends + [{"step": 400, "final": True, "eval_return": 0.0}]

    last = {("base", 1): (2.0, 4.0), ("base", 2): (4.0, 4.0), ("hare_tortoise", 1): (6.0, 8.0),
            ("hare_tortoise", 2): (2.0, 4.0), ("hare_tortoise", 3): (9.0, 9.0)}  # seed 3 has no base to pair with
    for (method, seed), returns in last.items():
        config = json.loads(sequence(method=method).validate().to_json())
        _run(tmp_path, f"{method}/seed{seed}", {**config, "seed": seed}, rows(returns))
    from hare_tortoise.report import read_runs

    cells = {c.label: c for c in game_sequence_cells(read_runs([tmp_path])) if not c.label.endswith("(online)")}
    assert "Δ average vs base" not in cells["base"].columns
    columns = cells["hare_tortoise"].columns
    # average return: the last row's mean; paired over seeds 1 and 2: (7 - 3 + 3 - 4) / 2
    assert columns["Δ average vs base"].mean == pytest.approx(1.5) and columns["Δ average vs base"].n == 2
    # the last cycle's own-game return: stints 2 and 3, (1 + last freeway) / 2: H&T 4.5, 2.5 against base 2.5, 2.5
    assert columns["Δ own-game vs base"].mean == pytest.approx(1.0)
    # averages H&T 7, 3, 9 against base 3, 4: of the 6 pairs it wins 4, ties one (3 = 3, half) and loses one
    assert columns["P(average > base)"].mean == pytest.approx(4.5 / 6)
