"""Behaviour of SparseVAE and GaussianVAE that users rely on."""

import pickle
import re

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from skvae import GaussianVAE, SparseVAE
from skvae._training import (
    FLUSH_INTERVAL,
    flush_subnormal_moments,
    inference_batch_size,
    make_optimizer,
)

FAST = dict(n_components=4, hidden_layer_sizes=(32,), max_iter=3, random_state=0)


@pytest.fixture(scope="module")
def fitted(small_digits):
    X, _ = small_digits
    return SparseVAE(**FAST).fit(X)


# -- pipelines, search, classification --------------------------------------------------------


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
    assert search.best_params_ == {"vae__n_components": 6}
    assert search.best_index_ == np.argmax(scores)


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


# -- determinism and random state -----------------------------------------------------------


def test_same_random_state_gives_identical_results(small_digits):
    X, _ = small_digits
    a, b = SparseVAE(**FAST).fit(X), SparseVAE(**FAST).fit(X)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.loss_curve_, b.loss_curve_)
    assert a.score(X) == b.score(X)
    c = SparseVAE(**{**FAST, "random_state": 1}).fit(X)
    assert not np.array_equal(a.transform(X), c.transform(X))


@pytest.mark.parametrize("random_state", [0, None, np.random.RandomState(3)])
def test_global_random_state_is_untouched(small_digits, random_state):
    X, _ = small_digits
    # The global generators are the subject of this test, hence the legacy NumPy calls.
    np.random.seed(42)  # noqa: NPY002
    torch.manual_seed(42)
    numpy_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state()  # noqa: NPY002
    vae = SparseVAE(**{**FAST, "random_state": random_state}).fit(X)
    vae.transform(X)
    vae.score(X)
    vae.sample(3)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_score_is_deterministic_and_rowwise(fitted, small_digits):
    X, _ = small_digits
    elbo = fitted.score_samples(X)
    np.testing.assert_array_equal(fitted.score_samples(X), elbo)
    assert fitted.score(X) == fitted.score(X) == pytest.approx(elbo.mean())
    # Each row's ELBO does not depend on the other rows scored with it (float32 tolerance).
    np.testing.assert_allclose(fitted.score_samples(X[:7]), elbo[:7], rtol=1e-5)
    order = np.random.RandomState(0).permutation(len(X))
    np.testing.assert_allclose(fitted.score_samples(X[order]), elbo[order], rtol=1e-5)
    np.testing.assert_allclose(fitted.transform(X[:7]), fitted.transform(X)[:7], atol=1e-5)


def test_sample_reproducible_and_bernoulli_samples_are_binary(small_digits):
    X, _ = small_digits
    vae = GaussianVAE(**{**FAST, "likelihood": "bernoulli"}).fit(X)
    draw = vae.sample(50, random_state=0)
    np.testing.assert_array_equal(draw, vae.sample(50, random_state=0))
    assert not np.array_equal(draw, vae.sample(50, random_state=1))
    assert set(np.unique(draw)) <= {0.0, 1.0}
    assert draw.shape == (50, X.shape[1])


# -- the ELBO is a real bound -----------------------------------------------------------------


