import numpy as np
import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits():
    """The digits data scaled to [0, 1] (float64) and its labels."""
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="session")
def small_digits(digits):
    """600 rows of the digits, enough for fast fits."""
    X, y = digits
    rows = np.random.RandomState(0).permutation(len(X))[:600]
    return X[rows], y[rows]
