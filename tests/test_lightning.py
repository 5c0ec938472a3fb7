"""The Lightning callback: a tiny `Trainer.fit` on the CPU gives the Tortoise of the hand-written loop with the same
seed and data, resets happen on schedule, validation sees the chosen network without changing training, and a fit
resumed from Lightning's checkpoint ends where an uninterrupted one does."""

import pytest
import torch
import torch.nn.functional as F

pl = pytest.importorskip("lightning.pytorch")

from hare_tortoise import HareTortoise  # noqa: E402
from hare_tortoise.integrations.lightning import HareTortoiseCallback  # noqa: E402

X, Y = torch.randn(96, 8, generator=torch.Generator().manual_seed(0)), torch.arange(96) % 3


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(),
                                       torch.nn.Linear(16, 3))
        self.validated = []  # validation accuracy of the network the module's forward ran

    def training_step(self, batch, index):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch, index):
        x, y = batch
        accuracy = (self.net(x).argmax(1) == y).float().mean()
        self.validated.append(accuracy.item())
        self.log("val_acc", accuracy)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader():
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=16, shuffle=False)


def fit(callback, epochs, tmp_path=None, resume=None, validate=False):
    module = Tiny()
    checkpoints = [pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)] if tmp_path else []
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=bool(tmp_path), num_sanity_val_steps=0,
                         callbacks=[callback, *checkpoints], limit_val_batches=1.0 if validate else 0)
    trainer.fit(module, loader(), loader() if validate else None, ckpt_path=resume)
    module.metrics = dict(trainer.callback_metrics)
    return module


def by_hand(epochs, momentum, reset_every_epochs=None):
    module = Tiny()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    ht = HareTortoise(module.net, momentum)
    module.train()
    for epoch in range(epochs):
        for x, y in loader():
            optimizer.zero_grad()
            F.cross_entropy(module.net(x), y).backward()
            optimizer.step()
            ht.step()
        if reset_every_epochs and (epoch + 1) % reset_every_epochs == 0:
            ht.reset_hare()
    return module, ht


def states_close(a, b):
    return a.keys() == b.keys() and all(torch.allclose(a[k].double(), b[k].double(), atol=1e-6) for k in a)


def test_fit_gives_the_tortoise_of_the_hand_written_loop_and_resets_on_schedule():
    callback = HareTortoiseCallback(momentum=0.9, reset_every_epochs=2, module="net")
    module = fit(callback, epochs=3)
    hand, ht = by_hand(3, 0.9, reset_every_epochs=2)
    assert states_close(callback.tortoise.state_dict(), ht.tortoise.state_dict())
    assert states_close(module.net.state_dict(), hand.net.state_dict())
    assert callback.pair.num_updates == 3 * 6 and callback.resets == 1
    assert not states_close(module.net.state_dict(), callback.tortoise.state_dict())  # 1 epoch since the reset


def test_validation_sees_the_tortoise_and_training_goes_on_unchanged():
    on_tortoise = HareTortoiseCallback(momentum=0.9, module="net", evaluate="tortoise")
    trained = fit(on_tortoise, epochs=2, validate=True)
    on_hare = HareTortoiseCallback(momentum=0.9, module="net", evaluate="hare")
    plain = fit(on_hare, epochs=2, validate=True)
    assert states_close(trained.net.state_dict(), plain.net.state_dict())  # the swap changed nothing in training
    tortoise = on_tortoise.tortoise
    expected = [(tortoise(x).argmax(1) == y).float().mean().item() for x, y in loader()]
    assert trained.validated[-len(expected):] == pytest.approx(expected)  # the last validation ran the Tortoise
    assert plain.validated != trained.validated
    # a validation on its own (no fit) sees the Tortoise too
    trained.validated.clear()
    pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
               callbacks=[on_tortoise]).validate(trained, loader(), verbose=False)
    assert trained.validated == pytest.approx(expected)


def test_evaluate_both_logs_the_tortoise_beside_the_hare_and_training_goes_on_unchanged():
    both = HareTortoiseCallback(momentum=0.9, module="net", evaluate="both")
    trained = fit(both, epochs=2, validate=True)
    plain = fit(HareTortoiseCallback(momentum=0.9, module="net", evaluate="hare"), epochs=2, validate=True)
    assert states_close(trained.net.state_dict(), plain.net.state_dict())
    batches = list(loader())
    hare = [(trained.net.eval()(x).argmax(1) == y).float().mean().item() for x, y in batches]
    tortoise = [(both.tortoise(x).argmax(1) == y).float().mean().item() for x, y in batches]
    # each batch of the last validation: the Hare, then the Tortoise on the same batch
    assert trained.validated[-2 * len(batches):] == pytest.approx([a for pair in zip(hare, tortoise) for a in pair])
    assert trained.metrics["val_acc"].item() == pytest.approx(sum(hare) / len(hare))
    assert trained.metrics["tortoise/val_acc"].item() == pytest.approx(sum(tortoise) / len(tortoise))
    assert "tortoise/val_acc" not in plain.metrics and hare != tortoise


def test_a_fit_resumed_from_its_checkpoint_ends_where_an_uninterrupted_one_does(tmp_path):
    whole = HareTortoiseCallback(momentum=0.9, reset_every_steps=5, module="net")
    fit(whole, epochs=4)
    first = HareTortoiseCallback(momentum=0.9, reset_every_steps=5, module="net")
    fit(first, epochs=2, tmp_path=tmp_path)
    resumed = HareTortoiseCallback(momentum=0.9, reset_every_steps=5, module="net")
    fit(resumed, epochs=4, tmp_path=tmp_path, resume=str(tmp_path / "last.ckpt"))
    assert resumed.pair.num_updates == whole.pair.num_updates == 24 and resumed.resets == whole.resets == 4
    assert states_close(resumed.tortoise.state_dict(), whole.tortoise.state_dict())


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="not both"):
        HareTortoiseCallback(reset_every_steps=5, reset_every_epochs=1)
    with pytest.raises(ValueError, match="evaluate must be 'tortoise' or 'hare' or 'both'"):
        HareTortoiseCallback(evaluate="all")
    with pytest.raises(ValueError, match="has no submodule of that name"):
        fit(HareTortoiseCallback(module="missing"), epochs=1)
