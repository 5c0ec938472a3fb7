"""A minimal training loop that calls every method hook at its documented point (methods/base.py)."""

import torch
import torch.nn.functional as F

from conftest import batch


def run(method, model, phases=2, epochs=2, steps=3, lr=1e-2):
    """Train `model` under `method`; returns the model in training and the last phase's optimizer and loss."""
    model = method.prepare_model(model)
    method.attach(model)
    for phase in range(phases):
        optimizer = torch.optim.AdamW(model.parameters(), **{"lr": lr, "weight_decay": 1e-3,
                                                             **method.optimizer_overrides()})
        method.on_phase_data(phase, lambda phase=phase: iter([batch(seed=100 * phase + s) for s in range(steps)]),
                             F.cross_entropy)
        method.on_phase_start(phase, optimizer)
        for epoch in range(epochs):
            for step in range(steps):
                x, y = batch(seed=100 * phase + 10 * epoch + step)
                model.train()

                def closure():
                    optimizer.zero_grad()
                    out = model(x)
                    loss = F.cross_entropy(out, y) + sum(method.loss_terms(x, out, y).values())
                    loss.backward()
                    return loss

                loss = closure()
                method.after_backward(closure)
                optimizer.step()
                method.after_step(optimizer, x)
            method.on_epoch_end(epoch, optimizer)
        method.on_phase_end(phase, optimizer)
    return model, optimizer, loss
