"""Training on data larger than memory: partial_fit over chunks of a memory-mapped file."""

import warnings

import numpy as np
import pytest

from skvae import SparseVAE

N_PASSES = 20
CHUNK_ROWS = 90
SETTINGS = dict(
    n_components=4,
    hidden_layer_sizes=(32,),
    likelihood="bernoulli",
    batch_size=32,
    random_state=0,
)


def test_partial_fit_over_memmap_chunks_matches_fit(small_digits, tmp_path):
    X, _ = small_digits
    X_train, X_test = X[:450], X[450:]
    path = tmp_path / "X_train.npy"
    X_file = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=X_train.shape)
    X_file[:] = X_train
    X_file.flush()
    X_file = np.load(path, mmap_mode="r")  # read-only: partial_fit gets views of the file

    streamed = SparseVAE(**SETTINGS)
    rng = np.random.default_rng(0)
    chunk_starts = np.arange(0, len(X_file), CHUNK_ROWS)
    for _ in range(N_PASSES):
        for start in rng.permutation(chunk_starts):
            streamed.partial_fit(X_file[start : start + CHUNK_ROWS])
    assert streamed.n_iter_ == N_PASSES * len(chunk_starts)

    # The same number of passes over the data held in memory. n_iter_no_change=N_PASSES
    # keeps fit from stopping early on a noisy epoch.
    in_memory = SparseVAE(max_iter=N_PASSES, n_iter_no_change=N_PASSES, **SETTINGS)
    in_memory.fit(X_train)
    assert in_memory.n_iter_ == N_PASSES

    # Measured over seeds 0-11 (of the model and of the chunk order): the held-out ELBOs
    # differ by at most 0.28 nats (by +0.09 here), while the passes after the first gain
    # about 0.9 nats: the margin also catches a stream that stops learning early.
    streamed_elbo, in_memory_elbo = streamed.score(X_test), in_memory.score(X_test)
    assert abs(streamed_elbo - in_memory_elbo) < 0.5


def test_a_first_chunk_of_one_row_warns_that_it_sets_the_units(small_digits):
    # The first chunk fixes each feature's mean and spread; one row has no spread, so a
    # column in large units never gets its own (held-out ELBO -1e9 in a user's report).
    X, _ = small_digits
    model = SparseVAE(**{**SETTINGS, "likelihood": "gaussian"})
    with pytest.warns(UserWarning, match="from one row.*represents the data"):
        model.partial_fit(X[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.partial_fit(X[1:2])  # later chunks of one row change nothing, and do not warn
        SparseVAE(**SETTINGS).partial_fit(X[:2])
        SparseVAE(**SETTINGS).partial_fit(X[:1])  # Bernoulli: the encoder reads raw data
    # fit on one row takes the same units; it said nothing.
    with pytest.warns(UserWarning, match=r"fit builds the model from one row.*Fit more rows"):
        SparseVAE(**{**SETTINGS, "likelihood": "gaussian", "max_iter": 1}).fit(X[:1])
