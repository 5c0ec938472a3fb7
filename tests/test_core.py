"""HareTortoise: the EMA against its closed form, resets, schedule, buffers, state, wrappers, validation."""

import copy
import gc
import io

import pytest
import torch
import torch.distributed as dist
from torch import nn

from conftest import TinyMLP, batch, states_equal
from hare_tortoise import HareTortoise
from hare_tortoise.tensors import split_buffers


def train_step(model, optimizer, seed):
    x, y = batch(seed=seed)
    model.train()
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()


def test_tortoise_starts_as_exact_frozen_copy(mlp):
    ht = HareTortoise(mlp)
    assert states_equal(ht.tortoise.state_dict(), mlp.state_dict())
    assert all(not p.requires_grad for p in ht.tortoise.parameters())
    hare_ptrs = {t.data_ptr() for t in mlp.state_dict().values()}
    assert hare_ptrs.isdisjoint(t.data_ptr() for t in ht.tortoise.state_dict().values())
    assert not ht.tortoise.training


def test_update_matches_closed_form_for_parameters_and_float_buffers(mlp):
    m, n = 0.9, 7
    ht = HareTortoise(mlp, momentum=m)
    optimizer = torch.optim.AdamW(mlp.parameters(), lr=0.05)
    initial = {k: v.double().clone() for k, v in mlp.state_dict().items()}
    hares = []
    for step in range(n):
        train_step(mlp, optimizer, seed=step)
        ht.update()
        hares.append({k: v.double().clone() for k, v in mlp.state_dict().items()})
    tortoise = ht.tortoise.state_dict()
    for name, value in tortoise.items():
        if not value.is_floating_point():
            # num_batches_tracked: copied from the hare, still an integer
            assert value.dtype == torch.long and value == mlp.state_dict()[name]
            continue
        # t_n = m^n t_0 + (1 - m) * sum_k m^(n-k) h_k, computed independently in float64
        expected = m**n * initial[name] + sum((1 - m) * m ** (n - k) * hares[k - 1][name] for k in range(1, n + 1))
        torch.testing.assert_close(value.double(), expected, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(value.double(), hares[-1][name])  # really an average, not a copy
    assert ht.num_updates == n


def test_buffers_copy_option_copies_float_buffers(mlp):
    ht = HareTortoise(mlp, momentum=0.9, buffers="copy")
    optimizer = torch.optim.SGD(mlp.parameters(), lr=0.1)
    train_step(mlp, optimizer, seed=0)
    ht.update()
    assert torch.equal(ht.tortoise.backbone[1].running_mean, mlp.backbone[1].running_mean)
    assert not torch.equal(ht.tortoise.backbone[0].weight, mlp.backbone[0].weight)


def test_reset_copies_in_place_and_later_steps_leave_tortoise_alone(mlp):
    ht = HareTortoise(mlp, momentum=0.9)
    optimizer = torch.optim.AdamW(mlp.parameters(), lr=0.05)
    for step in range(3):
        train_step(mlp, optimizer, seed=step)
        ht.update()
    params_before = [id(p) for p in mlp.parameters()]
    moments_before = {id(p): s["exp_avg"].clone() for p, s in optimizer.state.items()}
    ht.reset_hare()
    assert states_equal(mlp.state_dict(), ht.tortoise.state_dict())
    assert [id(p) for p in mlp.parameters()] == params_before
    assert all(torch.equal(optimizer.state[p]["exp_avg"], moments_before[id(p)]) for p in mlp.parameters())
    hare_ptrs = {t.data_ptr() for t in mlp.state_dict().values()}
    assert hare_ptrs.isdisjoint(t.data_ptr() for t in ht.tortoise.state_dict().values())
    frozen = copy.deepcopy(ht.tortoise.state_dict())
    train_step(mlp, optimizer, seed=9)  # the optimizer still drives the hare's Parameters ...
    assert not states_equal(mlp.state_dict(), frozen)
    assert states_equal(ht.tortoise.state_dict(), frozen)  # ... and never the tortoise


def test_step_resets_every_n_updates(mlp):
    ht = HareTortoise(mlp, momentum=0.5, reset_every=3)
    optimizer = torch.optim.SGD(mlp.parameters(), lr=0.1)
    resets = []
    for step in range(1, 7):
        train_step(mlp, optimizer, seed=step)
        resets.append(ht.step())
        assert states_equal(mlp.state_dict(), ht.tortoise.state_dict()) == (step % 3 == 0)
    assert resets == [False, False, True, False, False, True]


def test_attached_to_an_optimizer_it_steps_after_every_optimizer_step_as_by_hand(mlp):
    twin = copy.deepcopy(mlp)
    by_hand, attached = HareTortoise(mlp, momentum=0.5, reset_every=3), HareTortoise(twin, momentum=0.5, reset_every=3)
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (mlp, twin)]
    handle = attached.attach(optimizers[1])
    for step in range(1, 6):
        train_step(mlp, optimizers[0], seed=step)
        by_hand.step()
        train_step(twin, optimizers[1], seed=step)  # no ht.step(): the optimizer's hook does it
        assert states_equal(by_hand.tortoise.state_dict(), attached.tortoise.state_dict())
        assert states_equal(mlp.state_dict(), twin.state_dict())  # the resets too (steps 3)
    assert attached.num_updates == 5
    handle.remove()
    train_step(twin, optimizers[1], seed=9)
    assert attached.num_updates == 5  # detached