def test_score_lower_bounds_the_exact_log_likelihood():
    # A linear decoder with a normal prior and Gaussian likelihood has an exact marginal,
    # p(x) = N(b, W W^T + diag(sigma^2)); the ELBO must bound it from below, in nats.
    rng = np.random.RandomState(0)
    latent = rng.normal(size=(400, 2))
    X = latent @ rng.normal(size=(2, 5)) + 0.3 * rng.normal(size=(400, 5))
    vae = GaussianVAE(
        n_components=2,
        hidden_layer_sizes=(),
        learning_rate=1e-2,
        batch_size=64,
        max_iter=300,
        n_mc_samples=2000,
        random_state=0,
    ).fit(X)
    decoder, likelihood = vae.module_.decoder[-1], vae.module_.likelihood
    with torch.no_grad():
        W, b = decoder.weight.double().cpu().numpy(), decoder.bias.double().cpu().numpy()
        sigma = likelihood.min_scale + torch.nn.functional.softplus(likelihood.raw_scale)
        sigma = sigma.double().cpu().numpy()
    cov = W @ W.T + np.diag(sigma**2)
    diff = X - b
    _, logdet = np.linalg.slogdet(cov)
    mahalanobis = np.einsum("ij,ij->i", diff @ np.linalg.inv(cov), diff)
    exact = -0.5 * (mahalanobis + logdet + X.shape[1] * np.log(2 * np.pi))
    elbo = vae.score_samples(X)
    assert elbo.mean() <= exact.mean() + 0.01
    assert exact.mean() - elbo.mean() < 0.1  # the bound is tight for a well-fitted model
    # And the model nearly reaches the maximum-likelihood linear Gaussian model.
    assert vae.score(X) > FactorAnalysis(n_components=2).fit(X).score(X) - 0.1


# -- families -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "estimator, analytic",
    [
        (GaussianVAE(), True),
        (SparseVAE(prior="laplace"), True),
        (SparseVAE(prior="cauchy", posterior="cauchy", activation="tanh"), True),
        (SparseVAE(prior="cauchy"), False),
        (SparseVAE(prior="student-t"), False),
        (SparseVAE(prior="student-t", posterior="cauchy", activation="tanh"), False),
    ],
)
def test_kl_is_closed_form_exactly_where_torch_registers_one(small_digits, estimator, analytic):
    X, _ = small_digits
    vae = estimator.set_params(**FAST).fit(X)
    assert vae.module_.analytic_kl is analytic
    assert np.isfinite(vae.score_samples(X)).all()


@pytest.mark.parametrize(
    "estimator", [GaussianVAE(posterior="cauchy"), SparseVAE(prior="laplace", posterior="cauchy")]
)
def test_infinite_kl_pairs_are_refused(small_digits, estimator):
    X, _ = small_digits
    with pytest.raises(ValueError, match="infinite KL divergence"):
        estimator.set_params(**FAST).fit(X)


@pytest.mark.parametrize(
    "params",
    [{"activation": "relu"}, {"activation": "identity"}, {"hidden_layer_sizes": ()}],
)
def test_cauchy_posterior_needs_a_bounded_decoder(small_digits, params):
    X, _ = small_digits
    vae = SparseVAE(**{**FAST, "posterior": "cauchy", "activation": "tanh", **params})
    with pytest.raises(ValueError, match="posterior='cauchy' needs a bounded decoder"):
        vae.fit(X)


def test_cauchy_posterior_trains_stably_through_a_bounded_decoder(small_digits):
    # Through tanh layers the expected log-likelihood is finite and the loss falls steadily
    # (54 -> 3.8 nats here); through ReLU layers the same fit spikes to 1e3-1e7 nats.
    X, _ = small_digits
    params = {**FAST, "posterior": "cauchy", "activation": "tanh", "max_iter": 15}
    vae = SparseVAE(**params).fit(X)
    assert np.isfinite(vae.loss_curve_).all()
    assert max(vae.loss_curve_) == vae.loss_curve_[0] < 100
    assert vae.loss_curve_[-1] < vae.loss_curve_[0] / 5


# -- training ---------------------------------------------------------------------------------


def test_training_slices_a_seeded_permutation_without_a_dataloader(small_digits, monkeypatch):
    X, _ = small_digits

    def no_dataloader(*args, **kwargs):
        raise AssertionError("fit must not build a DataLoader")

    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", no_dataloader)
    generators = []
    randperm = torch.randperm

    def recording_randperm(*args, **kwargs):
        generators.append(kwargs.get("generator"))
        return randperm(*args, **kwargs)

    monkeypatch.setattr(torch, "randperm", recording_randperm)
    SparseVAE(**FAST).fit(X)
    assert len(generators) == FAST["max_iter"]  # one permutation per epoch
    assert all(isinstance(g, torch.Generator) for g in generators)


