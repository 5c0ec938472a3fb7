"""The examples in examples/ run as a user runs them and print what their docstrings promise."""

import pathlib
import re
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_the_own_loop_example_reports_both_networks_after_each_phase():
    result = subprocess.run([sys.executable, str(EXAMPLES / "own_loop.py"), "--epochs", "3", "--reset-every-epochs", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    pattern = r"after 3 epochs on the (first 10% of the data|whole data): test accuracy of the Hare (0\.\d+), of the Tortoise (0\.\d+)"
    found = [re.fullmatch(pattern, line) for line in lines]
    assert len(lines) == 2 and all(found) and [m.group(1) for m in found] == ["first 10% of the data", "whole data"]
    # the Tortoise is an average, not the Hare: after the phase's last epoch they differ
    assert all(m.group(2) != m.group(3) for m in found)


def test_every_example_is_tested():
    tested = set(re.findall(r'EXAMPLES / "(\w+\.py)"', pathlib.Path(__file__).read_text()))
    assert tested == {p.name for p in EXAMPLES.glob("*.py")}


def test_the_lightning_example_validates_the_tortoise_after_each_phase():
    import pytest

    pytest.importorskip("lightning")
    result = subprocess.run([sys.executable, str(EXAMPLES / "lightning_fit.py"), "--epochs", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    found = [re.fullmatch(r"after 2 epochs on the (.+): validation accuracy of the Tortoise (0\.\d+)", line)
             for line in result.stdout.splitlines() if line.startswith("after")]
    assert [m.group(1) for m in found] == ["first 10% of the data", "whole data"]


def test_the_transformers_example_evaluates_the_tortoise_after_each_task():
    import pytest

    pytest.importorskip("transformers")
    result = subprocess.run([sys.executable, str(EXAMPLES / "transformers_finetune.py"), "--epochs", "1",
                             "--samples", "64"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    found = [re.fullmatch(r"task '(.+)': the Tortoise's evaluation loss (\d\.\d+), accuracy (\d\.\d+)", line)
             for line in result.stdout.splitlines() if line.startswith("task")]
    assert [m.group(1) for m in found] == ["first token even", "last token above 20"]