def test_state_dict_round_trip_through_weights_only_load(mlp):
    ht = HareTortoise(mlp, momentum=0.9)
    optimizer = torch.optim.SGD(mlp.parameters(), lr=0.1)
    for step in range(2):
        train_step(mlp, optimizer, seed=step)
        ht.update()
    buffer = io.BytesIO()
    torch.save(ht.state_dict(), buffer)
    buffer.seek(0)
    restored = HareTortoise(copy.deepcopy(mlp), momentum=0.9)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.num_updates == 2
    assert states_equal(restored.tortoise.state_dict(), ht.tortoise.state_dict())


@pytest.mark.parametrize("kwargs, message", [
    ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
    ({"momentum": -0.1}, r"momentum must be in \[0, 1\)"),
    ({"reset_every": 0}, "reset_every must be an integer >= 1"),
    ({"reset_every": 2.5}, "reset_every must be an integer >= 1"),
    ({"buffers": "mean"}, "buffers must be 'ema'"),
])
def test_constructor_rejects_bad_arguments(mlp, kwargs, message):
    with pytest.raises(ValueError, match=message):
        HareTortoise(mlp, **kwargs)


def test_model_without_parameters_is_rejected():
    with pytest.raises(ValueError, match="must have parameters"):
        HareTortoise(nn.ReLU())


def averaged(model):
    """The tensors an update averages, in the order the buffer holds them: parameters, then floating buffers."""
    return [*model.parameters(), *split_buffers(model)[0]]


def test_with_shared_storage_an_update_is_one_lerp_over_each_networks_buffer(mlp, monkeypatch):
    parameters = list(mlp.parameters())
    ht = HareTortoise(mlp, share_storage=True)
    assert list(mlp.parameters()) == parameters  # the same Parameter objects, now views into one buffer
    for network in (mlp, ht.tortoise):
        tensors = averaged(network)
        assert len({t.untyped_storage().data_ptr() for t in tensors}) == 1
        assert [t.storage_offset() for t in tensors] == [sum(t.numel() for t in tensors[:i]) for i in range(len(tensors))]
    foreach, lerps = [], []
    monkeypatch.setattr(torch, "_foreach_lerp_", lambda *a: foreach.append(a))
    original = torch.Tensor.lerp_
    monkeypatch.setattr(torch.Tensor, "lerp_", lambda self, *a: (lerps.append(self.numel()), original(self, *a))[1])
    ht.update()
    assert foreach == [] and lerps == [sum(t.numel() for t in averaged(mlp))]
    assert not any(t.requires_grad or t.grad_fn for t in averaged(ht.tortoise))  # grad mode was on: nothing recorded


