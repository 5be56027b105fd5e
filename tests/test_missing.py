"""Missing values: the estimators learn from and score incomplete rows, and VAEImputer fills
them in, in scikit-learn's workflows."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import FAST
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import GaussianVAE, SparseVAE, VAEImputer

pytestmark = pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)


def _holes(X, rate, seed=0):
    holes = np.random.RandomState(seed).uniform(size=X.shape) < rate
    holes[holes.all(axis=1), 0] = False  # every row keeps an observed value
    return np.where(holes, np.nan, X), holes


@pytest.fixture(scope="module")
def cancer():
    return StandardScaler().fit_transform(load_breast_cancer().data)


# -- the estimators ---------------------------------------------------------------------------


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_every_method_takes_missing_values(small_digits, likelihood):
    X_missing, _ = _holes(small_digits[0], 0.3)
    vae = SparseVAE(**FAST, likelihood=likelihood).fit(X_missing)
    assert vae.module_.architecture["missing_indicator"]
    vae.partial_fit(X_missing)
    assert np.isfinite(vae.transform(X_missing)).all()
    assert np.isfinite(vae.score_samples(X_missing)).all()
    assert np.isfinite(vae.score(X_missing))
    assert vae.__sklearn_tags__().input_tags.allow_nan


def test_the_likelihood_counts_the_observed_values_only(small_digits):
    # A model fitted on complete rows reads a hole as the feature's mean. The ELBO of a row
    # with a hole is then the ELBO of the row with the mean put in, less the expected
    # log-likelihood of that feature: the same z, one term fewer.
    X = small_digits[0]
    vae = GaussianVAE(**FAST).fit(X)
    assert not vae.module_.architecture["missing_indicator"]
    mean = X.mean(axis=0)
    row = X[:1].copy()
    row[0, 10] = np.nan
    filled = np.where(np.isnan(row), mean, row)
    module, noise = vae.module_, vae._fixed_noise(vae.n_mc_samples)
    with torch.no_grad():
        x = torch.as_tensor(filled, dtype=torch.float32, device=vae._device())
        _, _, p_x, _ = module._reconstruct(x, noise)
        term = p_x.log_prob(x)[..., 10].mean(0).double().cpu().numpy()
    np.testing.assert_allclose(vae.score_samples(row), vae.score_samples(filled) - term, rtol=1e-5)


def test_sparse_input_with_missing_values_gives_the_dense_results(counts):
    dense = counts.toarray()
    dense[np.random.RandomState(0).uniform(size=dense.shape) < 0.1] = np.nan
    dense[np.isnan(dense).all(axis=1), 0] = 1.0
    params = {**FAST, "likelihood": "poisson"}
    on_dense = SparseVAE(**params).fit(dense)
    on_sparse = SparseVAE(**params).fit(sp.csr_matrix(dense))
    assert on_sparse.loss_curve_ == on_dense.loss_curve_
    np.testing.assert_array_equal(
        on_sparse.transform(sp.csr_matrix(dense)), on_dense.transform(dense)
    )


def test_a_likelihood_without_zero_in_its_support_trains_on_holes(monkeypatch):
    # A hole is scored at the decoder's mean and masked out: for a likelihood whose density
    # is 0 at the placeholder, a placeholder of 0 gave -inf there and NaN gradients.
    from torch.nn import functional as F

    from skvae._families import LIKELIHOODS, Likelihood

    class LogNormalLikelihood(Likelihood):
        name, support = "lognormal", (0.0, np.inf)

        def __init__(self, n_features):
            super().__init__(n_features)
            self.raw_scale = torch.nn.Parameter(torch.zeros(n_features))

        @torch.no_grad()
        def reset_parameters(self, mean, std, output_bias):
            output_bias.copy_(torch.log(mean))

        def forward(self, output):
            scale = F.softplus(self.raw_scale) + 1e-3
            return torch.distributions.LogNormal(output, scale, validate_args=False)

    monkeypatch.setitem(LIKELIHOODS, "lognormal", LogNormalLikelihood)
    X, _ = _holes(np.exp(np.random.RandomState(0).normal(size=(300, 4))), 0.2)
    vae = GaussianVAE(
        2, hidden_layer_sizes=(8,), likelihood="lognormal", max_iter=3, random_state=0
    )
    assert np.isfinite(vae.fit(X).loss_curve_).all()
    assert all(torch.isfinite(p).all() for p in vae.module_.parameters())


def test_rows_and_training_features_without_an_observed_value_are_refused(small_digits):
    X = small_digits[0].copy()
    vae = GaussianVAE(**FAST).fit(X)
    empty_row = X.copy()
    empty_row[4] = np.nan
    for method in ("fit", "transform", "score_samples"):
        with pytest.raises(ValueError, match="1 rows of X have no observed value.*row 4"):
            getattr(vae, method)(empty_row)
    empty_column = X.copy()
    empty_column[:, 7] = np.nan
    with pytest.raises(ValueError, match="1 features of X have no observed value.*feature 7"):
        GaussianVAE(**FAST).fit(empty_column)
    assert np.isfinite(vae.transform(empty_column)).all()  # a fitted model reads the mean


# -- VAEImputer -------------------------------------------------------------------------------

SMALL_VAE = GaussianVAE(n_components=4, hidden_layer_sizes=(32,), max_iter=30)


def test_imputer_fills_holes_better_than_the_mean_and_keeps_what_is_observed(cancer):
    X_missing, holes = _holes(cancer, 0.3)
    imputed = VAEImputer(SMALL_VAE, random_state=0).fit_transform(X_missing)
    assert imputed.shape == cancer.shape and imputed.dtype == cancer.dtype
    np.testing.assert_array_equal(imputed[~holes], cancer[~holes])
    error = np.mean((imputed[holes] - cancer[holes]) ** 2)
    mean_error = np.mean((SimpleImputer().fit_transform(X_missing)[holes] - cancer[holes]) ** 2)
    assert error < 0.6 * mean_error


def test_the_default_imputer_fits_the_miwae_model_for_its_full_budget():
    # GaussianVAE()'s stopping rule ends a small table's fit once its noisy loss stops
    # setting records; VAEImputer() trains the MIWAE authors' model for 300 epochs, and imputes
    # wine better than that and than iterative imputation (bench_imputation.py: 3 seeds).
    from sklearn.datasets import load_wine
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    X = StandardScaler().fit_transform(load_wine().data)
    X_missing, holes = _holes(X, 0.3)
    imputer = VAEImputer(random_state=0).fit(X_missing)
    model = imputer.estimator_
    assert isinstance(model, GaussianVAE) and model.n_iter_ == 300
    expected = {"n_components": 10, "hidden_layer_sizes": (128, 128), "activation": "tanh"}
    assert {key: model.get_params()[key] for key in expected} == expected
    assert (model.batch_size, model.tol) == (64, None)

    def error(imputed):
        return np.mean((imputed[holes] - X[holes]) ** 2)

    default = error(imputer.transform(X_missing))
    stopped = VAEImputer(GaussianVAE(), random_state=0).fit(X_missing)
    assert stopped.estimator_.n_iter_ < 200  # the stopping rule ended it
    assert default < error(stopped.transform(X_missing))
    assert default < error(IterativeImputer(max_iter=20, random_state=0).fit_transform(X_missing))


def test_imputer_is_reproducible_and_draws_multiple_imputations(cancer):
    X_missing, holes = _holes(cancer[:200], 0.3)
    first = VAEImputer(SMALL_VAE, random_state=0).fit(X_missing)
    again = VAEImputer(SMALL_VAE, random_state=0).fit(X_missing)
    np.testing.assert_array_equal(first.transform(X_missing), again.transform(X_missing))
    np.testing.assert_array_equal(first.transform(X_missing), first.transform(X_missing))
    draws = [
        VAEImputer(SMALL_VAE, sample_posterior=True, random_state=seed).fit_transform(X_missing)
        for seed in (0, 1)
    ]
    assert not np.array_equal(draws[0][holes], draws[1][holes])
    # Multiple imputation from one fitted model: the seed set after fit seeds the draws.
    sampler = VAEImputer(SMALL_VAE, sample_posterior=True, random_state=0).fit(X_missing)
    np.testing.assert_array_equal(sampler.transform(X_missing), draws[0])
    weights = vars(sampler)["estimator_"].module_.state_dict()["decoder.0.weight"].clone()
    redrawn = sampler.set_params(random_state=5).transform(X_missing)
    assert not np.array_equal(redrawn[holes], draws[0][holes])
    np.testing.assert_array_equal(redrawn, sampler.transform(X_missing))
    assert torch.equal(sampler.estimator_.module_.state_dict()["decoder.0.weight"], weights)
    # Draws scatter about the conditional means.
    spread = np.std(draws[0][holes] - first.transform(X_missing)[holes])
    assert 0.1 < spread < 2


def test_imputer_draws_use_uniforms_of_their_own(cancer, monkeypatch):
    # Sampling importance resampling needs the resampling and the draws of x_m independent
    # of the importance sample; the generator once repeated the noise's own uniforms.
    X_missing, _ = _holes(cancer[:50], 0.3)
    sampler = VAEImputer(SMALL_VAE, sample_posterior=True, random_state=0).fit(X_missing)
    module, seen = sampler.estimator_.module_, []
    impute = module.impute

    def spy(x, noise, generator):
        state = generator.get_state()
        draws = torch.rand(20, generator=generator, device=generator.device)
        seen.append((noise.ravel()[:20].clone(), draws))
        generator.set_state(state)
        return impute(x, noise, generator)

    monkeypatch.setattr(module, "impute", spy)
    sampler.transform(X_missing)
    noise, resampling = seen[0]
    assert not torch.isin(resampling, noise).any()


def test_imputer_takes_another_placeholder_and_float32(cancer):
    X_missing, holes = _holes(cancer[:200], 0.3)
    imputer = VAEImputer(SMALL_VAE, random_state=0)
    expected = imputer.fit_transform(X_missing)
    coded = np.where(holes, -1.0, cancer[:200])
    got = VAEImputer(SMALL_VAE, missing_values=-1.0, random_state=0).fit_transform(coded)
    np.testing.assert_array_equal(got, expected)
    assert coded[holes][0] == -1.0  # the caller's array is left as it was
    assert imputer.transform(X_missing.astype(np.float32)).dtype == np.float32


def test_imputer_takes_pandas_na_and_a_float32_nan_as_the_placeholder(cancer):
    # As SimpleImputer: any NaN, and pandas.NA in a nullable float frame, mean a hole.
    pd = pytest.importorskip("pandas")
    X_missing, _ = _holes(cancer[:200], 0.3)
    expected = VAEImputer(SMALL_VAE, random_state=0).fit_transform(X_missing)
    frame = pd.DataFrame(X_missing).astype("Float64")  # holes are pandas.NA
    for placeholder, X in [(pd.NA, frame), (np.float32("nan"), X_missing)]:
        got = VAEImputer(SMALL_VAE, missing_values=placeholder, random_state=0).fit_transform(X)
        np.testing.assert_array_equal(got, expected)


def test_imputer_checks_parameters_set_after_fit_where_they_are_used(cancer):
    X_missing, _ = _holes(cancer[:200], 0.3)
    imputer = VAEImputer(SMALL_VAE, random_state=0).fit(X_missing)
    imputer.set_params(n_importance_samples=0)
    with pytest.raises(ValueError, match="'n_importance_samples' parameter of VAEImputer"):
        imputer.transform(X_missing)


def test_imputer_refuses_a_foreign_estimator_and_empty_data(cancer):
    with pytest.raises(
        TypeError, match="needs a SparseVAE or GaussianVAE as its estimator, got PCA"
    ):
        VAEImputer(PCA()).fit(cancer)
    with pytest.raises(ValueError, match="Every row of X is missing entirely"):
        VAEImputer(SMALL_VAE).fit(np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match="Input X contains infinity"):
        VAEImputer(SMALL_VAE).fit(np.where(cancer > 2, np.inf, cancer))
    # As SimpleImputer: NaN is refused unless it is the placeholder.
    with pytest.raises(ValueError, match="Input X contains NaN"):
        VAEImputer(SMALL_VAE, missing_values=-1).fit(np.where(cancer > 2, np.nan, cancer))


def test_the_imputers_warnings_reach_its_caller_and_say_whose_model_it_is(cancer):
    # The imputer fits a model its user may never have built (VAEImputer()'s default): the
    # ConvergenceWarning says whose it is and where its budget goes. Other warnings of the
    # fit pass on as they are.
    X, _ = _holes(cancer[:200], 0.2)
    X[:, 3] += 1e8  # a feature float32 rounds to a few levels
    with pytest.warns(
        ConvergenceWarning,
        match=r"^VAEImputer's estimator, GaussianVAE: maximum iterations \(3\) reached.*"
        r"Set these on the estimator: VAEImputer\(estimator=GaussianVAE\(max_iter=\.\.\.\)\)",
    ) as record:
        VAEImputer(GaussianVAE(**FAST)).fit(X)
    assert {type(r.message) for r in record} == {ConvergenceWarning, UserWarning}
    assert all(r.filename == __file__ for r in record)  # at the imputer's caller
    assert "Feature 3 of X" in str(next(r.message for r in record if r.category is UserWarning))


def test_imputer_fills_rows_missing_entirely_with_the_model_mean(cancer):
    X_missing, _ = _holes(cancer[:200], 0.3)
    imputer = VAEImputer(SMALL_VAE, random_state=0).fit(X_missing)
    empty = np.full((2, cancer.shape[1]), np.nan)
    filled = imputer.transform(empty)
    assert np.isfinite(filled).all()
    np.testing.assert_allclose(filled[0], filled[1], rtol=1e-6)  # float32 rounding by row


def test_imputer_in_a_pipeline_a_grid_search_and_with_pandas_output(cancer):
    pd = pytest.importorskip("pandas")
    y = load_breast_cancer().target
    X_missing, _ = _holes(cancer, 0.3)
    pipe = make_pipeline(VAEImputer(SMALL_VAE, random_state=0), LogisticRegression())
    assert cross_val_score(pipe, X_missing, y, cv=3).mean() > 0.85
    search = GridSearchCV(pipe, {"vaeimputer__n_importance_samples": [1, 50]}, cv=2)
    assert np.isfinite(search.fit(X_missing, y).cv_results_["mean_test_score"]).all()
    columns = [str(name) for name in load_breast_cancer().feature_names]
    frame = pd.DataFrame(X_missing, columns=columns)
    imputer = VAEImputer(SMALL_VAE, random_state=0).set_output(transform="pandas")
    out = imputer.fit_transform(frame)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == columns
    assert not out.isna().any().any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no feature-name warning: the names were kept
        imputer.transform(frame)


def test_a_failed_refit_leaves_the_imputer_as_it_was(cancer):
    X_missing, _ = _holes(cancer[:200], 0.3)
    imputer = VAEImputer(SMALL_VAE, random_state=0).fit(X_missing)
    before = imputer.transform(X_missing)
    state = dict(vars(imputer))
    with pytest.raises(ValueError, match="Input X contains infinity"):
        imputer.fit(np.where(np.isnan(X_missing), np.inf, X_missing))
    with pytest.raises(ValueError, match="no observed value.*feature 3"):
        imputer.fit(np.where(np.arange(cancer.shape[1]) == 3, np.nan, X_missing))
    assert vars(imputer).keys() == state.keys()
    assert all(vars(imputer)[name] is value for name, value in state.items())
    np.testing.assert_array_equal(imputer.transform(X_missing), before)


def test_the_imputers_errors_say_whose_model_refused_the_data():
    # VAEImputer() fits a GaussianVAE its user never built; its errors named only that model.
    X = np.random.RandomState(0).normal(size=(60, 3))
    X[:, 1] *= 1e31  # a spread the Gaussian likelihood refuses
    X[5, 0] = np.nan
    with pytest.raises(ValueError, match=r"^VAEImputer's estimator, GaussianVAE: .*Feature 1"):
        VAEImputer(GaussianVAE(**FAST)).fit(X)


def test_the_imputer_takes_a_single_nullable_column_and_names_empty_ones():
    # check_array returns a read-only view of a one-column Int64 / Float64 / boolean frame,
    # even with copy=True, into which VAEImputer wrote: "assignment destination is read-only".
    pd = pytest.importorskip("pandas")
    ages = pd.DataFrame({"age": pd.array([20, None, 35, 41, None, 52] * 10, dtype="Int64")})
    imputer = VAEImputer(GaussianVAE(**FAST), random_state=0)
    filled = imputer.fit_transform(ages)
    assert np.isfinite(filled).all() and filled[0, 0] == 20
    assert np.isfinite(imputer.transform(ages.astype("Float64"))).all()
    # A column with no observed value is refused under its name, as the estimators do.
    table = pd.DataFrame({"age": [1.0, 2, 3, 4], "income": [3.0, 4, 5, 1], "bmi": [np.nan] * 4})
    with pytest.raises(ValueError, match="such as feature 'bmi'"):
        VAEImputer(GaussianVAE(**FAST)).fit(table)
    # Its model refitted on other data does not name the frame's columns (an IndexError).
    imputer = VAEImputer(GaussianVAE(**FAST)).fit(table.iloc[:, :2])
    wider = np.random.RandomState(0).normal(size=(8, 5))
    wider[:, 4] = np.nan
    with pytest.raises(ValueError, match="such as feature 4;"):
        imputer.estimator_.fit(wider)
