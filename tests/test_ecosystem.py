"""The estimators among other libraries: scikit-learn's Pipeline, GridSearchCV and clone, pandas
and set_output, SciPy sparse input, tqdm progress bars; and an import that changes nothing."""

import re
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import FAST
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from skvae import OutOfSupportWarning, SparseVAE
from skvae._training import INFERENCE_BATCH_SIZE

#: Five epochs, which the progress bar shows as 5/5.
FIVE_EPOCHS = {**FAST, "max_iter": 5}


# -- scikit-learn -----------------------------------------------------------------------------


def test_pipeline_with_cauchy_prior(small_digits):
    X, _ = small_digits
    pipe = Pipeline([("scale", MinMaxScaler()), ("vae", SparseVAE(prior="cauchy", **FAST))])
    Z = pipe.fit(X).transform(X)
    assert Z.shape == (len(X), 4)
    assert np.isfinite(Z).all()
    X_back = pipe.inverse_transform(Z)
    assert X_back.shape == X.shape
    assert pipe.named_steps["vae"].sample(5, random_state=0).shape == (5, X.shape[1])
    assert np.isfinite(pipe.score(X))


def test_grid_search_selects_on_elbo_in_parallel(small_digits):
    X, _ = small_digits
    pipe = Pipeline([("scale", MinMaxScaler()), ("vae", SparseVAE(prior="cauchy", **FAST))])
    grid = {"vae__n_components": [1, 6]}
    search = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X)
    scores = search.cv_results_["mean_test_score"]
    # The default scorer is the pipeline's score: the VAE's mean ELBO, computed the same way
    # in the workers as here.
    for params, score in zip(search.cv_results_["params"], scores, strict=True):
        expected = cross_val_score(clone(pipe).set_params(**params), X, cv=3).mean()
        assert score == pytest.approx(expected, rel=1e-6)
    assert np.isfinite(scores).all() and scores[0] != scores[1]
    assert search.best_index_ == np.argmax(scores)


