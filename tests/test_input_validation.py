"""Input validation: bad data, parameters, codes and sizes are refused with an error that names
the problem, and a refused call leaves a fitted model as it was."""

import math
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
import torch
from conftest import FAST, same_weights, weights
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import check_positive_only_tag_during_fit
from sklearn.utils.parallel import Parallel, delayed

import skvae
from skvae import GaussianVAE, OutOfSupportWarning, SparseVAE, VAEImputer, diagnostics
from skvae._families import LIKELIHOODS


def _snapshot(vae):
    attributes = dict(vars(vae))
    weights = {k: v.clone() for k, v in vae.module_.state_dict().items()}
    return attributes, weights


def _assert_unchanged(vae, snapshot, X):
    attributes, weights = snapshot
    assert vars(vae).keys() == attributes.keys()
    fitted_state = set(attributes) - set(vae.get_params())  # set_params may change parameters
    for name in fitted_state:
        assert vars(vae)[name] is attributes[name], name
    for name, value in vae.module_.state_dict().items():
        assert torch.equal(value, weights[name]), name
    assert np.isfinite(vae.transform(X)).all()


def _with(X, row, col, value):
    X = X.astype(object) if isinstance(value, str) else X.copy()
    X[row, col] = value
    return X


# -- bad data ---------------------------------------------------------------------------------

BAD_DATA = [
    ("NaN row", lambda X: _with(X, 0, slice(None), np.nan), ValueError, "no observed value"),
    ("inf", lambda X: _with(X, 1, 2, np.inf), ValueError, "Input X contains infinity"),
    ("-inf", lambda X: _with(X, 1, 2, -np.inf), ValueError, "Input X contains infinity"),
    ("strings", lambda X: _with(X, 0, 0, "a"), ValueError, "could not convert string"),
    ("empty", lambda X: X[:0], ValueError, "0 sample"),
    ("1-D", lambda X: X[0], ValueError, "Expected 2D array, got 1D array"),
    ("complex", lambda X: X + 1j, ValueError, "Complex data not supported"),
]


@pytest.mark.parametrize("name, corrupt, error, message", BAD_DATA, ids=[c[0] for c in BAD_DATA])
@pytest.mark.parametrize("method", ["fit", "partial_fit", "transform", "score", "score_samples"])
def test_bad_data_is_refused_and_leaves_the_model_unchanged(
    fitted, small_digits, name, corrupt, error, message, method
):
    X, _ = small_digits
    vae = pickle.loads(pickle.dumps(fitted))
    snapshot = _snapshot(vae)
    with pytest.raises(error, match=message):
        getattr(vae, method)(corrupt(X))
    _assert_unchanged(vae, snapshot, X)


@pytest.mark.parametrize("method", ["transform", "score", "score_samples", "partial_fit"])
def test_wrong_width_is_refused(fitted, small_digits, method):
    X, _ = small_digits
    vae = pickle.loads(pickle.dumps(fitted))
    snapshot = _snapshot(vae)
    with pytest.raises(ValueError, match="X has 10 features, but SparseVAE is expecting 64"):
        getattr(vae, method)(X[:, :10])
    _assert_unchanged(vae, snapshot, X)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_bernoulli_refuses_to_learn_data_outside_the_unit_interval(small_digits, method):
    X, _ = small_digits
    vae = SparseVAE(**{**FAST, "likelihood": "bernoulli"}).fit(X)
    snapshot = _snapshot(vae)
    with pytest.raises(
        ValueError,
        match=r"likelihood='bernoulli' needs data in \[0, 1\].*MinMaxScaler\(clip=True\)",
    ):
        getattr(vae, method)(X * 16)
    _assert_unchanged(vae, snapshot, X)


def test_new_data_outside_the_support_is_encoded_and_scored_clipped(small_digits):
    # A test fold a little above the training range: the encoder reads it as it is; the
    # likelihood scores it clipped to [0, 1], with a warning that names the fix.
    X, _ = small_digits
    vae = GaussianVAE(**{**FAST, "likelihood": "bernoulli"}).fit(X)
    strays = X * 1.1
    assert not np.array_equal(vae.transform(strays), vae.transform(np.clip(strays, 0, 1)))
    with pytest.warns(OutOfSupportWarning, match=r"\[0, 1.1\].*MinMaxScaler\(clip=True\)"):
        scores = vae.score_samples(strays)
    np.testing.assert_array_equal(scores, vae.score_samples(np.clip(strays, 0, 1)))
    assert strays.max() == pytest.approx(1.1)  # the caller's data is not clipped in place


def test_values_that_round_into_the_support_in_float32_are_in_it(small_digits, counts):
    # MinMaxScaler's maximum is often 1 + 2.2e-16, and expm1(log1p(3)) is
    # 2.9999999999999996: both are exact in float32, which skvae computes in.
    X, _ = small_digits
    X = X.copy()
    X[0, 0] = np.nextafter(1.0, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfSupportWarning)
        vae = GaussianVAE(**{**FAST, "likelihood": "bernoulli"}).fit(X)
        vae.score(X)
    C = np.expm1(np.log1p(counts.toarray()))
    assert (C != np.round(C)).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfSupportWarning)
        SparseVAE(**FAST, likelihood="poisson").fit(C).score(C)


def test_float32_rounding_just_past_a_bounded_support_is_clipped_into_it(small_digits):
    # MinMaxScaler on float32 data maps a column's maximum to 1 + 1.2e-7, one float32 step
    # above 1, on about a sixth of columns; likelihood='bernoulli' refused such a pipeline,
    # which BernoulliRBM fits. Four steps are taken; a value beyond them is still refused.
    X, _ = small_digits
    X = (X * 1.37 + 3.1).astype(np.float32)
    scaled = MinMaxScaler().fit_transform(X)
    assert 1 < scaled.max() <= 1 + 4 * np.finfo(np.float32).eps  # 1 + 2.4e-7 here
    scaled[1, 3] = np.nan  # and where the data has holes
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfSupportWarning)
        vae = make_pipeline(MinMaxScaler(), GaussianVAE(**FAST, likelihood="bernoulli")).fit(X)
        GaussianVAE(**FAST, likelihood="bernoulli").fit(scaled)
    assert np.isfinite(vae.score(X))
    with pytest.raises(ValueError, match=r"needs data in \[0, 1\]"):
        GaussianVAE(**FAST, likelihood="bernoulli").fit(scaled * np.float32(1.00001))


