"""The RL part of a report: per game and method the final evaluation returns with 95% Student-t intervals over
seeds, the paired difference to `base` and the probability of improvement over it, that probability averaged over
the games of a suite; for Atari-100k the human-normalised scores, where DrQ(eps) falls among the published runs,
the aggregates over games with stratified-bootstrap intervals and the performance profile (Agarwal et al. 2021);
learning curves with shaded intervals."""

from __future__ import annotations

import pathlib

import numpy as np

from ..rl import scores
from ..stats import average_probability_of_improvement, mean_interval, paired_difference, probability_of_improvement
from .plots import draw, save
from .runs import Cell, Run, by_seed, game_suite, group, method_actions
from .tables import LEGEND, markdown, seeds_text

PROFILE_TAUS = np.linspace(0.0, 2.0, 81)  # HNS thresholds of the performance profile


def cells(runs: list[Run]) -> list[Cell]:
    """Per game and method: evaluation return of the reported network and of the online one, the paired
    difference of the reported return to base, agent steps per second and the share of time in updates."""
    rl = [r for r in runs if r.is_rl]
    result = []
    for (setting, label), members in group(rl).items():
        returns = by_seed(members, "eval_return")
        base = by_seed([r for r in rl if r.setting == setting and r.label == "base"], "eval_return")
        result.append(Cell(setting, label, {
            "eval return": mean_interval(returns.values()),
            "online eval return": mean_interval(by_seed(members, "eval_return_online").values()),
            "Δ vs base": paired_difference(returns, base) if label != "base" and base else mean_interval([]),
            "P(> base)": (probability_of_improvement(returns, base) if label != "base" and base
                          else mean_interval([])),
            "steps/s": mean_interval(by_seed(members, "steps_per_second").values()),
            "update share %": mean_interval(by_seed(members, "update_share", 100).values())},
            len(returns), len(members) - len(returns), method_actions(members)))
    return result


def across_games_cells(runs: list[Run]) -> list[Cell]:
    """Per suite (environment and agent) and method other than base, over the single games where both it and base
    have finished runs (two games at least): the probability that a run of the method beats a base run of the same
    game, averaged over those games (Agarwal et al. 2021), which needs no score scale common to the games."""
    finals: dict[str, dict[str, dict[str, dict[int, float]]]] = {}  # suite -> label -> game -> seed -> return
    for (_, label), members in group(runs).items():
        if (name := game_suite(members[0])) is not None:
            games = finals.setdefault(name, {}).setdefault(label, {})
            games[members[0].config["game"]] = by_seed(members, "eval_return")
    result = []
    for name, labels in finals.items():
        base = labels.get("base", {})
        for label, games in sorted(labels.items()):
            pairs = {game: (games[game], base[game]) for game in sorted(games) if games[game] and base.get(game)}
            if label == "base" or len(pairs) < 2:
                continue
            chance = average_probability_of_improvement(list(pairs.values()))
            env, agent = name.split("/")
            result.append(Cell(f"{env}/{len(pairs)} games: {', '.join(pairs)}/{agent}", label,
                               {"P(> base), mean over games": chance}, chance.n))
    return result


def _atari_finals(runs: list[Run]) -> dict[str, dict[str, list[float]]]:
    """method -> reference game name -> final returns of the reported network, over seeds."""
    finals: dict[str, dict[str, list[float]]] = {}
    for run in sorted((r for r in runs if r.is_rl and r.config["env"] == "atari100k" and r.finished),
                      key=lambda r: (r.config["game"], r.label, r.seed)):
        game = scores.reference_name(run.config["game"])
        finals.setdefault(run.label, {}).setdefault(game, []).append(run.final["eval_return"])
    return finals


def _hns_matrix(games: dict[str, list[float]]) -> np.ndarray:
    """(seeds, games) HNS over as many seeds as every game has."""
    seeds = min(len(r) for r in games.values())
    return np.stack([scores.human_normalized(g, r[:seeds]) for g, r in sorted(games.items())], axis=1)


def atari_tables(runs: list[Run], reps: int = 2000) -> str:
    """For Atari-100k runs: per game and method the human-normalised score (HNS) of the reported network and
    where its return falls among the 100 published DrQ(eps) runs; then per method the aggregates over games (IQM,
    median, mean, optimality gap) with 95% stratified-bootstrap intervals, over as many seeds as every game has."""
    finals = _atari_finals(runs)
    if not finals:
        return ""
    lines = ["| game | method | eval return [t] | HNS [t] | percentile among published DrQ(eps) runs [t] | seeds |",
             "|---|---|---|---|---|---|"]
    for label, games in sorted(finals.items()):
        for game, returns in sorted(games.items()):
            hns = mean_interval([float(scores.human_normalized(game, r)) for r in returns])
            percentile = mean_interval([scores.percentile_in_published(game, r) for r in returns])
            lines.append(f"| {game} | {label} | {mean_interval(returns).format()} | {hns.format(digits=3)} | "
                         f"{percentile.format(digits=1)} | {seeds_text(len(returns))} |")
    lines += ["", "| method | games | seeds per game | IQM [strat] | median [strat] | mean [strat] | "
              "optimality gap [strat] |", "|---|---|---|---|---|---|---|"]
    for label, games in sorted(finals.items()):
        matrix = _hns_matrix(games)
        table = scores.aggregate_table(matrix, reps)
        cells_ = [f"{point:.3f} [{low:.3f}, {high:.3f}]" for point, low, high in table.values()]
        lines.append(f"| {label} | {len(games)} | {seeds_text(matrix.shape[0])} | " + " | ".join(cells_) + " |")
    return "\n".join(lines + ["", LEGEND + " [strat]: 95% stratified-bootstrap interval over runs within each game "
                               "(rliable)."])


