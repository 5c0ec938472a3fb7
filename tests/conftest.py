"""Shared by the tests: tiny models (backbone/head split, BatchNorm, ReLUs inside Sequentials) and a data folder.

Generated data (the MNIST-1D cache) goes to one temporary folder per test session, never to the user's cache;
subprocesses inherit it through $HARE_TORTOISE_DATA.
"""

import dataclasses
import os
import tempfile

import pytest
import torch
from torch import nn

os.environ["HARE_TORTOISE_DATA"] = tempfile.mkdtemp(prefix="hare-tortoise-tests-")


class TinyMLP(nn.Module):
    """4 -> 8 (BN, ReLU) -> 8 (ReLU) -> head 8 (ReLU) -> 3."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x):
        return self.head(self.backbone(x))


class TinyCNN(nn.Module):
    """1x6x6 -> conv 4 (BN, ReLU) -> flatten -> head 3."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        return self.head(self.backbone(x))


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return TinyMLP()


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return TinyCNN()


def batch(n=16, seed=1):
    """A fixed batch for TinyMLP: (inputs, targets)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def states_equal(a: dict, b: dict) -> bool:
    """Two state dicts (possibly nested, with tensors) hold the same keys and exactly equal values."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(states_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(states_equal(x, y) for x, y in zip(a, b))
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


def smoke(method="base", **changes):
    """The smoke preset's Config under `method` (with the preset's settings for it), with `changes`."""
    from hare_tortoise import presets
    from hare_tortoise.config import Config

    preset = presets.get("smoke")
    config = Config(**preset.config, method=method, method_settings=preset.method_defaults.get(method, {}))
    return dataclasses.replace(config, **changes)


def stop_after_first_checkpoint(monkeypatch):
    """Make a run stop (KeyboardInterrupt, as a kill would) right after it writes its next checkpoint; returns the
    function that undoes it, so that the run can then be resumed."""
    from hare_tortoise.runs import RunStore

    original = RunStore.save_checkpoint

    def save_then_stop(self, state):
        original(self, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(RunStore, "save_checkpoint", save_then_stop)
    return lambda: monkeypatch.setattr(RunStore, "save_checkpoint", original)