def test_rounding_is_judged_in_float32_with_or_without_holes(small_digits):
    # With a NaN the range was taken in float64, and 1 + 4.8e-7 was refused where the same
    # data without a hole was taken.
    X, _ = small_digits
    X = X.copy()
    X[0, 0] = 1 + 3e-7  # float32: 1.0000003, between two and three steps above 1
    holes = X.copy()
    holes[1, 1] = np.nan
    for data in (X, holes):
        with warnings.catch_warnings():
            warnings.simplefilter("error", OutOfSupportWarning)
            GaussianVAE(**FAST, likelihood="bernoulli").fit(data).score(data)
    assert X[0, 0] > 1  # the caller's data is not clipped in place


def test_no_rounding_slack_on_a_support_bounded_on_one_side_only():
    # On [0, inf) a value 1e-7 below 0 may be data on a small scale, not rounding.
    class OneSided:
        support, integer_valued = (0.0, np.inf), False

    class Bounded:
        support, integer_valued = (0.0, 1.0), False

    assert not skvae._validation._rounding_off_support(OneSided, -1e-7, 3e-6)
    assert skvae._validation._rounding_off_support(Bounded, 0.0, 1 + 2e-7)
    assert not skvae._validation._rounding_off_support(Bounded, 0.0, 1 + 1e-6)


def test_the_negative_values_prefix_only_where_negatives_are_refused(counts):
    C = counts.toarray().astype(np.float64)
    vae = SparseVAE(**FAST, likelihood="poisson").fit(C)
    bad = C[:2].copy()
    bad[0, :2] = [-3.0, 2.5]  # score clips the -3; it refuses the 2.5 as no count
    with pytest.raises(ValueError, match="needs counts") as caught:
        vae.score(bad)
    assert "Negative values" not in str(caught.value)
    tiny = C.copy()
    tiny[0, :2] = [-1e-50, 2.5]  # -1e-50 is 0 in float32, which skvae computes in
    with pytest.raises(ValueError, match="needs counts") as caught:
        SparseVAE(**FAST, likelihood="poisson").fit(tiny)
    assert "Negative values" not in str(caught.value)


@pytest.mark.parametrize("likelihood", ["bernoulli", "poisson", "negative-binomial"])
def test_likelihoods_of_non_negative_data_say_so_in_their_tags(likelihood):
    # NMF's tag: positive_only, checked by scikit-learn with its own words for the error.
    estimator = GaussianVAE(**FAST, likelihood=likelihood)
    assert estimator.__sklearn_tags__().input_tags.positive_only
    check_positive_only_tag_during_fit("GaussianVAE", estimator)
    assert not GaussianVAE().__sklearn_tags__().input_tags.positive_only


def test_support_messages_show_the_values_themselves(small_digits, counts):
    X, _ = small_digits
    vae = GaussianVAE(**{**FAST, "likelihood": "bernoulli"}).fit(X)
    with pytest.raises(ValueError, match=r"got values in \[0.25, 1.00001\]"):
        vae.partial_fit(np.where(X == X.max(), 1.00001, np.clip(X, 0.25, 1)))  # .4g: [0, 1]
    C = counts.toarray()
    with pytest.raises(ValueError, match=r"such as 2.5\."):
        SparseVAE(**FAST, likelihood="poisson").fit(np.where(C == C.max(), 2.5, C))
    poisson = SparseVAE(**FAST, likelihood="poisson").fit(C)
    stray = C.copy()
    stray[0, 0] = -1
    with pytest.warns(OutOfSupportWarning, match=r"values in \[-1, \d+\].*cannot be negative"):
        poisson.score_samples(stray)  # it showed [-1, inf] and suggested a MinMaxScaler


def test_out_of_support_warnings_point_at_the_users_line(small_digits):
    from skvae import VAEImputer

    X, _ = small_digits
    vae = GaussianVAE(**{**FAST, "likelihood": "bernoulli"}).fit(X)
    imputer = VAEImputer(vae, n_importance_samples=4).fit(X)
    holes = X * 1.1
    holes[0, 0] = np.nan
    for call in (vae.score, vae.score_samples, imputer.transform):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call(holes)
        caught = [w for w in caught if issubclass(w.category, OutOfSupportWarning)]
        assert caught and caught[0].filename == __file__, call.__name__
    # Through joblib, as cross_val_score and GridSearchCV call an estimator.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Parallel(n_jobs=1)(delayed(vae.score)(holes[1:]) for _ in range(2))
    caught = [w for w in caught if issubclass(w.category, OutOfSupportWarning)]
    assert caught and {w.filename for w in caught} == {__file__}


def test_negative_counts_are_scored_clipped_and_non_counts_refused(counts):
    X = counts.toarray()
    vae = SparseVAE(**FAST, likelihood="poisson").fit(X)
    stray = X.copy()
    stray[0, 0] = -1
    with pytest.warns(OutOfSupportWarning, match="likelihood='poisson'"):
        assert np.isfinite(vae.score_samples(stray)).all()
    stray[0, 0], stray[1, 0] = -1, 0.5  # not counts: refused, without a warning of clipping
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="needs counts.*'gaussian' for real values"):
            vae.score_samples(stray)
    stray[1, 0], stray[2, 0] = -1, -2  # log1p would give -inf and NaN to the encoder
    assert np.isfinite(vae.transform(stray)).all()


@pytest.mark.parametrize("likelihood", ["poisson", "negative-binomial"])
@pytest.mark.parametrize("bad, value", [(-1.0, "-1"), (0.5, "0.5")])
def test_count_likelihoods_refuse_non_counts(counts, likelihood, bad, value):
    X = counts.toarray()
    X[3, 4] = bad
    with pytest.raises(ValueError, match=rf"needs counts \(non-negative integers\).*{value}"):
        SparseVAE(**{**FAST, "max_iter": 5}, likelihood=likelihood).fit(X)


def test_refit_on_bad_frame_keeps_feature_names(small_digits):
    pd = pytest.importorskip("pandas")
    X, _ = small_digits
    columns = [f"pixel{i}" for i in range(X.shape[1])]
    vae = SparseVAE(**FAST).fit(pd.DataFrame(X, columns=columns))
    snapshot = _snapshot(vae)
    renamed = pd.DataFrame(_with(X, 0, 0, np.inf), columns=[c.upper() for c in columns])
    with pytest.raises(ValueError, match="Input X contains infinity"):
        vae.fit(renamed)
    _assert_unchanged(vae, snapshot, pd.DataFrame(X, columns=columns))
    assert list(vae.feature_names_in_) == columns


def test_renamed_columns_are_refused(fitted_frame_model):
    vae, frame = fitted_frame_model
    renamed = frame.rename(columns={"pixel0": "intensity0"})
    with pytest.raises(ValueError, match="feature names should match"):
        vae.transform(renamed)


