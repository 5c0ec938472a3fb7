"""One run on two processes (torchrun, gloo on CPU): ranks agree bit for bit, rank 0 alone writes, and without
BatchNorm the result equals the single-process run's."""

import gc
import json
import os
import subprocess
import sys
from unittest import mock

import pytest
import torch
import torch.multiprocessing as mp

from hare_tortoise.cli import main
from hare_tortoise.distributed import World
from hare_tortoise.runs import RunStore


def torchrun(out, *overrides) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "hare_tortoise", "run", "smoke", "--method", "hare_tortoise", "--out", str(out), "--no-progress",
               *overrides]
    return subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_two_ranks_agree_bit_for_bit_and_rank_0_alone_writes(tmp_path):
    result = torchrun(tmp_path / "ddp")  # the smoke MLP has BatchNorm: each rank normalises its own slice
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("test accuracy") == 1  # one rank speaks
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["ranks_agree"] is True
    assert len(RunStore(tmp_path / "ddp").rows()) == 22  # one row per epoch, not one per rank


def test_without_batch_statistics_two_ranks_compute_what_one_process_does(tmp_path):
    assert torchrun(tmp_path / "ddp", "norm=layer").returncode == 0
    assert main(["run", "smoke", "--method", "hare_tortoise", "--out", str(tmp_path / "one"), "--no-progress",
                 "norm=layer"]) == 0
    distributed, single = RunStore(tmp_path / "ddp").rows(), RunStore(tmp_path / "one").rows()
    assert len(distributed) == len(single)
    for a, b in zip(distributed, single):  # the same batches, split in two: equal up to summation order
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["train_acc"] == b["train_acc"]


def _agree_worker(rank: int, init: str, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    world = World(rank, 2)
    tensors = [torch.linspace(0, 1, 10), torch.arange(4)]
    same = world.agree(tensors)
    if rank == 1:  # one float, one unit in the last place away
        tensors[0][3] = torch.nextafter(tensors[0][3], torch.tensor(2.0))
    results.put((rank, same, world.agree(tensors)))
    world.close()


def test_agreement_is_checked_to_the_last_bit(tmp_path):
    context = mp.get_context("spawn")
    results = context.Queue()
    mp.start_processes(_agree_worker, args=(f"file://{tmp_path / 'rendezvous'}", results), nprocs=2,
                       start_method="spawn")
    outcomes = sorted(results.get(timeout=60) for _ in range(2))
    assert outcomes == [(0, True, False), (1, True, False)]


def _counting_worker(rank: int, init: str, out: str, overrides: list[str], results) -> None:
    from hare_tortoise.presets import resolve
    from hare_tortoise.train import TrainingDiverged, train

    os.environ.update(WORLD_SIZE="2", RANK=str(rank))
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    wrappers_alive, destroy = [], torch.distributed.destroy_process_group

    def checked_destroy():
        wrappers_alive.append(sum(type(o) is torch.nn.parallel.DistributedDataParallel for o in gc.get_objects()))
        destroy()

    with mock.patch.object(torch.distributed, "destroy_process_group", checked_destroy):
        try:
            train(resolve("smoke", "hare_tortoise", 1, None, overrides), out, progress=False)
            outcome = "finished"
        except TrainingDiverged:
            outcome = "diverged"
    results.put((rank, outcome, wrappers_alive))


@pytest.mark.parametrize("overrides, outcome", [([], "finished"), (["lr=1e30"], "diverged")])
def test_a_run_drops_its_ddp_wrapper_before_it_leaves_the_process_group(tmp_path, overrides, outcome):
    """A wrapper freed after the group joins gloo's threads while holding the GIL, which can hang
    (pytorch/pytorch#56297); when the run raises, the traceback still holds the Trainer, which must let go of it."""
    context = mp.get_context("spawn")
    results = context.Queue()
    mp.start_processes(_counting_worker, nprocs=2, start_method="spawn",
                       args=(f"file://{tmp_path / 'rendezvous'}", str(tmp_path / "run"), overrides, results))
    outcomes = sorted(results.get(timeout=60) for _ in range(2))
    assert outcomes == [(0, outcome, [0]), (1, outcome, [0])]  # no wrapper alive when the group went


def test_rl_runs_refuse_torchrun(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["run", "rl-smoke", "--out", str(tmp_path / "rl")]) == 2
    assert "RL runs use one process" in capsys.readouterr().err