def test_with_shared_storage_nothing_keeps_the_storage_the_tensors_left(mlp):
    import weakref

    before = [weakref.ref(p.untyped_storage()) for p in mlp.parameters()]  # the storages before the move
    ht = HareTortoise(mlp, momentum=0.9, share_storage=True)
    gc.collect()
    # what the update works on lies in the two buffers, and the model's old storage is freed (no second copy)
    buffers = {flat.buffer.untyped_storage().data_ptr() for flat in ht._flat}
    assert {v.untyped_storage().data_ptr() for views in ht._views["average"] for v in views} == buffers
    assert all(ref() is None for ref in before)


def test_it_keeps_the_module_api_and_mixed_dtypes_fall_back_to_per_tensor_updates(mlp):
    ht = HareTortoise(mlp, momentum=0.9, buffers="copy")
    # nn.Module's own buffers() (the setting is stored as buffer_mode, which once shadowed it)
    assert [b.data_ptr() for b in ht.buffers()] == [b.data_ptr() for b in ht.tortoise.buffers()]
    mlp.head.double()  # one network of two dtypes: no single buffer can hold it
    mixed = HareTortoise(mlp, momentum=0.9, share_storage=True)
    assert mixed._flat is None
    before = {k: v.clone() for k, v in mixed.tortoise.state_dict().items()}
    with torch.no_grad():
        for p in mlp.parameters():
            p.add_(1.0)
    mixed.update()
    for name, value in closed_form_after_one_update(mlp, before, 0.9).items():
        torch.testing.assert_close(mixed.tortoise.state_dict()[name], value)


def test_flat_and_per_tensor_updates_give_the_same_bits(mlp):
    twin = copy.deepcopy(mlp)
    flat = HareTortoise(mlp, momentum=0.9, reset_every=3, share_storage=True)
    per_tensor = HareTortoise(twin, momentum=0.9, reset_every=3)
    assert flat._flat is not None and per_tensor._flat is None
    optimizers = [torch.optim.AdamW(m.parameters(), lr=0.05) for m in (mlp, twin)]
    for step in range(5):
        for model, optimizer, ht in zip((mlp, twin), optimizers, (flat, per_tensor)):
            train_step(model, optimizer, seed=step)
            ht.step()
        assert states_equal(mlp.state_dict(), twin.state_dict())
        assert states_equal(flat.tortoise.state_dict(), per_tensor.tortoise.state_dict())


def test_an_optimizer_built_before_still_trains_the_flattened_hare(mlp):
    optimizer = torch.optim.SGD(mlp.parameters(), lr=0.1)
    ht = HareTortoise(mlp, momentum=0.5, share_storage=True)
    before = [p.detach().clone() for p in mlp.parameters()]
    train_step(mlp, optimizer, seed=0)
    ht.update()
    for p, old, t in zip(mlp.parameters(), before, ht.tortoise.parameters()):
        torch.testing.assert_close(t, 0.5 * old + 0.5 * p.detach())  # the tortoise sees the step the optimizer made
    assert not all(torch.equal(p, old) for p, old in zip(mlp.parameters(), before))


def test_moving_the_hare_afterwards_falls_back_to_per_tensor_updates(cnn):
    ht = HareTortoise(cnn, momentum=0.5, share_storage=True)
    cnn.to(memory_format=torch.channels_last)  # new storage for the conv weight: detached from the buffer
    with torch.no_grad():
        for p in cnn.parameters():
            p.add_(1.0)
    ht.update()
    assert ht._flat is None
    for t, h in zip(ht.tortoise.parameters(), cnn.parameters()):
        torch.testing.assert_close(t, h.detach() - 0.5)
        assert not t.requires_grad and t.grad_fn is None
    ht.reset_hare()
    assert states_equal(cnn.state_dict(), ht.tortoise.state_dict())


