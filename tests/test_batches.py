"""Tensor-resident batches and augmentation: crops are shifted windows, flips are mirrors, normalisation exact."""

import pytest
import torch

from hare_tortoise.data.batches import Inputs, batch_inputs, random_crop, random_flip, random_shift, shuffled_batches


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    images = torch.rand(64, 3, 8, 8) + 1.0  # never zero, so the zero padding is recognisable
    out = random_crop(images, 2, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    offsets = set()
    for i in range(64):
        matches = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8])]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 10  # offsets vary per image


def test_random_shift_moves_each_signal_within_the_zero_padding():
    signals = torch.rand(64, 40) + 1.0
    out = random_shift(signals, 4, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(signals, (4, 4))
    offsets = [[o for o in range(9) if torch.equal(out[i], padded[i, o:o + 40])] for i in range(64)]
    assert all(len(o) == 1 for o in offsets) and len({o[0] for o in offsets}) == 9
    augmented = Inputs(augment=True)(signals, torch.Generator().manual_seed(0))
    assert torch.equal(augmented, out)  # 1-D inputs get the shift, never a flip
    with pytest.raises(ValueError, match="1-D signals"):
        Inputs(augment=True)(torch.rand(4, 2, 3), torch.Generator())


def test_random_flip_mirrors_about_half():
    images = torch.rand(200, 1, 4, 4)
    out = random_flip(images, torch.Generator().manual_seed(0))
    same = torch.tensor([torch.equal(o, i) for o, i in zip(out, images)])
    mirrored = torch.tensor([torch.equal(o, i.flip(2)) for o, i in zip(out, images)])
    assert (same | mirrored).all() and 70 < mirrored.sum() < 130


def test_inputs_scale_normalise_and_permute():
    x = torch.tensor([[[[0, 255], [51, 102]]]], dtype=torch.uint8)
    inputs = Inputs(mean=(0.5,), std=(0.25,))
    expected = (x.float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(inputs(x), expected)
    permutation = torch.tensor([3, 2, 1, 0])
    torch.testing.assert_close(inputs(x, permutation=permutation), expected.flatten(1)[:, permutation].view(1, 1, 2, 2))
    with pytest.raises(ValueError, match="mean and std together"):
        Inputs(mean=(0.5,))


def test_shuffled_batches_cover_every_sample_once_with_its_label():
    indices = torch.arange(100, 110)
    labels = indices % 3
    batches = shuffled_batches(indices, labels, 4, torch.Generator().manual_seed(0))
    assert [len(rows) for rows, _ in batches] == [4, 4, 2]
    assert sorted(torch.cat([rows for rows, _ in batches]).tolist()) == list(range(100, 110))
    assert all(torch.equal(targets, rows % 3) for rows, targets in batches)
    again = shuffled_batches(indices, labels, 4, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(batches, again))


@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize("chunk_bytes", [1, 3 * 4 * 3 * 8 * 8, 2**30])  # a batch a chunk, 3 batches, all at once
def test_batch_inputs_equal_the_batch_by_batch_inputs_bit_for_bit(augment, chunk_bytes):
    samples = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)
    inputs = Inputs(mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), augment=augment)
    permutation = torch.randperm(3 * 8 * 8, generator=torch.Generator().manual_seed(1))
    batches = shuffled_batches(torch.arange(50), torch.arange(50) % 10, 8, torch.Generator().manual_seed(0))
    expected_draws, draws = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    expected = [inputs(samples.index_select(0, rows), expected_draws, permutation) for rows, _ in batches]
    made = list(batch_inputs(samples, batches, inputs, draws, permutation, chunk_bytes))
    assert [m.shape for m in made] == [e.shape for e in expected] and len(made) == 7  # the last batch holds 2
    assert all(torch.equal(m, e) for m, e in zip(made, expected))
    assert torch.equal(draws.get_state(), expected_draws.get_state())  # augmentation drew as much, in that order
    if augment:  # the draws did act: another generator gives other inputs
        other = list(batch_inputs(samples, batches, inputs, torch.Generator().manual_seed(3), permutation))
        assert not all(torch.equal(o, e) for o, e in zip(other, expected))
