"""A method from another package, declared as a `hare_tortoise.methods` entry point, works where the library's own
do: `list methods`, `run` (acting at its scheduled moment), `sweep` (whose runs are child processes) and `report`;
a plugin that fails to load, or names no method, is a clear error."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

PLUGIN = '''
import dataclasses

import torch

from hare_tortoise.methods import Method


@dataclasses.dataclass(eq=False)
class ScaleHead(Method):
    """Scales the head's weights by `factor` at the start of every phase after the first (a test plugin)."""

    name = "scale_head"
    counters = ("scalings",)
    factor: float = 0.5

    def on_phase_start(self, phase, optimizer):
        if phase > 0:
            with torch.no_grad():
                self.model.head.weight.mul_(self.factor)
            self.counts["scalings"] += 1
'''


def installed(tmp_path: pathlib.Path, entry: str, module: str = PLUGIN) -> dict:
    """An environment in which a package `ht_plugin_demo` is installed with `entry` as its one entry point of the
    group (a distribution's metadata on the path, as pip would leave it)."""
    site = tmp_path / "site"
    (site / "ht_plugin_demo").mkdir(parents=True)
    (site / "ht_plugin_demo" / "__init__.py").write_text(textwrap.dedent(module))
    info = site / "ht_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ht-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[hare_tortoise.methods]\n{entry}\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def cli(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hare_tortoise", *argv], env=env, capture_output=True, text=True,
                          timeout=600)


def test_a_plugin_method_runs_sweeps_and_reports_like_a_built_in(tmp_path):
    env = installed(tmp_path, "scale_head = ht_plugin_demo:ScaleHead")
    listing = cli(env, "list", "methods")
    assert listing.returncode == 0 and "scale_head" in listing.stdout and "a test plugin" in listing.stdout
    run = cli(env, "run", "smoke", "--method", "scale_head", "--out", str(tmp_path / "run"), "--no-progress",
              "method.factor=0.25")
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # the smoke warm start has 2 phases: one scaling, at the start of the second
    assert [r["method/scalings"] for r in rows if r.get("phase") == 1][0] == 1 and rows[0]["method/scalings"] == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["method_settings"] == {"factor": 0.25}
    swept = cli(env, "sweep", "smoke", "--methods", "base,scale_head", "--seeds", "1", "--out", str(tmp_path / "sweep"))
    assert swept.returncode == 0, swept.stderr
    assert (tmp_path / "sweep" / "scale_head" / "seed1" / "summary.json").exists()
    report = cli(env, "report", str(tmp_path / "sweep"), "--out", str(tmp_path / "report"))
    assert report.returncode == 0 and "| scale_head |" in report.stdout and "scalings 1" in report.stdout


@pytest.mark.parametrize("entry, message", [
    ("broken = ht_plugin_demo:Missing", "the method plugin 'broken' (ht_plugin_demo:Missing, from "
                                        "hare_tortoise.methods entry points) failed to load: AttributeError"),
    ("other_name = ht_plugin_demo:ScaleHead", "registered no method named 'other_name'"),
])
def test_a_plugin_that_cannot_load_is_named_with_the_problem(tmp_path, entry, message):
    result = cli(installed(tmp_path, entry), "run", "smoke", "--method", "base", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
