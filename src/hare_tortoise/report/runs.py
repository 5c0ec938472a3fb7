"""Runs as a report sees them: each run directory's config, rows and state, grouped into cells (a setting and a
method, and the variant a sweep axis makes), with the method's counters."""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import sys

from ..config import Config
from ..errors import InvalidInput
from ..rl.agents import AGENTS
from ..rl.config import RLConfig
from ..runs import RunStore
from ..stats import Interval


@dataclasses.dataclass
class Run:
    path: pathlib.Path
    config: dict
    rows: list[dict]
    finished: bool
    variant: str = ""  # the settings that set this run apart from others of its setting and method (a sweep axis)
    summary: dict | None = None  # summary.json of a finished run

    @property
    def is_rl(self) -> bool:
        return "agent" in self.config

    @property
    def seed(self) -> int:
        return self.config["seed"]

    @property
    def final(self) -> dict:
        """The final numbers: from summary.json once the run finished (its last row may have been cut since)."""
        return self.summary["final"] if self.summary else self.rows[-1]

    @property
    def setting(self) -> str:
        c = self.config
        if self.is_rl:
            return f"{c['env']}/{'>'.join(c['games']) if c.get('games') else c['game']}/{c['agent']}"
        extra = ("+aug" if c["augment"] else "") + (f"+{c['memory']}" if c["protocol"] == "continual" else "")
        return f"{c['dataset']}/{c['model']}/{c['protocol']}{extra}"

    @property
    def label(self) -> str:
        method = self.config["method"]
        if self.is_rl:
            name = method
        elif self.config["protocol"] == "cold":
            name = "cold" if method == "base" else f"cold+{method}"
        else:
            name = "warm" if method == "base" and self.config["protocol"] == "warm_start" else method
        return f"{name} [{self.variant}]" if self.variant else name


# differ between runs of one cell without making another cell: the seed, and what the run store lets a run change
# when it resumes (where it reads its data and runs, how often it checkpoints): one definition for both
IDENTITY_KEYS = ("seed", *RunStore.PLACE_KEYS)


def flat_config(config: dict) -> dict:
    """A stored config with its settings groups spread out as `method.NAME`, `agent.NAME` keys."""
    flat = {k: v for k, v in config.items() if not isinstance(v, dict)}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{key.removesuffix('_settings')}.{k}": v for k, v in value.items()})
    return flat


@functools.cache
def _agent_defaults(agent: str) -> dict:
    return {f"agent.{k}": v for k, v in dataclasses.asdict(AGENTS[agent].settings()).items()}


def _flat(config: dict) -> dict:
    flat = flat_config(config)
    if config.get("agent") in AGENTS:  # an RL run stores the agent settings it changed; the rest are the defaults
        flat = {**_agent_defaults(config["agent"]), **flat}
    return {k: v for k, v in flat.items() if k not in IDENTITY_KEYS}


def game_suite(run: Run) -> str | None:
    """"env/agent" for a single-game RL run, whose games make one suite (a game sequence is a setting of its own);
    None for other runs."""
    c = run.config
    return f"{c['env']}/{c['agent']}" if run.is_rl and not c.get("games") else None


def mark_variants(runs: list[Run]) -> None:
    """Name each run's variant: the config values in which runs of the same setting and method differ (e.g. the
    momentum of a sensitivity sweep), so that they form separate cells. Single-game RL runs are compared over
    their whole suite, the game aside, so that a variant bears one name on every game (the across-games table
    pairs a method's cells of different games by that name)."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((game_suite(run) or run.setting, run.config["method"]), []).append(run)
    for members in groups.values():
        varying = [key for key in varying_settings(members) if key != "game"]
        for run in members:
            flat = _flat(run.config)
            run.variant = ",".join(f"{k}={flat.get(k)}" for k in varying)


def varying_settings(members: list[Run]) -> list[str]:
    """The settings (flat names, `method.momentum`) whose values differ between `members`, the seed and the run's
    place aside: the axes of a sweep grid."""
    flats = [_flat(r.config) for r in members]
    keys = sorted({k for f in flats for k in f})
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]


def setting_value(run: Run, key: str):
    """The value of the flat setting `key` (as `varying_settings` names it) in `run`'s config."""
    return _flat(run.config).get(key)


def read_runs(directories: list[str | pathlib.Path]) -> list[Run]:
    """Every run directory (one holding config.json) under `directories`."""
    runs = []
    for directory in directories:
        root = pathlib.Path(directory)
        if not root.exists():
            raise InvalidInput(f"{root} does not exist; give the run directories (or their parents) to report")
        for config_path in sorted(root.rglob("config.json")):
            store = RunStore(config_path.parent)
            try:
                stored = json.loads(config_path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                print(f"hare-tortoise: skipped {store.dir}: its config.json is not valid JSON", file=sys.stderr)
                continue
            if not (isinstance(stored, dict) and "method" in stored and ("agent" in stored or "protocol" in stored)):
                print(f"hare-tortoise: skipped {store.dir}: its config.json is not a hare-tortoise run",
                      file=sys.stderr)
                continue
            # fields added since a run was made get their defaults: old and new runs of a setting share one cell
            config = (RLConfig if "agent" in stored else Config).completed(stored)
            summary = store.summary()
            runs.append(Run(store.dir, config, store.rows(), summary is not None, summary=summary))
    if not runs:
        raise InvalidInput(f"no run directories (with config.json) under {', '.join(map(str, directories))}")
    mark_variants(runs)
    return runs


@dataclasses.dataclass
class Cell:
    """One table row: a setting and method, its columns as intervals over seeds, and how many seeds it has."""

    setting: str
    label: str
    columns: dict[str, Interval]
    seeds: int
    unfinished: int = 0
    actions: str = ""  # what the method did, mean per run (`method_actions`)


def group(runs: list[Run]) -> dict[tuple[str, str], list[Run]]:
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.setting, run.label), []).append(run)
    return dict(sorted(groups.items()))


def by_seed(members: list[Run], key: str, scale: float = 1.0) -> dict[int, float]:
    """Final `key` of each finished run, keyed by seed."""
    return {r.seed: scale * r.final[key] for r in members if r.finished and r.rows and key in r.final}


def method_actions(members: list[Run]) -> str:
    """What the method did, from the `method/<counter>` fields of the finished runs' last rows: the mean per run
    of each counter ("resets 5, updates 3150"), or "" for a method that keeps no counters."""
    finals = [r.final for r in members if r.finished and r.rows]
    names = sorted({k for row in finals for k in row if k.startswith("method/")})
    return ", ".join(f"{name.removeprefix('method/').replace('_', ' ')} "
                     f"{sum(row.get(name, 0) for row in finals) / len(finals):g}" for name in names)
