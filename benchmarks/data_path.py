"""Data path: tensor-resident batching and batched augmentation against the usual per-sample Dataset + DataLoader
with per-image transforms (what the paper's code does), same model (a small MLP, where data handling dominates)."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from hare_tortoise.data.batches import Inputs, shuffled_batches
from hare_tortoise.nn import models

SAMPLES, BATCH, MEAN, STD = 12_800, 256, (0.286,), (0.353,)


class PerSample(Dataset):
    """One uint8 image at a time, scaled, randomly cropped (4-pixel zero padding), flipped and normalised, as
    torchvision's ToTensor + RandomCrop + RandomHorizontalFlip + Normalize do."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = F.pad(self.images[i].float().div(255), (4, 4, 4, 4))
        top, left = torch.randint(0, 9, (2,)).tolist()
        image = image[:, top:top + 28, left:left + 28]
        if torch.rand(()) < 0.5:
            image = image.flip(2)
        return (image - MEAN[0]) / STD[0], self.labels[i]


def run() -> list[dict]:
    from common import figure

    torch.manual_seed(0)
    images = torch.randint(0, 256, (SAMPLES, 1, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (SAMPLES,))
    model = models.build("mlp", (1, 28, 28), 10)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)

    def train(x, y):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    def ours() -> float:
        inputs, generator = Inputs(MEAN, STD, augment=True), torch.Generator().manual_seed(0)
        began = time.perf_counter()
        for rows, targets in shuffled_batches(torch.arange(SAMPLES), labels, BATCH, generator):
            train(inputs(images[rows], generator), targets)
        return time.perf_counter() - began

    def loader() -> float:
        batches = DataLoader(PerSample(images, labels), batch_size=BATCH, shuffle=True, num_workers=0)
        began = time.perf_counter()
        for x, y in batches:
            train(x, y)
        return time.perf_counter() - began

    seconds = {"ours": [], "loader": []}
    for _ in range(3):
        seconds["ours"].append(ours())
        seconds["loader"].append(loader())
    rate = {k: SAMPLES / min(v) for k, v in seconds.items()}
    return [figure("data_path/tensor_resident_vs_dataloader", rate["ours"] / rate["loader"], 2.0, "x the images/s",
                   True, f"MLP on 28x28 uint8 images with crop+flip, batch {BATCH}: ours {rate['ours']:,.0f} images/s, "
                   f"per-sample Dataset + DataLoader (num_workers=0) {rate['loader']:,.0f} images/s")]
