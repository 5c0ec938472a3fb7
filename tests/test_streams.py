"""The protocols: subset sizes, exact noise fractions, overlaps, epochs, and determinism from the seed."""

import pytest
import torch

from hare_tortoise.data import streams


def labels(n=1000, classes=10, seed=0):
    return torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed))


def test_corrupt_changes_exactly_the_fraction_always_to_another_class():
    y = labels(10_000)
    noisy = streams.corrupt(y, 0.3, 10, torch.Generator().manual_seed(1))
    changed = noisy != y
    assert changed.sum() == 3000
    # the new classes are spread over the 9 others: every offset 1..9 appears about 1/9 of the time
    offsets = ((noisy - y) % 10)[changed].bincount(minlength=10)
    assert offsets[0] == 0 and (offsets[1:] - 3000 / 9).abs().max() < 120


def test_warm_start_phases():
    y = labels()
    phases = streams.build("warm_start", y, 10, 40, epochs=50, seed=3)
    warm, full = phases
    assert len(warm.indices) == 100 and warm.indices.unique().numel() == 100
    assert (warm.labels != y[warm.indices]).sum() == 50  # 50% noise, exactly
    assert torch.equal(full.indices, torch.arange(1000)) and torch.equal(full.labels, y)  # all clean
    assert (warm.epochs, full.epochs) == (500, 55)  # int(B / 0.1), int(B / 0.9)


def test_ash_adams_is_clean_half_then_all():
    y = labels()
    first, second = streams.build("ash_adams", y, 10, 40, epochs=10, seed=0)
    assert len(first.indices) == 500 and torch.equal(first.labels, y[first.indices])
    assert len(second.indices) == 1000


def test_same_seed_same_stream_other_seed_other_stream():
    y = labels()
    a = streams.build("continual", y, 10, 40, epochs=5, seed=7)
    b = streams.build("continual", y, 10, 40, epochs=5, seed=7)
    c = streams.build("continual", y, 10, 40, epochs=5, seed=8)
    assert all(torch.equal(p.indices, q.indices) and torch.equal(p.labels, q.labels) for p, q in zip(a, b))
    assert not torch.equal(a[0].indices, c[0].indices)


def test_continual_accumulates_disjoint_chunks_with_the_paper_noise():
    y = labels()
    phases = streams.build("continual", y, 10, 40, epochs=5, seed=0)
    assert len(phases) == 10 and all(p.epochs == 5 for p in phases)
    new_chunks = [set(p.indices[-100:].tolist()) for p in phases]
    assert all(len(c) == 100 for c in new_chunks)
    assert len(set().union(*new_chunks)) == 1000  # disjoint: 10 chunks of 10% cover the set once
    for k, phase in enumerate(phases):
        assert len(phase.indices) == 100 * (k + 1)
        assert set(phase.indices[:-100].tolist()) == set().union(*new_chunks[:k])  # all earlier chunks
        noise = streams.PAPER_NOISE_SCHEDULE[k]
        assert (phase.labels != y[phase.indices]).sum() == round(noise * len(phase.indices))
    # noise is drawn afresh: the same old sample is not always flipped the same way in every chunk
    assert not torch.equal(phases[1].labels[:100], phases[2].labels[:100])


def test_continual_replay_buffer_is_a_uniform_sample_of_earlier_chunks():
    y = labels(20_000)
    phases = streams.build("continual", y, 10, 40, epochs=1, seed=0, memory="replay", replay_size=3000)
    chunks = [set(p.indices[-2000:].tolist()) for p in phases]
    for k in range(1, 10):
        buffer = phases[k].indices[:-2000]
        assert len(buffer) == min(3000, 2000 * k) and buffer.unique().numel() == len(buffer)
        assert set(buffer.tolist()) <= set().union(*chunks[:k])
    # uniform, not the lowest indices: every earlier chunk is represented about equally at the last chunk
    buffer = set(phases[9].indices[:-2000].tolist())
    shares = torch.tensor([len(buffer & chunk) for chunk in chunks[:9]], dtype=torch.float)
    assert (shares - 3000 / 9).abs().max() < 80


def test_permuted_inputs_and_shuffled_labels():
    y = labels()
    permuted = streams.build("permuted_inputs", y, 10, 40, epochs=2, seed=0, tasks=3)
    assert torch.equal(permuted[0].input_permutation, torch.arange(40))
    assert all(torch.equal(p.input_permutation.sort().values, torch.arange(40)) for p in permuted)
    assert not torch.equal(permuted[1].input_permutation, permuted[2].input_permutation)
    shuffled = streams.build("shuffled_labels", y, 10, 40, epochs=2, seed=0, tasks=3)
    assert torch.equal(shuffled[0].labels, y)
    for phase in shuffled[1:]:
        mapping = {int(a): int(b) for a, b in zip(y, phase.labels)}
        assert sorted(mapping.values()) == list(range(10))  # a permutation of the classes
    assert not torch.equal(shuffled[1].labels, shuffled[2].labels)
    # each task is tested on the true test labels mapped through its own permutation of the classes
    assert all(torch.equal(phase.test.label_map[y], phase.labels) for phase in shuffled)


def test_random_labels_relabel_the_same_samples_each_task_and_test_on_them():
    y = labels()
    tasks = streams.build("random_labels", y, 10, 40, epochs=2, seed=0, tasks=4, task_size=300)
    assert all(torch.equal(t.indices, tasks[0].indices) and len(t.indices.unique()) == 300 for t in tasks)
    for t in tasks:
        assert torch.equal(t.test.train_indices, t.indices) and torch.equal(t.test.train_labels, t.labels)
        assert 0.05 < (t.labels == y[t.indices]).float().mean() < 0.17  # drawn afresh: about 1 in 10 agree by chance
    assert (tasks[1].labels == tasks[2].labels).float().mean() < 0.17
    with pytest.raises(ValueError, match="task_size=2000 is more than the 1000 training samples"):
        streams.build("random_labels", y, 10, 40, epochs=2, seed=0, task_size=2000)


def test_class_incremental_adds_classes_and_tests_on_all_seen_so_far():
    y = labels()
    tasks = streams.build("class_incremental", y, 10, 40, epochs=2, seed=0, first_classes=4, classes_per_task=3)
    seen = [t.test.classes.tolist() for t in tasks]
    assert [len(s) for s in seen] == [4, 7, 10]
    assert all(set(a) < set(b) for a, b in zip(seen, seen[1:]))
    for t, classes in zip(tasks, seen):  # every training sample of the seen classes, with its true label
        assert torch.equal(t.indices, torch.isin(y, torch.tensor(classes)).nonzero().flatten())
        assert torch.equal(t.labels, y[t.indices])
    with pytest.raises(ValueError, match="first_classes must be in"):
        streams.build("class_incremental", y, 10, 40, epochs=2, seed=0, first_classes=11)


def test_bad_protocol_settings():
    with pytest.raises(ValueError, match="unknown protocol 'nope'"):
        streams.build("nope", labels(), 10, 40, 1, 0)
    with pytest.raises(ValueError, match="noise_schedule has 2 entries for 10 chunks"):
        streams.build("continual", labels(), 10, 40, 1, 0, noise_schedule=(0.1, 0.2))
    with pytest.raises(ValueError, match="do not fit"):
        streams.build("continual", labels(), 10, 40, 1, 0, chunk_fraction=0.2)
