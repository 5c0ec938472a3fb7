"""Statistics over seeds on known inputs, and the report's cells built from them."""

import math
import pathlib

import numpy as np
import pytest

from hare_tortoise.report import Run, averaging_and_resets, largest_fall, markdown, supervised_cells, write_csv
from hare_tortoise.rl import scores
from hare_tortoise.stats import (
    average_probability_of_improvement,
    bootstrap_means,
    improvement_probability,
    mean_interval,
    paired_difference,
    probability_of_improvement,
    ratio_of_means,
    t_means,
)


def test_the_interval_of_equal_values_is_that_value_and_one_seed_has_no_interval():
    assert mean_interval([2.5, 2.5, 2.5]) == mean_interval([2.5, 2.5, 2.5], seed=7)
    single = mean_interval([4.0])
    assert (single.mean, single.low, single.high, single.n) == (4.0, 4.0, 4.0, 1) and single.format() == "4.00"
    assert mean_interval([]).n == 0 and mean_interval([]).format() == "-"
    assert mean_interval([1.0, math.nan, 3.0]).n == 2  # a diverged seed is not averaged in


def test_the_default_interval_is_students_t_and_the_bootstrap_one_matches_it_at_large_n():
    values = np.random.default_rng(0).normal(10.0, 2.0, size=40)
    t = mean_interval(values)
    half_width = 2.0227 * values.std(ddof=1) / math.sqrt(len(values))  # t(0.975, 39)
    assert t.method == "t" and t.mean == pytest.approx(values.mean())
    assert (t.low, t.high) == pytest.approx((values.mean() - half_width, values.mean() + half_width), rel=1e-4)
    bootstrap = mean_interval(values, method="bootstrap")
    assert bootstrap.method == "bootstrap" and bootstrap.low < values.mean() < bootstrap.high
    assert (bootstrap.high - bootstrap.low) / 2 == pytest.approx(half_width, rel=0.15)
    assert mean_interval(values, "bootstrap") == mean_interval(values, "bootstrap")  # seeded: the same report twice
    three = mean_interval([1.0, 2.0, 4.0])  # t(0.975, 2) = 4.3027, s = 1.5275
    assert (three.low, three.high) == pytest.approx((7 / 3 - 4.3027 * 1.5275 / math.sqrt(3),
                                                     7 / 3 + 4.3027 * 1.5275 / math.sqrt(3)), rel=1e-3)


@pytest.mark.parametrize("n", [3, 5])
def test_the_default_95_interval_covers_the_true_mean_95_percent_of_the_time_and_the_bootstrap_at_n3_does_not(n):
    """4,000 synthetic studies of n seeds each, values N(1, 2^2): the share of studies whose interval holds 1."""
    samples = np.random.default_rng(n).normal(1.0, 2.0, size=(n, 4000))  # a column per study
    _, low, high = t_means(samples)
    assert 0.93 <= ((low <= 1.0) & (1.0 <= high)).mean() <= 0.97
    if n == 3:
        _, low, high = bootstrap_means(samples, reps=1000)
        assert ((low <= 1.0) & (1.0 <= high)).mean() < 0.85  # near [min, max] of 3 values: about 75%


def test_the_probability_of_improvement_counts_wins_over_all_pairs_of_runs():
    assert improvement_probability([3.0, 4.0], [1.0, 2.0]) == 1.0
    assert improvement_probability([1.0, 3.0], [2.0]) == 0.5 and improvement_probability([1.0], [1.0]) == 0.5
    assert improvement_probability([2.0, 2.0, 5.0], [1.0, 2.0]) == pytest.approx((1 + 0.5) * 2 / 6 + 2 / 6)
    certain = probability_of_improvement({1: 3.0, 2: 4.0, 3: 5.0}, {1: 0.0, 2: 1.0, 3: 2.0})
    assert (certain.mean, certain.low, certain.high, certain.method) == (1.0, 1.0, 1.0, "bootstrap")
    mixed = probability_of_improvement({1: 1.0, 2: 3.0, 3: 5.0}, {1: 2.0, 2: 4.0, 3: 0.0})
    assert mixed.mean == pytest.approx(6 / 9) and 0.0 <= mixed.low < 6 / 9 < mixed.high <= 1.0  # 1+2+3 wins of 9
    assert probability_of_improvement({}, {1: 1.0}).n == 0


