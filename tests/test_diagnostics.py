"""The diagnostics API: sparsity, activity, KL per dimension, log-likelihood, MCC."""

import numpy as np
import pytest
import torch
from conftest import FAST, exact_log_likelihood

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
    with pytest.raises(TypeError, match="standardize"):
        dg.hoyer_sparsity(dense, standardize="no")


@pytest.mark.parametrize("constant", [0.7, 0.1, 123.456, 1e-8, 0.5])
def test_hoyer_sparsity_leaves_a_constant_dimension_as_it_is(constant):
    # Most constants have a computed standard deviation of about 1e-16, not 0; dividing by
    # it made the constant dimension the single active entry of every code (Hoyer 1.0).
    codes = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    with_constant = np.column_stack([np.full(3, constant), codes])
    standardized = codes / codes.std(axis=0)
    expected = dg.hoyer_sparsity(
        np.column_stack([np.full(3, constant), standardized]), standardize=False
    )
    assert dg.hoyer_sparsity(with_constant) == pytest.approx(expected, abs=1e-12)


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
    device = gaussian_vae._device()  # the GPU where run_gpu.sh runs this file
    with torch.no_grad():
        x = torch.as_tensor(X, dtype=torch.float32, device=device)
        posterior = gaussian_vae.module_.posterior(x)
        mu, sigma = posterior.loc.double().cpu(), posterior.scale.double().cpu()
    # KL(N(mu, sigma^2) || N(0, 1)), written out here to check the registry's answer.
    expected = (0.5 * (mu**2 + sigma**2 - 1) - torch.log(sigma)).mean(0).numpy()
    np.testing.assert_allclose(dg.kl_per_dimension(gaussian_vae, X), expected, rtol=1e-4)


def test_kl_per_dimension_by_monte_carlo_is_deterministic(small_digits):
    X, _ = small_digits
    vae = SparseVAE(prior="cauchy", **FIVE_EPOCHS).fit(X)
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
    exact = exact_log_likelihood(vae, X)
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
    # One source and one code: scipy's spearmanr returns a scalar there, not a matrix.
    one = sources[:, :1]
    for method in ("pearson", "spearman"):
        assert dg.mean_correlation_coefficient(one, -2 * one, method=method) == pytest.approx(1)
    # A constant code correlates with nothing (0, not NaN), and the ranks tie in it.
    constant = np.column_stack([sources, np.ones(1000)])
    assert dg.mean_correlation_coefficient(sources, constant, method="spearman") == 1.0
    with pytest.raises(ValueError, match="minimum of 2 is required"):
        dg.mean_correlation_coefficient(sources[:1], codes[:1])


def test_log_likelihood_takes_numpy_integers_and_random_states(small_digits):
    X, _ = small_digits
    vae = GaussianVAE(**FAST).fit(X)
    rows = X[:20]
    seeded = dg.log_likelihood(vae, rows, n_samples=8)
    np.testing.assert_array_equal(dg.log_likelihood(vae, rows, n_samples=np.int64(8)), seeded)
    np.testing.assert_array_equal(
        dg.log_likelihood(vae, rows, n_samples=8, random_state=np.random.RandomState(1)),
        dg.log_likelihood(vae, rows, n_samples=8, random_state=np.random.RandomState(1)),
    )
    assert np.isfinite(dg.log_likelihood(vae, rows, n_samples=8, random_state=None)).all()
    with pytest.raises(ValueError, match="cannot be used to seed"):
        dg.log_likelihood(vae, rows, n_samples=8, random_state="zero")
    # torch's generator reads the low 32 bits of a seed: 2**32 would repeat the draws of 0.
    for seed in (-1, 2**32, 2**64):
        with pytest.raises(ValueError, match="random_state"):
            dg.log_likelihood(vae, rows, n_samples=8, random_state=seed)
    assert np.isfinite(dg.log_likelihood(vae, rows, n_samples=8, random_state=2**32 - 1)).all()


def test_active_units_rejects_a_threshold_that_is_not_a_number(gaussian_vae, small_digits):
    X, _ = small_digits
    with pytest.raises(ValueError, match="threshold must be a number, got nan"):
        dg.active_units(gaussian_vae, X[:50], threshold=float("nan"))
    with pytest.raises(TypeError, match="threshold"):
        dg.active_units(gaussian_vae, X[:50], threshold="0.1")


def gabor(shape, amplitude, row, column, orientation, frequency, phase, sigma_x, sigma_y):
    """A Gabor on a grid of ``shape``, flattened, written out as the docstring of
    ``gabor_fit`` defines it."""
    rows, columns = np.mgrid[: shape[0], : shape[1]]
    u = (columns - column) * np.cos(orientation) + (rows - row) * np.sin(orientation)
    v = -(columns - column) * np.sin(orientation) + (rows - row) * np.cos(orientation)
    envelope = np.exp(-(u**2) / (2 * sigma_x**2) - v**2 / (2 * sigma_y**2))
    return (amplitude * envelope * np.cos(2 * np.pi * frequency * u + phase)).ravel()


