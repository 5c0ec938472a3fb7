"""Hare & Tortoise in a PyTorch Lightning fit: a warm start on MNIST-1D (first 10% of the data, then all of it) with
`HareTortoiseCallback`, validating the Tortoise (Lee et al., ICML 2024, arXiv:2406.02596).

    python examples/lightning_fit.py --epochs 20

Prints the validation accuracy of the Tortoise after each phase (needs the `lightning` extra).
"""

from __future__ import annotations

import argparse

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from hare_tortoise.data import prepare
from hare_tortoise.integrations.lightning import HareTortoiseCallback


class Classifier(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(40, 256), torch.nn.BatchNorm1d(256), torch.nn.ReLU(),
                                       torch.nn.Linear(256, 10))

    def training_step(self, batch, index):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch, index):
        x, y = batch
        self.log("val_acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50, help="epochs of each phase")
    args = parser.parse_args(argv)

    pl.seed_everything(1, verbose=False)
    data = prepare("mnist1d", train_size=4000, test_size=1000)
    mean, std = data.x_train.mean(), data.x_train.std()
    train = TensorDataset((data.x_train - mean) / std, data.y_train)
    test = DataLoader(TensorDataset((data.x_test - mean) / std, data.y_test), batch_size=500)
    module = Classifier()
    callback = HareTortoiseCallback(momentum=0.995, reset_every_epochs=5, module="net")
    for phase, size in (("first 10% of the data", len(train) // 10), ("whole data", len(train))):
        trainer = pl.Trainer(max_epochs=args.epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                             enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
                             callbacks=[callback])
        subset = torch.utils.data.Subset(train, range(size))
        trainer.fit(module, DataLoader(subset, batch_size=128, shuffle=True), test)
        print(f"after {args.epochs} epochs on the {phase}: validation accuracy of the Tortoise "
              f"{trainer.callback_metrics['val_acc']:.3f}")


if __name__ == "__main__":
    main()
