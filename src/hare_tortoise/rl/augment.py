"""DrQ's image augmentation for replay batches (Kostrikov et al. 2021; Dopamine's `drq_image_augmentation`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.batches import crop_windows


def drq_augment(x: torch.Tensor, generator: torch.Generator | None = None, pad: int = 4,
                intensity: float = 0.05) -> torch.Tensor:
    """Per sample: pad `pad` pixels by edge replication, crop back at a random offset in [0, 2 * pad) (Dopamine
    draws 0..7 for pad 4), then scale by 1 + intensity * clip(N(0, 1), -2, 2). `x`: (batch, channels, H, W)."""
    n, _, h, w = x.shape
    padded = F.pad(x.float(), (pad,) * 4, mode="replicate")
    # drawn on the host from the agent's generator (the same draws on any device), used on x's device
    dy, dx = (torch.randint(0, 2 * pad, (n,), generator=generator).to(x.device) for _ in range(2))
    cropped = crop_windows(padded, dy, dx, h, w)
    noise = torch.randn(n, 1, 1, 1, generator=generator).clamp(-2, 2).to(x.device)
    return cropped * (1 + intensity * noise)
