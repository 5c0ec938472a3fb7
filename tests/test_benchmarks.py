"""The benchmark runner works and records what it measured (the figures themselves are checked by `make bench`,
never here: timings are not tests)."""

import json
import pathlib
import subprocess
import sys

RUNNER = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def test_a_benchmark_writes_its_figures_with_targets(tmp_path):
    out = tmp_path / "latest.json"
    result = subprocess.run([sys.executable, str(RUNNER), "protocol", "--out", str(out)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    recorded = json.loads(out.read_text())
    [entry] = recorded["figures"]
    assert set(entry) >= {"name", "value", "target", "unit", "met"} and entry["name"].startswith("protocol/")
    assert entry["met"] == (entry["value"] <= entry["target"]) and recorded["machine"]["cpus"] >= 1
    assert "targets met" in result.stdout


def test_an_unknown_benchmark_is_refused(tmp_path):
    result = subprocess.run([sys.executable, str(RUNNER), "nonsense", "--out", str(tmp_path / "x.json")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "available: tortoise" in result.stderr and not (tmp_path / "x.json").exists()