def test_verbose_prints_progress(small_digits, capsys):
    X, _ = small_digits
    SparseVAE(**{**FAST, "verbose": 1, "kl_warmup_epochs": 3}).fit(X)
    lines = capsys.readouterr().out.splitlines()
    pattern = (
        r"\[SparseVAE\] Iteration (\d+), loss = -?\d+\.\d\d(?:, KL weight = ([\d.]+))?"
        r", time = \d+\.\d\ds"
    )
    matches = [re.fullmatch(pattern, line) for line in lines]
    assert [int(match.group(1)) for match in matches] == [1, 2, 3]
    # A warm-up of 3 epochs weights the KL term by 1/4, 1/2, 3/4 in them, and says so.
    assert [match.group(2) for match in matches] == ["0.25", "0.5", "0.75"]
    SparseVAE(**{**FAST, "verbose": 1}).fit(X)
    lines = capsys.readouterr().out.splitlines()
    assert [re.fullmatch(pattern, line).group(2) for line in lines] == [None] * 3


def test_silent_by_default(small_digits, capsys):
    X, _ = small_digits
    SparseVAE(**FAST).fit(X)
    assert capsys.readouterr().out == ""


def test_non_convergence_warns_and_convergence_does_not(small_digits, recwarn):
    X, _ = small_digits
    with pytest.warns(ConvergenceWarning, match=r"maximum iterations \(3\) reached"):
        SparseVAE(**FAST).fit(X)
    # A loose tolerance stops early without a warning: the first epoch improves on nothing,
    # and training stops after n_iter_no_change + 1 epochs that improve by less than tol.
    vae = SparseVAE(**{**FAST, "max_iter": 50, "tol": 100.0, "n_iter_no_change": 2}).fit(X)
    assert vae.n_iter_ == 4
    assert not [w for w in recwarn if issubclass(w.category, ConvergenceWarning)]


def test_training_lowers_the_loss(small_digits):
    X, _ = small_digits
    vae = GaussianVAE(**{**FAST, "max_iter": 20}).fit(X)
    assert len(vae.loss_curve_) == vae.n_iter_ == 20
    assert vae.loss_curve_[-1] < vae.loss_curve_[0]
    assert vae.best_loss_ == min(vae.loss_curve_)
    assert vae.validation_scores_ is None and vae.best_validation_score_ is None


def test_early_stopping_tracks_the_validation_elbo(small_digits):
    X, _ = small_digits
    vae = SparseVAE(**{**FAST, "max_iter": 8, "early_stopping": True}).fit(X)
    assert len(vae.validation_scores_) == vae.n_iter_
    assert vae.best_validation_score_ == max(vae.validation_scores_)
    assert vae.best_loss_ is None


def test_kl_warmup_weights_the_kl_of_the_first_epochs_less(small_digits):
    # Epoch e trains with beta * e / (kl_warmup_epochs + 1), later epochs with beta: the same
    # steps as a model whose beta is set to those weights by hand before each epoch.
    X, _ = small_digits
    warmed = GaussianVAE(**FAST, beta=2.0, kl_warmup_epochs=2)
    by_hand = GaussianVAE(**FAST)
    for beta in (2 / 3, 4 / 3, 2.0, 2.0):
        warmed.partial_fit(X)
        by_hand.set_params(beta=beta).partial_fit(X)
        np.testing.assert_array_equal(warmed.score_samples(X), by_hand.score_samples(X))
    assert warmed.loss_curve_ == by_hand.loss_curve_
    # Without the warm-up the first epoch would differ.
    first = GaussianVAE(**FAST, beta=2.0, kl_warmup_epochs=2).partial_fit(X).score_samples(X)
    unwarmed = GaussianVAE(**FAST, beta=2.0).partial_fit(X).score_samples(X)
    assert not np.array_equal(first, unwarmed)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_kl_warmup_epochs_do_not_count_towards_n_iter_no_change(small_digits, early_stopping):
    # With an unreachable tol only an epoch with nothing to beat improves: the first one, or
    # under plain training the first at full KL weight (a warm-up epoch's loss is not
    # comparable; its validation ELBO is). After it training stops in n_iter_no_change + 1
    # epochs, and no warm-up epoch counts towards them.
    X, _ = small_digits
    params = {**FAST, "max_iter": 20, "tol": 1e9, "n_iter_no_change": 1}
    params["early_stopping"] = early_stopping
    plain = GaussianVAE(**params).fit(X)
    warmed = GaussianVAE(**params, kl_warmup_epochs=3).fit(X)
    assert plain.n_iter_ == 1 + 2
    assert warmed.n_iter_ == 3 + (2 if early_stopping else 1 + 2)


