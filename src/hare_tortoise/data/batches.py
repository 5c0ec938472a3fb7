"""Tensor-resident batching and augmentation: the whole dataset on the device, batches are index slices."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..errors import InvalidInput


def crop_windows(padded: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """From each padded image (n, c, H, W) the height x width window at its own offset (dy[i], dx[i]), at once:
    one gather over the flattened pixels (several times faster than indexing with four index tensors)."""
    n, c, _, padded_width = padded.shape
    rows = dy.view(n, 1, 1) + torch.arange(height, device=padded.device).view(1, height, 1)
    cols = dx.view(n, 1, 1) + torch.arange(width, device=padded.device).view(1, 1, width)
    index = (rows * padded_width + cols).view(n, 1, height * width).expand(n, c, height * width)
    return padded.flatten(2).gather(2, index).view(n, c, height, width)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Each image shifted by a random offset in [-padding, padding] with zero fill: a random crop of the padded
    image at its original size (torchvision's RandomCrop(size, padding)), for the whole batch at once."""
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dy, dx = (torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=images.device) for _ in range(2))
    return crop_windows(padded, dy, dx, h, w)


def random_shift(signals: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Each 1-D signal (n, length) shifted by a random offset in [-padding, padding] with zero fill: the random
    crop of 1-D data. (No flip: mirrored MNIST-1D templates are other shapes, not the same digit.)"""
    n, length = signals.shape
    padded = torch.nn.functional.pad(signals, (padding, padding)).view(n, 1, 1, length + 2 * padding)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=signals.device)
    return crop_windows(padded, torch.zeros_like(dx), dx, 1, length).view(n, length)


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2."""
    flip = torch.rand(len(images), generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


class Inputs:
    """Turns stored samples into network inputs: scale uint8 images to [0, 1], augment, normalise, permute."""

    def __init__(self, mean=None, std=None, augment: bool = False, crop_padding: int = 4):
        if (mean is None) != (std is None):
            raise InvalidInput("give the normalisation's mean and std together, or neither")
        self.normalisation = None if mean is None else (torch.tensor(mean).view(1, -1, 1, 1),
                                                        torch.tensor(std).view(1, -1, 1, 1))
        self.augment = augment
        self.crop_padding = crop_padding

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None,
                 permutation: torch.Tensor | None = None) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        if self.augment and generator is not None:
            if x.dim() == 2:
                x = random_shift(x, self.crop_padding, generator)
            elif x.dim() == 4:
                x = random_flip(random_crop(x, self.crop_padding, generator), generator)
            else:
                raise InvalidInput("augmentation needs images (n, c, h, w) or 1-D signals (n, length), "
                                   f"got {tuple(x.shape)}")
        if self.normalisation is not None:
            mean, std = self.normalisation
            x = (x - mean.to(x.device)) / std.to(x.device)
        if permutation is not None:
            # index_select: the same gather as x.flatten(1)[:, permutation], 4x faster on the CPU here
            x = x.flatten(1).index_select(1, permutation.to(x.device)).view_as(x)
        return x


def shuffled_batches(indices: torch.Tensor, labels: torch.Tensor, batch_size: int,
                     generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (sample indices, labels) batches in a random order: one permutation and two gathers per epoch,
    and every batch a view (the last one may be smaller)."""
    order = torch.randperm(len(indices), generator=generator, device=generator.device)
    return list(zip(indices[order].split(batch_size), labels[order].split(batch_size)))


def batch_inputs(samples: torch.Tensor, batches: list[tuple[torch.Tensor, torch.Tensor]], inputs: Inputs,
                 generator: torch.Generator | None = None, permutation: torch.Tensor | None = None,
                 chunk_bytes: int = 8 * 2**20) -> Iterator[torch.Tensor]:
    """The network inputs of each of `batches` (sample indices, labels), in order: `inputs` applied to the batch's
    rows of `samples`. Consecutive batches are gathered together, up to about `chunk_bytes` of float inputs at a
    time; without augmentation they are also transformed together, then sliced: the same values as batch by batch
    (every transform acts per element or per sample), with one gather and one transform per chunk instead of one
    per step (on an MNIST-1D batch, about 6 us of a 2 ms step: `benchmarks/step_pieces.py`). Augmentation stays per
    batch, so that its random draws are those of a batch-by-batch loop."""
    if not batches:
        return
    augmented = inputs.augment and generator is not None
    per_chunk = max(1, chunk_bytes // max(1, 4 * samples[0].numel() * len(batches[0][0])))
    for start in range(0, len(batches), per_chunk):
        rows = [r for r, _ in batches[start:start + per_chunk]]
        gathered = samples.index_select(0, torch.cat(rows))
        for chunk in (gathered if augmented else inputs(gathered, None, permutation)).split(list(map(len, rows))):
            yield inputs(chunk, generator, permutation) if augmented else chunk
