"""Hyper-parameter search through joblib's Dask backend, on a cluster of worker processes."""

import os
from unittest import mock

import joblib
import numpy as np
import pytest
import torch
from conftest import FAST
from sklearn.model_selection import GridSearchCV

from skvae import SparseVAE

distributed = pytest.importorskip("distributed")

GRID = {"n_components": [2, 4]}


@pytest.fixture(scope="module")
def client():
    """A Client of two single-threaded worker processes listening on 127.0.0.1 only."""
    # The nanny starts each worker with OMP_NUM_THREADS=1 and MKL_NUM_THREADS=1 (torch reads
    # both, the latter first), except that values already set here win: unset them, so that
    # the test sees dask's default rather than the caller's environment. patch.dict also
    # undoes the variables that the nanny sets in this process before spawning a worker.
    with mock.patch.dict(os.environ):
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.pop(name, None)
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
    with cluster, distributed.Client(cluster) as client:
        yield client


def test_dask_search_equals_local_search(client, small_digits):
    X, _ = small_digits
    local = GridSearchCV(SparseVAE(**FAST), GRID, cv=2).fit(X)
    with joblib.parallel_config(backend="dask"):
        remote = GridSearchCV(SparseVAE(**FAST), GRID, cv=2).fit(X)
    # A fixed random_state makes training bit-reproducible, whichever process runs it and
    # with however many torch threads.
    np.testing.assert_array_equal(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    assert remote.best_params_ == local.best_params_


def test_dask_workers_fit_with_one_torch_thread(client, small_digits):
    X, _ = small_digits

    def torch_threads(estimator, X, y=None):
        return torch.get_num_threads()

    def process_id(estimator, X, y=None):
        return os.getpid()

    with joblib.parallel_config(backend="dask"):
        search = GridSearchCV(
            SparseVAE(**FAST),
            GRID,
            cv=2,
            scoring={"threads": torch_threads, "pid": process_id},
            refit=False,
        ).fit(X)
    results = search.cv_results_
    scored_in = np.concatenate([results["split0_test_pid"], results["split1_test_pid"]])
    assert set(scored_in.astype(int)) <= set(client.run(os.getpid).values())
    # One torch thread in each single-threaded worker process: the processes share the cores
    # without oversubscribing them.
    threads = np.concatenate([results["split0_test_threads"], results["split1_test_threads"]])
    np.testing.assert_array_equal(threads, 1)