def test_flattening_keeps_channels_last_strides_and_values(cnn):
    cnn = cnn.to(memory_format=torch.channels_last)
    values = copy.deepcopy(cnn.state_dict())
    ht = HareTortoise(cnn, momentum=0.5, share_storage=True)
    assert ht._flat is not None
    assert cnn.backbone[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert ht.tortoise.backbone[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert states_equal(cnn.state_dict(), values) and states_equal(ht.tortoise.state_dict(), values)


def test_two_averages_of_one_model_share_its_buffer(mlp):
    method = HareTortoise(mlp, momentum=0.9, share_storage=True)
    shadow = HareTortoise(mlp, momentum=0.5, share_storage=True)
    assert method._flat[1].buffer.data_ptr() == shadow._flat[1].buffer.data_ptr()
    assert method._flat[1].intact() and shadow._flat[1].intact()


def test_unwraps_torch_compile(mlp):
    compiled = torch.compile(mlp, backend="eager")
    ht = HareTortoise(compiled, momentum=0.5)
    assert ht.hare is mlp
    with torch.no_grad():
        for p in mlp.parameters():
            p.add_(1.0)
    ht.update()
    torch.testing.assert_close(ht.tortoise.head[0].bias, mlp.head[0].bias - 0.5)


def test_unwraps_distributed_data_parallel(mlp, tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    wrapped = None
    try:
        wrapped = nn.parallel.DistributedDataParallel(mlp)
        ht = HareTortoise(wrapped, momentum=0.9, reset_every=2)
        assert ht.hare is mlp
        optimizer = torch.optim.SGD(wrapped.parameters(), lr=0.1)
        for step in range(2):
            train_step(wrapped, optimizer, seed=step)
            ht.step()
        assert states_equal(mlp.state_dict(), ht.tortoise.state_dict())
    finally:
        wrapped = None  # DDP before its process group: the other order hung 2 runs in 20 (see World.close)
        gc.collect()
        dist.destroy_process_group()


def test_bfloat16_model(mlp):
    model = mlp.to(torch.bfloat16)
    ht = HareTortoise(model, momentum=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ht.update()
    assert ht.tortoise.head[0].weight.dtype == torch.bfloat16
    torch.testing.assert_close(ht.tortoise.head[0].weight, model.head[0].weight - 0.5, rtol=1e-2, atol=1e-2)
    ht.reset_hare()
    assert states_equal(model.state_dict(), ht.tortoise.state_dict())


# --- the user's model stays an ordinary model; HareTortoise is an ordinary module ---------------------------------

def closed_form_after_one_update(hare, tortoise_before, m):
    return {k: m * tortoise_before[k] + (1 - m) * v if v.is_floating_point() else v for k, v in hare.state_dict().items()}


def test_the_model_keeps_its_own_storage_and_a_submodule_saves_at_its_own_size(mlp):
    def saved_bytes(module):
        buffer = io.BytesIO()
        torch.save(module.state_dict(), buffer)
        return len(buffer.getvalue())

    head_alone = saved_bytes(mlp.head)
    storages = [t.untyped_storage().data_ptr() for t in mlp.state_dict().values()]
    HareTortoise(mlp, momentum=0.9)
    assert saved_bytes(mlp.head) == head_alone
    # no two tensors share a storage: what safetensors' save_model insists on
    assert [t.untyped_storage().data_ptr() for t in mlp.state_dict().values()] == storages
    assert len(set(storages)) == len(storages)


@pytest.mark.parametrize("cast", ["double", "half"])
def test_casting_the_model_alone_is_a_clear_error_and_casting_both_gives_the_closed_form(mlp, cast):
    ht = HareTortoise(mlp, momentum=0.9)
    getattr(mlp, cast)()
    with pytest.raises(ValueError, match=r"the hare's backbone.0.weight is now torch.float(64|16) .* the tortoise's "
                                         r"torch.float32 .*move or cast the HareTortoise with the model"):
        ht.step()
    getattr(ht, cast)()
    with torch.no_grad():
        for p in mlp.parameters():
            p.add_(1.0)
    before = {k: v.clone() for k, v in ht.tortoise.state_dict().items()}
    ht.step()
    tolerance = {"rtol": 1e-2, "atol": 1e-3} if cast == "half" else {}
    for name, value in closed_form_after_one_update(mlp, before, 0.9).items():
        assert ht.tortoise.state_dict()[name].dtype == value.dtype
        torch.testing.assert_close(ht.tortoise.state_dict()[name].double(), value.double(), **tolerance)
    assert ht.num_updates == 1  # the refused step changed nothing


def test_moving_the_model_to_another_device_alone_is_a_clear_error(mlp):
    ht = HareTortoise(mlp, momentum=0.9)
    mlp.to("meta")
    with pytest.raises(ValueError, match="on meta, the tortoise's .* on cpu: move or cast the HareTortoise"):
        ht.update()


@pytest.mark.parametrize("replace", ["data", "load_assign"])
def test_an_update_follows_tensors_replaced_after_construction(mlp, replace):
    # the update works on views of the tensors it collected: a hare whose tensors were re-pointed (`.data = `) or
    # replaced in the module's table (`load_state_dict(assign=True)`) must be averaged as it is now
    ht = HareTortoise(mlp, momentum=0.9)
    ht.update()
    new = {k: v + 1.0 if v.is_floating_point() else v.clone() for k, v in mlp.state_dict().items()}
    if replace == "data":
        for name, tensor in mlp.named_parameters():
            tensor.data = new[name]
    else:
        mlp.load_state_dict(new, assign=True)
    before = {k: v.clone() for k, v in ht.tortoise.state_dict().items()}
    ht.update()
    for name, value in closed_form_after_one_update(mlp, before, 0.9).items():
        torch.testing.assert_close(ht.tortoise.state_dict()[name], value)
    ht.reset_hare()
    assert states_equal(mlp.state_dict(), ht.tortoise.state_dict())

def test_nested_in_a_parent_it_moves_casts_saves_and_stays_in_eval_mode(mlp):
    class Learner(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model
            self.ht = HareTortoise(model, momentum=0.9, reset_every=2)

    learner = Learner(mlp)
    names = set(learner.state_dict())
    assert {f"ht.tortoise.{k}" for k in mlp.state_dict()} | {"ht._extra_state"} | {f"model.{k}" for k in mlp.state_dict()} == names
    learner.ht.update()
    learner.double().train()
    assert not learner.ht.tortoise.training and mlp.training
    before = {k: v.clone() for k, v in learner.ht.tortoise.state_dict().items()}
    with torch.no_grad():
        for p in mlp.parameters():
            p.add_(1.0)
    expected = closed_form_after_one_update(mlp, before, 0.9)
    assert learner.ht.step()  # the second update: a reset
    for name, value in expected.items():
        torch.testing.assert_close(learner.ht.tortoise.state_dict()[name], value)
    assert learner.ht.tortoise.backbone[0].weight.dtype == torch.float64
    buffer = io.BytesIO()
    torch.save(learner.state_dict(), buffer)
    buffer.seek(0)
    torch.manual_seed(5)
    twin = Learner(TinyMLP()).double()
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    assert twin.ht.num_updates == 2 and states_equal(twin.ht.tortoise.state_dict(), learner.ht.tortoise.state_dict())
    assert torch.equal(twin.ht(batch()[0].double()), learner.ht.tortoise(batch()[0].double()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_update_and_reset():
    torch.manual_seed(0)
    model = TinyMLP().cuda()
    ht = HareTortoise(model, momentum=0.9)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ht.update()
    torch.testing.assert_close(ht.tortoise.head[0].bias, model.head[0].bias - 0.9)
    ht.reset_hare()
    assert states_equal(model.state_dict(), ht.tortoise.state_dict())


def test_the_core_imports_torch_only():
    import subprocess
    import sys

    # The engine's packages are made unimportable; the core must not notice.
    code = ("import sys\n"
            "for name in ('numpy', 'tqdm', 'matplotlib', 'mnist1d', 'PIL'): sys.modules[name] = None\n"
            "import hare_tortoise, hare_tortoise.methods, hare_tortoise.metrics\n"
            "print(sorted(m for m in ('hare_tortoise.data', 'hare_tortoise.train') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
