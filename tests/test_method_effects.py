"""Each method does what its docstring says, checked against values computed independently."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import TinyCNN, TinyMLP, batch, states_equal
from hare_tortoise import methods
from hare_tortoise.nn import CReLU
from loop import run


def trained(mlp, steps=3):
    """`mlp` after a few AdamW steps, and its optimizer (with state)."""
    optimizer = torch.optim.AdamW(mlp.parameters(), lr=0.05)
    for step in range(steps):
        x, y = batch(seed=step)
        optimizer.zero_grad()
        F.cross_entropy(mlp(x), y).backward()
        optimizer.step()
    return optimizer


# --- regularizers ---------------------------------------------------------------------------------------------

def test_l2_sets_decoupled_weight_decay(mlp):
    method = methods.create("l2", weight_decay=0.3)
    lr = 0.1
    optimizer = torch.optim.AdamW(mlp.parameters(), lr=lr, **method.optimizer_overrides())
    before = [p.detach().clone() for p in mlp.parameters()]
    for p in mlp.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # zero gradient: only the decay acts, theta <- (1 - lr * wd) * theta
    for p, b in zip(mlp.parameters(), before):
        torch.testing.assert_close(p.detach(), (1 - lr * 0.3) * b)


def test_l2_init_gradient_is_twice_lambda_times_distance_for_all_parameters(mlp):
    method = methods.create("l2_init", strength=0.25)
    method.attach(mlp)
    initial = [p.detach().clone() for p in mlp.parameters()]
    trained(mlp)
    mlp.zero_grad()
    x, y = batch()
    method.loss_terms(x, mlp(x), y)["l2_init"].backward()
    params = list(mlp.parameters())
    assert len(params) == 10
    for p, p0 in zip(params, initial):
        torch.testing.assert_close(p.grad, 2 * 0.25 * (p.detach() - p0))
    expected = 0.25 * sum(((p.detach() - p0) ** 2).sum() for p, p0 in zip(params, initial))
    torch.testing.assert_close(method.loss_terms(x, mlp(x), y)["l2_init"], expected)


def test_spectral_penalty_is_lambda_times_mean_squared_logits(mlp):
    method = methods.create("spectral", strength=0.5)
    method.attach(mlp)
    x, y = batch()
    logits = mlp(x)
    torch.testing.assert_close(method.loss_terms(x, logits, y)["spectral"], 0.5 * (logits**2).mean())


# --- architecture ---------------------------------------------------------------------------------------------

def test_crelu_in_the_head_halves_the_layer_before_and_keeps_output_size(mlp):
    model = methods.create("crelu").prepare_model(mlp)
    assert isinstance(model.head[1], CReLU) and model.head[0].out_features == 4
    assert isinstance(model.backbone[2], nn.ReLU)  # head only by default, as the paper's code
    x = batch()[0]
    assert model(x).shape == (16, 3)
    h = model.head[0](model.backbone(x))
    torch.testing.assert_close(model.head[1](h), torch.cat([h.relu(), (-h).relu()], dim=-1))


def test_crelu_everywhere_rewrites_every_sequential_run():
    torch.manual_seed(0)
    model = methods.create("crelu", scope="all").prepare_model(TinyMLP())
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert relus == [] and sum(isinstance(m, CReLU) for m in model.modules()) == 3
    assert model.backbone[1].num_features == 4  # the BatchNorm was halved with its layer
    assert model(batch()[0]).shape == (16, 3)
    cnn = methods.create("crelu", scope="all").prepare_model(TinyCNN())
    assert cnn.backbone[0].out_channels == 2 and cnn(torch.randn(2, 1, 6, 6)).shape == (2, 3)


def test_crelu_head_scope_needs_a_head():
    with pytest.raises(ValueError, match="needs a `head` submodule"):
        methods.create("crelu").prepare_model(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))


def test_layernorm_replaces_every_batchnorm(mlp, cnn):
    model = methods.create("layernorm").prepare_model(mlp)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert isinstance(model.backbone[1], nn.LayerNorm) and model(batch()[0]).shape == (16, 3)
    conv = methods.create("layernorm").prepare_model(cnn)
    assert isinstance(conv.backbone[1], nn.GroupNorm) and conv.backbone[1].num_groups == 1
    with pytest.raises(ValueError, match="found no BatchNorm"):
        methods.create("layernorm").prepare_model(nn.Linear(2, 2))


# --- SAM ------------------------------------------------------------------------------------------------------

def test_sam_steps_with_the_gradient_at_the_perturbed_weights(mlp):
    rho = 0.1
    method = methods.create("sam", rho=rho)
    method.attach(mlp)
    trained(mlp)
    x, y = batch(seed=5)

    def closure():
        mlp.zero_grad()
        loss = F.cross_entropy(mlp(x), y)
        loss.backward()
        return loss

    # independent computation of the SAM gradient on a copy
    twin = copy.deepcopy(mlp)
    F.cross_entropy(twin(x), y).backward()
    grads = [p.grad.clone() for p in twin.parameters()]
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    with torch.no_grad():
        for p, g in zip(twin.parameters(), grads):
            p.add_(rho * g / norm)
    twin.zero_grad()
    F.cross_entropy(twin(x), y).backward()

    before = copy.deepcopy(mlp.state_dict())
    closure()
    after_first_pass = copy.deepcopy(mlp.state_dict())  # BN statistics see the batch once ...
    method.after_backward(closure)
    assert states_equal(mlp.state_dict(), after_first_pass)  # ... not twice; weights restored exactly
    assert not states_equal(before, after_first_pass)
    for p, q in zip(mlp.parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


# --- resets between phases ------------------------------------------------------------------------------------

def test_shrink_perturb_interpolates_toward_the_initial_weights(mlp):
    method = methods.create("shrink_perturb")
    method.attach(mlp)
    initial = copy.deepcopy(mlp.state_dict())
    optimizer = trained(mlp)
    method.on_phase_start(0, optimizer)  # the first phase: nothing happens
    theta = copy.deepcopy(mlp.state_dict())
    method.on_phase_start(1, optimizer)
    for name, param in mlp.named_parameters():
        torch.testing.assert_close(param.detach(), 0.2 * theta[name] + 0.8 * initial[name])
    for name, buffer in mlp.named_buffers():
        assert torch.equal(buffer, theta[name])  # BN statistics are not parameters


def test_shrink_perturb_noise_shrinks_and_adds_gaussian_noise(mlp):
    big = nn.Linear(200, 200)
    method = methods.create("shrink_perturb_noise", shrink=0.5, noise_std=0.0)
    method.attach(big)
    theta = big.weight.detach().clone()
    method.on_phase_start(1, None)
    torch.testing.assert_close(big.weight.detach(), 0.5 * theta)
    noisy = methods.create("shrink_perturb_noise", shrink=0.5, noise_std=0.01)
    noisy.attach(big)
    theta = big.weight.detach().clone()
    noisy.on_phase_start(1, None)
    noise = big.weight.detach() - 0.5 * theta
    assert abs(noise.std().item() - 0.01) < 0.0005 and abs(noise.mean().item()) < 0.0005


def test_head_reset_restores_exactly_the_initial_head(mlp):
    method = methods.create("head_reset")
    method.attach(mlp)
    initial_head = copy.deepcopy(mlp.head.state_dict())
    optimizer = trained(mlp)
    backbone = copy.deepcopy(mlp.backbone.state_dict())
    method.on_phase_start(1, optimizer)
    assert states_equal(mlp.head.state_dict(), initial_head)
    assert states_equal(mlp.backbone.state_dict(), backbone)
    assert all(p not in optimizer.state for p in mlp.head.parameters())
    assert all(p in optimizer.state for p in mlp.backbone.parameters())


def test_head_reset_without_head_says_how_to_name_it():
    with pytest.raises(ValueError, match="pass head=<name of your classifier submodule>"):
        methods.create("head_reset").attach(nn.Sequential(nn.Linear(2, 2)))


def test_full_reset_draws_fresh_weights_and_statistics(mlp):
    method = methods.create("full_reset")
    method.attach(mlp)
    initial = copy.deepcopy(mlp.state_dict())
    optimizer = trained(mlp)
    trained_state = copy.deepcopy(mlp.state_dict())
    method.on_phase_start(1, optimizer)
    for name, param in mlp.named_parameters():
        if name.endswith("weight") and param.dim() > 1:
            assert not torch.equal(param, initial[name]) and not torch.equal(param, trained_state[name])
    bn = mlp.backbone[1]
    assert torch.equal(bn.running_mean, torch.zeros(8)) and torch.equal(bn.running_var, torch.ones(8))
    assert len(optimizer.state) == 0


# --- ReDo -----------------------------------------------------------------------------------------------------

def dead_units_mlp(dead=(1, 4)):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        model[0].bias[list(dead)] = -100.0  # these units never activate: ReDo score 0
    return model


def test_redo_recycles_exactly_the_dormant_units_and_their_moments():
    model = dead_units_mlp()
    # parameters deliberately in a scrambled order: moments must be found by parameter, not by position
    optimizer = torch.optim.AdamW([model[2].bias, model[0].weight, model[2].weight, model[0].bias], lr=0.01)
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    for state in optimizer.state.values():  # make every moment non-zero so that zeroing shows
        state["exp_avg"].fill_(1.0)
        state["exp_avg_sq"].fill_(2.0)
    before = copy.deepcopy(model.state_dict())
    method = methods.create("redo", tau=0.0)
    method.attach(model)
    assert method.apply(x, optimizer) == {"1": 2}
    dead, alive = [1, 4], [0, 2, 3, 5]
    w_in, b_in, w_out = model[0].weight, model[0].bias, model[2].weight
    assert torch.equal(w_in[alive], before["0.weight"][alive]) and torch.equal(b_in[alive], before["0.bias"][alive])
    assert not torch.equal(w_in[dead], before["0.weight"][dead]) and (b_in[dead] > -1.0).all()
    assert (w_out[:, dead] == 0).all() and torch.equal(w_out[:, alive], before["2.weight"][:, alive])
    assert torch.equal(model[2].bias, before["2.bias"])
    for moment in ("exp_avg", "exp_avg_sq"):
        assert (optimizer.state[w_in][moment][dead] == 0).all() and (optimizer.state[w_in][moment][alive] > 0).all()
        assert (optimizer.state[b_in][moment][dead] == 0).all() and (optimizer.state[b_in][moment][alive] > 0).all()
        assert (optimizer.state[w_out][moment][:, dead] == 0).all()
        assert (optimizer.state[w_out][moment][:, alive] > 0).all()
        assert (optimizer.state[model[2].bias][moment] > 0).all()


def test_redo_with_threshold_recycles_low_score_units_too():
    model = dead_units_mlp(dead=(1,))
    with torch.no_grad():
        model[0].weight[3].mul_(1e-4)  # barely active: score far below 0.1
        model[0].bias[3] = 0.0
    method = methods.create("redo", tau=0.1)
    method.attach(model)
    assert method.apply(torch.randn(64, 4)) == {"1": 2}
    assert (model[2].weight[:, [1, 3]] == 0).all()


def test_redo_on_conv_maps_channels_through_norm_and_flatten(cnn):
    with torch.no_grad():
        cnn.backbone[1].bias[2] = -100.0  # channel 2 dies after BatchNorm
        cnn.backbone[1].weight[2] = 0.5
    before = copy.deepcopy(cnn.state_dict())
    method = methods.create("redo", tau=0.0)
    method.attach(cnn)
    assert method.apply(torch.randn(8, 1, 6, 6)) == {"backbone.2": 1}
    head = cnn.head.weight.view(3, 4, 36)
    assert (head[:, 2] == 0).all() and torch.equal(head[:, [0, 1, 3]], before["head.weight"].view(3, 4, 36)[:, [0, 1, 3]])
    bn = cnn.backbone[1]
    assert bn.weight[2] == 1.0 and bn.bias[2] == 0.0 and bn.running_var[2] == 1.0
    assert not torch.equal(cnn.backbone[0].weight[2], before["backbone.0.weight"][2])
    assert torch.equal(cnn.backbone[0].weight[[0, 1, 3]], before["backbone.0.weight"][[0, 1, 3]])


def test_redo_schedule_fires_at_epoch_ends_with_the_last_batch():
    model = dead_units_mlp()
    method = methods.create("redo", tau=0.0, every_epochs=2)
    method.attach(model)
    optimizer = torch.optim.AdamW(model.parameters())
    method.after_step(optimizer, torch.randn(8, 4))
    method.on_epoch_end(0, optimizer)
    assert method.recycled == {} and (model[0].bias[[1, 4]] == -100).all()
    method.on_epoch_end(1, optimizer)
    assert method.recycled == {"1": 2} and (model[0].bias[[1, 4]] > -1).all()


def test_redo_warns_about_activations_it_cannot_map(mlp):
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.relu, self.out = nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)

        def forward(self, x):
            return self.out(self.relu(self.fc(x) + x))  # the ReLU's input is a sum, not a layer output

    method = methods.create("redo")
    method.attach(Residual())
    with pytest.warns(UserWarning, match="leaves these activations alone.*relu"):
        assert method.apply(torch.randn(4, 4)) == {}


# --- averaging ------------------------------------------------------------------------------------------------

def test_ema_reports_the_average_and_never_resets(mlp):
    method = methods.create("ema", momentum=0.9)
    model, _, _ = run(method, mlp, epochs=12)
    assert method.eval_model() is method.pair.tortoise
    assert not states_equal(model.state_dict(), method.eval_model().state_dict())
    assert method.pair.num_updates == 2 * 12 * 3


def test_self_distillation_is_zero_when_hare_equals_tortoise_and_a_kl_otherwise(mlp):
    method = methods.create("self_distill")
    method.attach(mlp)
    mlp.eval()
    x, y = batch()
    torch.testing.assert_close(method.loss_terms(x, mlp(x), y)["self_distill"], torch.tensor(0.0))
    trained(mlp)
    mlp.eval()
    student, teacher = mlp(x), method.pair.tortoise(x)
    p = teacher.softmax(-1)
    expected = (p * (p.log() - student.log_softmax(-1))).sum(-1).mean()
    torch.testing.assert_close(method.loss_terms(x, student, y)["self_distill"], expected)
    assert method.eval_model() is mlp


@pytest.mark.parametrize("first_reset, reset_epochs", [("after_first_epoch", {0, 3, 6}), ("after_k_epochs", {2, 5})])
def test_hare_tortoise_resets_on_the_epoch_schedule(mlp, first_reset, reset_epochs):
    method = methods.create("hare_tortoise", momentum=0.9, reset_every_epochs=3, first_reset=first_reset)
    method.attach(mlp)
    optimizer = torch.optim.AdamW(mlp.parameters(), lr=0.05)
    for epoch in range(7):
        x, y = batch(seed=epoch)
        optimizer.zero_grad()
        F.cross_entropy(mlp(x), y).backward()
        optimizer.step()
        method.after_step(optimizer, x)
        moments = [s["exp_avg"].clone() for s in optimizer.state.values()]
        method.on_epoch_end(epoch, optimizer)
        assert states_equal(mlp.state_dict(), method.pair.tortoise.state_dict()) == (epoch in reset_epochs), epoch
        assert states_equal(moments, [s["exp_avg"] for s in optimizer.state.values()])  # moments kept
    assert method.eval_model() is method.pair.tortoise


def test_hare_tortoise_resets_by_steps_across_phases(mlp):
    method = methods.create("hare_tortoise", reset_every_epochs=None, reset_every_steps=5, momentum=0.9)
    resets = []

    def counting_attach(model):
        type(method).attach(method, model)
        original = method.pair.reset_hare
        method.pair.reset_hare = lambda: (resets.append(method.pair.num_updates), original())

    method.attach = counting_attach
    run(method, mlp, phases=2, epochs=2, steps=3)  # 12 steps over 2 phases: resets after steps 5 and 10
    assert resets == [5, 10] and method.pair.num_updates == 12


def test_hare_tortoise_needs_exactly_one_schedule():
    with pytest.raises(ValueError, match="exactly one of reset_every_epochs"):
        methods.create("hare_tortoise", reset_every_steps=5)
    with pytest.raises(ValueError, match="momentum must be in"):
        methods.create("hare_tortoise", momentum=1.5)


@pytest.mark.parametrize("name, settings, message", [
    ("redo", {"every_epochs": None}, "set exactly one of every_epochs and every_steps"),
    ("redo", {"every_epochs": 0}, "every_epochs must be an integer >= 1"),
    ("redo", {"tau": -0.1}, "tau must be >= 0"),
    ("hare_tortoise", {"reset_every_epochs": 2.5}, "reset_every_epochs must be an integer >= 1"),
    ("shrink_perturb", {"alpha": 1.5}, r"alpha must be in \(0, 1\]"),
    ("l2", {"weight_decay": 0}, "weight_decay must be > 0"),
    ("sam", {"rho": 0}, "rho must be > 0"),
    ("crelu", {"scope": "body"}, "scope must be 'head' or 'all'"),
])
def test_bad_settings_name_the_allowed_range(name, settings, message):
    with pytest.raises(ValueError, match=message):
        methods.create(name, **settings)


# --- step-scheduled resets (the RL forms) ---------------------------------------------------------------------

def step(model, optimizer, method, seed):
    x, y = batch(seed=seed)
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    method.after_step(optimizer, x)


def test_shrink_perturb_every_n_steps_and_not_between_phases(mlp):
    method = methods.create("shrink_perturb", every_steps=3)
    method.attach(mlp)
    initial = copy.deepcopy(mlp.state_dict())
    optimizer = torch.optim.AdamW(mlp.parameters(), lr=0.05)
    method.on_phase_start(1, optimizer)
    assert states_equal(mlp.state_dict(), initial)  # no phase-boundary intervention when counting steps
    for seed in range(2):
        step(mlp, optimizer, method, seed)
    before = copy.deepcopy(mlp.state_dict())
    x, y = batch(seed=2)
    optimizer.zero_grad()
    F.cross_entropy(mlp(x), y).backward()
    optimizer.step()
    trained = copy.deepcopy(mlp.state_dict())
    method.after_step(optimizer, x)  # the third step: shrink toward the initial weights now
    assert not states_equal(before, trained)
    for name, param in mlp.named_parameters():
        torch.testing.assert_close(param.detach(), 0.2 * trained[name] + 0.8 * initial[name])


def test_shrink_perturb_toward_a_fresh_initialisation():
    torch.manual_seed(0)
    layer = nn.Linear(400, 400)
    method = methods.create("shrink_perturb", toward="fresh", alpha=0.5)
    method.attach(layer)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    method.on_phase_start(1, None)
    fresh = (layer.weight.detach() - 0.5 * 1.0) / 0.5  # what it moved halfway toward
    bound = 1 / 400**0.5  # nn.Linear's default initialisation draws from U(-bound, bound)
    assert fresh.abs().max() <= bound + 1e-6 and fresh.std() > 0.5 * bound / 3**0.5
    assert not torch.allclose(fresh, method.initial["weight"])  # a new draw, not the initial weights


def test_reset_reinitialises_the_head_with_fresh_weights_every_n_steps(mlp):
    method = methods.create("reset", every_steps=2)
    method.attach(mlp)
    initial_head = copy.deepcopy(mlp.head.state_dict())
    optimizer = torch.optim.AdamW(mlp.parameters(), lr=0.05)
    step(mlp, optimizer, method, 0)
    trained_head, backbone = copy.deepcopy(mlp.head.state_dict()), copy.deepcopy(mlp.backbone.state_dict())
    x, y = batch(seed=1)
    optimizer.zero_grad()
    F.cross_entropy(mlp(x), y).backward()
    optimizer.step()
    backbone = copy.deepcopy(mlp.backbone.state_dict())
    method.after_step(optimizer, x)
    head = mlp.head.state_dict()
    assert not states_equal(head, initial_head) and not states_equal(head, trained_head)
    assert states_equal(mlp.backbone.state_dict(), backbone)
    assert all(p not in optimizer.state for p in mlp.head.parameters())
    with pytest.raises(ValueError, match="every_steps must be an integer >= 1"):
        methods.create("reset", every_steps=0)


# --- continual backprop -----------------------------------------------------------------------------------------

def cbp_on(model, x, **settings):
    method = methods.create("cbp", **settings)
    method.attach(model)
    method.check_model(x)
    return method


def sgd_step(model, optimizer, method, x, y):
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    method.after_step(optimizer, x)


def test_cbp_utility_is_the_running_contribution_in_closed_form():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    method = cbp_on(model, x, maturity_threshold=10**6, decay_rate=0.9)  # never mature: statistics only
    expected_utility, expected_mean = torch.zeros(6), torch.zeros(6)
    for _ in range(4):
        h = torch.relu(model[0](x)).detach()  # the step's activations, at the weights it starts from
        sgd_step(model, optimizer, method, x, y)
        contribution = h.abs().mean(0) * model[2].weight.detach().abs().mean(0)  # outgoing weights after the step
        expected_utility = 0.9 * expected_utility + 0.1 * contribution
        expected_mean = 0.9 * expected_mean + 0.1 * h.mean(0)
    [layer] = method.layers
    torch.testing.assert_close(layer.utility, expected_utility)
    torch.testing.assert_close(layer.mean_activation, expected_mean)
    assert layer.ages.tolist() == [4.0] * 6 and method.counts == {"recycled_units": 0}


def test_cbp_replaces_the_lowest_utility_mature_unit_with_fresh_weights_and_keeps_the_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    # 2 steps of statistics, then at step 3 the 6 eligible units owe 6 x 0.17 = 1.02: one replacement
    method = cbp_on(model, x, maturity_threshold=2, replacement_rate=0.17, decay_rate=0.5)
    for _ in range(2):
        sgd_step(model, optimizer, method, x, y)
    [layer] = method.layers
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    for state in optimizer.state.values():  # non-zero moments, so that zeroing shows
        state["exp_avg"].fill_(1.0)
        state["exp_avg_sq"].fill_(2.0)
    with torch.no_grad():  # the outgoing weights of unit 3 are tiny: the lowest contribution
        model[3].weight[:, 3] = 1e-4
        model[1].weight[2], model[1].running_mean[2] = 3.0, 0.7
    h = torch.relu(model[1](model[0](x))).detach()
    before = copy.deepcopy(model.state_dict())
    corrected_mean = (0.5 * layer.mean_activation + 0.5 * h.mean(0)) / (1 - 0.5 ** 3)
    method.after_step(optimizer, x)
    assert method.counts == {"recycled_units": 1}
    chosen, kept = 3, [0, 1, 2, 4, 5]
    state = model.state_dict()
    assert not torch.equal(state["0.weight"][chosen], before["0.weight"][chosen])
    assert torch.equal(state["0.weight"][kept], before["0.weight"][kept])
    assert (state["3.weight"][:, chosen] == 0).all()
    assert torch.equal(state["3.weight"][:, kept], before["3.weight"][:, kept])
    # its mean contribution moved into the next layer's bias
    moved = before["3.weight"][:, chosen] * corrected_mean[chosen]
    torch.testing.assert_close(state["3.bias"], before["3.bias"] + moved)
    assert state["1.weight"][chosen] == 1.0 and state["1.running_mean"][chosen] == 0.0 and state["1.weight"][2] == 3.0
    for param, index in ((model[0].weight, chosen), (model[3].weight, (slice(None), chosen))):
        assert (optimizer.state[param]["exp_avg"][index] == 0).all()
    assert (optimizer.state[model[0].weight]["exp_avg"][kept] == 1).all()
    assert layer.ages[chosen] == 0 and (layer.ages[kept] == 3).all() and layer.utility[chosen] == 0


def test_cbp_on_a_convolution_maps_channels_through_norm_and_flatten(cnn):
    x, y = torch.randn(8, 1, 6, 6), torch.randint(0, 3, (8,))
    optimizer = torch.optim.SGD(cnn.parameters(), lr=0.01)
    method = cbp_on(cnn, x, maturity_threshold=0, replacement_rate=0.5)  # 4 channels: 2 replaced per step
    sgd_step(cnn, optimizer, method, x, y)
    assert method.counts == {"recycled_units": 2}
    zeroed = (cnn.head.weight.reshape(3, 4, 36) == 0).all(2).all(0)
    assert int(zeroed.sum()) == 2  # each replaced channel's block of 36 flattened features


def test_cbp_resumes_exactly_from_its_state(mlp):
    x, y = batch(32)
    twin = copy.deepcopy(mlp)
    settings = {"maturity_threshold": 1, "replacement_rate": 0.2}
    runs = [(model, cbp_on(model, x, **settings), torch.optim.AdamW(model.parameters(), lr=0.01))
            for model in (mlp, twin)]
    for step in range(3):
        for model, method, optimizer in runs:
            torch.manual_seed(step)  # the fresh weights draw from the global stream: the same draws for both
            sgd_step(model, optimizer, method, x, y)
    # the twin's method is rebuilt from its state, loaded before its layers are found, as a resumed run does
    for handle in runs[1][1]._handles:
        handle.remove()
    resumed = methods.create("cbp", **settings)
    resumed.attach(twin)
    resumed.load_state_dict(runs[1][1].state_dict())
    resumed.check_model(x)
    runs[1] = (twin, resumed, runs[1][2])
    for step in range(3, 6):
        for model, method, optimizer in runs:
            torch.manual_seed(step)
            sgd_step(model, optimizer, method, x, y)
    assert states_equal(mlp.state_dict(), twin.state_dict()) and runs[0][1].counts == resumed.counts
    assert resumed.counts["recycled_units"] > 0


# --- DASH --------------------------------------------------------------------------------------------------------

def test_dash_shrinks_each_weight_vector_by_its_clamped_cosine_with_the_averaged_descent_direction(mlp):
    batches = [batch(seed=s) for s in range(3)]
    twin = copy.deepcopy(mlp)
    before_stats = copy.deepcopy({k: v for k, v in mlp.state_dict().items() if "running" in k})
    method = methods.create("dash", alpha=0.3, shrink_floor=0.3)
    method.attach(mlp)
    method.on_phase_data(0, lambda: iter(batches), F.cross_entropy)  # the first phase: nothing to shrink
    assert states_equal(mlp.state_dict(), twin.state_dict()) and method.counts == {"shrinks": 0}
    # by hand: g <- 0.7 g + 0.3 (-grad), batch after batch, on a copy in training mode
    layers = [m for m in twin.modules() if isinstance(m, nn.Linear)]
    averaged = {id(p): torch.zeros_like(p) for m in layers for p in (m.weight, m.bias)}
    for x, y in batches:
        probe = copy.deepcopy(twin)
        F.cross_entropy(probe(x), y).backward()
        for original, copied in zip(twin.parameters(), probe.parameters()):
            if id(original) in averaged:
                averaged[id(original)] = 0.7 * averaged[id(original)] - 0.3 * copied.grad
    method.on_phase_data(1, lambda: iter(batches), F.cross_entropy)
    assert method.counts == {"shrinks": 1}
    shrunk = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    for new, old in zip(shrunk, layers):
        rows = torch.cosine_similarity(old.weight, averaged[id(old.weight)], dim=1).clamp(0.3, 1)
        torch.testing.assert_close(new.weight, old.weight * rows[:, None])
        whole = torch.cosine_similarity(old.bias, averaged[id(old.bias)], dim=0).clamp(0.3, 1)
        torch.testing.assert_close(new.bias, old.bias * whole)
        assert (rows < 1).any()  # some rows did shrink
    assert all(torch.equal(v, mlp.state_dict()[k]) for k, v in before_stats.items())  # BatchNorm statistics kept
    assert all(p.grad is None for p in mlp.parameters())


def test_dash_on_a_convolution_scales_each_kernel_of_an_output_and_input_channel(cnn):
    batches = [(torch.randn(8, 1, 6, 6), torch.randint(0, 3, (8,)))]
    kernel = cnn.backbone[0].weight.detach().clone()
    method = methods.create("dash", shrink_floor=0.0)
    method.attach(cnn)
    direction = method.descent_directions(lambda: iter(batches), F.cross_entropy)[cnn.backbone[0].weight]
    method.on_phase_data(1, lambda: iter(batches), F.cross_entropy)
    cosine = torch.cosine_similarity(kernel.reshape(4, 1, 9), direction.reshape(4, 1, 9), dim=-1).clamp(0, 1)
    torch.testing.assert_close(cnn.backbone[0].weight, kernel * cosine[..., None, None])


# --- plasticity injection ----------------------------------------------------------------------------------------

def head_with_batchnorm():
    from hare_tortoise.nn.layers import Classifier

    torch.manual_seed(0)
    return Classifier(nn.Sequential(nn.Linear(4, 8), nn.ReLU()),
                      nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)))


def injected(**settings):
    """A model with a BatchNorm head under plasticity_injection, its method and optimizer."""
    method = methods.create("plasticity_injection", **settings)
    model = method.prepare_model(head_with_batchnorm())
    method.attach(model)
    return model, method, torch.optim.AdamW(model.parameters(), lr=0.05)


def test_plasticity_injection_leaves_the_output_unchanged_and_trains_only_the_fresh_head():
    model, method, optimizer = injected()
    x, y = batch(32)
    for _ in range(3):
        sgd_step(model, optimizer, method, x, y)
    head = model.head
    with torch.no_grad():
        outputs = {mode: model.train(mode)(x) for mode in (True, False)}
    model.train()
    # the weights and statistics (BatchNorm's batch counter aside, which a frozen layer still counts) at injection
    before = {k: v.clone() for k, v in head.live.state_dict().items() if v.is_floating_point()}
    method.on_phase_start(1, optimizer)
    assert method.counts == {"injections": 1}
    drawn = {k: v.clone() for k, v in head.live.state_dict().items() if v.is_floating_point()}
    with torch.no_grad():  # unchanged at the moment of injection, in evaluation and in training mode alike (in
        # that order: a training forward moves the live head's BatchNorm statistics, and so its evaluation output)
        assert all(torch.equal(model.train(mode)(x), outputs[mode]) for mode in (False, True))
    model.train()
    assert all(torch.equal(head.old.state_dict()[k], v) for k, v in before.items())  # the old head, frozen
    assert not torch.equal(drawn["0.weight"], before["0.weight"])  # fresh weights
    assert all(optimizer.state.get(p) is None for p in head.live.parameters())  # their optimizer state dropped
    frozen = {id(t) for t in list(head.old.buffers()) + list(head.fresh.buffers())}
    assert not frozen & {id(p) for p in model.parameters()}  # no optimizer, gradient or decay reaches them
    for _ in range(3):
        sgd_step(model, optimizer, method, x, y)
    assert all(torch.equal(head.old.state_dict()[k], v) for k, v in before.items())
    assert all(torch.equal(head.fresh.state_dict()[k], v) for k, v in drawn.items())  # BN statistics kept too
    assert not torch.equal(head.live.state_dict()["0.weight"], drawn["0.weight"])  # the fresh head learns


def test_plasticity_injection_survives_a_checkpoint():
    (model, method, optimizer), (twin, other, _) = (injected(at_phase=None, at_step=2) for _ in range(2))
    x, y = batch(32)
    for _ in range(3):
        sgd_step(model, optimizer, method, x, y)
    assert method.counts == {"injections": 1} and bool(model.head.injected)
    twin.load_state_dict(model.state_dict())  # a resumed run: the injection, its frozen heads and all
    other.load_state_dict(method.state_dict())
    model.eval(), twin.eval()
    assert torch.equal(model(x), twin(x)) and twin.head._injected and other.steps == 3


def test_plasticity_injection_is_refused_where_it_would_never_inject(tmp_path, capsys):
    from hare_tortoise.cli import main

    assert main(["run", "smoke", "--method", "plasticity_injection", "protocol=cold", "--out", str(tmp_path / "r")]) == 2
    assert "injects at the start of phase 1, but protocol 'cold' has one phase" in capsys.readouterr().err


# --- normalize-and-project ---------------------------------------------------------------------------------------

def test_normalize_project_puts_a_norm_before_each_activation_that_has_none():
    torch.manual_seed(0)
    bare = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 3))
    method = methods.create("normalize_project")
    model = method.prepare_model(bare)
    assert [type(m).__name__ for m in model] == ["Conv2d", "GroupNorm", "ReLU", "Flatten", "Linear", "LayerNorm",
                                                  "ReLU", "Linear"]
    assert method.counts["inserted_norms"] == 2 and model(torch.randn(2, 1, 6, 6)).shape == (2, 3)
    assert methods.create("normalize_project").prepare_model(TinyMLP()).backbone[1].__class__ is nn.BatchNorm1d


def test_normalize_project_keeps_every_weight_matrix_and_norm_layer_at_its_initial_norm(mlp):
    method = methods.create("normalize_project")
    model = method.prepare_model(mlp)
    method.attach(model)
    matrices = [m for m in model.modules() if isinstance(m, nn.Linear)]
    initial = [m.weight.detach().norm() for m in matrices]
    norm = model.backbone[1]
    initial_pair = torch.cat([norm.weight, norm.bias]).detach().norm()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # large steps: the norms move a lot
    x, y = batch(32)
    for _ in range(3):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        stepped = [m.weight.detach().clone() for m in matrices]
        biases = [m.bias.detach().clone() for m in matrices]
        method.after_step(optimizer, x)
        for m, w, n0, b in zip(matrices, stepped, initial, biases):
            torch.testing.assert_close(m.weight.detach(), w * (n0 / w.norm()))  # the step's direction, its old norm
            assert torch.equal(m.bias, b)  # biases left free
        torch.testing.assert_close(torch.cat([norm.weight, norm.bias]).detach().norm(), initial_pair)
    assert method.counts == {"projections": 3, "inserted_norms": 2}  # after the second backbone and the head Linear
