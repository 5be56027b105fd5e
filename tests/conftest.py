"""Data, settings and helpers shared by the test files (``from conftest import FAST``)."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, make_multilabel_classification

from skvae import SparseVAE

#: Settings of a cheap fit: a few epochs of a small model, seeded. A test that needs other
#: values overrides single entries, e.g. ``{**FAST, "max_iter": 5}``.
FAST = dict(n_components=4, hidden_layer_sizes=(32,), max_iter=3, random_state=0)


def exact_log_likelihood(vae, X):
    """log p(x) of each row under a fitted GaussianVAE with a linear decoder and a Gaussian
    likelihood: p(x) = N(b, W W^T + diag(sigma^2)) for the decoder's mean map x = W z + b,
    in the data's units."""
    from scipy.stats import multivariate_normal

    decoder, likelihood = vae.module_.decoder[-1], vae.module_.likelihood
    with torch.no_grad():
        shift, unit = likelihood.loc_shift.double(), likelihood.loc_scale.double()
        W = (unit[:, None] * decoder.weight.double()).cpu().numpy()
        b = (shift + unit * decoder.bias.double()).cpu().numpy()
        sigma = likelihood(decoder.bias).scale.double().cpu().numpy()
    return multivariate_normal(b, W @ W.T + np.diag(sigma**2)).logpdf(X)


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


@pytest.fixture(scope="session")
def counts():
    """Bag-of-words counts from scikit-learn's topic-model generator, as CSR."""
    X, _ = make_multilabel_classification(
        n_samples=400, n_features=60, n_classes=5, sparse=True, random_state=0
    )
    return X


@pytest.fixture(scope="session")
def fitted(small_digits):
    """``SparseVAE(**FAST)`` fitted on ``small_digits``. Shared: tests that change a model
    change a copy of it (``pickle.loads(pickle.dumps(fitted))``)."""
    X, _ = small_digits
    return SparseVAE(**FAST).fit(X)


@pytest.fixture(scope="session")
def fitted_frame_model(small_digits):
    """A Student-t SparseVAE fitted on a DataFrame of ``small_digits``, and that frame.
    Shared, like ``fitted``."""
    pd = pytest.importorskip("pandas")
    X, _ = small_digits
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    return SparseVAE(**{**FAST, "prior": "student-t", "df": 4.0}).fit(frame), frame


def weights(vae):
    """Copies of the module's weights and buffers."""
    return {k: v.clone() for k, v in vae.module_.state_dict().items()}


def same_weights(a, b):
    """Whether two ``weights`` dicts hold the same tensors, bit for bit."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
