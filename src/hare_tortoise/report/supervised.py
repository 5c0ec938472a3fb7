"""The supervised tables: final accuracies with intervals over seeds, paired differences to base, the warm-start
gap, the largest fall after a reset, and where H&T's gain comes from (averaging or resets)."""

from __future__ import annotations

from ..stats import differences, mean_interval, paired_difference, probability_of_improvement, ratio_of_means
from .runs import Cell, Run, by_seed, group, method_actions


def baseline_label(runs: list[Run], setting: str) -> str | None:
    """The label of the `base` runs of a setting (cold, warm or base), if the setting has any."""
    return next((r.label for r in runs if r.setting == setting and r.config["method"] == "base"), None)


def cold_reference(runs: list[Run], like: Run) -> list[Run]:
    """Finished cold-start base runs of the same dataset, model and augmentation as `like`."""
    same = ("dataset", "model", "augment")
    return [r for r in runs if not r.is_rl and r.finished and r.config["protocol"] == "cold"
            and r.config["method"] == "base" and all(r.config[k] == like.config[k] for k in same)]


def largest_fall(run: Run, key: str = "test_acc") -> float:
    """The largest drop of `key` from one evaluation to the next (0 if it only rose), from the first phase's last
    evaluation on: a reset's drop at a phase boundary or within a phase counts, the first phase's own rise and fall
    on its (noisy) data does not. A run of one phase counts throughout."""
    evaluated = [row for row in run.rows if key in row]
    later = [i for i, row in enumerate(evaluated) if row.get("phase", 0) > 0]
    values = [row[key] for row in evaluated[later[0] - 1 if later else 0:]]
    return max([0.0] + [before - after for before, after in zip(values, values[1:])])


def _is_warm(run: Run) -> bool:
    return run.config["protocol"] == "warm_start"


def supervised_cells(runs: list[Run]) -> list[Cell]:
    """Per setting and method: final test accuracy (in %) of the reported network and of the hare, train accuracy,
    the paired difference to the setting's base and the probability of improvement over it; for warm starts the gap
    to cold start (cold minus this: the accuracy the warm start still costs) and the share of base's gap the method
    closes; the largest fall of test accuracy between two evaluations after the first phase (a reset's drop, seen
    when evaluating every epoch). An EMA shadow, where kept, gets its own row."""
    supervised = [r for r in runs if not r.is_rl]
    cells, gap_is_open = [], {}  # per setting: whether base's warm-start gap interval lies above 0
    for (setting, label), members in group(supervised).items():
        finished = [r for r in members if r.finished and r.rows]
        test = by_seed(members, "test_acc", 100)
        columns = {"test acc": mean_interval(test.values()),
                   "hare test acc": mean_interval(by_seed(members, "test_acc_hare", 100).values()),
                   "train acc": mean_interval(by_seed(members, "train_acc", 100).values())}
        base = baseline_label(supervised, setting)
        base_test = by_seed([r for r in supervised if r.setting == setting and r.label == base], "test_acc", 100)
        columns["Δ vs base"] = paired_difference(test, base_test) if base and base != label else mean_interval([])
        columns["P(> base)"] = (probability_of_improvement(test, base_test) if base and base != label
                                else mean_interval([]))
        cold = by_seed(cold_reference(supervised, members[0]), "test_acc", 100) if _is_warm(members[0]) else {}
        columns["warm-start gap"] = paired_difference(cold, test) if cold else mean_interval([])
        gap = differences(cold, base_test)
        if setting not in gap_is_open:
            gap_is_open[setting] = mean_interval(gap.values()).low > 0
        # a share of a gap that may be 0 means nothing: shown only where base's gap interval lies above 0
        columns["gap closed"] = (ratio_of_means(differences(test, base_test), gap)
                                 if base != label and gap_is_open[setting] else mean_interval([]))
        columns["largest fall"] = mean_interval(100 * largest_fall(r) for r in finished)
        seeds = len({r.seed for r in finished})  # a run repeated in two sweeps counts once
        cells.append(Cell(setting, label, columns, seeds, len(members) - len(finished), method_actions(members)))
        shadow = by_seed(members, "test_acc_shadow", 100)
        if shadow:
            cells.append(Cell(setting, f"{label} EMA (shadow)", {"test acc": mean_interval(shadow.values())},
                              len(shadow)))
    return cells


def averaging_and_resets(runs: list[Run]) -> list[Cell]:
    """Where H&T's gain in a warm start comes from. The paper compares the Tortoise with the cold-start network
    only (Lee et al. 2024, section 5); here, per warm-start setting with `warm`, `ema` and `hare_tortoise` runs,
    paired by seed, in points of test accuracy: the Tortoise's gain over warm-started base, the gain of EMA alone
    (averaging without resets), what the resets add (Tortoise minus EMA), the share of the gain averaging alone
    gives, and the Tortoise against cold start and against an EMA of the cold-start run (its shadow)."""
    supervised = [r for r in runs if not r.is_rl]
    cells = []
    for setting in sorted({r.setting for r in supervised if _is_warm(r)}):
        members = [r for r in supervised if r.setting == setting]
        final = {label: by_seed([r for r in members if r.label == label], "test_acc", 100)
                 for label in ("warm", "ema", "hare_tortoise")}
        if not all(final.values()):
            continue
        tortoise, ema, warm = final["hare_tortoise"], final["ema"], final["warm"]
        cold = cold_reference(supervised, members[0])
        gain = differences(tortoise, warm)
        columns = {"H&T − warm": mean_interval(gain.values()), "EMA − warm": paired_difference(ema, warm),
                   "H&T − EMA": paired_difference(tortoise, ema),
                   "share from averaging": ratio_of_means(differences(ema, warm), gain),
                   "H&T − cold": paired_difference(tortoise, by_seed(cold, "test_acc", 100)),
                   "H&T − cold EMA": paired_difference(tortoise, by_seed(cold, "test_acc_shadow", 100))}
        cells.append(Cell(setting, "hare_tortoise", columns, len(tortoise)))
    return cells
