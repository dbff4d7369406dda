"""The logic-gate truth tables (the perceptron's data)."""
import numpy as np
import pytest

from gpunet.data import DatasetError, load_dataset


@pytest.mark.parametrize("gate, labels", [("and", [0, 0, 0, 1]), ("or", [0, 1, 1, 1]), ("xor", [0, 1, 1, 0]),
                                          ("nand", [1, 1, 1, 0]), ("nor", [1, 0, 0, 0])])
def test_truth_tables(gate, labels):
    data = load_dataset("logic", gate=gate, test_split=0.0, validation_split=0.0)
    np.testing.assert_array_equal(data.train.x, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(data.train.y, labels)
    assert data.info.num_classes == 2 and data.validation is None and data.test is None


def test_bipolar_inputs_and_repeats():
    data = load_dataset("logic", gate="and", bipolar=True, repeat=2, test_split=0.0, validation_split=0.0)
    np.testing.assert_array_equal(data.train.x[:4], [[-1, -1], [-1, 1], [1, -1], [1, 1]])
    np.testing.assert_array_equal(data.train.y, [0, 0, 0, 1, 0, 0, 0, 1])


def test_an_unknown_gate_is_named():
    with pytest.raises(DatasetError, match="dataset 'logic': gate must be one of and, or, xor, nand, nor, got 'imp'"):
        load_dataset("logic", gate="imp")