def test_partial_fit_runs_one_epoch_per_call(small_digits):
    X, _ = small_digits
    vae = SparseVAE(**FAST)
    for n_iter in (1, 2, 3):
        vae.partial_fit(X)
        assert vae.n_iter_ == n_iter == len(vae.loss_curve_)
    with pytest.raises(ValueError, match="X has 63 features, but SparseVAE is expecting 64"):
        vae.partial_fit(X[:, :-1])


def test_warm_start_continues_and_keeps_the_architecture(small_digits):
    X, _ = small_digits
    vae = SparseVAE(**{**FAST, "warm_start": True}).fit(X)
    module = vae.module_
    vae.fit(X)
    assert vae.module_ is module and vae.n_iter_ == 2 * FAST["max_iter"]
    with pytest.raises(ValueError, match="n_components=4 using n_components=5"):
        vae.set_params(n_components=5).fit(X)
    vae.set_params(n_components=4, warm_start=False).fit(X)
    assert vae.module_ is not module and vae.n_iter_ == FAST["max_iter"]


# -- outputs, persistence ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_keep_the_input_dtype(fitted, small_digits, dtype):
    X, _ = small_digits
    Z = fitted.transform(X.astype(dtype))
    assert Z.dtype == dtype and Z.shape == (len(X), 4)
    X_back = fitted.inverse_transform(Z)
    assert X_back.dtype == dtype and X_back.shape == X.shape


def test_pickle_and_joblib_round_trips(fitted, small_digits, tmp_path):
    X, _ = small_digits
    restored = [pickle.loads(pickle.dumps(fitted))]
    joblib.dump(fitted, tmp_path / "vae.joblib")
    restored.append(joblib.load(tmp_path / "vae.joblib"))
    for vae in restored:
        np.testing.assert_array_equal(vae.transform(X), fitted.transform(X))
        assert vae.score(X) == fitted.score(X)
        vae.partial_fit(X)  # the optimizer state travels with the model


def test_clone_gives_an_unfitted_copy(fitted):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "module_")


def test_feature_names_and_pandas_output(small_digits):
    pd = pytest.importorskip("pandas")
    X, _ = small_digits
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    vae = SparseVAE(**FAST).set_output(transform="pandas").fit(frame)
    Z = vae.transform(frame)
    assert list(Z.columns) == [f"sparsevae{i}" for i in range(4)]
    assert list(vae.get_feature_names_out()) == list(Z.columns)
    assert list(vae.feature_names_in_) == list(frame.columns)


def test_adam_is_fused_where_torch_has_the_kernel(fitted):
    # The fused kernel makes a CPU training step about 20% faster (benchmarks/README.md).
    assert fitted._optimizer.param_groups[0]["fused"] is True
    elsewhere = make_optimizer([torch.nn.Parameter(torch.zeros(2, device="meta"))])
    assert elsewhere.param_groups[0]["fused"] is None  # torch's default implementation


def test_inference_batches_are_larger_on_a_gpu_but_bounded_in_size():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert inference_batch_size(cpu, 784) == 4096  # a CPU batch stays in cache
    assert inference_batch_size(cpu, 784, draws=10) == 409
    assert inference_batch_size(cuda, 784, draws=10) == 6553  # 16 times the CPU's rows
    assert inference_batch_size(cuda, 20000) * 20000 <= 2**26  # wide data: 256 MB at most
    assert inference_batch_size(cuda, 10**9, draws=10) == 1


