"""The diagnostics API: sparsity, activity, KL per dimension, log-likelihood, MCC."""

import numpy as np
import pytest
import torch
from conftest import FAST

from skvae import GaussianVAE, SparseVAE
from skvae import diagnostics as dg

FIVE_EPOCHS = {**FAST, "max_iter": 5}


def test_hoyer_sparsity_standardizes_each_dimension():
    rng = np.random.RandomState(0)
    one_hot = np.eye(5)[rng.randint(5, size=200)]
    assert dg.hoyer_sparsity(one_hot, standardize=False) == pytest.approx(1.0)
    # Scaling one dimension up makes raw codes look sparser; standardizing undoes it.
    dense = rng.normal(size=(200, 5))
    stretched = dense * [100, 1, 1, 1, 1]
    assert dg.hoyer_sparsity(stretched, standardize=False) > dg.hoyer_sparsity(dense) + 0.3
    assert dg.hoyer_sparsity(stretched) == pytest.approx(dg.hoyer_sparsity(dense), abs=1e-12)
    # Heavy-tailed codes are sparser than Gaussian ones.
    assert dg.hoyer_sparsity(rng.standard_cauchy((2000, 10))) > dg.hoyer_sparsity(
        rng.normal(size=(2000, 10))
    )
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        dg.hoyer_sparsity(dense[:, :1])


@pytest.fixture(scope="module")
def gaussian_vae(small_digits):
    X, _ = small_digits
    return GaussianVAE(**FIVE_EPOCHS).fit(X)


def test_active_units_count_the_varying_dimensions(gaussian_vae, small_digits):
    X, _ = small_digits
    activity = dg.latent_activity(gaussian_vae, X)
    np.testing.assert_allclose(activity, gaussian_vae.transform(X).var(axis=0), rtol=1e-6)
    assert dg.active_units(gaussian_vae, X) == np.sum(activity > 0.01)
    assert dg.active_units(gaussian_vae, X, threshold=np.inf) == 0


def test_kl_per_dimension_is_the_closed_form(gaussian_vae, small_digits):
    X, _ = small_digits
    with torch.no_grad():
        posterior = gaussian_vae.module_.posterior(torch.as_tensor(X, dtype=torch.float32))
        mu, sigma = posterior.loc.double(), posterior.scale.double()
    # KL(N(mu, sigma^2) || N(0, 1)), written out here to check the registry's answer.
    expected = (0.5 * (mu**2 + sigma**2 - 1) - torch.log(sigma)).mean(0).numpy()
    np.testing.assert_allclose(dg.kl_per_dimension(gaussian_vae, X), expected, rtol=1e-4)


def test_kl_per_dimension_by_monte_carlo_is_deterministic(small_digits):
    X, _ = small_digits
    vae = SparseVAE(**FIVE_EPOCHS).fit(X)
    assert not vae.module_.analytic_kl
    kl = dg.kl_per_dimension(vae, X)
    assert kl.shape == (4,)
    np.testing.assert_array_equal(kl, dg.kl_per_dimension(vae, X))


def test_importance_weighted_log_likelihood_tightens_the_elbo(small_digits):
    X, _ = small_digits
    vae = SparseVAE(**{**FIVE_EPOCHS, "likelihood": "bernoulli"}).fit(X)
    rows = X[:100]
    elbo = vae.score_samples(rows).mean()
    few = dg.log_likelihood(vae, rows, n_samples=10).mean()
    many = dg.log_likelihood(vae, rows, n_samples=2000).mean()
    assert elbo < few < many
    np.testing.assert_array_equal(
        dg.log_likelihood(vae, rows, n_samples=50), dg.log_likelihood(vae, rows, n_samples=50)
    )


def test_log_likelihood_matches_an_exact_marginal():
    # Linear decoder, normal prior, Gaussian likelihood: p(x) is Gaussian and known exactly.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 2)) @ rng.normal(size=(2, 4)) + 0.3 * rng.normal(size=(300, 4))
    vae = GaussianVAE(
        n_components=2, hidden_layer_sizes=(), learning_rate=1e-2, max_iter=100, random_state=0
    ).fit(X)
    decoder, likelihood = vae.module_.decoder[-1], vae.module_.likelihood
    with torch.no_grad():
        W, b = decoder.weight.double().numpy(), decoder.bias.double().numpy()
        sigma = likelihood(decoder.bias).scale.double().numpy()
    from scipy.stats import multivariate_normal

    exact = multivariate_normal(b, W @ W.T + np.diag(sigma**2)).logpdf(X)
    estimate = dg.log_likelihood(vae, X, n_samples=3000)
    np.testing.assert_allclose(estimate, exact, atol=0.02)


def test_mean_correlation_coefficient():
    rng = np.random.RandomState(0)
    sources = rng.laplace(size=(1000, 3))
    codes = np.column_stack(
        [rng.normal(size=1000), -3 * sources[:, 2], sources[:, 0], sources[:, 1]]
    )
    assert dg.mean_correlation_coefficient(sources, codes) == pytest.approx(1.0)
    assert dg.mean_correlation_coefficient(sources, rng.normal(size=(1000, 3))) < 0.1
    # Monotone distortions keep Spearman at 1 but not Pearson.
    warped = np.sinh(3 * sources)
    assert dg.mean_correlation_coefficient(sources, warped, method="spearman") == pytest.approx(1)
    assert dg.mean_correlation_coefficient(sources, warped) < 0.9
    with pytest.raises(ValueError, match="codes have 2 dimensions for 3 sources"):
        dg.mean_correlation_coefficient(sources, codes[:, :2])
    with pytest.raises(ValueError, match="method must be"):
        dg.mean_correlation_coefficient(sources, codes, method="kendall")
