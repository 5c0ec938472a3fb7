"""Task sequences: what each task is tested on, which tasks the accuracy matrix tests after each task, and the
matrix a run records (R[i][j] on the task's own test, None where not tested)."""


import numpy as np
import pytest
import torch

from conftest import smoke
from hare_tortoise.data import streams
from hare_tortoise.data.batches import Inputs
from hare_tortoise.evaluation import accuracies, accuracy, matrix_columns, task_test
from hare_tortoise.nn import models
from hare_tortoise.runs import RunStore
from hare_tortoise.train import prepare_dataset, train


@pytest.fixture(scope="module")
def dataset():
    return prepare_dataset(smoke())


def test_each_task_is_tested_on_its_own_test(dataset):
    y = dataset.y_train
    permuted = streams.build("permuted_inputs", y, 10, 40, 1, 0, tasks=2)[1]
    x, labels = task_test(permuted, dataset)  # the permutation is applied by the inputs, as in training
    assert torch.equal(x, dataset.x_test) and torch.equal(labels, dataset.y_test)
    shuffled = streams.build("shuffled_labels", y, 10, 40, 1, 0, tasks=2)[1]
    assert torch.equal(task_test(shuffled, dataset)[1], shuffled.test.label_map[dataset.y_test])
    first = streams.build("class_incremental", y, 10, 40, 1, 0, first_classes=3)[0]
    x, labels = task_test(first, dataset)
    keep = torch.isin(dataset.y_test, first.test.classes)
    assert torch.equal(x, dataset.x_test[keep]) and torch.equal(labels, dataset.y_test[keep]) and len(labels) < 100
    relabelled = streams.build("random_labels", y, 10, 40, 1, 0, task_size=50)[0]
    x, labels = task_test(relabelled, dataset)
    assert torch.equal(x, dataset.x_train[relabelled.indices]) and torch.equal(labels, relabelled.labels)


def test_the_matrix_subsample_is_fixed_and_drawn_from_the_tasks_test(dataset):
    phase = streams.build("permuted_inputs", dataset.y_train, 10, 40, 1, 0, tasks=1)[0]
    x, y = task_test(phase, dataset, size=30)
    again = task_test(phase, dataset, size=30)
    assert len(y) == 30 and torch.equal(x, again[0]) and torch.equal(y, again[1])
    rows = [int((dataset.x_test == row).all(1).nonzero()[0]) for row in x]
    assert len(set(rows)) == 30 and torch.equal(dataset.y_test[rows], y)
    assert torch.equal(task_test(phase, dataset, size=1000)[1], dataset.y_test)  # more than there is: all of it


@pytest.mark.parametrize("task, tasks, earlier, expected", [
    (0, 5, 10, [0, 1]),
    (4, 5, 10, [0, 1, 2, 3, 4]),
    (30, 200, 10, [0, 3, 6, 10, 13, 16, 19, 23, 26, 29, 30, 31]),  # 10 earlier ones from the first, then own, next
    (30, 200, 1, [0, 30, 31]),
    (199, 200, 3, [0, 99, 198, 199]),
    (5, 200, None, [0, 1, 2, 3, 4, 5, 6]),
])
def test_matrix_columns_are_the_task_the_next_and_earlier_ones_spread_evenly(task, tasks, earlier, expected):
    assert matrix_columns(task, tasks, earlier) == expected


def test_a_permuted_run_tests_each_task_on_its_permutation_and_records_the_matrix(tmp_path, dataset):
    config = smoke(protocol="permuted_inputs", tasks=3, epochs=2, matrix_tasks=1, task_test_size=None)
    train(config, tmp_path, dataset, progress=False)
    ends = [r for r in RunStore(tmp_path).rows() if r.get("phase_end")]
    tested = [[j for j, value in enumerate(r["task_acc"]) if value is not None] for r in ends]
    assert tested == [[0, 1], [0, 1, 2], [0, 2]]
    assert all(r["task_acc"][i] == r["test_acc"] for i, r in enumerate(ends)) and "task_acc_hare" not in ends[0]
    # the final network, by hand, on each task's permuted test set
    model = models.build(config.model, dataset.input_shape, dataset.num_classes, config.width, config.norm)
    model.load_state_dict(RunStore(tmp_path).load_checkpoint()["model"])
    phases = streams.build("permuted_inputs", dataset.y_train, 10, 40, config.epochs, config.seed, tasks=3)
    inputs = Inputs(dataset.mean, dataset.std)
    by_hand = [accuracy(model, dataset.x_test, dataset.y_test,
                        lambda x, p=p: inputs(x, None, p.input_permutation)) for p in phases]
    assert [ends[-1]["task_acc"][0], ends[-1]["task_acc"][2]] == [by_hand[0], by_hand[2]]
    assert ends[-1]["test_acc"] == by_hand[2] != by_hand[0]


