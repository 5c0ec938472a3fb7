"""FlatTensors: tensors moved into one buffer keep their values, objects and strides, and say when they leave it."""

import torch
from torch import nn

from hare_tortoise.flat import FlatTensors


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
