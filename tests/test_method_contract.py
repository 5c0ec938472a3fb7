"""Every registered method passes the same contract (timm style): it trains, reports, and checkpoints."""

import copy
import io

import pytest
import torch

from conftest import TinyMLP, batch, states_equal
from hare_tortoise import methods
from loop import run


@pytest.fixture(params=methods.available())
def name(request):
    return request.param


def test_registry_lists_every_method_of_the_paper():
    paper = {"base", "l2", "l2_init", "spectral", "crelu", "layernorm", "sam", "redo", "shrink_perturb",
             "shrink_perturb_noise", "head_reset", "full_reset", "ema", "self_distill", "hare_tortoise", "reset"}
    assert paper <= set(methods.available())  # a new method is one file and its registration, no edit here


def test_trains_with_finite_loss_and_reports_a_network(name):
    torch.manual_seed(0)
    method = methods.create(name)
    model, _, loss = run(method, TinyMLP())
    assert torch.isfinite(loss)
    evaluated = method.eval_model()
    evaluated.eval()
    assert torch.isfinite(evaluated(batch()[0])).all()
    assert all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())


def test_state_round_trips_through_a_weights_only_checkpoint(name):
    torch.manual_seed(0)
    method = methods.create(name)
    model, _, _ = run(method, TinyMLP())
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "method": method.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    torch.manual_seed(1)  # a differently initialised twin, restored from the checkpoint
    restored = methods.create(name)
    twin = restored.prepare_model(TinyMLP())
    restored.attach(twin)
    twin.load_state_dict(checkpoint["model"])
    restored.load_state_dict(checkpoint["method"])
    assert states_equal(restored.state_dict(), method.state_dict())
    assert states_equal(restored.eval_model().state_dict(), method.eval_model().state_dict())


def test_settings_are_listed_and_unknown_ones_rejected(name):
    method = methods.create(name)
    assert set(method.hyperparameters()) == {f.name for f in __import__("dataclasses").fields(method)}
    with pytest.raises(ValueError, match=f"method '{name}' has no setting bogus"):
        methods.create(name, bogus=1)
    if name != "base":  # every method names the paper it comes from in listings
        assert methods.get(name).paper and f"[{methods.get(name).paper}]" in methods.describe(name)


def test_unknown_method_names_the_available_ones():
    with pytest.raises(ValueError, match="unknown method 'nope'; available methods: base, cbp, crelu, dash, ema"):
        methods.create("nope")


def test_base_trains_exactly_like_a_loop_without_hooks(mlp):
    plain = copy.deepcopy(mlp)
    for phase in range(2):
        optimizer = torch.optim.AdamW(plain.parameters(), lr=1e-2, weight_decay=1e-3)
        for epoch in range(2):
            for step in range(3):
                x, y = batch(seed=100 * phase + 10 * epoch + step)
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(plain(x), y).backward()
                optimizer.step()
    base, _, _ = run(methods.create("base"), copy.deepcopy(mlp))
    assert states_equal(plain.state_dict(), base.state_dict())
