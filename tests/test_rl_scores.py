"""Atari-100k scoring against the published aggregates that rliable's colab prints for the same files."""

import numpy as np
import pytest

from hare_tortoise.rl import scores


def test_reference_tables_cover_the_26_games():
    assert set(scores.reference_scores()) == set(scores.GAMES) and len(scores.GAMES) == 26
    assert scores.reference_scores()["Pong"] == (-20.7, 14.6)
    assert scores.human_normalized("Pong", 14.6) == pytest.approx(1.0)
    assert scores.human_normalized("Pong", -20.7) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="the 26 Atari-100k games are: Alien"):
        scores.human_normalized("Tetris", 1.0)


def test_published_drq_eps_aggregates_match_rliable():
    matrix = scores.published_matrix("DrQ(eps)")
    assert matrix.shape == (100, 26)
    # printed by rliable's colab for these very files
    assert scores.median(matrix) == pytest.approx(0.312901399063074, abs=1e-6)
    assert scores.mean(matrix) == pytest.approx(0.4647412513971657, abs=1e-6)
    assert scores.iqm(matrix) == pytest.approx(0.280, abs=5e-4)
    assert scores.optimality_gap(matrix) == pytest.approx(0.631, abs=5e-4)
    spr = scores.published_matrix("SPR")
    assert scores.median(spr) == pytest.approx(0.39562938291779215, abs=1e-6)
    assert scores.mean(spr) == pytest.approx(0.6157957428691673, abs=1e-6)


def test_stratified_bootstrap_interval_covers_the_estimate():
    matrix = scores.published_matrix("DrQ(eps)", runs=10)
    low, high = scores.stratified_bootstrap(matrix, scores.iqm, reps=500)
    assert low < scores.iqm(matrix) < high
    assert low == pytest.approx(0.275, abs=0.006) and high == pytest.approx(0.329, abs=0.006)


def test_bootstrap_resamples_within_each_game():
    # two games whose scores never mix: every replicate's per-game means stay inside each game's range
    matrix = np.stack([np.linspace(0, 1, 20), np.linspace(10, 11, 20)], axis=1)
    seen = []
    scores.stratified_bootstrap(matrix, lambda m: seen.append(m.copy()) or 0.0, reps=50)
    assert all(m[:, 0].max() <= 1 and m[:, 1].min() >= 10 for m in seen)


def test_iqm_trims_a_quarter_of_the_pooled_entries_from_each_end():
    assert scores.iqm(np.array([[0.0, 1.0], [2.0, 100.0]])) == pytest.approx(1.5)
    assert scores.iqm(np.arange(8.0).reshape(4, 2)) == pytest.approx(np.mean([2, 3, 4, 5]))


def test_percentile_in_the_published_distribution():
    pong = scores.published_scores("DrQ(eps)")["Pong"]
    assert scores.percentile_in_published("Pong", pong.min() - 1) == 0.0
    assert scores.percentile_in_published("Pong", pong.max() + 1) == 100.0
    assert 40 <= scores.percentile_in_published("Pong", float(np.median(pong))) <= 60


def test_aggregate_table_gives_every_estimate_with_its_interval():
    table = scores.aggregate_table(scores.published_matrix("SPR", runs=10), reps=200)
    assert set(table) == {"iqm", "median", "mean", "optimality_gap"}
    for name, (point, low, high) in table.items():
        assert low <= point <= high, name
    assert table["mean"][0] == pytest.approx(0.701, abs=5e-4)  # rliable's colab: SPR, first 10 runs


def test_every_atari_game_is_found_under_its_score_table_name():
    from hare_tortoise.rl.config import GAMES, game_id

    for game in GAMES["atari100k"]:
        assert game_id("atari100k", scores.reference_name(game)) == game
    assert game_id("atari100k", "Tetris") == "Tetris"  # not a game of the suite: validation names the games