# amplitude, row, column, orientation, frequency, phase, sigma_x, sigma_y: a centred even
# Gabor, then shifted towards the edges, rotated, odd, elongated and of other frequencies.
GABORS = [
    (1.0, 5.5, 5.5, 0.0, 0.2, 0.0, 2.0, 2.0),
    (2.0, 2.5, 8.0, 0.6, 0.25, 1.2, 1.5, 2.5),
    (0.5, 8.5, 3.0, 2.2, 0.15, -1.6, 2.5, 1.5),
    (1.0, 6.0, 9.5, 1.3, 0.3, 2.8, 1.2, 3.5),
    (3.0, 4.0, 4.0, 2.9, 0.1, 0.5, 3.0, 2.0),
]


def test_gabor_fit_recovers_gabors_shifted_and_rotated():
    rng = np.random.RandomState(0)
    clean = np.array([gabor((12, 12), *params) for params in GABORS])
    noisy = clean + 0.03 * clean.std(axis=1, keepdims=True) * rng.normal(size=clean.shape)
    fit = dg.gabor_fit(noisy)
    assert np.all(fit.r2 > 0.95)
    amplitude, row, column, orientation, frequency, phase, sigma_x, sigma_y = np.array(GABORS).T
    np.testing.assert_allclose(fit.amplitude, amplitude, rtol=0.1)
    np.testing.assert_allclose(fit.row, row, atol=0.2)
    np.testing.assert_allclose(fit.column, column, atol=0.2)
    np.testing.assert_allclose(fit.frequency, frequency, atol=0.01)
    np.testing.assert_allclose(fit.sigma_x, sigma_x, rtol=0.1)
    np.testing.assert_allclose(fit.sigma_y, sigma_y, rtol=0.1)
    # Orientations come in [0, pi) and amplitudes positive, so that the angles match too.
    np.testing.assert_allclose(fit.orientation, orientation, atol=0.05)
    np.testing.assert_allclose(np.angle(np.exp(1j * (fit.phase - phase))), 0, atol=0.1)
    np.testing.assert_allclose(fit.offset, 0, atol=0.02)
    # A sign flip and a turn by pi describe the same Gabor: the same parameters come back.
    flipped = gabor((12, 12), -1.0, 5.5, 5.5, np.pi, 0.2, np.pi, 2.0, 2.0)
    np.testing.assert_allclose(flipped, clean[0], atol=1e-12)
    refit = dg.gabor_fit([flipped])
    assert refit.amplitude[0] > 0
    assert min(refit.orientation[0], np.pi - refit.orientation[0]) < 1e-3


def test_gabor_fit_scores_noise_low():
    rng = np.random.RandomState(0)
    fit = dg.gabor_fit(rng.normal(size=(20, 144)))
    assert fit.r2.max() < 0.4
    # A Gabor drowned in noise of equal variance scores in between.
    signal = gabor((12, 12), *GABORS[0])
    mixed = signal + signal.std() * rng.normal(size=144)
    assert 0.3 < dg.gabor_fit([mixed]).r2[0] < 0.7


def test_gabor_fit_shapes_and_edge_cases():
    wide = gabor((6, 10), 1.0, 3.0, 4.0, 0.4, 0.2, 0.0, 2.0, 2.0)
    fit = dg.gabor_fit([wide, np.ones(60)], patch_shape=(6, 10))
    assert fit.r2[0] > 0.99
    assert fit.r2[1] == 0  # a constant filter has nothing to explain
    assert fit.offset[1] == 1
    assert set(fit) == {
        "r2",
        "amplitude",
        "row",
        "column",
        "orientation",
        "frequency",
        "phase",
        "sigma_x",
        "sigma_y",
        "offset",
    }
    # Constants whose computed mean is not exact, whose residuals are rounding error.
    constants = dg.gabor_fit(np.full((3, 144), [[0.39], [0.7], [123.456]]))
    np.testing.assert_array_equal(constants.r2, 0)
    np.testing.assert_allclose(constants.offset, [0.39, 0.7, 123.456])
    with pytest.raises(ValueError, match="not a square number; pass patch_shape"):
        dg.gabor_fit([wide])
    with pytest.raises(ValueError, match="does not fit filters of 60 pixels"):
        dg.gabor_fit([wide], patch_shape=(5, 10))
    with pytest.raises(ValueError, match=r"patch_shape must be \(height, width\), two ints, got"):
        dg.gabor_fit([wide], patch_shape=(60,))
    # A float side was read as its floor: (6.9, 10) as (6, 10).
    with pytest.raises(ValueError, match=r"two ints, got \(6.9, 10\)"):
        dg.gabor_fit([wide], patch_shape=(6.9, 10))
    with pytest.raises(ValueError, match=r"shape \(1, 60\) have a side below 2 pixels"):
        dg.gabor_fit([wide], patch_shape=(1, 60))
    assert dg.gabor_fit([wide], patch_shape=(np.int64(6), 10)).r2.shape == (1,)
    # A stack of filter images gave scikit-learn's "Found array with dim 3"; it is read as
    # its images, of their own shape.
    stacked = dg.gabor_fit(np.stack([wide.reshape(6, 10), np.ones((6, 10))]))
    np.testing.assert_array_equal(stacked.r2, fit.r2)
    with pytest.raises(ValueError, match=r"image.reshape\(1, -1\)"):
        dg.gabor_fit(wide.reshape(6, 10))  # one image: 6 filters of 10 pixels
    with pytest.raises(ValueError, match=r"patch_shape=\(10, 6\) differs from .* \(6, 10\)"):
        dg.gabor_fit(wide.reshape(1, 6, 10), patch_shape=(10, 6))
    with pytest.raises(ValueError, match=r"shape \(1, 60\) have a side below 2"):
        dg.gabor_fit(wide.reshape(1, 1, 60))
    with pytest.raises(ValueError, match="0 sample"):  # scikit-learn's words for no rows
        dg.gabor_fit(np.zeros((0, 6, 10)))