def test_flush_zeroes_only_subnormal_moments():
    parameter = torch.nn.Parameter(torch.zeros(5))
    optimizer = make_optimizer([parameter])
    parameter.grad = torch.ones(5)
    optimizer.step()
    values = torch.tensor([1e-39, -1e-40, 0.0, 1e-37, -2.5])  # two subnormal, three not
    for name in ("exp_avg", "exp_avg_sq"):
        optimizer.state[parameter][name].copy_(values)
    flush_subnormal_moments(optimizer)
    for name in ("exp_avg", "exp_avg_sq"):
        expected = torch.tensor([0.0, 0.0, 0.0, 1e-37, -2.5])
        assert torch.equal(optimizer.state[parameter][name], expected)


def test_training_flushes_subnormal_moments_across_partial_fit_calls(small_digits):
    # Pixel 0 of the digits is always 0, so the first layer's weights on it get exactly zero
    # gradients and their moments only decay: a subnormal value stays subnormal for thousands
    # of steps unless it is flushed. Calls of 3 steps each still flush every FLUSH_INTERVAL.
    # (Only on the CPU: GPUs compute on subnormal numbers at full speed.)
    X, _ = small_digits
    assert not X[:, 0].any()
    params = dict(hidden_layer_sizes=(8,), batch_size=50, random_state=0, device="cpu")
    vae = GaussianVAE(n_components=2, **params)
    vae.partial_fit(X[:150])
    state = vae._optimizer.state[vae.module_.encoder[0].weight]
    for name in ("exp_avg", "exp_avg_sq"):
        state[name][:, 0] = 1e-39
    while int(state["step"]) < FLUSH_INTERVAL - 3:
        vae.partial_fit(X[:150])
        assert (state["exp_avg_sq"][:, 0] != 0).all()  # decaying, not yet flushed
    vae.partial_fit(X[:150])
    for name in ("exp_avg", "exp_avg_sq"):
        assert not state[name][:, 0].any()


# -- bad input --------------------------------------------------------------------------------


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


BAD_DATA = [
    ("NaN", lambda X: _with(X, 0, 0, np.nan), ValueError, "Input X contains NaN"),
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


@pytest.mark.parametrize("method", ["fit", "partial_fit", "transform", "score"])
def test_bernoulli_refuses_data_outside_the_unit_interval(small_digits, method):
    X, _ = small_digits
    vae = SparseVAE(**{**FAST, "likelihood": "bernoulli"}).fit(X)
    snapshot = _snapshot(vae)
    with pytest.raises(ValueError, match=r"likelihood='bernoulli' needs data in \[0, 1\]"):
        getattr(vae, method)(X * 16)
    _assert_unchanged(vae, snapshot, X)


def test_refit_on_bad_frame_keeps_feature_names(small_digits):
    pd = pytest.importorskip("pandas")
    X, _ = small_digits
    columns = [f"pixel{i}" for i in range(X.shape[1])]
    vae = SparseVAE(**FAST).fit(pd.DataFrame(X, columns=columns))
    snapshot = _snapshot(vae)
    renamed = pd.DataFrame(_with(X, 0, 0, np.nan), columns=[c.upper() for c in columns])
    with pytest.raises(ValueError, match="Input X contains NaN"):
        vae.fit(renamed)
    _assert_unchanged(vae, snapshot, pd.DataFrame(X, columns=columns))
    assert list(vae.feature_names_in_) == columns


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


def test_unfitted_model_says_so():
    from sklearn.exceptions import NotFittedError

    for method, arg in [("transform", np.zeros((1, 2))), ("inverse_transform", np.zeros((1, 2)))]:
        with pytest.raises(NotFittedError):
            getattr(SparseVAE(), method)(arg)
    with pytest.raises(NotFittedError):
        SparseVAE().sample()


def test_stdout_is_clean_on_import():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", "import skvae"], capture_output=True, text=True, check=True
    )
    assert out.stdout == "" and out.stderr == ""
