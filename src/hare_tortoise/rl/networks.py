"""Q-networks, each split into `backbone` and `head`."""

from __future__ import annotations

import torch
from torch import nn

from ..nn.layers import Classifier


def minatar_network(in_channels: int, num_actions: int) -> Classifier:
    """The MinAtar paper's Q-network: conv 16 3x3 stride 1 (no padding), ReLU, flatten (8x8x16 = 1024) as
    backbone; head dense 128, ReLU, dense |A|."""
    backbone = nn.Sequential(nn.Conv2d(in_channels, 16, 3), nn.ReLU(), nn.Flatten())
    return Classifier(backbone, nn.Sequential(nn.Linear(1024, 128), nn.ReLU(), nn.Linear(128, num_actions)))


class Dueling(nn.Module):
    """Q = V + (A - mean_a A) from a shared hidden layer (Wang et al. 2016, arXiv:1511.06581)."""

    def __init__(self, features: int, hidden: int, num_actions: int):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(features, hidden), nn.ReLU())
        self.value, self.advantage = nn.Linear(hidden, 1), nn.Linear(hidden, num_actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden(x)
        advantage = self.advantage(h)
        return self.value(h) + advantage - advantage.mean(1, keepdim=True)


class NatureDueling(Classifier):
    """Dopamine's network of DrQ(eps): pixels / 255, Nature-DQN convolutions with SAME padding (84 -> 21 -> 11 -> 11,
    7,744 features), dense 512 and a dueling head; Xavier-uniform weights, zero biases (docs/RL.md (b))."""

    def __init__(self, stack: int, num_actions: int):
        convs = [(stack, 32, 8, 4), (32, 64, 4, 2), (64, 64, 3, 1)]
        layers = []
        for c_in, c_out, kernel, stride in convs:
            # TensorFlow/Flax SAME padding: output ceil(size / stride); pad (total // 2) before, the rest after
            layers += [SamePad(kernel, stride), nn.Conv2d(c_in, c_out, kernel, stride), nn.ReLU()]
        super().__init__(nn.Sequential(*layers, nn.Flatten()), Dueling(11 * 11 * 64, 512, num_actions))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x / 255.0)


class SamePad(nn.Module):
    """Zero padding that makes a convolution's output size ceil(input / stride), as TensorFlow's 'SAME'."""

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-1]
        total = max((-(-size // self.stride) - 1) * self.stride + self.kernel - size, 0)
        return nn.functional.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))
