"""make_sparse_sources: shapes, seeding, the sources' law, argument checks, recovery."""

import numpy as np
import pytest
from sklearn.preprocessing import StandardScaler

from skvae import GaussianVAE, SparseVAE
from skvae.datasets import make_sparse_sources
from skvae.diagnostics import mean_correlation_coefficient


@pytest.mark.parametrize("mixing", ["linear", "nonlinear"])
def test_shapes_and_dtype(mixing):
    X, S = make_sparse_sources(300, 4, 7, mixing=mixing, random_state=0)
    assert X.shape == (300, 7)
    assert S.shape == (300, 4)
    assert X.dtype == S.dtype == np.float64


@pytest.mark.parametrize("mixing", ["linear", "nonlinear"])
def test_random_state_makes_it_deterministic(mixing):
    X, S = make_sparse_sources(200, mixing=mixing, random_state=0)
    X_again, S_again = make_sparse_sources(200, mixing=mixing, random_state=0)
    np.testing.assert_array_equal(X, X_again)
    np.testing.assert_array_equal(S, S_again)
    X_other, _ = make_sparse_sources(200, mixing=mixing, random_state=1)
    assert not np.allclose(X, X_other)
    rng = np.random.RandomState(0)
    X_from_instance, _ = make_sparse_sources(200, mixing=mixing, random_state=rng)
    np.testing.assert_array_equal(X, X_from_instance)


def test_mixing_does_not_depend_on_n_samples():
    # The mixing is drawn before the sources, so a seed fixes it whatever the size.
    mixing_of = {}
    for n_samples in (50, 500):
        X, S = make_sparse_sources(n_samples, 3, 6, noise=0.0, random_state=0)
        mixing_of[n_samples] = np.linalg.lstsq(S, X, rcond=None)[0]
    np.testing.assert_allclose(mixing_of[50], mixing_of[500], atol=1e-10)


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9])
def test_sources_are_spike_and_slab_with_unit_variance(sparsity):
    _, S = make_sparse_sources(20_000, 3, 3, sparsity=sparsity, random_state=0)
    # Binomial standard error of the share of zeros is at most 0.002 for 60,000 entries.
    assert np.mean(S == 0) == pytest.approx(sparsity, abs=0.01)
    np.testing.assert_allclose(S.var(axis=0), 1.0, rtol=0.1)
    slab = S[S != 0]
    # Laplace: E|s| = scale and E[s^2] = 2 scale^2, so E[s^2] / E|s|^2 = 2.
    assert np.mean(slab**2) / np.mean(np.abs(slab)) ** 2 == pytest.approx(2.0, rel=0.05)


def test_noise_free_linear_mixture_has_the_sources_rank():
    X, S = make_sparse_sources(500, 4, 12, noise=0.0, random_state=0)
    assert np.linalg.matrix_rank(X) == 4
    mixing, *_ = np.linalg.lstsq(S, X, rcond=None)
    np.testing.assert_allclose(S @ mixing, X, atol=1e-10)
    # Unit-norm columns of the mixing matrix give every feature about unit variance.
    np.testing.assert_allclose(np.linalg.norm(mixing, axis=0), 1.0, atol=1e-10)


def test_nonlinear_mixture_is_not_linear_in_the_sources():
    X, S = make_sparse_sources(500, 4, 12, mixing="nonlinear", noise=0.0, random_state=0)
    mixing, *_ = np.linalg.lstsq(S, X, rcond=None)
    unexplained = np.sum((X - S @ mixing) ** 2) / np.sum((X - X.mean(0)) ** 2)
    assert unexplained > 0.05


def test_noise_has_the_requested_standard_deviation():
    clean, _ = make_sparse_sources(5000, noise=0.0, random_state=0)
    noisy, _ = make_sparse_sources(5000, noise=0.3, random_state=0)
    assert np.std(noisy - clean) == pytest.approx(0.3, rel=0.02)


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"n_samples": 0}, ValueError, "n_samples"),
        ({"n_samples": 10.5}, TypeError, "n_samples"),
        ({"n_sources": 0}, ValueError, "n_sources"),
        ({"n_sources": 6, "n_features": 5}, ValueError, "at least n_sources"),
        ({"mixing": "quadratic"}, ValueError, "mixing must be"),
        ({"sparsity": 1.0}, ValueError, "sparsity"),
        ({"sparsity": -0.1}, ValueError, "sparsity"),
        ({"noise": -1.0}, ValueError, "noise"),
        ({"sparsity": float("nan")}, ValueError, "sparsity must be a finite number, got nan"),
        ({"noise": float("nan")}, ValueError, "noise must be a finite number, got nan"),
        ({"noise": float("inf")}, ValueError, "noise must be a finite number, got inf"),
    ],
)
def test_invalid_arguments_raise(params, error, match):
    with pytest.raises(error, match=match):
        make_sparse_sources(**params)


def test_sparse_prior_recovers_linearly_mixed_sources():
    # A linear decoder with a sparse prior is noisy ICA fitted as a VAE, and identifies the
    # sources; the Gaussian prior is rotation-invariant and does not. Over data seeds 0-5
    # these settings gave MCC 0.92-1.00 for the Laplace prior and 0.61-0.72 for the
    # Gaussian one; with this seed, 0.948 and 0.610.
    X, S = make_sparse_sources(1000, 5, 20, sparsity=0.7, noise=0.1, random_state=0)
    X = StandardScaler().fit_transform(X)
    settings = dict(
        n_components=5,
        hidden_layer_sizes=(),
        activation="relu",
        likelihood="gaussian",
        posterior="normal",
        beta=1.0,
        batch_size=128,
        learning_rate=3e-3,
        max_iter=100,
        tol=1e-4,
        n_iter_no_change=10,
        random_state=0,
        device="cpu",
    )
    sparse_codes = SparseVAE(prior="laplace", **settings).fit_transform(X)
    gaussian_codes = GaussianVAE(**settings).fit_transform(X)
    sparse_mcc = mean_correlation_coefficient(S, sparse_codes)
    gaussian_mcc = mean_correlation_coefficient(S, gaussian_codes)
    assert sparse_mcc > 0.9
    assert gaussian_mcc < 0.8
    assert sparse_mcc - gaussian_mcc > 0.2


def test_sizes_read_true_as_one_as_scikit_learn_does():
    # check_scalar lets a bool through as an int; NumPy then refused it as a size, with an
    # error that named no parameter.
    from skvae.datasets import load_image_patches

    X, S = make_sparse_sources(n_samples=True, random_state=0)
    assert X.shape == (1, 20) and S.shape == (1, 5)
    assert load_image_patches(n_patches=True, random_state=0).shape == (1, 144)
