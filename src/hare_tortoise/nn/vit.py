"""ViT-Tiny for 32x32 images (Dosovitskiy et al., ICLR 2021, arXiv:2010.11929), the paper's CIFAR-100 model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInput
from .layers import Classifier


class Attention(nn.Module):
    """Pre-norm multi-head self-attention: LayerNorm, qkv projection without bias, attention, output projection."""

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.out = nn.Sequential(nn.Linear(heads * head_dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).view(n, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.out(attended.transpose(1, 2).reshape(n, t, -1))


class FeedForward(nn.Sequential):
    """Pre-norm MLP: LayerNorm, Linear(dim, mlp_dim), GELU, dropout, Linear(mlp_dim, dim), dropout."""

    def __init__(self, dim: int, mlp_dim: int, dropout: float):
        super().__init__(nn.LayerNorm(dim), nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(mlp_dim, dim), nn.Dropout(dropout))


class Block(nn.Module):
    def __init__(self, dim, heads, head_dim, mlp_dim, dropout):
        super().__init__()
        self.attention = Attention(dim, heads, head_dim, dropout)
        self.feed_forward = FeedForward(dim, mlp_dim, dropout)

    def forward(self, x):
        x = x + self.attention(x)
        return x + self.feed_forward(x)


class ViTBackbone(nn.Module):
    """Patch embedding, CLS token, learned positions, embedding dropout, pre-norm blocks, final LayerNorm; returns
    the CLS token's features."""

    def __init__(self, input_shape, patch: int, dim: int, depth: int, heads: int, head_dim: int, mlp_dim: int,
                 dropout: float, embedding_dropout: float):
        super().__init__()
        channels, height, width = input_shape
        if height % patch or width % patch:
            raise InvalidInput(f"image size {height}x{width} is not a multiple of the patch size {patch}")
        self.patches = nn.Conv2d(channels, dim, patch, stride=patch)  # = a Linear on each flattened patch
        self.cls = nn.Parameter(torch.empty(1, 1, dim))
        self.positions = nn.Parameter(torch.empty(1, (height // patch) * (width // patch) + 1, dim))
        self.dropout = nn.Dropout(embedding_dropout)
        self.blocks = nn.Sequential(*(Block(dim, heads, head_dim, mlp_dim, dropout) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.cls)
        nn.init.normal_(self.positions)
        for module in self.modules():
            reset = getattr(module, "reset_parameters", None)
            if module is not self and callable(reset):
                reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.positions
        return self.norm(self.blocks(self.dropout(tokens)))[:, 0]


class ViT(Classifier):
    backbone: ViTBackbone
    head: nn.Linear

    def reset_parameters(self) -> None:
        """Fresh weights everywhere, the CLS token and positions included (used by full resets)."""
        self.backbone.reset_parameters()
        self.head.reset_parameters()


def vit_tiny(input_shape, num_classes: int, width: int = 192, depth: int = 12, heads: int = 3, patch: int = 4,
             dropout: float = 0.1, embedding_dropout: float = 0.1, norm: str = "layer") -> ViT:
    """ViT-Tiny as the paper's CIFAR-100 model (docs/METHODS.md): patch 4, dim 192, depth 12, 3 heads x 64, MLP 768
    GELU, CLS pooling, dropout 0.1, embedding dropout 0.1; a linear head. `width` scales dim (heads x 64 -> dim /
    heads each)."""
    if norm != "layer":
        raise InvalidInput("vit_tiny uses LayerNorm by construction; norm must be 'layer'")
    backbone = ViTBackbone(input_shape, patch, width, depth, heads, width // heads, 4 * width, dropout,
                           embedding_dropout)
    return ViT(backbone, nn.Linear(width, num_classes))