def tables(runs: list[Run]) -> tuple[str, list[Cell]]:
    """The Markdown of the RL sections and their cells (for the CSV)."""
    rl_cells = cells(runs)
    text = markdown(rl_cells, "Final evaluation return: mean over seeds [95% Student-t interval]; P(> base): the "
                              "probability that a run beats a base run (Agarwal et al. 2021) [95% percentile "
                              "bootstrap]; Δ vs base paired by seed.")
    across = across_games_cells(runs)
    if across:
        text += ("\n\nAcross games: the probability that a run of the method beats a base run of the same game, "
                 "averaged over the games [95% percentile bootstrap, resampling each method's runs within every "
                 "game]; seeds: the fewest of any game.\n\n" + markdown(across))
    atari = atari_tables(runs)
    if atari:
        text += ("\n\nAtari-100k: human-normalised scores (HNS); aggregates with 95% stratified-bootstrap "
                 "intervals.\n\n" + atari)
    return text, rl_cells + across


def _final_returns(runs: list[Run], suite: str, out: pathlib.Path) -> pathlib.Path:
    """Per game, the final evaluation return of each method's reported network, with 95% Student-t intervals."""
    import matplotlib.pyplot as plt

    games = sorted({r.config["game"] for r in runs})
    labels = sorted({r.label for r in runs})
    # the legend goes below the panels: long variant labels would cover a panel's bars
    figure, axes = plt.subplots(1, len(games), figsize=(2.2 * len(games) + 1, 3.6 + 0.2 * len(labels)),
                                squeeze=False, layout="constrained")
    for axis, game in zip(axes[0], games):
        for colour, label in enumerate(labels):
            interval = mean_interval(by_seed([r for r in runs if r.config["game"] == game and r.label == label],
                                            "eval_return").values())
            if interval.n:
                axis.bar(colour, interval.mean, color=f"C{colour}", label=label,
                         yerr=np.array([interval.error_bar()]).T, capsize=3)
        axis.set(title=game, xticks=[])
    axes[0][0].set_ylabel("final evaluation return")
    figure.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", fontsize=7)
    figure.suptitle(f"{suite}: final evaluation return, mean over seeds with 95% Student-t intervals")
    return save(figure, out / f"{suite}-final-returns.png")


def plots(runs: list[Run], out: pathlib.Path, reps: int = 500) -> list[pathlib.Path]:
    """Per game: the training return (last 100 episodes) over agent steps with 95% bands over seeds, and the
    evaluation return of the reported network where runs evaluated during training (dashed); for
    Atari-100k, the performance profile of every method (fraction of runs above each HNS) with stratified-bootstrap
    bands, beside the published DrQ(eps) runs."""
    import matplotlib.pyplot as plt

    rl = [r for r in runs if r.is_rl]
    written = []
    for setting in sorted({r.setting for r in rl}):
        figure, axis = plt.subplots(figsize=(8, 4.5))
        for colour, label in enumerate(sorted({r.label for r in rl if r.setting == setting})):
            members = [r for r in rl if r.setting == setting and r.label == label]
            draw(axis, members, "recent_return", f"C{colour}", label, x="step")
            if any("eval_return" in row and not row.get("final") for r in members for row in r.rows):
                draw(axis, members, "eval_return", f"C{colour}", f"{label} (evaluation)", "--", x="step")
        axis.set(xlabel="agent step", ylabel="return (mean of the last 100 training episodes)", title=setting)
        if axis.lines:
            axis.legend(fontsize=8)
        written.append(save(figure, out / f"{setting.replace('/', '_')}-returns.png"))
    for suite in sorted({r.config["env"] for r in rl}):
        written.append(_final_returns([r for r in rl if r.config["env"] == suite], suite, out))
    finals = _atari_finals(runs)
    if finals:
        figure, axis = plt.subplots(figsize=(7, 4.5))
        profiles = {label: _hns_matrix(games) for label, games in sorted(finals.items())}
        profiles["published DrQ(eps) (100 runs)"] = scores.published_matrix("DrQ(eps)")
        for colour, (label, matrix) in enumerate(profiles.items()):
            curve = scores.performance_profile(matrix, PROFILE_TAUS)
            low, high = scores.stratified_bootstrap(matrix, lambda m: scores.performance_profile(m, PROFILE_TAUS), reps)
            axis.plot(PROFILE_TAUS, curve, color=f"C{colour}", label=f"{label} ({matrix.shape[1]} games)")
            axis.fill_between(PROFILE_TAUS, low, high, color=f"C{colour}", alpha=0.15, linewidth=0)
        axis.set(xlabel="human-normalised score τ", ylabel="fraction of runs with score > τ",
                 title="Atari-100k performance profile (95% stratified-bootstrap bands)")
        axis.legend(fontsize=8)
        written.append(save(figure, out / "atari100k-performance-profile.png"))
    return written
