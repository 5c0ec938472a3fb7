"""Hare & Tortoise in a hand-written training loop: a warm start on MNIST-1D (first 10% of the data, then all of
it), the Tortoise updated by the optimizer's step hook (`ht.attach`), the Hare reset to it every few epochs.

    python examples/own_loop.py --epochs 20

Prints the test accuracy of the Hare (the trained network) and of the Tortoise (its average, the network the paper
evaluates) at the end of each phase. Lee et al., ICML 2024, arXiv:2406.02596.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from hare_tortoise import HareTortoise
from hare_tortoise.data import prepare


def accuracy(network: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was_training = network.training
    network.eval()
    with torch.no_grad():
        correct = (network(x).argmax(1) == y).float().mean().item()
    network.train(was_training)
    return correct


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100, help="epochs of each phase")
    parser.add_argument("--reset-every-epochs", type=int, default=5, help="epochs between resets of the Hare")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    data = prepare("mnist1d", train_size=4000, test_size=1000)
    mean, std = data.x_train.mean(), data.x_train.std()
    x_train, x_test = (data.x_train - mean) / std, (data.x_test - mean) / std
    model = torch.nn.Sequential(torch.nn.Linear(40, 256), torch.nn.BatchNorm1d(256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 256), torch.nn.BatchNorm1d(256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    ht = HareTortoise(model, momentum=0.995)
    ht.attach(optimizer)  # from here on every optimizer.step() also updates the Tortoise

    for phase, size in (("first 10% of the data", len(x_train) // 10), ("whole data", len(x_train))):
        for epoch in range(args.epochs):
            for rows in torch.randperm(size).split(128):
                optimizer.zero_grad()
                F.cross_entropy(model(x_train[rows]), data.y_train[rows]).backward()
                optimizer.step()
            if (epoch + 1) % args.reset_every_epochs == 0 and epoch + 1 < args.epochs:
                ht.reset_hare()  # the Hare restarts from the Tortoise's consolidated weights
        hare, tortoise = accuracy(model, x_test, data.y_test), accuracy(ht.tortoise, x_test, data.y_test)
        print(f"after {args.epochs} epochs on the {phase}: test accuracy of the Hare {hare:.3f}, "
              f"of the Tortoise {tortoise:.3f}")


if __name__ == "__main__":
    main()
