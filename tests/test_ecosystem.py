"""Everyday features: sparse input, count likelihoods, pandas names, progress bars."""

import re
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_multilabel_classification

from skvae import GaussianVAE, SparseVAE
from skvae._training import INFERENCE_BATCH_SIZE

FAST = dict(n_components=4, hidden_layer_sizes=(32,), max_iter=5, random_state=0)


@pytest.fixture(scope="module")
def counts():
    """Bag-of-words counts from scikit-learn's topic-model generator, as CSR."""
    X, _ = make_multilabel_classification(
        n_samples=400, n_features=60, n_classes=5, sparse=True, random_state=0
    )
    return X


# -- sparse input ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("likelihood", ["gaussian", "poisson"])
def test_sparse_input_gives_the_dense_results(counts, fmt, likelihood):
    sparse = counts.asformat(fmt)
    dense = counts.toarray()
    on_sparse = SparseVAE(**FAST, likelihood=likelihood).fit(sparse)
    on_dense = SparseVAE(**FAST, likelihood=likelihood).fit(dense)
    assert on_sparse.loss_curve_ == on_dense.loss_curve_
    np.testing.assert_array_equal(on_sparse.transform(sparse), on_dense.transform(dense))
    assert on_sparse.score(sparse) == on_dense.score(dense)
    assert on_sparse.__sklearn_tags__().input_tags.sparse


def test_sparse_input_is_densified_one_batch_at_a_time(counts, monkeypatch):
    shapes = []
    toarray = sp.csr_matrix.toarray

    def recording_toarray(self, *args, **kwargs):
        shapes.append(self.shape[0])
        return toarray(self, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", recording_toarray)
    X = sp.vstack([counts] * 15, format="csr")  # 6000 rows, more than a CPU inference batch
    vae = SparseVAE(**{**FAST, "max_iter": 1, "batch_size": 256, "device": "cpu"}).fit(X)
    vae.transform(X)
    vae.score(X)
    assert shapes and max(shapes) <= INFERENCE_BATCH_SIZE < X.shape[0]


def test_sparse_early_stopping_keeps_the_validation_rows_sparse(counts):
    vae = SparseVAE(**{**FAST, "early_stopping": True}).fit(counts)
    assert len(vae.validation_scores_) == vae.n_iter_


# -- count likelihoods ----------------------------------------------------------------------


def test_negative_binomial_fits_overdispersed_counts_better_than_poisson():
    rng = np.random.RandomState(0)
    mean = np.exp(rng.normal(1.0, 0.5, size=(1, 30)))
    theta = 0.5  # strong overdispersion: variance = mean + mean^2 / 0.5
    X = rng.poisson(rng.gamma(theta, mean / theta, size=(800, 30))).astype(float)
    scores = {
        lik: GaussianVAE(**{**FAST, "max_iter": 30, "likelihood": lik}).fit(X).score(X)
        for lik in ["poisson", "negative-binomial"]
    }
    assert scores["negative-binomial"] > scores["poisson"] + 5


@pytest.mark.parametrize("likelihood", ["poisson", "negative-binomial"])
def test_count_likelihoods_sample_counts(counts, likelihood):
    vae = SparseVAE(**FAST, likelihood=likelihood).fit(counts)
    draws = vae.sample(50, random_state=0)
    assert draws.shape == (50, counts.shape[1])
    assert (draws >= 0).all() and (draws == np.round(draws)).all()
    np.testing.assert_array_equal(draws, vae.sample(50, random_state=0))
    assert (vae.inverse_transform(vae.transform(counts)) > 0).all()  # Poisson/NB means


@pytest.mark.parametrize("likelihood", ["poisson", "negative-binomial"])
@pytest.mark.parametrize("bad, value", [(-1.0, "-1"), (0.5, "0.5")])
def test_count_likelihoods_refuse_non_counts(counts, likelihood, bad, value):
    X = counts.toarray()
    X[3, 4] = bad
    with pytest.raises(ValueError, match=rf"needs counts \(non-negative integers\).*{value}"):
        SparseVAE(**FAST, likelihood=likelihood).fit(X)


# -- pandas ---------------------------------------------------------------------------------


def test_inverse_transform_and_sample_return_the_training_columns(small_digits):
    pd = pytest.importorskip("pandas")
    X, _ = small_digits
    columns = [f"pixel{i}" for i in range(X.shape[1])]
    vae = SparseVAE(**FAST).fit(pd.DataFrame(X, columns=columns))
    back = vae.inverse_transform(vae.transform(pd.DataFrame(X, columns=columns)))
    assert isinstance(back, pd.DataFrame) and list(back.columns) == columns
    draws = vae.sample(3, random_state=0)
    assert isinstance(draws, pd.DataFrame) and list(draws.columns) == columns
    array_model = SparseVAE(**FAST).fit(X)
    assert isinstance(array_model.inverse_transform(array_model.transform(X)), np.ndarray)
    assert isinstance(array_model.sample(3), np.ndarray)


# -- progress -------------------------------------------------------------------------------


def test_progress_bar_on_a_terminal(small_digits, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    X, _ = small_digits
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    SparseVAE(**{**FAST, "verbose": 1}).fit(X)
    out = capsys.readouterr().out
    assert re.search(r"SparseVAE: 100%.*\| 5/5 .*loss = -?\d+\.\d\d", out)
    assert "[SparseVAE] Iteration" not in out


def test_plain_lines_without_tqdm(small_digits, capsys, monkeypatch):
    X, _ = small_digits
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if tqdm were not installed
    SparseVAE(**{**FAST, "verbose": 1}).fit(X)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(line.startswith("[SparseVAE] Iteration") for line in lines)
