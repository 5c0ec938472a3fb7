"""Plasticity metrics and sequence metrics: one name, one definition each.

Rank metrics take a feature matrix (N samples x D features, e.g. the penultimate layer on a probe batch); unit
metrics take one layer's activations; weight metrics take a model. `plasticity_metrics` measures all of them on a
probe batch and returns a flat dict of named floats. Sequence metrics take the accuracy matrix of a run over T tasks,
R[i][j] = test accuracy on task j after training on task i (NaN where it was not evaluated).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InvalidInput
from .nn.layers import CReLU
from .tensors import buffers_preserved, global_norm, unwrap
from .tracing import ACTIVATIONS, Call, outputs_index, trace, unit_dim

# whose outputs the unit metrics measure: activations, and CReLU (each of its halves a unit; none can be dead)
UNIT_LAYERS = (*ACTIVATIONS, CReLU)


def _measurable(values: torch.Tensor, what: str) -> None:
    """Refuse an empty or non-finite input: a metric of it would be a number that means nothing."""
    if values.numel() == 0:
        raise InvalidInput(f"{what} is empty (shape {tuple(values.shape)}): there is nothing to measure")
    if values.is_floating_point() and not torch.isfinite(values).all():
        raise InvalidInput(f"{what} holds NaN or infinite values: a metric of them means nothing (did training "
                           "diverge?)")


def _singular_values(features: torch.Tensor) -> torch.Tensor:
    if features.dim() != 2:
        raise InvalidInput(f"features must be a matrix (samples x features), got shape {tuple(features.shape)}")
    _measurable(features, "the feature matrix")
    return torch.linalg.svdvals(features.detach().double())


def effective_rank(features: torch.Tensor) -> float:
    """exp(H(p)), p_i = sigma_i / sum_j sigma_j over the singular values: from 1 to min(N, D).

    Roy & Vetterli, "The effective rank: a measure of effective dimensionality", EUSIPCO 2007. 0 for a zero matrix.
    """
    s = _singular_values(features)
    total = s.sum()
    if total == 0:
        return 0.0
    p = s / total
    entropy = -(p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))).sum()
    return float(torch.exp(entropy))


def approximate_rank(features: torch.Tensor, threshold: float = 0.99) -> int:
    """The fewest singular values whose sum covers `threshold` of the sum of all (srank with delta = 1 - threshold).

    Kumar et al., "Implicit Under-Parameterization Inhibits Data-Efficient Deep RL", ICLR 2021 (arXiv:2010.14498).
    """
    if not 0 < threshold <= 1:
        raise InvalidInput(f"threshold must be in (0, 1], got {threshold!r}")
    s = _singular_values(features)
    total = s.sum()
    if total == 0:
        return 0
    covered = torch.cumsum(s, 0) / total
    return int(torch.searchsorted(covered, torch.tensor(threshold - 1e-12, dtype=covered.dtype))) + 1


def stable_rank(features: torch.Tensor) -> float:
    """||F||_F^2 / ||F||_2^2 = sum_i sigma_i^2 / sigma_max^2 (Rudelson & Vershynin 2007). 0 for a zero matrix."""
    s = _singular_values(features)
    return 0.0 if s[0] == 0 else float(s.square().sum() / s[0].square())


def unit_scores(activations: torch.Tensor, unit_dim: int = -1) -> torch.Tensor:
    """ReDo score of every unit: mean |activation| of the unit over the batch (and positions), over the layer mean.

    Sokar et al., ICML 2023 (arXiv:2302.12902). All zeros when the whole layer is silent.
    """
    _measurable(activations, "the activations")
    dims = [d for d in range(activations.dim()) if d != unit_dim % activations.dim()]
    per_unit = activations.detach().abs().float().mean(dim=dims)
    layer_mean = per_unit.mean()
    return per_unit / layer_mean if layer_mean > 0 else torch.zeros_like(per_unit)


def dormant_fraction(activations: torch.Tensor, tau: float = 0.0, unit_dim: int = -1) -> float:
    """Fraction of units whose ReDo score (`unit_scores`) is <= tau: "tau-dormant" units (Sokar et al. 2023)."""
    return float((unit_scores(activations, unit_dim) <= tau).float().mean())


def zero_activation_fraction(activations: torch.Tensor) -> float:
    """Fraction of all activation entries (samples x units x positions) that are exactly zero."""
    _measurable(activations, "the activations")
    return float((activations == 0).float().mean())


def weight_norm(model: nn.Module) -> float:
    """Global L2 norm of all parameters: sqrt(sum ||theta||^2)."""
    return float(global_norm([p.detach() for p in unwrap(model).parameters()]))


def distance_to_init(model: nn.Module, initial: dict[str, torch.Tensor]) -> float:
    """Global L2 distance of the parameters to `initial` (a state dict): sqrt(sum ||theta - theta_0||^2)."""
    names, params = zip(*((n, p.detach()) for n, p in unwrap(model).named_parameters()))
    differences = torch._foreach_sub(list(params), [initial[n] for n in names])
    return float(global_norm(differences))


def gradient_norm(model: nn.Module) -> float:
    """Global L2 norm of the gradients currently in `.grad` (parameters without one count as zero)."""
    return float(global_norm([p.grad.detach() for p in unwrap(model).parameters() if p.grad is not None]))


def activation_calls(model: nn.Module, calls: list[Call]) -> list[Call]:
    """The activations of a traced forward pass of `model`, or a ValueError if there are none: the unit metrics
    (dormant and zero-activation fractions) would be missing without a word."""
    found = [call for call in calls if isinstance(call.module, UNIT_LAYERS)]
    if not found:
        raise InvalidInput(f"no activation was seen in a forward pass of {type(unwrap(model)).__name__}: the dormant "
                         "and zero-activation fractions need activation modules (nn.ReLU, nn.GELU, ...) or functional "
                         "activations (F.relu, torch.relu, x.relu(), F.gelu, ...)")
    return found


def plasticity_metrics(
    model: nn.Module,
    inputs: torch.Tensor,                       # a probe batch
    targets: torch.Tensor | None = None,        # with targets, also the gradient norm of the loss on the batch
    loss_fn: Callable = F.cross_entropy,
    initial: dict[str, torch.Tensor] | None = None,  # a state dict of initial weights: adds distance_to_init
    tau: float = 0.1,                           # threshold of dormant_fraction
) -> dict[str, float]:
    """Every metric of this module on one probe batch, as a flat dict of named floats.

    Features for the rank metrics are the input of the last Linear layer called (the penultimate representation).
    Unit metrics are reported per activation layer (`dormant_fraction/<layer>`, functional activations named after
    the layer they follow, e.g. `fc1.relu`) and over all units of all activation layers together
    (`dormant_fraction`); a model in which no activation is seen is a ValueError. Buffers and `.grad` are left
    untouched.
    """
    model = unwrap(model)
    calls = trace(model, inputs)
    by_output = outputs_index(calls)
    result: dict[str, float] = {}
    dormant, zero, units, entries = 0.0, 0.0, 0, 0
    for call in activation_calls(model, calls):
        dim = unit_dim(call, by_output)
        n_units, n_entries = call.output.shape[dim], call.output.numel()
        result[f"dormant_fraction/{call.name}"] = dormant_fraction(call.output, tau, dim)
        result[f"zero_activation_fraction/{call.name}"] = zero_activation_fraction(call.output)
        dormant += result[f"dormant_fraction/{call.name}"] * n_units
        zero += result[f"zero_activation_fraction/{call.name}"] * n_entries
        units, entries = units + n_units, entries + n_entries
    result["dormant_fraction"] = dormant / units
    result["zero_activation_fraction"] = zero / entries
    linear_calls = [call for call in calls if isinstance(call.module, nn.Linear)]
    if linear_calls:
        features = linear_calls[-1].input.flatten(1)
        result["effective_rank"] = effective_rank(features)
        result["approximate_rank"] = float(approximate_rank(features))
        result["stable_rank"] = stable_rank(features)
    result["weight_norm"] = weight_norm(model)
    if initial is not None:
        result["distance_to_init"] = distance_to_init(model, initial)
    if targets is not None:
        params = [p for p in model.parameters() if p.requires_grad]
        with buffers_preserved(model):
            grads = torch.autograd.grad(loss_fn(model(inputs), targets), params, allow_unused=True)
        result["gradient_norm"] = float(global_norm([g for g in grads if g is not None]))
    return result


# --- sequence metrics over an accuracy matrix ------------------------------------------------------------------

Matrix = Sequence[Sequence[float]] | torch.Tensor  # R[i][j]: accuracy on task j after task i; NaN: not evaluated

def _accuracy_matrix(R: Matrix) -> torch.Tensor:
    """R as a float64 T x T tensor (lists of lists or a tensor); a ValueError unless it is square and not empty."""
    matrix = torch.as_tensor(R, dtype=torch.float64)
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1] or matrix.numel() == 0:
        raise InvalidInput(f"an accuracy matrix is square, R[i][j] for tasks i, j < T; got shape {tuple(matrix.shape)}")
    return matrix


def _nanmean(values: torch.Tensor) -> float:
    """The mean of the entries that are not NaN; NaN when there is none."""
    kept = values[~torch.isnan(values)]
    return float(kept.mean()) if kept.numel() else float("nan")


def average_accuracy(R: Matrix) -> float:
    """Mean of the last row, the accuracy on every task after the last one (Chaudhry et al., ECCV 2018); NaN
    entries skipped."""
    return _nanmean(_accuracy_matrix(R)[-1])


def backward_transfer(R: Matrix) -> float:
    """BWT = mean over j < T-1 of R[T-1][j] - R[j][j] (Lopez-Paz & Ranzato, NeurIPS 2017, arXiv:1706.08840):
    negative when later tasks undo earlier ones. Pairs with a NaN are skipped."""
    matrix = _accuracy_matrix(R)
    tasks = matrix.shape[0]
    return _nanmean(matrix[-1, : tasks - 1] - matrix.diagonal()[: tasks - 1])


def forgetting(R: Matrix) -> float:
    """Average forgetting (Chaudhry et al., "Riemannian Walk for Incremental Learning", ECCV 2018,
    arXiv:1801.10112): mean over j < T-1 of the best accuracy on task j after any task l in [j, T-2], minus the
    final accuracy on it. NaN entries are skipped."""
    matrix = _accuracy_matrix(R)
    tasks = matrix.shape[0]
    drops = []
    for j in range(tasks - 1):
        earlier = matrix[j : tasks - 1, j]
        earlier = earlier[~torch.isnan(earlier)]
        if earlier.numel() and not torch.isnan(matrix[-1, j]):
            drops.append(float(earlier.max() - matrix[-1, j]))
    return sum(drops) / len(drops) if drops else float("nan")


def forward_transfer(R: Matrix, fresh: Sequence[float] | torch.Tensor) -> float:
    """FWT = mean over j >= 1 of R[j-1][j] - fresh[j] (Lopez-Paz & Ranzato 2017): the accuracy on task j before
    training on it, against a freshly initialised network's `fresh[j]`. NaN entries are skipped."""
    matrix = _accuracy_matrix(R)
    baseline = torch.as_tensor(fresh, dtype=torch.float64)
    if baseline.shape != (matrix.shape[0],):
        raise InvalidInput(f"fresh holds one accuracy per task ({matrix.shape[0]}), got shape {tuple(baseline.shape)}")
    return _nanmean(matrix.diagonal(offset=1) - baseline[1:])
