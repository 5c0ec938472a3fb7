"""FlatTensors: tensors moved into one buffer keep their values, objects and strides, and say when they leave it.
FlatGradients: gradients in one buffer are autograd's, clipped by clip_grad_norm_'s rule."""

import copy

import pytest
import torch
from torch import nn

from hare_tortoise.flat import FlatGradients, FlatTensors, clip_coefficient


def test_tensors_move_into_one_buffer_back_to_back_with_their_values():
    torch.manual_seed(0)
    weight, bias = nn.Parameter(torch.randn(3, 4)), nn.Parameter(torch.randn(3))
    running = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    values = [t.detach().clone() for t in (weight, bias, running)]
    flat = FlatTensors([weight, bias, running])
    assert flat.buffer.shape == (12 + 3 + 120,) and flat.intact()
    for tensor, value, offset in zip((weight, bias, running), values, (0, 12, 15)):
        assert torch.equal(tensor, value) and tensor.storage_offset() == offset
        assert tensor.untyped_storage().data_ptr() == flat.buffer.untyped_storage().data_ptr()
    assert running.is_contiguous(memory_format=torch.channels_last)
    assert isinstance(weight, nn.Parameter) and weight.requires_grad
    flat.buffer.mul_(2)  # one op on the buffer is an op on every tensor
    assert all(torch.equal(t, 2 * v) for t, v in zip((weight, bias, running), values))


def test_tensors_already_in_one_buffer_keep_it():
    tensors = [torch.randn(5), torch.randn(2, 2)]
    first = FlatTensors(tensors)
    again = FlatTensors(tensors)
    assert again.buffer.data_ptr() == first.buffer.data_ptr() and first.intact() and again.intact()


def test_a_re_pointed_tensor_is_no_longer_intact():
    tensors = [torch.randn(5), torch.randn(3)]
    flat = FlatTensors(tensors)
    tensors[1].data = torch.randn(3)
    assert not flat.intact()


def test_tensors_that_cannot_share_a_buffer_are_left_alone():
    mixed = [torch.randn(3), torch.randn(3, dtype=torch.float64)]
    strided = [torch.randn(4, 4)[:, :2], torch.randn(3)]  # a view with gaps between its rows
    for tensors in (mixed, strided, []):
        addresses = [t.data_ptr() for t in tensors]
        flat = FlatTensors(tensors)
        assert flat.buffer is None and not flat.intact()
        assert [t.data_ptr() for t in tensors] == addresses


def _mlp_and_batch(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    return model, torch.randn(16, 6), torch.randint(0, 3, (16,))


def _backward(model, x, y, scale: float = 1.0):
    (torch.nn.functional.cross_entropy(model(x), y) * scale).backward()


def test_gradients_land_in_the_buffer_as_autograd_would_give_them():
    model, x, y = _mlp_and_batch()
    twin = copy.deepcopy(model)
    gradients = FlatGradients(model.parameters())
    for _ in range(2):  # the second pass starts from zero again, not from the first pass's sums
        gradients.zero()
        _backward(model, x, y)
    twin.zero_grad(set_to_none=True)
    _backward(twin, x, y)
    for p, q, view in zip(model.parameters(), twin.parameters(), gradients.views):
        assert p.grad is view and torch.equal(p.grad, q.grad)
    assert torch.equal(gradients.buffer, torch.cat([q.grad.flatten() for q in twin.parameters()]))


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_clipping_follows_clip_grad_norm(scale):
    model, x, y = _mlp_and_batch()
    twin = copy.deepcopy(model)
    gradients = FlatGradients(model.parameters())
    gradients.zero()
    _backward(model, x, y, scale)
    _backward(twin, x, y, scale)
    norm = torch.nn.utils.clip_grad_norm_(twin.parameters(), 0.5)
    assert torch.allclose(gradients.norm(), norm, rtol=1e-6)
    gradients.clip(0.5)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-9)
    assert float(gradients.norm()) <= 0.5 * (1 + 1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_cpu_clip_gives_the_bits_of_the_tensor_expression(dtype):
    """The CPU path computes min(1, max_norm / (norm + 1e-6)) in Python floats; it must round as torch's 0-d tensor
    ops do, so that a clipped run gives the same numbers as before (and as on an accelerator)."""
    generator = torch.Generator().manual_seed(0)
    for trial in range(3000):
        size = int(torch.randint(1, 3000, (), generator=generator))
        scale = 10 ** float(torch.empty(()).uniform_(-6, 5, generator=generator))
        buffer = torch.randn(size, dtype=dtype, generator=generator) * scale
        max_norm = (0.5, 1.0, float(torch.empty(()).uniform_(0.01, 5, generator=generator)))[trial % 3]
        norm = torch.dot(buffer, buffer).sqrt()
        expected = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
        assert clip_coefficient(norm.item(), max_norm, dtype) == expected.item()
        gradients = FlatGradients([nn.Parameter(torch.zeros(size, dtype=dtype))])
        gradients.zero()
        gradients.buffer.copy_(buffer)
        gradients.clip(max_norm)
        assert torch.equal(gradients.buffer, buffer * expected)


def test_the_clip_coefficient_keeps_the_tensor_expressions_special_values():
    for dtype in (torch.float32, torch.float64):
        for norm in (0.0, float("inf"), float("nan"), 1e-30):
            expected = torch.clamp(0.5 / (torch.tensor(norm, dtype=dtype) + 1e-6), max=1.0).item()
            got = clip_coefficient(norm, 0.5, dtype)
            assert got == expected or (got != got and expected != expected)
    with pytest.raises(ValueError, match="bfloat16"):
        clip_coefficient(1.0, 0.5, torch.bfloat16)


def test_a_norm_under_the_limit_leaves_the_gradients_as_they_were():
    model, x, y = _mlp_and_batch()
    gradients = FlatGradients(model.parameters())
    gradients.zero()
    _backward(model, x, y)
    before = gradients.buffer.clone()
    gradients.clip(1e9)
    assert torch.equal(gradients.buffer, before)


def test_a_gradient_set_to_none_or_replaced_is_clipped_where_it_is_and_put_back_in_the_buffer():
    model, x, y = _mlp_and_batch()
    twin = copy.deepcopy(model)
    gradients = FlatGradients(model.parameters())
    first, second = list(model.parameters())[:2]
    gradients.zero()
    first.grad, second.grad = None, torch.ones_like(second)  # what a user's zero_grad() or hook might do
    _backward(model, x, y)
    assert first.grad is not gradients.views[0] and second.grad is not gradients.views[1]
    twin.zero_grad(set_to_none=True)
    _backward(twin, x, y)
    list(twin.parameters())[1].grad += 1.0
    torch.nn.utils.clip_grad_norm_(twin.parameters(), 1e-3)
    gradients.clip(1e-3)  # per tensor now, on the gradients where they are
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-12)
    gradients.zero()
    assert all(p.grad is v for p, v in zip(model.parameters(), gradients.views)) and not gradients.buffer.any()


def test_parameters_that_cannot_share_a_buffer_fall_back_to_per_tensor_gradients():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2).double())
    gradients = FlatGradients(model.parameters())
    assert gradients.buffer is None
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    gradients.clip(1.0)
    assert abs(float(gradients.norm()) - 1.0) < 1e-6
    gradients.zero()
    assert all(p.grad is None for p in model.parameters())
