"""Metrics sinks: `log=tensorboard` writes the run's rows as TensorBoard scalars, the same names and values at the
same steps as metrics.jsonl (read back with TensorBoard's own reader); a sink that is unknown or not installed is
refused before the run directory exists."""

import importlib.util
import math

import pytest

from hare_tortoise.cli import main
from hare_tortoise.runs import RunStore


def test_tensorboard_gets_every_number_of_every_row_at_its_step(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(["run", "smoke", "--method", "hare_tortoise", "--out", str(out), "--no-progress", "log=tensorboard"]) == 0
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    expected: dict[str, list[tuple[int, float]]] = {}
    for row in RunStore(out).rows():
        for name, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and name != "step" and math.isfinite(value):
                expected.setdefault(name, []).append((row["step"], float(value)))
    assert set(events.Tags()["scalars"]) == set(expected) and {"test_acc", "method/resets", "train_loss"} <= set(expected)
    for name, points in expected.items():
        written = [(e.step, e.value) for e in events.Scalars(name)]
        assert [s for s, _ in written] == [s for s, _ in points]
        assert [v for _, v in written] == pytest.approx([v for _, v in points], rel=1e-6)  # stored as float32


@pytest.mark.parametrize("sink, message", [
    ("nonsense", "log='nonsense' is not a metrics sink; the sinks: tensorboard, wandb"),
    ("wandb", "log=wandb needs the wandb package: pip install 'hare-tortoise[wandb]'"),
])
def test_a_sink_that_cannot_run_is_refused_before_anything_is_written(tmp_path, capsys, sink, message):
    if sink == "wandb" and importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    assert main(["run", "smoke", "--out", str(tmp_path / "run"), f"log={sink}"]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()
