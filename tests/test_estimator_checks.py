"""scikit-learn's estimator checks over every public estimator and every offered family pair."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skvae import GaussianVAE, SparseVAE, VAEImputer

# Cheap settings in the spirit of BernoulliRBM's (n_iter=5, batch_size=10).
CHEAP = dict(n_components=2, hidden_layer_sizes=(8,), max_iter=5, batch_size=10, n_mc_samples=4)

ESTIMATORS = [
    GaussianVAE(**CHEAP),
    SparseVAE(prior="cauchy", **CHEAP),
    SparseVAE(prior="cauchy", posterior="cauchy", activation="tanh", **CHEAP),
    SparseVAE(prior="laplace", **CHEAP),
    SparseVAE(prior="student-t", **CHEAP),
    SparseVAE(prior="student-t", posterior="cauchy", activation="tanh", **CHEAP),
    SparseVAE(prior="cauchy", posterior="thresholded", **CHEAP),
    GaussianVAE(posterior="thresholded", posterior_params={"threshold": 1.0}, **CHEAP),
    SparseVAE(posterior="thresholded-laplace", **CHEAP),  # closed-form KL
    SparseVAE(prior="cauchy", posterior="thresholded-laplace", **CHEAP),  # Monte Carlo KL
    SparseVAE(prior="cauchy", posterior="spike-and-slab", **CHEAP),
    SparseVAE(prior_scale=2.0, **CHEAP),  # a fixed prior scale (a buffer, not a parameter)
    # posterior='cauchy' with a normal or Laplace prior has an infinite KL, and with a ReLU
    # or linear decoder an infinite expected log-likelihood: both are refused at fit
    # (tests/test_families.py::test_infinite_kl_pairs_are_refused and
    # test_cauchy_posterior_needs_a_bounded_decoder).
    VAEImputer(GaussianVAE(**CHEAP), n_importance_samples=8),
    VAEImputer(SparseVAE(**CHEAP), n_importance_samples=8, sample_posterior=True),
]


FLOAT32_REASON = (
    "skvae computes in float32, torch's default: BLAS kernels chosen by batch size change "
    "results by about one float32 ulp (1e-7 relative), above this check's atol=1e-7. Row "
    "independence is tested at float32 tolerance in tests/test_randomness.py."
)


def expected_failed_checks(estimator):
    return {"check_methods_subset_invariance": FLOAT32_REASON}


# Not strict: whether a one-ulp difference shows up depends on the fitted weights.
@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=expected_failed_checks, xfail_strict=False
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
