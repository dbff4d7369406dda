"""Fixtures of the training tests: the CPU device and small datasets (helpers are in trainhelpers.py)."""
import pytest

import gpunet
from gpunet.data import load_dataset


@pytest.fixture(autouse=True)
def _cpu():
    gpunet.set_device("cpu")


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits", normalize="scale", flatten=True, seed=0)


@pytest.fixture(scope="session")
def xor():
    return load_dataset("xor", n_samples=200, seed=0)