def test_the_probability_of_improvement_across_tasks_resamples_runs_within_each_task():
    treated, control = {1: 1.0, 2: 3.0, 3: 5.0}, {1: 2.0, 2: 4.0, 3: 0.0}
    assert average_probability_of_improvement([(treated, control)]) == probability_of_improvement(treated, control)
    win, loss = ({1: 3.0, 2: 4.0}, {1: 0.0, 2: 1.0}), ({1: 0.0, 2: 1.0}, {1: 3.0, 2: 4.0})
    # within each task every resample still wins (or loses) every pair: the mean is 1/2 in every replicate
    both = average_probability_of_improvement([win, loss])
    assert (both.mean, both.low, both.high, both.n) == (0.5, 0.5, 0.5, 2)
    mixed = average_probability_of_improvement([win, (treated, control)])
    assert mixed.mean == pytest.approx((1 + 6 / 9) / 2) and 0.5 <= mixed.low < mixed.mean < mixed.high <= 1.0
    assert average_probability_of_improvement([win, ({}, {1: 1.0})]).n == 0


def test_bootstrap_means_works_column_by_column():
    values = np.array([[1.0, 5.0], [1.0, 7.0], [1.0, 9.0]])
    mean, low, high = bootstrap_means(values)
    assert mean.tolist() == [1.0, 7.0] and low[0] == high[0] == 1.0 and 5.0 <= low[1] < 7.0 < high[1] <= 9.0


def test_paired_differences_remove_what_the_seeds_share():
    control = {1: 80.0, 2: 85.0, 3: 90.0, 4: 70.0}
    treated = {1: 81.0, 2: 86.0, 3: 91.0, 5: 99.0}  # seed 4 and 5 have no partner
    paired = paired_difference(treated, control)
    assert (paired.mean, paired.low, paired.high, paired.n) == (1.0, 1.0, 1.0, 3)
    unpaired = mean_interval(treated.values()).low - mean_interval(control.values()).high
    assert unpaired < 0  # the unpaired intervals overlap; the paired one is exactly +1


def test_the_ratio_of_means_resamples_seeds_jointly():
    gain, gap = {1: 1.0, 2: 2.0, 3: 3.0, 9: 5.0}, {1: 2.0, 2: 4.0, 3: 6.0}  # seed 9 has no partner
    half = ratio_of_means(gain, gap)  # each seed closes half of its gap, so every resample gives exactly 0.5
    assert (half.mean, half.low, half.high, half.n) == (0.5, 0.5, 0.5, 3)
    spread = ratio_of_means({1: 1.0, 2: 3.0, 3: 2.0}, {1: 4.0, 2: 4.0, 3: 4.0})
    assert spread.mean == pytest.approx(0.5) and 0.25 <= spread.low < 0.5 < spread.high <= 0.75
    assert ratio_of_means({1: 1.0}, {1: 0.0}).n == 0 and ratio_of_means({}, {}).n == 0


def test_the_performance_profile_counts_runs_above_each_threshold():
    matrix = np.array([[0.0, 1.0], [2.0, 3.0]])  # 2 runs x 2 games
    assert scores.performance_profile(matrix, np.array([-1.0, 0.5, 2.5, 3.0])).tolist() == [1.0, 0.75, 0.25, 0.0]
    low, high = scores.stratified_bootstrap(matrix, lambda m: scores.performance_profile(m, np.array([0.5, 2.5])), 200)
    assert low.shape == high.shape == (2,) and np.all(low <= high) and low[0] >= 0.5 and high[0] == 1.0


def fake(setting: dict, method: str, seed: int, test_acc: float, shadow: float | None = None) -> Run:
    config = {"dataset": "mnist1d", "model": "mlp", "augment": False, "memory": "accumulate", "method": method,
              "seed": seed, **setting}
    final = {"test_acc": test_acc, "test_acc_hare": test_acc - 0.01, "train_acc": 1.0, "phase_end": True}
    if shadow is not None:
        final["test_acc_shadow"] = shadow
    return Run(pathlib.Path("."), config, [final], True)