def test_accuracies_of_several_networks_on_shared_inputs_are_each_networks_own(dataset):
    torch.manual_seed(0)
    first, second = (models.build("mlp", dataset.input_shape, 10, 16) for _ in range(2))
    second.train()
    made = []

    def inputs(x):
        made.append(len(x))
        return Inputs(dataset.mean, dataset.std)(x)

    both = accuracies([first.eval(), second], dataset.x_test, dataset.y_test, inputs, 37)
    assert made == [37] * (len(dataset.y_test) // 37) + [len(dataset.y_test) % 37]  # each batch made once for both
    assert both == [accuracy(m, dataset.x_test, dataset.y_test, Inputs(dataset.mean, dataset.std), 37)
                    for m in (first, second)] and both[0] != both[1]
    assert not first.training and second.training  # each network's own mode back


def test_a_hare_tortoise_run_records_the_matrix_of_both_networks(tmp_path, dataset):
    config = smoke("hare_tortoise", protocol="class_incremental", first_classes=6, classes_per_task=4, epochs=2,
                   task_test_size=30, method_settings={"momentum": 0.9, "reset_every_epochs": 3})
    train(config, tmp_path, dataset, progress=False)
    ends = [r for r in RunStore(tmp_path).rows() if r.get("phase_end")]
    assert len(ends) == 2
    for i, r in enumerate(ends):
        assert r["task_acc"][i] == r["test_acc"] and r["task_acc_hare"][i] == r["test_acc_hare"]
        # the own-task test, like every entry, on the task's fixed subsample of 30 (about 60 test samples are in)
        assert all(abs(30 * value - round(30 * value)) < 1e-9 for value in r["task_acc"] + r["task_acc_hare"] if value)
    assert ends[0]["task_acc"][1] is not None and ends[1]["task_acc"][0] is not None


def test_protocols_of_one_test_set_record_no_matrix(tmp_path, dataset):
    train(smoke(), tmp_path, dataset, progress=False)
    assert not any("task_acc" in r for r in RunStore(tmp_path).rows())


def test_the_report_tabulates_the_sequence_metrics_and_draws_the_matrix_and_curves(tmp_path, dataset):
    from hare_tortoise import metrics
    from hare_tortoise.report import read_runs, report
    from hare_tortoise.report.sequences import accuracy_matrix, own_task, sequence_cells

    for method, seeds in (("base", (1, 2)), ("full_reset", (1,)), ("hare_tortoise", (1,))):
        for seed in seeds:
            settings = {"momentum": 0.9, "reset_every_epochs": 2} if method == "hare_tortoise" else {}
            config = smoke(method, protocol="permuted_inputs", tasks=3, epochs=2, seed=seed, method_settings=settings)
            train(config, tmp_path / method / f"seed{seed}", dataset, progress=False)
    runs = read_runs([tmp_path])
    cells = {cell.label: cell for cell in sequence_cells(runs)}
    assert set(cells) == {"base", "full_reset", "hare_tortoise", "hare_tortoise (hare)"}
    base = [r for r in runs if r.config["method"] == "base"]
    matrices = [accuracy_matrix(r) for r in base]
    assert matrices[0].shape == (3, 3) and np.isnan(matrices[0][0, 2])  # task 2 not tested after task 0
    by_hand = np.mean([metrics.backward_transfer(torch.from_numpy(m)) for m in matrices])
    assert cells["base"].columns["backward transfer"].mean == pytest.approx(by_hand)
    assert cells["base"].columns["forgetting"].mean == pytest.approx(
        np.mean([metrics.forgetting(torch.from_numpy(m)) for m in matrices]))
    fresh = np.mean([own_task(r, "test_acc")[-1] for r in runs if r.config["method"] == "full_reset"])
    own = [own_task(r, "test_acc")[-1] for r in base]  # 3 tasks: the last tenth is the last task
    assert cells["base"].columns["plasticity ratio"].mean == pytest.approx(np.mean(own) / fresh)
    assert cells["full_reset"].columns["plasticity ratio"].mean == pytest.approx(1.0)
    text, figures = report([tmp_path], tmp_path / "report")
    assert "backward transfer [t]" in text and "hare_tortoise (hare)" in text
    assert "On random labels" not in text  # the note belongs to random-label streams only
    assert {p.name for p in figures} >= {f"mnist1d_mlp_permuted_inputs-{kind}.png" for kind in ("tasks", "matrix")}


def test_the_report_says_what_forgetting_means_on_random_labels(tmp_path, dataset):
    from hare_tortoise.report import report

    train(smoke(protocol="random_labels", tasks=2, task_size=50), tmp_path / "base" / "seed1", dataset,
          progress=False)
    text, _ = report([tmp_path], tmp_path / "report")
    assert "mnist1d/mlp/random_labels" in text and "restate trainability, not lost knowledge" in text