@pytest.mark.parametrize("scale", [1e-6, 1e-3, 1e4])
def test_gabor_fit_does_not_depend_on_the_filters_scale(scale):
    filters = np.array([gabor((12, 12), *params) for params in GABORS[:2]])
    filters = np.vstack([filters, np.random.RandomState(0).normal(size=(2, 144))]) + 0.3
    unit, scaled = dg.gabor_fit(filters), dg.gabor_fit(scale * filters)
    np.testing.assert_allclose(scaled.r2, unit.r2, atol=1e-6)
    # The Gabors' parameters scale with them (the noise filters' fits are ill-determined).
    np.testing.assert_allclose(scaled.amplitude[:2], scale * unit.amplitude[:2], rtol=1e-5)
    np.testing.assert_allclose(scaled.offset[:2], scale * unit.offset[:2], rtol=1e-5)
    np.testing.assert_allclose(scaled.frequency[:2], unit.frequency[:2], rtol=1e-5)


def test_diagnostics_refuse_what_is_not_a_vae_and_say_where_the_vae_is(small_digits):
    # A Pipeline has no _check_fitted_data (an AttributeError), and a VAEImputer's or a
    # PCA's transform gave active_units a count of their output columns.
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skvae import VAEImputer

    X, _ = small_digits
    pipe = make_pipeline(StandardScaler(), GaussianVAE(**FAST)).fit(X)
    imputer = VAEImputer(GaussianVAE(**FAST), n_importance_samples=2).fit(X)
    for function in (dg.latent_activity, dg.active_units, dg.kl_per_dimension, dg.log_likelihood):
        name = function.__name__
        with pytest.raises(TypeError, match=rf"{name} takes .* got Pipeline.*pipe\[-1\]"):
            function(pipe, X)
        with pytest.raises(TypeError, match=rf"{name} takes .* got VAEImputer.*estimator_"):
            function(imputer, X)
    # What the message says to pass: one activity per latent dimension of the VAE.
    activity = dg.latent_activity(pipe[-1], pipe[:-1].transform(X))
    assert activity.shape == (FAST["n_components"],) != (X.shape[1],)


@pytest.mark.parametrize("scale", [1e-170, 1e160])
def test_scale_invariant_measures_hold_at_float64s_extremes(scale):
    # Their squares underflowed or overflowed: Hoyer sparsity 0 or 1, an MCC of 0 for codes
    # equal to the sources, and a Gabor R² of 0, with no error.
    rng = np.random.RandomState(0)
    S = rng.laplace(size=(200, 3)) * (rng.uniform(size=(200, 3)) < 0.5)
    for standardize in (True, False):
        expected = dg.hoyer_sparsity(S, standardize=standardize)
        assert dg.hoyer_sparsity(S * scale, standardize=standardize) == pytest.approx(expected)
    for method in ("pearson", "spearman"):
        mcc = dg.mean_correlation_coefficient(S * scale, S * scale, method=method)
        assert mcc == pytest.approx(1.0)
    rows, columns = np.mgrid[:12, :12]
    envelope = np.exp(-((rows - 6) ** 2 + (columns - 5) ** 2) / (2 * 2.0**2))
    gabor = (envelope * np.cos(2 * np.pi * 0.2 * columns)).ravel() + 0.3
    fit = dg.gabor_fit([gabor * scale])
    assert fit.r2[0] == pytest.approx(1.0)
    assert fit.amplitude[0] == pytest.approx(scale) and fit.offset[0] == pytest.approx(0.3 * scale)