@pytest.mark.parametrize("method", ["fit", "transform", "score"])
def test_values_beyond_float32_are_refused(small_digits, method):
    X, _ = small_digits
    vae = SparseVAE(**FAST).fit(X)
    huge = X.copy()
    huge[0, 0] = 1e300
    with pytest.raises(ValueError, match="beyond float32's range"):
        getattr(vae, method)(huge)


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_placeholders_far_beyond_the_training_data_are_refused(small_digits, likelihood, fmt):
    # 1e20 is within float32's range, but 1e19 spreads from the training mean the Gaussian
    # likelihood overflows: score_samples gave -inf, and VAEImputer left holes unfilled.
    # transform refuses it too: it is a placeholder, not data.
    X, _ = small_digits
    vae = GaussianVAE(**{**FAST, "likelihood": likelihood}).fit(X)
    as_format = sp.csr_matrix if fmt == "csr" else np.asarray
    mean, std = X[:, 20].mean(), X[:, 20].std()
    far = X[:10].copy()
    far[4, 20] = mean + 1e14 * std  # far, but the model's float32 arithmetic holds
    assert np.isfinite(vae.transform(as_format(far))).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfSupportWarning)  # Bernoulli: clipped to [0, 1]
        assert np.isfinite(vae.score_samples(as_format(far))).all()
    far[4, 20] = 1e20
    # Scoring refuses it as transform does. (It once clipped a placeholder to a bounded
    # support, with a warning to use MinMaxScaler(clip=True), and scored it as data.)
    where = "more than 1e\\+16 from 0" if likelihood == "bernoulli" else "2.6e\\+20 training"
    for method in ["transform", "score_samples"]:
        with pytest.raises(ValueError, match=rf"value 1e\+20 in feature 20, {where}.*with NaN"):
            getattr(vae, method)(as_format(far))
    imputer = VAEImputer(GaussianVAE(**{**FAST, "likelihood": likelihood})).fit(X)
    far[4, 21] = np.nan
    with pytest.raises(ValueError, match=r"value 1e\+20 in feature 20.*with NaN"):
        imputer.transform(far)


def test_a_score_beyond_float32s_range_is_an_error_not_a_number():
    # Each value passes the distance check (a constant column in large units is allowed a
    # million float32 rounding steps), but the row's log-density passes float32's range:
    # score_samples returned NaN, and -inf for another row, with no error.
    rng = np.random.RandomState(0)
    X = np.c_[rng.randn(50, 2), np.full(50, 1e23)]
    vae = GaussianVAE(**FAST).fit(X)
    far = X[:2].copy()
    far[:, 2] *= 1.01
    message = r"score_samples computed (nan|-inf) for row 0.*too far from the training data"
    with pytest.raises(ValueError, match=message):
        vae.score_samples(far)
    with pytest.raises(ValueError, match="log_likelihood computed"):
        diagnostics.log_likelihood(vae, far, n_samples=4)
    assert np.isfinite(vae.score_samples(X[:2])).all()


def test_the_imputer_names_a_placeholder_it_was_not_told_about():
    X = load_breast_cancer().data[:200]
    imputer = VAEImputer(estimator=GaussianVAE(**FAST)).fit(X)
    holed = X[:10].copy()
    holed[:, 2] = np.nan
    holed[3, 5] = 9.96921e36  # netCDF's default fill value
    with pytest.raises(ValueError, match="feature 5.*set missing_values to it"):
        imputer.transform(holed)
    holed[np.isnan(holed)] = 9.96921e36
    told = VAEImputer(estimator=GaussianVAE(**FAST), missing_values=9.96921e36)
    assert np.isfinite(told.fit(np.where(np.isnan(X), 9.96921e36, X)).transform(holed)).all()


@pytest.mark.parametrize("likelihood", ["poisson", "negative-binomial"])
def test_counts_are_refused_only_where_their_likelihood_overflows(counts, likelihood):
    # The encoder reads log1p of a count, but a Poisson log-likelihood overflows from about
    # 1e36 and a negative binomial one gave NaN from 1e37 (netCDF's fill value is 9.97e36).
    vae = SparseVAE(**{**FAST, "likelihood": likelihood}).fit(counts)
    huge = counts[:5].toarray()
    huge[0, 0] = 1e20
    assert np.isfinite(vae.transform(huge)).all()
    assert np.isfinite(vae.score_samples(huge)).all()
    huge[0, 0] = 9.96921e36
    for data in (huge, sp.csr_matrix(huge)):
        with pytest.raises(ValueError, match=r"further than 1e\+30 from 0, the most a count"):
            vae.score_samples(data)


