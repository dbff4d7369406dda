"""gn.tensor accepts numbers only: strings, None and other objects are refused at creation, as PyTorch does."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gpunet as gn


@pytest.mark.parametrize("data, shown", [
    (["a", "b"], "str 'a'"), ([None], "NoneType None"), (object(), "object"), ([1.0, "x"], "str"),
    (["1", "2"], "str '1'"), (np.array([1, 2], dtype=object), "dtype object"),
])
def test_non_numeric_data_is_refused_at_creation(data, shown):
    with pytest.raises(TypeError, match=r"gpunet.tensor: data must be numbers .*got " + shown):
        gn.tensor(data)
    with pytest.raises((TypeError, ValueError, RuntimeError)):  # PyTorch refuses these too
        torch.tensor(data)


def test_numeric_strings_are_not_cast_silently_even_with_a_dtype():
    with pytest.raises(TypeError, match="str '1'"):
        gn.tensor(["1", "2"], dtype=gn.float32)  # NumPy alone would cast these


def test_ragged_data_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="not a rectangular array of numbers"):
        gn.tensor([[1.0, 2.0], [3.0]])


@pytest.mark.parametrize("data", [[1, 2], [1.5, -2.0], [True, False], np.float32(3.0), np.arange(4, dtype=np.uint8)])
def test_numbers_are_accepted_with_pytorchs_dtypes(data):
    ours, theirs = gn.tensor(data), torch.tensor(data)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert ours.dtype == theirs.numpy().dtype
