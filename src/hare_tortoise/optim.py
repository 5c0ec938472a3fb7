"""The optimizers of the library's loops, with a method's `weight_decay` always decoupled (AdamW's form).

Supervised runs use the recipe's AdamW (betas 0.9/0.999, eps 1e-8, docs/METHODS.md); the RL agents use Adam or
centered RMSprop with their papers' settings. `L2` asks for weight decay through `optimizer_overrides()`, and it must
mean the same in every loop: theta <- theta - lr * wd * theta before the update, never a wd * theta term added to
the gradient (which Adam and RMSprop would then rescale by their second moments).
"""

from __future__ import annotations

import torch


def adamw(parameters, lr: float, weight_decay: float, overrides: dict | None = None) -> torch.optim.AdamW:
    """The recipe's AdamW in torch's fused kernel (one kernel per tensor, where the foreach form runs a dozen; a
    quarter of the MLP's step here, benchmarks/README.md). `overrides` are a method's own settings (e.g. L2 sets
    the weight decay)."""
    settings = {"lr": lr, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": weight_decay, "fused": True}
    return torch.optim.AdamW(parameters, **{**settings, **(overrides or {})})


def adam(parameters, lr: float, eps: float, overrides: dict | None = None) -> torch.optim.Adam:
    """Adam in one fused kernel (about 10x the CPU loop here); a method's weight decay is decoupled."""
    settings = {"lr": lr, "eps": eps, "fused": True, "weight_decay": 0.0, **(overrides or {})}
    return torch.optim.Adam(parameters, **settings, decoupled_weight_decay=True)


def rmsprop(parameters, lr: float, alpha: float, eps: float, overrides: dict | None = None) -> torch.optim.RMSprop:
    """Centered RMSprop; a method's weight decay is applied before each step as AdamW applies it (torch's RMSprop
    only knows the coupled form)."""
    settings = {"lr": lr, "alpha": alpha, "eps": eps, "centered": True, **(overrides or {})}
    weight_decay = settings.pop("weight_decay", 0.0)
    optimizer = torch.optim.RMSprop(parameters, **settings)
    if weight_decay:
        def decay(optimizer, args, kwargs) -> None:
            with torch.no_grad():
                for group in optimizer.param_groups:
                    torch._foreach_mul_(group["params"], 1.0 - group["lr"] * weight_decay)

        optimizer.register_step_pre_hook(decay)
    return optimizer