def test_grid_search_over_bernoulli_data_scores_test_folds_that_stray(small_digits):
    # The case: MinMaxScaler fitted on a training fold maps some pixels of the test
    # fold a little above 1. They used to make score raise, and every candidate score NaN;
    # they are now scored clipped to [0, 1], with a warning that names the fix.
    X = small_digits[0] * 16
    pipe = Pipeline(
        [("scale", MinMaxScaler()), ("vae", SparseVAE(**FAST, likelihood="bernoulli"))]
    )
    search = GridSearchCV(pipe, {"vae__n_components": [2, 4]}, cv=3)
    with pytest.warns(OutOfSupportWarning, match=r"MinMaxScaler\(clip=True\)"):
        search.fit(X)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # The fix: nothing strays, nothing warns, and a classifier after the VAE predicts.
    clipped = Pipeline(
        [
            ("scale", MinMaxScaler(clip=True)),
            ("vae", SparseVAE(**FAST, likelihood="bernoulli")),
            ("classify", LogisticRegression(max_iter=200)),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfSupportWarning)
        scores = cross_val_score(clipped, X, small_digits[1], cv=3)
    assert np.isfinite(scores).all()


def test_grid_search_workers_limit_torch_threads(small_digits):
    X, _ = small_digits

    def torch_threads(estimator, X, y=None):
        return torch.get_num_threads()

    search = GridSearchCV(
        SparseVAE(**FAST), {"n_components": [2, 3]}, cv=2, n_jobs=2, scoring=torch_threads
    ).fit(X)
    per_worker = max(1, joblib.cpu_count() // 2)
    assert (search.cv_results_["mean_test_score"] <= per_worker).all()


def test_features_for_a_classifier(digits):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    vae = SparseVAE(n_components=16, hidden_layer_sizes=(128,), max_iter=30, random_state=0)
    clf = Pipeline([("vae", vae), ("clf", LogisticRegression(max_iter=2000))])
    accuracy = clf.fit(X_train, y_train).score(X_test, y_test)
    assert accuracy > 0.85


def test_clone_gives_an_unfitted_copy(fitted):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "module_")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_keep_the_input_dtype(fitted, small_digits, dtype):
    X, _ = small_digits
    Z = fitted.transform(X.astype(dtype))
    assert Z.dtype == dtype and Z.shape == (len(X), 4)
    X_back = fitted.inverse_transform(Z)
    assert X_back.dtype == dtype and X_back.shape == X.shape


# -- pandas -----------------------------------------------------------------------------------


def test_feature_names_and_pandas_output(small_digits):
    pd = pytest.importorskip("pandas")
    X, _ = small_digits
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    vae = SparseVAE(**FAST).set_output(transform="pandas").fit(frame)
    Z = vae.transform(frame)
    assert list(Z.columns) == [f"sparsevae{i}" for i in range(4)]
    assert list(vae.get_feature_names_out()) == list(Z.columns)
    assert list(vae.feature_names_in_) == list(frame.columns)


def test_inverse_transform_and_sample_return_the_training_columns(small_digits):
    pd = pytest.importorskip("pandas")
    X, _ = small_digits
    columns = [f"pixel{i}" for i in range(X.shape[1])]
    vae = SparseVAE(**FIVE_EPOCHS).fit(pd.DataFrame(X, columns=columns))
    back = vae.inverse_transform(vae.transform(pd.DataFrame(X, columns=columns)))
    assert isinstance(back, pd.DataFrame) and list(back.columns) == columns
    draws = vae.sample(3, random_state=0)
    assert isinstance(draws, pd.DataFrame) and list(draws.columns) == columns
    # Codes of some rows, as a DataFrame: the reconstructions keep the rows' labels, so that
    # arithmetic with the data lines up (before, a fresh 0..n-1 index gave NaN).
    rows = pd.DataFrame(X, columns=columns).iloc[[7, 3, 11]]
    codes = vae.set_output(transform="pandas").transform(rows)
    back = vae.inverse_transform(codes)
    assert list(back.index) == [7, 3, 11]
    assert not (rows - back).isna().any().any()
    array_model = SparseVAE(**FIVE_EPOCHS).fit(X)
    assert isinstance(array_model.inverse_transform(array_model.transform(X)), np.ndarray)
    assert isinstance(array_model.sample(3), np.ndarray)


# -- sparse input -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("likelihood", ["gaussian", "poisson"])
def test_sparse_input_gives_the_dense_results(counts, fmt, likelihood):
    sparse = counts.asformat(fmt)
    dense = counts.toarray()
    on_sparse = SparseVAE(**FIVE_EPOCHS, likelihood=likelihood).fit(sparse)
    on_dense = SparseVAE(**FIVE_EPOCHS, likelihood=likelihood).fit(dense)
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


# -- progress bars ----------------------------------------------------------------------------


def test_progress_bar_on_a_terminal(small_digits, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    X, _ = small_digits
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    SparseVAE(**{**FIVE_EPOCHS, "verbose": 1}).fit(X)
    out = capsys.readouterr().out
    assert re.search(r"SparseVAE: 100%.*\| 5/5 .*loss = -?\d+\.\d{8}", out)
    assert "[SparseVAE] Iteration" not in out


def test_plain_lines_without_tqdm(small_digits, capsys, monkeypatch):
    X, _ = small_digits
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if tqdm were not installed
    SparseVAE(**{**FIVE_EPOCHS, "verbose": 1}).fit(X)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all(line.startswith("[SparseVAE] Iteration") for line in lines)


# -- import -----------------------------------------------------------------------------------


def test_stdout_is_clean_on_import():
    # What import changes in torch is checked in tests/test_families.py.
    out = subprocess.run(
        [sys.executable, "-c", "import skvae"], capture_output=True, text=True, check=True
    )
    assert out.stdout == "" and out.stderr == ""
