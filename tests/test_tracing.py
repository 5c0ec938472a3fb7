"""Tracing sees functional activations (`F.relu(self.fc(x))`): ReDo recycles their dormant units and the metrics
measure them; a model in which nothing can be traced is refused with a message, never silently skipped."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hare_tortoise import methods
from hare_tortoise.methods import MethodRefused
from hare_tortoise.metrics import plasticity_metrics
from hare_tortoise.tracing import trace


class FunctionalMLP(nn.Module):
    """4 -> fc1 (F.relu) -> fc2 (x.relu()) -> out 3, units 1 and 4 of fc1 dead (bias -100), all of fc2 alive."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.out = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 3)
        with torch.no_grad():
            self.fc1.bias[[1, 4]] = -100.0
            self.fc2.bias.fill_(100.0)

    def forward(self, x):
        return self.out(self.fc2(F.relu(self.fc1(x))).relu())


class FunctionalCNN(nn.Module):
    """conv 4 -> BN -> torch.relu -> flatten -> head, channel 2 dead after BatchNorm."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bn, self.head = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Linear(4 * 36, 3)
        with torch.no_grad():
            self.bn.bias[2], self.bn.weight[2] = -100.0, 0.5

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))


def test_functional_activations_and_reshapes_are_traced_once_each_and_named_after_their_layer():
    calls = trace(FunctionalCNN(), torch.randn(5, 1, 6, 6))
    assert [(c.name, type(c.module).__name__) for c in calls] == [
        ("conv", "Conv2d"), ("bn", "BatchNorm2d"), ("bn.relu", "ReLU"), ("bn.relu.flatten", "Flatten"), ("head", "Linear")]
    sequential = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))  # nn.ReLU calls F.relu: not twice
    assert [c.name for c in trace(sequential, torch.randn(3, 4))] == ["0", "1", "2"]


def test_redo_recycles_the_dormant_units_of_a_functional_mlp():
    model = FunctionalMLP()
    before = copy.deepcopy(model.state_dict())
    method = methods.create("redo", tau=0.0)
    method.attach(model)
    method.check_model(torch.randn(2, 4))
    assert method.apply(torch.randn(32, 4)) == {"fc1.relu": 2, "fc2.relu": 0}
    dead, alive = [1, 4], [0, 2, 3, 5]
    assert not torch.equal(model.fc1.weight[dead], before["fc1.weight"][dead]) and (model.fc1.bias[dead] > -1).all()
    assert torch.equal(model.fc1.weight[alive], before["fc1.weight"][alive])
    assert (model.fc2.weight[:, dead] == 0).all() and torch.equal(model.fc2.weight[:, alive], before["fc2.weight"][:, alive])
    assert method.counts == {"scans": 1, "recycled_units": 2}


def test_redo_maps_a_functional_conv_channel_through_norm_and_flatten():
    model = FunctionalCNN()
    before = copy.deepcopy(model.state_dict())
    method = methods.create("redo", tau=0.0)
    method.attach(model)
    assert method.apply(torch.randn(8, 1, 6, 6)) == {"bn.relu": 1}
    head = model.head.weight.view(3, 4, 36)
    assert (head[:, 2] == 0).all() and torch.equal(head[:, [0, 1, 3]], before["head.weight"].view(3, 4, 36)[:, [0, 1, 3]])
    assert model.bn.weight[2] == 1.0 and model.bn.bias[2] == 0.0
    assert not torch.equal(model.conv.weight[2], before["conv.weight"][2])


def test_the_metrics_measure_functional_activations():
    result = plasticity_metrics(FunctionalMLP(), torch.randn(64, 4))
    assert result["dormant_fraction/fc1.relu"] == pytest.approx(2 / 6)
    assert set(result) >= {"dormant_fraction", "dormant_fraction/fc2.relu", "zero_activation_fraction", "effective_rank"}


class Untraceable(nn.Module):
    """An activation written as arithmetic: nothing marks it as one."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 6), nn.Linear(6, 3)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2(h * (h > 0))


def test_a_model_without_a_visible_activation_is_refused_by_redo_and_by_the_metrics():
    method = methods.create("redo")
    method.attach(Untraceable())
    with pytest.raises(MethodRefused, match="ReDo found nothing to recycle in Untraceable: it saw no activation"):
        method.check_model(torch.randn(2, 4))
    with pytest.raises(ValueError, match="no activation was seen in a forward pass of Untraceable"):
        plasticity_metrics(Untraceable(), torch.randn(8, 4))