def test_report_cells_give_paired_differences_to_base_and_the_warm_start_gap(tmp_path):
    warm, cold = {"protocol": "warm_start"}, {"protocol": "cold"}
    runs = [fake(cold, "base", s, 0.90 + 0.01 * s, shadow=0.95) for s in (1, 2, 3)]
    runs += [fake(warm, "base", s, 0.85 + 0.01 * s) for s in (1, 2, 3)]
    runs += [fake(warm, "hare_tortoise", s, 0.88 + 0.01 * s) for s in (1, 2)]
    cells = {(c.setting, c.label): c for c in supervised_cells(runs)}
    ht, base = cells["mnist1d/mlp/warm_start", "hare_tortoise"], cells["mnist1d/mlp/warm_start", "warm"]
    assert ht.columns["Δ vs base"].mean == pytest.approx(3.0) and ht.columns["Δ vs base"].n == 2
    assert ht.columns["Δ vs base"].low == pytest.approx(3.0) and ht.columns["Δ vs base"].high == pytest.approx(3.0)
    assert base.columns["warm-start gap"].mean == pytest.approx(5.0) and base.columns["Δ vs base"].n == 0
    assert cells["mnist1d/mlp/cold", "cold EMA (shadow)"].columns["test acc"].mean == pytest.approx(95.0)
    text = markdown(list(cells.values()))
    # 89 and 90: mean 89.5 +- t(0.975, 1) = 12.706 times 0.7071 / sqrt(2)
    assert "| mnist1d/mlp/warm_start | hare_tortoise | 89.50 [83.15, 95.85] |" in text
    assert "| setting | method | test acc [t] |" in text and "P(> base) [boot]" in text and "[t]: 95% Student-t" in text
    assert "| 2 ⚠ |" in text and "fewer than 5 finished seeds" in text and "warm_start hare_tortoise" in text
    write_csv(list(cells.values()), tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == "setting,method,quantity,mean,ci_low,ci_high,interval,seeds"
    assert any(line.startswith("mnist1d/mlp/warm_start,hare_tortoise,Δ vs base,3.0") and
               line.endswith(",95% Student-t,2") for line in lines)
    assert any(",P(> base)," in line and line.endswith(",95% percentile-bootstrap,2") for line in lines)


def test_runs_that_differ_in_a_setting_form_separate_cells():
    from hare_tortoise.report import mark_variants

    warm = {"protocol": "warm_start"}
    runs = [fake(warm, "hare_tortoise", s, 0.8) for s in (1, 2)] + [fake(warm, "hare_tortoise", s, 0.9) for s in (1, 2)]
    for run in runs[:2]:
        run.config["method_settings"] = {"momentum": 0.99}
    for run in runs[2:]:
        run.config["method_settings"] = {"momentum": 0.999}
    runs.append(fake(warm, "base", 1, 0.7))
    mark_variants(runs)
    labels = {(c.label, c.seeds) for c in supervised_cells(runs)}
    assert labels == {("hare_tortoise [method.momentum=0.99]", 2), ("hare_tortoise [method.momentum=0.999]", 2),
                      ("warm", 1)}


def test_an_rl_runs_unstored_agent_settings_read_as_the_agents_defaults():
    from hare_tortoise.report import mark_variants
    from hare_tortoise.rl.dqn import DQNConfig

    def run(seed, **agent):
        config = {"env": "minatar", "game": "breakout", "agent": "dqn", "method": "hare_tortoise", "seed": seed,
                  "agent_settings": agent}
        return Run(pathlib.Path("."), config, [], True)

    runs = [run(1), run(2, bootstrap_from="method"), run(1, bootstrap_from="target_network")]
    mark_variants(runs)
    assert DQNConfig().bootstrap_from == "method"  # what a config that omits the setting ran with
    # the first two are one cell: the first omitted the setting, which then held its default
    assert [r.variant for r in runs] == ["agent.bootstrap_from=method"] * 2 + ["agent.bootstrap_from=target_network"]


def test_an_rl_variant_bears_one_name_on_every_game():
    from hare_tortoise.report import mark_variants

    def run(game, every):
        config = {"env": "minatar", "game": game, "agent": "dqn", "method": "hare_tortoise", "seed": 1,
                  "agent_settings": {}, "method_settings": {"reset_every_steps": every}}
        return Run(pathlib.Path("."), config, [], True)

    # Breakout has only the 20,000-update runs so far; its cell is still named by the interval Seaquest varies
    runs = [run("seaquest", 20_000), run("seaquest", 10_000), run("breakout", 20_000)]
    mark_variants(runs)
    assert [r.variant for r in runs] == ["method.reset_every_steps=20000", "method.reset_every_steps=10000",
                                         "method.reset_every_steps=20000"]


def test_the_largest_fall_counts_from_the_end_of_the_first_phase():
    rows = [{"phase": 0, "test_acc": 0.9}, {"phase": 0, "test_acc": 0.3},  # the first phase's own fall: not counted
            {"phase": 0, "test_acc": 0.4}, {"phase": 1, "test_acc": 0.5}, {"phase": 1, "test_acc": 0.8},
            {"phase": 1, "epoch": 3}, {"phase": 1, "test_acc": 0.6}, {"phase": 2, "test_acc": 0.75},
            {"phase": 2, "test_acc": 0.7}]
    run = Run(pathlib.Path("."), {}, rows, True)
    assert largest_fall(run) == pytest.approx(0.2)  # 0.8 -> 0.6 across a row without an evaluation
    rows[7]["test_acc"] = 0.35  # a reset at the boundary of phases 1 and 2
    assert largest_fall(run) == pytest.approx(0.25)
    rows[3]["test_acc"] = 0.1  # from the first phase's last evaluation into the second
    assert largest_fall(run) == pytest.approx(0.3)
    one_phase = Run(pathlib.Path("."), {}, [{"phase": 0, "test_acc": v} for v in (0.1, 0.3, 0.2, 0.4)], True)
    assert largest_fall(one_phase) == pytest.approx(0.1)
    rising = Run(pathlib.Path("."), {}, [{"phase": 0, "test_acc": v} for v in (0.1, 0.2, 0.3)], True)
    assert largest_fall(rising) == 0.0


def test_the_warm_start_gap_closed_and_where_the_tortoise_gain_comes_from():
    warm, cold = {"protocol": "warm_start"}, {"protocol": "cold"}
    runs = [fake(cold, "base", s, 0.90 + 0.01 * s, shadow=0.93 + 0.01 * s) for s in (1, 2, 3)]
    runs += [fake(warm, "base", s, 0.86 + 0.01 * s) for s in (1, 2, 3)]  # gap: 4 points per seed
    runs += [fake(warm, "ema", s, 0.87 + 0.01 * s) for s in (1, 2, 3)]  # averaging alone: +1
    runs += [fake(warm, "hare_tortoise", s, 0.90 + 0.01 * s) for s in (1, 2, 3)]  # +4: closes the gap
    cells = {(c.setting, c.label): c for c in supervised_cells(runs)}
    assert cells["mnist1d/mlp/warm_start", "hare_tortoise"].columns["gap closed"].mean == pytest.approx(1.0)
    assert cells["mnist1d/mlp/warm_start", "ema"].columns["gap closed"].mean == pytest.approx(0.25)
    assert cells["mnist1d/mlp/warm_start", "warm"].columns["gap closed"].n == 0
    closed = [fake(cold, "base", s, 0.86 + 0.01 * s) for s in (1, 2, 3)] + runs[3:]  # cold = warm base: no gap
    assert {c.label: c.columns.get("gap closed") for c in supervised_cells(closed)}["ema"].n == 0
    [decomposition] = averaging_and_resets(runs)
    expected = {"H&T − warm": 4.0, "EMA − warm": 1.0, "H&T − EMA": 3.0, "share from averaging": 0.25,
                "H&T − cold": 0.0, "H&T − cold EMA": -3.0}
    assert {k: round(v.mean, 9) for k, v in decomposition.columns.items()} == expected
    assert all(v.n == 3 for v in decomposition.columns.values()) and decomposition.seeds == 3
    assert averaging_and_resets([r for r in runs if r.config["method"] != "ema"]) == []  # EMA alone is needed


def test_a_run_repeated_in_two_sweeps_counts_as_one_seed():
    warm = {"protocol": "warm_start"}
    runs = [fake(warm, "base", s, 0.8) for s in (1, 2, 1)]
    [cell] = supervised_cells(runs)
    assert cell.seeds == 2


def test_runs_made_before_a_config_field_existed_join_the_same_cell(tmp_path):
    import json

    from hare_tortoise.config import Config
    from hare_tortoise.report import read_runs

    for seed in (1, 2):
        stored = json.loads(Config(seed=seed).to_json())
        if seed == 1:
            del stored["bf16"]  # made before the field was added, at what is now its default
        (tmp_path / f"seed{seed}").mkdir()
        (tmp_path / f"seed{seed}" / "config.json").write_text(json.dumps(stored))
    runs = read_runs([tmp_path])
    assert [r.variant for r in runs] == ["", ""] and [r.config["bf16"] for r in runs] == [True, True]
    assert runs[0].label == runs[1].label == "warm"