@pytest.mark.parametrize("likelihood", ["poisson", "negative-binomial"])
def test_fit_refuses_counts_above_the_largest_rate_it_models(counts, likelihood):
    # fit once trained on a count of 1e31 that transform then refused, and on 9.97e36 failed
    # with advice about the learning rate; counts above exp(30), the cap of the rate, left a
    # model that never moved from its start (the capped rate had no gradient).
    fitted = SparseVAE(**{**FAST, "likelihood": likelihood}).fit(counts)
    before = {k: v.clone() for k, v in fitted.module_.state_dict().items()}
    for value, shown in [(2e13, r"2e\+13"), (1e31, r"1e\+31"), (9.96921e36, r"9.96921e\+36")]:
        huge = counts.toarray()
        huge[3, 7] = value
        for data in (huge, sp.csr_matrix(huge)):
            message = rf"value {shown} in feature 7, a count above 1.1e\+13, the largest mean"
            with pytest.raises(ValueError, match=message + ".*divide the feature"):
                fitted.fit(data)
            with pytest.raises(ValueError, match=message):
                SparseVAE(**{**FAST, "likelihood": likelihood}).partial_fit(data)
            # A model that goes on, too (above 1e30 new data's own check speaks first).
            going_on = rf"value {shown} in feature 7, (a count above 1|further than 1e\+30)"
            with pytest.raises(ValueError, match=going_on):
                fitted.partial_fit(data)
            with pytest.raises(ValueError, match=going_on):
                fitted.set_params(warm_start=True).fit(data)
            fitted.set_params(warm_start=False)
    assert all(torch.equal(v, fitted.module_.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("likelihood", ["poisson", "negative-binomial"])
def test_a_decoder_output_above_the_rate_cap_is_pulled_back(likelihood):
    # The rate is held at exp(30) in value; the gradient of a count below it still says
    # "lower", where a plain clamp gave none and the output stayed stuck above the cap.
    head = LIKELIHOODS[likelihood](1)
    output = torch.tensor([[35.0]], requires_grad=True)
    p_x = head(output)
    assert p_x.mean.item() == pytest.approx(np.exp(30), rel=1e-5)
    p_x.log_prob(torch.tensor([[1e12]])).sum().backward()
    assert output.grad.item() < 0
    # Held at the cap however far above it (float32 once rounded 1e9 - (1e9 - 30) to 0).
    assert head(torch.tensor([[1e9]])).mean.item() == pytest.approx(np.exp(30), rel=1e-5)
    # Below the cap, the log-mean and its gradient are the output's own (a cap that added
    # the identity's gradient to the clamp's once doubled it).
    output = torch.tensor([[2.0]], requires_grad=True)
    p_x = head(output)
    assert p_x.mean.item() == pytest.approx(np.exp(2.0), rel=1e-6)
    p_x.log_prob(torch.tensor([[3.0]])).sum().backward()
    mean = np.exp(2.0)
    if likelihood == "poisson":
        expected = 3 - mean  # d/d log(rate) of 3 log(rate) - rate
    else:
        theta = p_x.total_count.item()
        expected = theta * (3 - mean) / (theta + mean)  # d/d log(mean), NB(mean, theta)
    assert output.grad.item() == pytest.approx(expected, rel=1e-5)


def test_a_count_at_a_vanishing_poisson_rate_is_unlikely_not_impossible():
    # exp(-150) is 0 in float32: the log term once took log(rate), and scored a count of 5
    # -inf (score_samples of rows far from the training data gave -inf, with no error).
    p_x = LIKELIHOODS["poisson"](1)(torch.tensor([[-150.0]]))
    expected = 5 * -150.0 - np.exp(-150.0) - math.lgamma(6)
    assert p_x.log_prob(torch.tensor([[5.0]])).item() == pytest.approx(expected, rel=1e-6)


def test_a_poisson_count_of_0_at_a_log_rate_of_minus_infinity_is_certain():
    # 0 log 0 = 0, as torch.xlogy gave before the log term took the log-rate: 0 * -inf is NaN.
    from skvae._families import _Poisson

    p_x = _Poisson(torch.tensor([-math.inf]))
    assert p_x.log_prob(torch.tensor([0.0])).item() == 0.0


def test_a_poisson_count_of_0_at_a_vanishing_rate_is_certain():
    # exp(-120) is 0 in float32: 0 * log(0) must be 0, not NaN.
    p_x = LIKELIHOODS["poisson"](1)(torch.tensor([[-120.0]]))
    assert p_x.log_prob(torch.tensor([[0.0]])).item() == 0.0


def test_counts_are_fitted_up_to_the_rate_cap():
    # Counts near 1e12 (the cap is 1.07e13): the model learns them.
    rng = np.random.default_rng(0)
    X = np.round(1e11 * np.exp(rng.normal(size=(200, 1)) + 0.3 * rng.normal(size=(1, 5))))
    vae = GaussianVAE(n_components=4, max_iter=30, tol=None, likelihood="poisson", random_state=0)
    vae.fit(X)
    assert vae.loss_curve_[-1] < 0.1 * vae.loss_curve_[0]
    relative_error = np.abs(vae.inverse_transform(vae.transform(X)) - X) / X
    assert np.median(relative_error) < 0.2


@pytest.mark.parametrize("count", [0.0, 3.0, 1e5, 1e7, 1e9])
@pytest.mark.parametrize("theta", [0.5, 1e4])
def test_count_likelihoods_are_exact_for_large_counts(count, theta):
    # In float32 they were off by 7 to 11 nats a count from 1e7 (364 for theta = 1e4).
    from scipy import stats

    log_mean = torch.tensor([np.log(1.1 * count + 1)], dtype=torch.float32)
    x = torch.tensor([count])
    poisson = LIKELIHOODS["poisson"](1)(log_mean)
    rate = np.exp(float(log_mean))  # the rate of the float32 log-rate, in float64
    assert poisson.log_prob(x).item() == pytest.approx(stats.poisson.logpmf(count, rate), rel=1e-6)
    head = LIKELIHOODS["negative-binomial"](1)
    with torch.no_grad():
        head.raw_theta.fill_(theta + np.log(-np.expm1(-theta)))  # softplus of it is theta
    nb = head(log_mean)
    n, logits = nb.total_count.double().item(), nb.logits.double().item()
    expected = stats.nbinom.logpmf(count, n, 1 / (1 + np.exp(logits)))
    assert nb.log_prob(x).item() == pytest.approx(expected, rel=1e-6, abs=1e-5)


def test_a_negative_binomial_training_loss_falls_on_large_counts():
    # Its float32 log-likelihood lost theta against counts near 1e9, so that the training
    # loss rose as theta was learned (111.6 to 116.2 nats in 30 epochs) and the stopping rule
    # read that as no progress.
    rng = np.random.default_rng(0)
    X = np.round(1e9 * np.exp(rng.normal(size=(300, 1)) + 0.3 * rng.normal(size=(1, 5))))
    vae = GaussianVAE(n_components=4, max_iter=30, tol=None, random_state=0)
    vae.set_params(likelihood="negative-binomial").fit(X)
    assert vae.loss_curve_[-1] < vae.loss_curve_[0] - 1


def test_a_feature_float32_cannot_resolve_warns_and_names_the_fix():
    X = load_diabetes().data
    X = (X - X.mean(0)) / X.std(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an ordinary table, or an offset float32 resolves
        GaussianVAE(**FAST, tol=None).fit(X + np.r_[1e6, np.zeros(9)])  # 16 steps a std
        GaussianVAE(**FAST, tol=None).fit(X.astype(np.float32) + np.float32(1e8))  # rounded
        outlier = X.copy()  # two values that float32 holds exactly, however far apart
        outlier[:, 0], outlier[0, 0] = 1e8, 1e8 + 1000
        GaussianVAE(**FAST, tol=None).fit(outlier)
    shifted = X + np.r_[0, 1e8, 0, 1e7, np.zeros(6)]
    vae = GaussianVAE(**FAST, tol=None)
    with pytest.warns(
        UserWarning,
        match=r"Feature 1 of X \(mean 1e\+08, standard deviation 1\) varies too little.*"
        r"rounding errors there are 100% of its standard deviation \(steps of 8\).*"
        r"\(and 1 more such features\).*StandardScaler",
    ):
        vae.fit(shifted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said in a fit, not in scoring
        vae.score(shifted)
    with pytest.warns(UserWarning, match="Feature 1 of X"):  # each fit, partial ones too
        vae.partial_fit(shifted)
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(shifted, columns=[f"c{i}" for i in range(10)])
    with pytest.warns(UserWarning, match=r"Feature 'c1' of X \(mean 1e\+08"):
        GaussianVAE(**FAST, tol=None).fit(frame)


def test_sparse_duplicate_entries_are_checked_once_summed(counts):
    # scipy lets a CSR matrix hold duplicate entries, which mean their sum: two halves that
    # make a whole count once failed the check that counts are integers.
    X = counts[:50].tocoo()
    rows, columns, data = X.row, X.col, X.data.astype(np.float64)
    order = np.argsort(np.r_[rows, rows], kind="stable")
    duplicated = sp.csr_matrix(
        (
            np.r_[data / 2, data / 2][order],
            np.r_[columns, columns][order],
            np.r_[0, np.cumsum(np.bincount(rows, minlength=50) * 2)],
        ),
        shape=X.shape,
    )
    assert not duplicated.has_canonical_format
    vae = SparseVAE(**{**FAST, "likelihood": "poisson"}).fit(duplicated)
    expected = SparseVAE(**{**FAST, "likelihood": "poisson"}).fit(counts[:50])
    np.testing.assert_array_equal(vae.transform(duplicated), expected.transform(counts[:50]))
    assert not duplicated.has_canonical_format  # the caller's matrix is left as it was


def test_values_are_refused_by_their_distance_in_training_standard_deviations():
    # An income column (spread 1e5): 1e20 is 1e15 spreads out. The likelihood works on
    # standardized values, so it is scored (its square in the data's units, 1e40, would have
    # overflowed float32); 1e22 is 1e17 spreads out, beyond what float32 can square after
    # dividing by a scale of a thousandth, and refused as the placeholder it must be.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 4))
    X[:, 0] = 1e6 + 1e5 * rng.normal(size=300)
    vae = GaussianVAE(**FAST).fit(X)
    new = X[:5].copy()
    new[2, 0] = 1e20
    assert np.isfinite(vae.score_samples(new)).all()
    new[2, 0] = 1e22
    with pytest.raises(ValueError, match=r"value 1e\+22 in feature 0, 1\.0e\+17 training"):
        vae.score_samples(new)


@pytest.mark.parametrize("spread", [1e20, 1e-20])
def test_a_table_of_any_spread_fits_as_it_would_behind_a_standard_scaler(spread):
    # float32 squares neither a spread of 1e20 (overflow) nor one of 1e-20 (underflow): the
    # likelihood's log-density is computed on standardized values, so the fit is the scaled
    # data's, and the score differs by the change of units alone, -log(spread) a row.
    X = np.random.RandomState(0).normal(size=(200, 3))
    scaled = X.copy()
    scaled[:, 0] *= spread
    vae = GaussianVAE(**FAST).fit(scaled)
    reference = GaussianVAE(**FAST).fit(X)
    np.testing.assert_allclose(vae.transform(scaled), reference.transform(X), atol=1e-5)
    np.testing.assert_allclose(
        vae.score(scaled), reference.score(X) - np.log(spread), rtol=1e-5, atol=1e-4
    )
    assert np.isfinite(vae.score_samples(scaled * [3, 1, 1])).all()  # new rows, further out


def test_a_constant_column_in_large_units_is_not_a_placeholder():
    # Its unit is 1 and its values differ from its float32 mean by rounding (about 1e17
    # here): measured against float32's resolution at the mean, they are where they were.
    X = np.random.RandomState(0).normal(size=(50, 3))
    X[:, 1] = 2.74022147e24 * (1 + 1e-9 * np.arange(50))
    with pytest.warns(UserWarning, match="Feature 1 of X .* varies too little"):
        vae = GaussianVAE(**FAST).fit(X)
    assert np.isfinite(vae.transform(X)).all()


def test_implicit_zeros_are_read_as_dense_zeros_are():
    X = np.random.RandomState(0).normal(size=(50, 3))
    X[:, 1] = 1e19 * (1 + 1e-3 * np.arange(50) / 50)  # a 0 is 3,400 spreads out
    vae = GaussianVAE(**FAST).fit(X)
    new = X[:4].copy()
    new[0, 1] = 0.0
    dense = vae.score_samples(new)
    assert np.isfinite(dense).all() and dense[0] < dense[1:].min() - 1e6
    np.testing.assert_array_equal(vae.score_samples(sp.csr_matrix(new)), dense)  # implicit 0
    np.testing.assert_array_equal(vae.transform(sp.csr_matrix(new)), vae.transform(new))


def test_the_placeholder_check_warns_about_nothing_else(small_digits):
    X, _ = small_digits
    vae = GaussianVAE(**FAST).fit(X * np.linspace(0.01, 1, X.shape[1]))  # small spreads
    new = X[:3].copy()
    new[0, 2] = 9.96921e36
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow RuntimeWarning before the ValueError
        with pytest.raises(ValueError, match="placeholder"):
            vae.transform(new)


CONTAINERS = {
    "float32": lambda X: X.astype(np.float32),
    "fortran": np.asfortranarray,
    "read-only": lambda X: np.lib.stride_tricks.as_strided(X, writeable=False),
    # The same rows, in a view with a negative stride (what X[::-1] or np.flipud give):
    # torch cannot wrap such memory.
    "negative-stride": lambda X: np.flipud(np.flipud(X).copy()),
    "negative-stride-float32": lambda X: np.flipud(np.flipud(X.astype(np.float32)).copy()),
    "csr": lambda X: sp.csr_matrix(X),
}


@pytest.mark.parametrize("container", ["negative-stride", "negative-stride-float32"])
def test_views_with_negative_strides_are_read_like_copies(small_digits, container):
    # As PCA reads them: before, torch refused to wrap the memory in fit, transform, score
    # and inverse_transform.
    X, _ = small_digits
    view = CONTAINERS[container](X)
    assert min(view.strides) < 0
    params = {**FAST, "random_state": 0}
    vae = SparseVAE(**params).fit(view)
    reference = SparseVAE(**params).fit(view.copy())
    np.testing.assert_array_equal(vae.transform(view), reference.transform(X))
    np.testing.assert_array_equal(vae.score_samples(view), reference.score_samples(X))
    codes = vae.transform(X).astype(np.float32)
    np.testing.assert_array_equal(
        vae.inverse_transform(np.flipud(np.flipud(codes).copy())), vae.inverse_transform(codes)
    )


PROBLEMS = [
    (np.inf, "Input X contains infinity"),
    (-np.inf, "Input X contains infinity"),
]


@pytest.mark.parametrize("value, message", PROBLEMS, ids=["inf", "-inf"])
@pytest.mark.parametrize("container", CONTAINERS)
def test_the_one_pass_check_names_each_problem(small_digits, container, value, message):
    # Valid data costs one min/max pass; bad data then gets scikit-learn's own messages, in
    # every memory layout the pass handles differently.
    X, _ = small_digits
    vae = GaussianVAE(**{**FAST, "likelihood": "bernoulli"}).fit(X)
    bad = X.copy()
    bad[3, 5] = value
    for method in ("transform", "score_samples"):
        with pytest.raises(ValueError, match=message):
            getattr(vae, method)(CONTAINERS[container](bad))
    assert np.isfinite(vae.score_samples(CONTAINERS[container](X))).all()


@pytest.mark.parametrize("container", CONTAINERS)
def test_holes_and_strays_pass_the_one_pass_check_in_every_layout(small_digits, container):
    X, _ = small_digits
    vae = GaussianVAE(**{**FAST, "likelihood": "bernoulli"}).fit(X)
    holes, strays = X.copy(), X.copy()
    holes[3, 5] = np.nan
    strays[3, 5] = 1.5
    expected = vae.score_samples(np.clip(strays, 0, 1))
    with pytest.warns(OutOfSupportWarning, match=r"\[0, 1.5\]"):
        scores = vae.score_samples(CONTAINERS[container](strays))
    np.testing.assert_allclose(scores, expected, rtol=1e-6)  # layouts round differently
    for data in (holes, strays):
        assert np.isfinite(vae.transform(CONTAINERS[container](data))).all()
    assert np.isfinite(vae.score_samples(CONTAINERS[container](holes))).all()


def test_assume_finite_skips_only_the_finiteness_check(small_digits):
    X, _ = small_digits
    vae = GaussianVAE(**{**FAST, "likelihood": "bernoulli"}).fit(X)
    bad = X.astype(np.float32)  # float64 infinities fail the float32 range check instead
    bad[0, 0] = np.inf
    with sklearn.config_context(assume_finite=True):
        assert not np.isfinite(vae.transform(bad)[0]).all()  # scikit-learn's contract: no check
        with pytest.warns(OutOfSupportWarning):
            vae.score_samples(X * 2)  # the likelihood's range is still checked
        # A float64 infinity reaches the float32 range check, which told the user to rescale.
        with pytest.raises(ValueError, match="Infinite values in X.*replace them"):
            vae.transform(bad.astype(np.float64))
        # Codes: NaN was decoded and blamed on codes "far outside the prior".
        with pytest.raises(ValueError, match="The codes hold NaN, which encodes no row"):
            vae.inverse_transform(np.full((1, vae.n_components), np.nan))
        with pytest.raises(
            ValueError, match="Infinite values in the codes.*codes transform returns"
        ):
            vae.inverse_transform(np.full((1, vae.n_components), np.inf))
    with pytest.raises(ValueError, match=r"beyond float32's range .* in the codes.*decode codes"):
        vae.inverse_transform(np.full((1, vae.n_components), 1e39))


# -- data that is accepted --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.uint8, bool])
def test_other_numeric_dtypes_are_converted(small_digits, dtype):
    X, _ = small_digits
    data = (X > 0.5) if dtype is bool else (X * 16).astype(dtype)
    vae = SparseVAE(**FAST).fit(data)
    assert vae.transform(data).dtype == np.float64
    assert np.isfinite(vae.score(data))


def test_read_only_memmap_input_works_without_warnings(small_digits, tmp_path):
    X, _ = small_digits
    path = tmp_path / "X.npy"
    np.save(path, X.astype(np.float32))
    memmap = np.load(path, mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vae = SparseVAE(**{**FAST, "max_iter": 50, "tol": 1e3}).fit(memmap)
        vae.transform(memmap)
        vae.score(memmap)
    assert not memmap.flags.writeable


# -- bad parameters, codes and sizes ----------------------------------------------------------

BAD_PARAMS = [
    ({"n_components": 0}, ValueError, "'n_components' parameter of SparseVAE must be an int"),
    ({"prior": "gauss"}, ValueError, "'prior' parameter of SparseVAE must be a str among"),
    ({"learning_rate": -1.0}, ValueError, "'learning_rate' parameter"),
    ({"batch_size": 2.5}, TypeError, "'batch_size' parameter"),
    ({"hidden_layer_sizes": (16, 0)}, ValueError, "hidden_layer_sizes must be positive"),
    ({"device": "nonsense"}, ValueError, "device='nonsense' is not a torch device"),
    ({"posterior": "cauchy", "prior": "laplace"}, ValueError, "infinite KL divergence"),
]
if not torch.cuda.is_available():
    BAD_PARAMS.append(({"device": "cuda"}, ValueError, "CUDA is not available"))
# A device type this build of torch lacks, or one that holds no data: torch raises a
# RuntimeError, an AssertionError or a ModuleNotFoundError, skvae one ValueError.
for _device in ("meta", "xpu", "hpu"):
    if _device == "meta" or not getattr(getattr(torch, _device, None), "is_available", bool)():
        BAD_PARAMS.append(
            ({"device": _device}, ValueError, f"device='{_device}' is not usable here")
        )


def test_auto_uses_the_cpu_where_a_visible_gpu_is_unusable(small_digits, monkeypatch):
    # device='auto' took CUDA whenever torch.cuda.is_available(), without the probe an
    # explicit device gets: a GPU torch sees but cannot use (unsupported, taken) failed later
    # with a raw CUDA error. (Here: a CPU build told that CUDA is available.)
    from skvae._validation import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(skvae._validation, "_unusable", lambda device: "unsupported GPU")
    with pytest.warns(UserWarning, match=r"sees a CUDA GPU but cannot use it \(.*'auto' uses"):
        assert resolve_device("auto") == torch.device("cpu")
    with pytest.warns(UserWarning, match="cannot use it"):
        vae = GaussianVAE(**FAST, device="auto").fit(small_digits[0])
    assert vae._device() == torch.device("cpu")


@pytest.mark.parametrize("params, error, message", BAD_PARAMS)
def test_bad_parameters_are_refused_and_leave_the_model_unchanged(
    fitted, small_digits, params, error, message
):
    X, _ = small_digits
    vae = pickle.loads(pickle.dumps(fitted))
    snapshot = _snapshot(vae)
    vae.set_params(**params)
    with pytest.raises(error, match=message):
        vae.fit(X)
    _assert_unchanged(vae, snapshot, X)


@pytest.mark.parametrize(
    "params, error",
    [
        ({"learning_rate": -1.0}, ValueError),
        ({"batch_size": 0}, ValueError),
        ({"likelihood": "Gaussian"}, ValueError),
        ({"beta": -1.0}, ValueError),
    ],
)
def test_partial_fit_checks_parameters_set_after_fit(fitted, small_digits, params, error):
    # scikit-learn's _fit_context validates a fitted model's partial_fit only on the first
    # call; skvae checks every call, since set_params may have changed them since.
    X, _ = small_digits
    vae = pickle.loads(pickle.dumps(fitted))
    snapshot = _snapshot(vae)
    vae.set_params(**params)
    with pytest.raises(error, match=f"'{next(iter(params))}' parameter of SparseVAE"):
        vae.partial_fit(X)
    _assert_unchanged(vae, snapshot, X)


def test_scoring_parameters_are_not_checked_under_skip_parameter_validation(fitted, small_digits):
    X, _ = small_digits
    vae = pickle.loads(pickle.dumps(fitted)).set_params(n_mc_samples=np.float32(2.0))
    with pytest.raises(TypeError, match="'n_mc_samples' parameter"):
        vae.score(X)
    with sklearn.config_context(skip_parameter_validation=True):
        with pytest.raises(TypeError):  # torch's own error, which the check would have named
            vae.score(X)


def test_partial_fit_refuses_early_stopping_and_leaves_the_model_unchanged(fitted, small_digits):
    # As MLPClassifier does: one pass over a chunk has no held-out data to stop on.
    X, _ = small_digits
    message = "partial_fit does not support early_stopping=True"
    vae = pickle.loads(pickle.dumps(fitted))
    snapshot = _snapshot(vae)
    vae.set_params(early_stopping=True)
    with pytest.raises(ValueError, match=message):
        vae.partial_fit(X)
    _assert_unchanged(vae, snapshot, X)
    unfitted = SparseVAE(**FAST, early_stopping=True)
    with pytest.raises(ValueError, match=message):
        unfitted.partial_fit(X)
    assert not hasattr(unfitted, "module_") and not hasattr(unfitted, "n_features_in_")


def test_a_fitted_model_checks_data_against_the_likelihood_it_was_fitted_with(small_digits):
    # set_params after fit does not change the model (as for PCA), so new data are still
    # checked against the fitted likelihood; a typo refused by fit leaves it usable.
    X, _ = small_digits
    vae = GaussianVAE(**FAST).fit(X)
    before = vae.score(X)
    vae.set_params(likelihood="poisson")  # the digits are not counts of a Poisson model
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfSupportWarning)
        assert vae.score(X) == before
    vae.set_params(likelihood="Gaussian")
    with pytest.raises(ValueError, match="'likelihood' parameter of GaussianVAE"):
        vae.fit(X)
    assert vae.score(X) == before
    assert np.isfinite(vae.transform(X)).all()


@pytest.mark.parametrize("value, error", [(0, ValueError), (2.5, TypeError)])
def test_scoring_parameters_set_after_fit_are_checked_where_they_are_used(
    fitted, small_digits, value, error
):
    from skvae.diagnostics import kl_per_dimension

    X, _ = small_digits
    vae = pickle.loads(pickle.dumps(fitted)).set_params(n_mc_samples=value)
    message = "'n_mc_samples' parameter of SparseVAE must be an int in the range"
    for call in (vae.score, vae.score_samples, lambda X: kl_per_dimension(vae, X)):
        with pytest.raises(error, match=message):
            call(X)


def test_bad_codes_for_inverse_transform(fitted):
    with pytest.raises(ValueError, match="X has 3 features, but SparseVAE is expecting 4"):
        fitted.inverse_transform(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="Input contains NaN"):
        fitted.inverse_transform(np.full((2, 4), np.nan))


def test_bad_sample_sizes(fitted):
    with pytest.raises(ValueError, match="n_samples == 0, must be >= 1"):
        fitted.sample(0)
    with pytest.raises(TypeError, match="n_samples must be an instance of int"):
        fitted.sample(1.5)


def test_sample_turns_allocator_failures_into_a_memory_error(fitted, monkeypatch):
    # sample(10**12) raised torch's "[enforce fail at alloc_cpu.cpp:127] ... can't allocate
    # memory"; NumPy raises MemoryError. (Simulated: whether 16 TB can be allocated depends
    # on the host's overcommit policy.) Other RuntimeErrors pass through as they are.
    def fail(message):
        def sample(n_samples, generator):
            raise RuntimeError(message)

        return sample

    allocator = "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory"
    monkeypatch.setattr(fitted.module_, "sample", fail(allocator))
    with pytest.raises(MemoryError, match=r"sample\(1000000000000\) needs more memory") as caught:
        fitted.sample(10**12)
    assert isinstance(caught.value.__cause__, RuntimeError)
    monkeypatch.setattr(fitted.module_, "sample", fail("something else"))
    with pytest.raises(RuntimeError, match="^something else$"):
        fitted.sample(10)


ALLOCATOR_FAILURE = (
    "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory"
)


def _fail_to_allocate(*args, **kwargs):
    raise RuntimeError(ALLOCATOR_FAILURE)


def test_every_call_turns_allocator_failures_into_a_memory_error(fitted, monkeypatch):
    # score(n_mc_samples=10**9), log_likelihood(n_samples=10**9), VAEImputer's
    # n_importance_samples and fit with huge layers raised torch's RuntimeError (measured
    # under ulimit -v); each now says which parameter to lower.
    X = np.random.RandomState(0).uniform(size=(20, fitted.n_features_in_))
    model = pickle.loads(pickle.dumps(fitted))
    monkeypatch.setattr(skvae._vae, "fixed_noise", _fail_to_allocate)
    with pytest.raises(MemoryError, match=r"lower n_mc_samples \(now 10\)"):
        model.score(X)
    with pytest.raises(MemoryError, match=r"lower the estimator's n_mc_samples"):
        diagnostics.kl_per_dimension(model, X)
    with pytest.raises(MemoryError, match=r"lower n_samples \(now 10\)"):
        diagnostics.log_likelihood(model, X, n_samples=10)
    monkeypatch.undo()

    before = weights(model)
    monkeypatch.setattr(skvae._vae, "train_epoch", _fail_to_allocate)
    with pytest.raises(MemoryError, match=r"SparseVAE.partial_fit needs .*pass fewer rows"):
        model.partial_fit(X)
    assert same_weights(before, weights(model))  # and the fitted model is as it was
    with pytest.raises(MemoryError, match=r"SparseVAE.fit needs more memory.*hidden_layer_sizes"):
        SparseVAE(**FAST).fit(X)
    # A VAEImputer's model says whose it is, and gives no advice the imputer cannot follow.
    with pytest.raises(
        MemoryError, match=r"^VAEImputer's estimator, SparseVAE: .*lower its"
    ) as caught:
        VAEImputer(SparseVAE(**FAST)).fit(X)
    assert "partial_fit" not in str(caught.value)
    monkeypatch.undo()

    X_missing = X.copy()
    X_missing[0, 0] = np.nan
    imputer = VAEImputer(SparseVAE(**FAST)).fit(X_missing)
    monkeypatch.setattr(skvae._impute, "fixed_noise", _fail_to_allocate)
    with pytest.raises(MemoryError, match=r"VAEImputer.transform on 1 incomplete rows.*lower"):
        imputer.transform(X_missing)


def test_sample_refuses_more_values_than_torch_can_count(fitted):
    # torch raised "Storage size calculation overflowed" (2**62 rows) or a TypeError with a
    # C++ stack line (2**63); a NumPy integer's product wrapped around past the check.
    for n_samples in (2**62, 2**63, np.int64(2**62), np.int64(2**61)):
        with pytest.raises(ValueError, match="more than any memory holds; draw fewer rows"):
            fitted.sample(n_samples)


def test_inverse_transform_blames_far_codes_not_the_data(small_digits):
    # The error told the user to look for placeholders of missing values in their data, and
    # to scale it, when the input was codes. (GaussianVAE's ReLU decoder is unbounded.)
    vae = GaussianVAE(**FAST).fit(small_digits[0])
    with pytest.raises(ValueError, match="the codes reach 3e\\+38, far outside the prior"):
        vae.inverse_transform(np.full((1, vae.n_components), 3e38))


def test_sample_refuses_to_return_draws_beyond_float32s_range():
    # A Student-t prior with df = 0.05 draws codes beyond float32's range now and then, and a
    # ReLU decoder turns them into inf and NaN, which sample returned without a word.
    X = np.random.RandomState(0).normal(size=(200, 6))
    params = dict(prior="student-t", df=0.05, posterior="normal", activation="relu")
    vae = SparseVAE(**{**FAST, "n_components": 3}, **params).fit(X)
    with pytest.raises(ValueError, match="sample drew .* passed float32's range.*larger df"):
        vae.sample(2000, random_state=0)
    assert np.isfinite(vae.set_params(df=3.0).fit(X).sample(2000, random_state=0)).all()


def test_unfitted_model_says_so():
    for method, arg in [("transform", np.zeros((1, 2))), ("inverse_transform", np.zeros((1, 2)))]:
        with pytest.raises(NotFittedError):
            getattr(SparseVAE(), method)(arg)
    with pytest.raises(NotFittedError):
        SparseVAE().sample()


# -- any input --------------------------------------------------------------------------------

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
ARRAYS = hnp.arrays(
    np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6), elements=FLOATS
)
PARAMS = st.fixed_dictionaries(
    {
        "n_components": st.integers(1, 3),
        "prior": st.sampled_from(["cauchy", "laplace", "student-t"]),
        "likelihood": st.sampled_from(["gaussian", "bernoulli"]),
        "beta": st.floats(0, 4),
        "kl_warmup_epochs": st.integers(0, 3),
        "batch_size": st.integers(1, 8),
        "learning_rate": st.floats(1e-4, 1.0),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=ARRAYS, params=PARAMS)
def test_any_input_gives_a_clean_error_or_finite_results(X, params):
    vae = SparseVAE(hidden_layer_sizes=(4,), max_iter=2, random_state=0, **params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae.fit(X)
    except (ValueError, TypeError) as error:
        assert str(error)
        return
    assert np.isfinite(vae.transform(X)).all()
    assert np.isfinite(vae.score_samples(X)).all()
    assert np.isfinite(vae.inverse_transform(vae.transform(X))).all()
    assert np.isfinite(vae.sample(3, random_state=0)).all()


def test_booleans_and_numpy_integers_as_sizes_are_read_as_ints(small_digits):
    # As scikit-learn's Integral constraints accept them; torch refused a bool as a size.
    X, _ = small_digits
    vae = SparseVAE(**{**FAST, "n_components": True, "hidden_layer_sizes": (np.int64(8), True)})
    assert vae.fit(X).transform(X).shape == (len(X), 1)
    assert vae.module_.architecture["hidden_layer_sizes"] == (8, 1)


def test_decoded_values_beyond_float32_in_a_features_units_are_a_clean_error():
    # A feature of spread 1e29 fits on standardized values, but a new row 1e13 spreads out in
    # another feature decodes to more than float32 holds in its units: inverse_transform
    # gave inf and VAEImputer NaN. Nearer rows still decode.
    rng = np.random.RandomState(0)
    x0 = rng.normal(size=500)
    X = np.c_[x0, 1e29 * (x0 + 0.1 * rng.normal(size=500))]
    params = {**FAST, "hidden_layer_sizes": (32,), "max_iter": 30}
    vae = GaussianVAE(**params).fit(X)
    imputer = VAEImputer(GaussianVAE(**params)).fit(X)
    near, far = np.array([[1e3, 0.0]]), np.array([[1e13, 0.0]])
    assert np.isfinite(vae.inverse_transform(vae.transform(near))).all()
    assert np.isfinite(imputer.transform(near * [1, np.nan])).all()
    codes = vae.transform(far)
    before = vae.inverse_transform(vae.transform(X[:5]))
    with pytest.raises(ValueError, match=r"GaussianVAE.inverse_transform decoded .* feature 1"):
        vae.inverse_transform(codes)
    with pytest.raises(ValueError, match=r"VAEImputer.transform decoded .* StandardScaler"):
        imputer.transform(far * [1, np.nan])
    np.testing.assert_array_equal(vae.inverse_transform(vae.transform(X[:5])), before)


@pytest.mark.parametrize("spread", [6e37, 1e31])
def test_a_feature_whose_values_would_overflow_in_its_units_is_refused_at_fit(spread):
    # 6e37: the model fitted it, then refused its own training rows (a bound of 1e38 in the
    # data's units), and its samples could pass float32's 3.4e38.
    X = np.clip(np.random.RandomState(0).normal(size=(200, 2)), -3, 3)
    X[:, 0] *= spread
    with pytest.raises(ValueError, match=r"Feature 0 of X has a standard deviation .* 1e\+30"):
        GaussianVAE(**FAST).fit(X)
    with pytest.raises(ValueError, match="StandardScaler"):
        GaussianVAE(**FAST).fit(sp.csr_matrix(X))
    X[:, 0] /= spread / 1e29  # within the limit: fitted, and read back finite
    vae = GaussianVAE(**FAST).fit(X)
    assert np.isfinite(vae.inverse_transform(vae.transform(X))).all()
    assert np.isfinite(vae.sample(50, random_state=0)).all()
