"""Every registered method in every loop of the library: it acts as its name says (its counters show it, at the
scheduled moments), or it is refused with exit 2 before a run directory exists. New methods are picked up from the
registry."""

import json

import pytest
import torch

from hare_tortoise import methods
from hare_tortoise.cli import main
from hare_tortoise.methods import Loop, MethodRefused
from hare_tortoise.presets import resolve
from hare_tortoise.rl.dqn import DQN, DQNConfig
from hare_tortoise.rl.loop import make_env, train_rl
from hare_tortoise.runs import RunStore

# each loop's test preset, which schedules every method to act; rl_sequence: 4 phases (games) of 1 epoch of 100 steps
LOOPS = {"supervised": "smoke", "rl": "rl-smoke", "rl_sequence": "rl-sequence-smoke"}
# the only (method, loop) pairs that may not act, each with the reason its refusal gives
REFUSED = {("layernorm", "rl"): "layernorm found no BatchNorm layer in Classifier to replace",
           ("layernorm", "rl_sequence"): "layernorm found no BatchNorm layer in Classifier to replace",
           ("dash", "rl"): "dash shrinks before each new chunk of data; this RL run (minatar/breakout, 300 agent "
                           "steps) has one phase",
           ("dash", "rl_sequence"): "this RL run (minatar/breakout+freeway, 400 agent steps) has no fixed data per "
                                    "phase"}


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("name", methods.available())
def test_every_method_acts_in_every_loop_and_its_rows_say_how_often(name, loop, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", LOOPS[loop], "--method", name, "--out", str(out), "--no-progress"])
    if (name, loop) in REFUSED:
        assert code == 2 and REFUSED[name, loop] in capsys.readouterr().err and not out.exists()
        return
    assert code == 0, capsys.readouterr().err
    store = RunStore(out)
    rows = store.rows()
    assert store.summary() is not None and store.config(type(resolve(LOOPS[loop], name, None, None, []))).method == name
    if loop == "supervised":
        assert f"{out}: test accuracy" in capsys.readouterr().out and len(rows) == 22
        if name in ("hare_tortoise", "ema"):  # the reported network is the tortoise, not the trained one
            assert any(r["test_acc"] != r["test_acc_hare"] for r in rows if "test_acc" in r)
    if loop == "rl_sequence":  # the evaluation on both games at the end of every phase
        ends = [r for r in rows if r.get("phase_end")]
        assert [(r["step"], r["phase"], r["game"]) for r in ends] == [
            (100 * (p + 1), p, ("breakout", "freeway")[p % 2]) for p in range(4)]
        assert all(set(r["game_returns"]) == {"breakout", "freeway"} for r in ends)
    counters = methods.get(name).counters
    for row in rows:
        assert sorted(k for k in row if k.startswith("method/")) == sorted(f"method/{c}" for c in counters)
    # the first counter counts the method's actions: it acted, and the count never goes back
    if counters:
        first = [row[f"method/{counters[0]}"] for row in rows]
        assert first[-1] > 0 and first == sorted(first)
    # and it acted exactly at the moments its schedule names, row by row
    method = methods.create(name, **store.config(type(resolve(LOOPS[loop], name, None, None, []))).method_settings)
    for counter in counters:
        for row in rows:
            expected = scheduled(method, counter, row, rows, loop)
            if expected is not None:
                assert row[f"method/{counter}"] == expected, (counter, row)


def scheduled(method, counter: str, row: dict, rows: list[dict], loop: str) -> int | None:
    """How often `method` should have done `counter` by the end of `row`, worked out from its settings and the
    loop's meaning of step, epoch and phase (methods/base.py), independently of the method's code; None where the
    count depends on the data (recycled units) or on the model (replaced layers: checked to be constant)."""
    if counter == "recycled_units":
        return None
    if counter.startswith(("replaced_", "inserted_")):
        return rows[0][f"method/{counter}"]
    steps = row["updates"] if loop.startswith("rl") else row["step"]
    phase = min(row["step"] // 100, 3) if loop == "rl_sequence" else row.get("phase")  # the phase begun by then
    if counter in ("updates", "perturbed_steps", "projections"):  # every optimizer step
        return steps
    if getattr(method, "at_step", None) is not None:  # once, after that many steps
        return int(steps >= method.at_step)
    if getattr(method, "at_phase", None) is not None:  # once, at the start of that phase
        return int(phase >= method.at_phase)
    every_steps = getattr(method, "every_steps", None) or getattr(method, "reset_every_steps", None)
    if every_steps is not None:
        return steps // every_steps
    if loop == "rl":  # one phase; an epoch ends every epoch_steps agent steps
        done = [range(row["step"] // 100)]
    elif loop == "rl_sequence":  # a phase per game, of one epoch; the switch after each phase but the last
        done = [range(1)] * (row["step"] // 100) + [range(0)] * (phase + 1 - row["step"] // 100)
    else:  # the epochs finished so far, phase by phase
        lengths = {r["phase"]: r["epoch"] + 1 for r in rows}
        done = [range(lengths[p]) for p in range(row["phase"])] + [range(row["epoch"] + 1)]
    if getattr(method, "reset_every_epochs", None) is not None:  # H&T
        offset = 0 if method.first_reset == "after_first_epoch" else 1
        return sum((e + offset) % method.reset_every_epochs == 0 for epochs in done for e in epochs)
    if getattr(method, "every_epochs", None) is not None:  # ReDo
        return sum((e + 1) % method.every_epochs == 0 for epochs in done for e in epochs)
    return len(done) - 1  # between phases: once at the start of every phase after the first


def test_between_phase_methods_are_refused_in_a_one_phase_rl_run_before_anything_is_written(tmp_path, capsys):
    for name in ("head_reset", "full_reset", "shrink_perturb", "shrink_perturb_noise"):
        out = tmp_path / name
        code = main(["run", "rl-smoke", "--method", name, "method.every_steps=None", "--out", str(out)])
        error = capsys.readouterr().err
        assert code == 2 and not out.exists()
        assert f"{name} acts between phases; this RL run (minatar/breakout, 300 agent steps) has one phase: " \
               "set method.every_steps=N (N <= 200)" in error


def test_a_schedule_that_never_fires_is_refused_with_the_largest_value_that_would(tmp_path, capsys):
    cases = [("rl-smoke", "head_reset", ["method.every_steps=20000"], "at most 200"),
             ("rl-smoke", "hare_tortoise", ["method.reset_every_steps=None", "method.reset_every_epochs=4",
                                           "method.first_reset=after_k_epochs"], "first acts after epoch 4"),
             ("smoke", "head_reset", ["protocol=cold"], "protocol 'cold' has one phase"),
             ("smoke", "redo", ["method.every_epochs=None", "method.every_steps=100000"], "makes 34")]
    for preset, name, overrides, message in cases:
        out = tmp_path / name
        assert main(["run", preset, "--method", name, *overrides, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err and not out.exists()


def test_in_your_own_loop_check_loop_refuses_with_a_method_refused_error():
    with pytest.raises(MethodRefused, match="full_reset acts between phases; my loop has one phase"):
        methods.create("full_reset").check_loop(Loop("my loop", phase_epochs=(10,), steps=100))
    methods.create("full_reset").check_loop(Loop("my loop", phase_epochs=(10, 10), steps=100))  # accepted


def test_hare_tortoise_resets_the_hare_at_the_end_of_every_rl_epoch(tmp_path, monkeypatch):
    """Epoch-scheduled H&T in RL: epochs are `epoch_steps` agent steps; at the end of each the Hare is the Tortoise."""
    config = resolve("rl-smoke", "hare_tortoise", 1, None, ["method.reset_every_steps=None", "method.reset_every_epochs=1"])
    seen = []
    original = methods.get("hare_tortoise").on_epoch_end

    def watch(self, epoch, optimizer):
        original(self, epoch, optimizer)
        hare, tortoise = self.model.state_dict(), self.pair.tortoise.state_dict()
        seen.append((epoch, self.counts["resets"], all(torch.equal(hare[k], tortoise[k]) for k in hare)))

    monkeypatch.setattr(methods.get("hare_tortoise"), "on_epoch_end", watch)
    train_rl(config, tmp_path, progress=False)
    assert seen == [(0, 1, True), (1, 2, True), (2, 3, True)]
    assert [r["method/resets"] for r in RunStore(tmp_path).rows()] == [1, 2, 3, 3]
    assert RunStore(tmp_path).rows()[-1]["method/updates"] == 200


def agent_for(name, **settings):
    """A DQN agent of the rl-smoke preset under method `name`, checked against its loop as train_rl does."""
    config = resolve("rl-smoke", name, 1, None, [f"method.{k}={v}" for k, v in settings.items()])
    method = methods.create(config.method, **config.method_settings)
    agent_config = config.agent_config()
    method.check_loop(config.loop(agent_config))
    return DQN(make_env(config, 1), method, agent_config, 1)


def test_head_reset_every_n_updates_in_rl_restores_the_initial_head_at_exactly_that_update():
    agent = agent_for("head_reset", every_steps=30)
    initial = {k: v.clone() for k, v in agent.online.head.state_dict().items()}
    agent.run(100 + 29)  # 29 updates after the warm-up of 100 steps
    assert not all(torch.equal(v, initial[k]) for k, v in agent.online.head.state_dict().items())
    agent.run(1)  # the 30th update
    assert all(torch.equal(v, initial[k]) for k, v in agent.online.head.state_dict().items())
    assert agent.method.counts == {"resets": 1}


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_l2_in_rl_is_decoupled_weight_decay_as_in_adamw(optimizer):
    """With zero gradients Adam and RMSprop move nothing: what moves is the decay alone, theta <- (1 - lr wd) theta."""
    agent = agent_for("l2", weight_decay=0.5)
    agent = DQN(agent.env, agent.method, DQNConfig(optimizer=optimizer, lr=0.01), 1)
    before = [p.detach().clone() for p in agent.online.parameters()]
    for p in agent.online.parameters():
        p.grad = torch.zeros_like(p)
    agent.optimizer.step()
    for p, b in zip(agent.online.parameters(), before):
        torch.testing.assert_close(p.detach(), (1 - 0.01 * 0.5) * b)


def test_self_distill_in_rl_regresses_the_q_values_onto_the_ema_teachers():
    agent = agent_for("self_distill", weight=0.5)
    agent.run(120)
    obs = torch.rand(8, *agent.env.frame_shape)
    q = agent.online(obs)
    teacher = agent.method.pair.tortoise(obs)
    term = agent.method.loss_terms(obs, q, None)["self_distill"]
    torch.testing.assert_close(term, 0.5 * ((q - teacher) ** 2).mean())
    assert term > 0


def test_an_rl_run_killed_between_its_final_row_and_its_summary_finishes_on_resume(tmp_path, monkeypatch):
    config = resolve("rl-smoke", "base", 1, None, [])
    monkeypatch.setattr(RunStore, "finish", lambda self, summary: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        train_rl(config, tmp_path, progress=False)
    assert RunStore(tmp_path).rows()[-1]["final"] and RunStore(tmp_path).summary() is None
    monkeypatch.undo()
    summary = train_rl(config, tmp_path, progress=False)
    rows = RunStore(tmp_path).rows()
    assert [r["step"] for r in rows] == [100, 200, 300, 300] and sum(bool(r.get("final")) for r in rows) == 1
    assert summary["final"]["step"] == 300
    assert json.loads((tmp_path / "summary.json").read_text())["final"]["eval_returns"] == rows[-1]["eval_returns"]
