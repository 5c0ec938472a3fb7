"""Metrics on matrices with known singular values and on constructed activations."""

import copy
import math

import pytest
import torch
from torch import nn

from conftest import batch, states_equal
from hare_tortoise import metrics


def with_singular_values(values, n=12, d=8, seed=0):
    """An n x d matrix whose singular values are exactly `values` (padded with zeros)."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    s = torch.zeros(n, d, dtype=torch.float64)
    for i, value in enumerate(values):
        s[i, i] = value
    return u @ s @ v.T


def test_effective_rank_of_known_spectra():
    assert metrics.effective_rank(with_singular_values([1, 1, 1])) == pytest.approx(3.0)
    assert metrics.effective_rank(with_singular_values([5.0] * 8)) == pytest.approx(8.0)
    p = torch.tensor([3.0, 1.0]) / 4
    assert metrics.effective_rank(with_singular_values([3, 1])) == pytest.approx(math.exp(-(p * p.log()).sum().item()))
    assert metrics.effective_rank(torch.zeros(4, 3)) == 0.0


def test_approximate_rank_counts_singular_values_covering_the_threshold():
    features = with_singular_values([10, 1, 0.001])
    assert metrics.approximate_rank(features) == 2           # 11 / 11.001 >= 0.99, 10 / 11.001 is not
    assert metrics.approximate_rank(features, threshold=0.9) == 1
    assert metrics.approximate_rank(features, threshold=1.0) == 3
    assert metrics.approximate_rank(with_singular_values([1] * 5)) == 5
    with pytest.raises(ValueError, match="threshold must be in"):
        metrics.approximate_rank(features, threshold=0)


def test_stable_rank_is_squared_frobenius_over_squared_spectral_norm():
    assert metrics.stable_rank(with_singular_values([4, 3])) == pytest.approx((16 + 9) / 16)
    assert metrics.stable_rank(with_singular_values([2] * 6)) == pytest.approx(6.0)
    with pytest.raises(ValueError, match="must be a matrix"):
        metrics.stable_rank(torch.zeros(2, 3, 4))


def test_dormant_fraction_uses_scores_normalised_by_the_layer_mean():
    # units with mean |a| of 0, 1, 2, 3 -> layer mean 1.5 -> scores 0, 2/3, 4/3, 2
    activations = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, -1.0, 2.0, 3.0]])
    torch.testing.assert_close(metrics.unit_scores(activations), torch.tensor([0.0, 2 / 3, 4 / 3, 2.0]))
    assert metrics.dormant_fraction(activations, tau=0.0) == 0.25
    assert metrics.dormant_fraction(activations, tau=0.7) == 0.5
    conv = torch.zeros(2, 3, 4, 4)
    conv[:, 1] = 1.0  # channels are the units of a feature map
    assert metrics.dormant_fraction(conv, tau=0.0, unit_dim=1) == pytest.approx(2 / 3)
    assert metrics.dormant_fraction(torch.zeros(5, 4), tau=0.0) == 1.0


def test_zero_activation_fraction_counts_entries():
    assert metrics.zero_activation_fraction(torch.tensor([[0.0, 1.0], [0.0, 0.0]])) == 0.75


def test_weight_distance_and_gradient_norms():
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 0.0]]))
        layer.bias.copy_(torch.tensor([0.0, 4.0]))
    assert metrics.weight_norm(layer) == pytest.approx(5.0)
    initial = {k: torch.zeros_like(v) for k, v in layer.state_dict().items()}
    assert metrics.distance_to_init(layer, initial) == pytest.approx(5.0)
    assert metrics.gradient_norm(layer) == 0.0
    layer.weight.grad = torch.full((2, 2), 1.0)
    assert metrics.gradient_norm(layer) == pytest.approx(2.0)


def test_plasticity_metrics_measures_everything_and_changes_nothing(mlp):
    with torch.no_grad():
        mlp.head[0].bias[[0, 1]] = -100.0  # two of the head's eight units are dead
    x, y = batch(n=64)
    before = copy.deepcopy(mlp.state_dict())
    result = metrics.plasticity_metrics(mlp, x, y, initial=before, tau=0.0)
    assert states_equal(mlp.state_dict(), before)
    assert all(p.grad is None for p in mlp.parameters())
    assert result["dormant_fraction/head.1"] == 0.25
    assert result["zero_activation_fraction/head.1"] >= 0.25
    assert set(result) >= {"dormant_fraction", "zero_activation_fraction", "effective_rank", "approximate_rank",
                           "stable_rank", "weight_norm", "distance_to_init", "gradient_norm",
                           "dormant_fraction/backbone.2", "dormant_fraction/backbone.4"}
    assert result["distance_to_init"] == 0.0
    twin = copy.deepcopy(mlp)
    torch.nn.functional.cross_entropy(twin(x), y).backward()
    assert result["gradient_norm"] == pytest.approx(metrics.gradient_norm(twin), rel=1e-6)
    assert all(isinstance(v, float) for v in result.values())
    # the rank metrics are computed on the input of the last Linear (the head's 8 features, 2 of them dead)
    mlp.train()
    features = mlp.head[1](mlp.head[0](mlp.backbone(x)))
    assert result["effective_rank"] == pytest.approx(metrics.effective_rank(features), rel=1e-6)
    assert result["approximate_rank"] <= 6
    # the dormant fraction over all layers pools all 8 + 8 + 8 units
    per_layer = [result[f"dormant_fraction/{n}"] for n in ("backbone.2", "backbone.4", "head.1")]
    assert result["dormant_fraction"] == pytest.approx(sum(per_layer) / 3)


# --- sequence metrics ---------------------------------------------------------------------------------------------

NAN = float("nan")
# three tasks: task 0 learnt to 0.9, then forgotten to 0.6 and 0.5; task 1 learnt to 0.8, then 0.7; task 2 0.95;
# before training on it, task 1 read 0.3 and task 2 0.4 (the entries above the diagonal)
R = [[0.9, 0.3, NAN],
     [0.6, 0.8, 0.4],
     [0.5, 0.7, 0.95]]


def test_the_sequence_metrics_on_a_matrix_worked_out_by_hand():
    from hare_tortoise.metrics import average_accuracy, backward_transfer, forgetting, forward_transfer

    assert average_accuracy(R) == pytest.approx((0.5 + 0.7 + 0.95) / 3)
    assert backward_transfer(R) == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)
    assert forgetting(R) == pytest.approx(((0.9 - 0.5) + (0.8 - 0.7)) / 2)  # best earlier minus final
    assert forward_transfer(R, [0.1, 0.1, 0.2]) == pytest.approx(((0.3 - 0.1) + (0.4 - 0.2)) / 2)


def test_forgetting_takes_the_best_earlier_accuracy_not_the_first():
    from hare_tortoise.metrics import backward_transfer, forgetting

    rising = [[0.5, NAN, NAN], [0.9, 0.6, NAN], [0.7, 0.6, 0.8]]  # task 0 peaks after task 1, ends at 0.7
    assert forgetting(rising) == pytest.approx(((0.9 - 0.7) + (0.6 - 0.6)) / 2)
    assert backward_transfer(rising) == pytest.approx(((0.7 - 0.5) + (0.6 - 0.6)) / 2)  # against the first


def test_sequence_metrics_skip_what_was_not_evaluated_and_refuse_a_matrix_that_is_not_square():
    from hare_tortoise.metrics import average_accuracy, backward_transfer, forgetting, forward_transfer

    sparse = [[0.9, NAN, NAN], [NAN, 0.8, NAN], [0.5, NAN, 0.95]]  # task 1 not evaluated at the end
    assert average_accuracy(sparse) == pytest.approx((0.5 + 0.95) / 2)
    assert backward_transfer(sparse) == pytest.approx(0.5 - 0.9) and forgetting(sparse) == pytest.approx(0.4)
    assert math.isnan(forward_transfer(sparse, [0.1, 0.1, 0.1]))
    for bad in ([[0.9, 0.1]], [], [0.5, 0.6]):
        with pytest.raises(ValueError, match="an accuracy matrix is square"):
            average_accuracy(bad)
    with pytest.raises(ValueError, match="fresh holds one accuracy per task"):
        forward_transfer(R, [0.1, 0.2])
