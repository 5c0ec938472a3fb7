"""Metrics sinks: `log=tensorboard` writes the run's rows as TensorBoard scalars, the same names and values at the
same steps as metrics.jsonl (read back with TensorBoard's own reader); `log=wandb` writes them into an offline W&B
run (read back from its transaction log); a sink that is unknown or not installed is refused before the run
directory exists."""

import importlib.util
import json
import math
import struct

import pytest

from hare_tortoise.cli import main
from hare_tortoise.runs import RunStore


def numbers(row: dict) -> dict[str, float]:
    """What a sink should get of a metrics row: every finite number but the step."""
    return {name: float(value) for name, value in row.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and name != "step" and math.isfinite(value)}


def wandb_log_records(path) -> list[bytes]:
    """The records of a W&B transaction log (`run-ID.wandb`): a 7-byte header (":W&B", magic, version), then
    LevelDB-log blocks of 32 KiB, each record in chunks with a 7-byte header (CRC, length, FULL/FIRST/MIDDLE/LAST)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, block, chunk, records = 7, 32768, b"", []
    while position + 7 <= len(data):
        room = block - position % block
        if room < 7:  # a block's tail too short for a header is padding
            position += room
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        chunk += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # FULL or LAST: the record is complete
            records.append(chunk)
            chunk = b""
    return records


def test_wandb_gets_every_number_of_every_row_at_its_step_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from wandb.proto import wandb_internal_pb2

    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert main(["run", "smoke", "--method", "hare_tortoise", "--out", str(out), "--no-progress", "log=wandb"]) == 0
    (log,) = (out / "wandb").glob("offline-run-*/run-*.wandb")  # offline: nothing was sent
    history: dict[int, dict[str, float]] = {}
    for raw in wandb_log_records(log):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history[record.history.step.num] = {k: v for k, v in items.items() if not k.startswith("_")}
    expected: dict[int, dict[str, float]] = {}
    for row in RunStore(out).rows():  # W&B keeps one record per step: the rows of a step merge
        expected.setdefault(row["step"], {}).update(numbers(row))
    assert history.keys() == expected.keys() and {"test_acc", "method/resets"} <= set(history[max(history)])
    for step, values in expected.items():
        assert history[step] == pytest.approx(values), step


def test_tensorboard_gets_every_number_of_every_row_at_its_step(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main(["run", "smoke", "--method", "hare_tortoise", "--out", str(out), "--no-progress", "log=tensorboard"]) == 0
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    expected: dict[str, list[tuple[int, float]]] = {}
    for row in RunStore(out).rows():
        for name, value in numbers(row).items():
            expected.setdefault(name, []).append((row["step"], value))
    assert set(events.Tags()["scalars"]) == set(expected) and {"test_acc", "method/resets", "train_loss"} <= set(expected)
    for name, points in expected.items():
        written = [(e.step, e.value) for e in events.Scalars(name)]
        assert [s for s, _ in written] == [s for s, _ in points]
        assert [v for _, v in written] == pytest.approx([v for _, v in points], rel=1e-6)  # stored as float32


@pytest.mark.parametrize("sink, message", [
    ("nonsense", "log='nonsense' is not a metrics sink; the sinks: tensorboard, wandb"),
    ("wandb", "log=wandb needs the wandb package: pip install 'hare-tortoise[wandb]'"),
])
def test_a_sink_that_cannot_run_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch, sink, message):
    find_spec = importlib.util.find_spec  # as if wandb were not installed (the test extra installs it)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name, *a))
    assert main(["run", "smoke", "--out", str(tmp_path / "run"), f"log={sink}"]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()
