"""Fitting: fit and partial_fit, warm start, the stopping rule and early stopping, divergence and
interruption, the KL warm-up, verbose output, and the training loop's parts.

Tests reach inside a fit through the estimators' seams, in small subclasses defined here:
``_run_epoch`` (one pass over the data) and ``_validation_split`` (the data early stopping
holds out), never by patching skvae's module globals.
"""

import copy
import pickle
import re
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import FAST, exact_log_likelihood, same_weights, weights
from sklearn.decomposition import FactorAnalysis
from sklearn.exceptions import ConvergenceWarning

import skvae
from skvae import GaussianVAE, SparseVAE
from skvae._training import (
    FLUSH_INTERVAL,
    StoppingRule,
    flush_subnormal_moments,
    inference_batch_size,
    make_optimizer,
    train_epoch,
)


def recording_splits(estimator_class):
    """A subclass of ``estimator_class`` whose early-stopping fits record the training and
    validation data they hold (``_validation_split``), and the list they go to."""
    splits = []

    class RecordingSplits(estimator_class):
        def _validation_split(self, X, device):
            splits.append(super()._validation_split(X, device))
            return splits[-1]

    return RecordingSplits, splits


def _as_array(X):
    """Data as held during fit (a tensor or a CSR matrix), as the estimators take it."""
    return X if sp.issparse(X) else X.cpu().numpy()


# -- fit and partial_fit ----------------------------------------------------------------------


def test_training_lowers_the_loss(small_digits):
    X, _ = small_digits
    vae = GaussianVAE(**{**FAST, "max_iter": 20}).fit(X)
    assert len(vae.loss_curve_) == vae.n_iter_ == 20
    assert vae.loss_curve_[-1] < vae.loss_curve_[0]
    assert vae.best_loss_ == min(vae.loss_curve_)
    assert vae.validation_scores_ is None and vae.best_validation_score_ is None


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
    exact = exact_log_likelihood(vae, X)
    elbo = vae.score_samples(X)
    assert elbo.mean() <= exact.mean() + 0.01
    assert exact.mean() - elbo.mean() < 0.1  # the bound is tight for a well-fitted model
    # And the model nearly reaches the maximum-likelihood linear Gaussian model.
    assert vae.score(X) > FactorAnalysis(n_components=2).fit(X).score(X) - 0.1


def test_partial_fit_runs_one_epoch_per_call(small_digits):
    X, _ = small_digits
    vae = SparseVAE(**FAST)
    for n_iter in (1, 2, 3):
        vae.partial_fit(X)
        assert vae.n_iter_ == n_iter == len(vae.loss_curve_)
    with pytest.raises(ValueError, match="X has 63 features, but SparseVAE is expecting 64"):
        vae.partial_fit(X[:, :-1])


def test_partial_fit_keeps_the_validation_record_of_an_early_stopping_fit(small_digits):
    # partial_fit refuses early_stopping=True (tests/test_input_validation.py); with it off, a
    # partial_fit continues the model and leaves what the last fit recorded on held-out data.
    X, _ = small_digits
    vae = SparseVAE(**{**FAST, "early_stopping": True}).fit(X)
    scores, best = list(vae.validation_scores_), vae.best_validation_score_
    assert len(scores) == 3 and best == max(scores)
    vae.set_params(early_stopping=False).partial_fit(X)
    assert vae.n_iter_ == len(vae.loss_curve_) == 4
    assert vae.validation_scores_ == scores and vae.best_validation_score_ == best
    # A new fit without early stopping starts a record without validation scores.
    vae.fit(X)
    assert vae.validation_scores_ is None and vae.best_validation_score_ is None


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


# -- the stopping rule and early stopping ------------------------------------------------------


def test_non_convergence_warns_and_convergence_does_not(small_digits, recwarn):
    X, _ = small_digits
    with pytest.warns(ConvergenceWarning, match=r"maximum iterations \(3\) reached") as caught:
        SparseVAE(**FAST).fit(X)
    assert caught[0].filename == __file__  # the warning points at the user's call
    # Without early stopping it names it: on a small table more epochs can overfit.
    assert "set early_stopping=True" in str(caught[0].message)
    with pytest.warns(ConvergenceWarning, match="increase max_iter.$"):
        SparseVAE(**{**FAST, "early_stopping": True}).fit(X)
    # A loose tolerance stops early without a warning: the first epoch improves on nothing,
    # and training stops after n_iter_no_change + 1 epochs that improve by less than tol.
    vae = SparseVAE(**{**FAST, "max_iter": 50, "tol": 100.0, "n_iter_no_change": 2}).fit(X)
    assert vae.n_iter_ == 4
    assert not [w for w in recwarn if issubclass(w.category, ConvergenceWarning)]


@pytest.mark.parametrize("early_stopping", [False, True])
def test_tol_none_runs_max_iter_epochs_without_a_warning(small_digits, early_stopping):
    X, _ = small_digits
    params = {**FAST, "max_iter": 6, "n_iter_no_change": 1, "early_stopping": early_stopping}
    # An unreachable tol stops after n_iter_no_change + 1 epochs without improvement...
    assert SparseVAE(**{**params, "tol": 1e9}).fit(X).n_iter_ == 3
    # ...and tol=None turns the rule off: every epoch runs, and none is a failure to converge.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vae = SparseVAE(**{**params, "tol": None}).fit(X)
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert vae.n_iter_ == len(vae.loss_curve_) == 6
    if early_stopping:
        assert len(vae.validation_scores_) == 6
    else:
        assert vae.best_loss_ == min(vae.loss_curve_)


def test_early_stopping_tracks_the_validation_elbo(small_digits):
    X, _ = small_digits
    vae = SparseVAE(**{**FAST, "max_iter": 8, "early_stopping": True}).fit(X)
    assert len(vae.validation_scores_) == vae.n_iter_
    assert vae.best_validation_score_ == max(vae.validation_scores_)
    assert vae.best_loss_ is None


def test_early_stopping_restores_the_best_weights(small_digits):
    X, _ = small_digits
    RecordingSparseVAE, splits = recording_splits(SparseVAE)
    params = dict(FAST, max_iter=200, early_stopping=True, tol=0.0, n_iter_no_change=1)
    vae = RecordingSparseVAE(**params).fit(X)
    (_, X_val), *_ = splits
    assert vae.n_iter_ < 200  # stopped early, after epochs that did not improve
    assert vae.validation_scores_[-1] < vae.best_validation_score_
    assert vae.score(_as_array(X_val)) == pytest.approx(vae.best_validation_score_, rel=1e-6)


def test_early_stopping_without_tol_keeps_the_best_weights(small_digits):
    # tol=None runs every epoch; the weights kept are still those of the best validation ELBO,
    # here not the last epoch's.
    X, _ = small_digits
    RecordingSparseVAE, splits = recording_splits(SparseVAE)
    params = dict(FAST, max_iter=10, early_stopping=True, tol=None)
    # A large step: the validation ELBO peaks in epoch 8 (seed 0).
    params.update(learning_rate=1e-1, batch_size=64)
    vae = RecordingSparseVAE(**params).fit(X)
    (_, X_val), *_ = splits
    assert vae.n_iter_ == len(vae.validation_scores_) == 10
    assert vae.validation_scores_[-1] < vae.best_validation_score_ == max(vae.validation_scores_)
    assert vae.score(_as_array(X_val)) == pytest.approx(vae.best_validation_score_, rel=1e-6)


def test_sparse_early_stopping_keeps_the_validation_rows_sparse(counts):
    RecordingSparseVAE, splits = recording_splits(SparseVAE)
    vae = RecordingSparseVAE(**{**FAST, "max_iter": 5, "early_stopping": True}).fit(counts)
    assert len(vae.validation_scores_) == vae.n_iter_
    (X_train, X_val), *_ = splits
    assert sp.issparse(X_train) and sp.issparse(X_val)
    assert X_train.shape[0] + X_val.shape[0] == counts.shape[0]
    assert vae.score(X_val) == pytest.approx(vae.best_validation_score_, rel=1e-6)


# -- the KL warm-up ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_rows, fraction", [(1, 0.1), (5, 0.99)])
def test_early_stopping_without_rows_to_train_on_says_which_parameter(n_rows, fraction):
    # train_test_split's message named test_size and train_size, which a VAE does not have.
    X = np.random.RandomState(0).normal(size=(n_rows, 3))
    vae = GaussianVAE(**FAST, early_stopping=True, validation_fraction=fraction)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # refused before "one row" is warned of
        with pytest.raises(ValueError, match="leaves none to train on; lower validation_fraction"):
            vae.fit(X)


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


# -- divergence and interruption --------------------------------------------------------------


def test_divergence_restores_the_last_finite_state_and_warns(small_digits):
    X, _ = small_digits
    vae = SparseVAE(**{**FAST, "warm_start": True}).fit(X)
    before = weights(vae)
    vae.set_params(learning_rate=1e20)  # absurd: the weights overflow to inf, the loss to nan
    with pytest.warns(ConvergenceWarning, match=r"diverged in epoch 4 with a nan loss") as caught:
        vae.fit(X)
    assert caught[0].filename == __file__
    assert vae.n_iter_ == 3 and len(vae.loss_curve_) == 3
    assert same_weights(weights(vae), before)
    with pytest.warns(ConvergenceWarning, match=r"diverged in epoch 4") as caught:
        vae.partial_fit(X)  # one more frame in between, which the warning skips as well
    assert caught[0].filename == __file__ and same_weights(weights(vae), before)
    assert all(torch.isfinite(w).all() for w in weights(vae).values())
    assert np.isfinite(vae.transform(X)).all()


def test_a_fit_without_a_single_finite_step_raises_and_keeps_the_old_model(small_digits):
    X, _ = small_digits
    vae = SparseVAE(**FAST).fit(X)
    module, before = vae.module_, weights(vae)
    vae.set_params(learning_rate=1e20)
    with pytest.raises(ValueError, match="could not make a single finite training step"):
        vae.fit(X)
    assert vae.module_ is module and same_weights(weights(vae), before)
    assert vae.n_iter_ == 3


@pytest.mark.parametrize("estimator", [GaussianVAE, SparseVAE])
def test_a_last_step_that_breaks_the_model_is_caught(small_digits, estimator):
    # An epoch's loss is taken before each step: a chunk of one batch at a huge learning rate
    # once left finite weights that scored -inf (or a prior scale that overflowed to NaN),
    # and every later chunk "restored" them.
    X, _ = small_digits
    params = {**FAST, "learning_rate": 1e4 if estimator is GaussianVAE else 100.0}
    with pytest.raises(ValueError, match="could not make a single finite training step"):
        estimator(**params).partial_fit(X[:100])
    with pytest.raises(ValueError, match="could not make a single finite training step"):
        estimator(**{**params, "max_iter": 50}).fit(X[:100])


@pytest.mark.parametrize("where", ["training", "snapshot", "bookkeeping"])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_interrupted_fit_keeps_the_last_completed_epoch(
    small_digits, monkeypatch, where, early_stopping
):
    # Ctrl-C during the third epoch: in its training pass, while the state it would return
    # to is copied, or after it trained, while the stopping rule records it.
    X, _ = small_digits
    params = {**FAST, "early_stopping": early_stopping, "tol": None}
    reference = SparseVAE(**{**params, "max_iter": 2}).fit(X)
    calls = []

    def third_call(method):
        def interrupted(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return method(self, *args, **kwargs)

        return interrupted

    if where == "training":
        monkeypatch.setattr(SparseVAE, "_run_epoch", third_call(SparseVAE._run_epoch))
    elif where == "snapshot":
        monkeypatch.setattr(SparseVAE, "_training_state", third_call(SparseVAE._training_state))
    else:
        monkeypatch.setattr(StoppingRule, "update", third_call(StoppingRule.update))
    vae = SparseVAE(**{**params, "max_iter": 5})
    with pytest.warns(UserWarning, match=r"interrupted during epoch 3.*epoch \(2\)") as caught:
        vae.fit(X)
    assert caught[0].filename == __file__
    assert vae.n_iter_ == 2 and vae.loss_curve_ == reference.loss_curve_
    assert vae.validation_scores_ == reference.validation_scores_
    assert same_weights(weights(vae), weights(reference))
    monkeypatch.undo()
    vae.set_params(early_stopping=False).partial_fit(X)  # training goes on from there
    assert vae.n_iter_ == 3


@pytest.mark.parametrize("grad_mode", [torch.no_grad, torch.inference_mode])
def test_training_does_not_depend_on_the_callers_grad_mode(small_digits, grad_mode):
    # Under the caller's no_grad() or inference_mode(), fit raised torch's "element 0 of
    # tensors does not require grad"; and a partial_fit that failed under inference_mode()
    # restored the optimizer's state as inference tensors, which no later step could update.
    X = small_digits[0]
    expected = GaussianVAE(**FAST).fit(X).partial_fit(X)
    with grad_mode():
        vae = GaussianVAE(**FAST).fit(X).partial_fit(X)
        with pytest.raises(ValueError, match="features"):
            vae.partial_fit(X[:, :10])
    assert same_weights(weights(vae), weights(expected))
    vae.partial_fit(X)  # outside it again
    assert np.isfinite(vae.transform(X)).all()
    assert not any(p.is_inference() for p in vae.module_.parameters())


def test_a_model_loaded_under_inference_mode_trains_afterwards(small_digits, tmp_path):
    # Unpickled or loaded under the caller's inference_mode(), its tensors were inference
    # tensors: the next partial_fit failed, and restoring the model failed with it.
    X = small_digits[0]
    vae = GaussianVAE(**FAST).fit(X)
    skvae.save(vae, tmp_path / "model.skv")
    with torch.inference_mode():
        copies = [pickle.loads(pickle.dumps(vae)), skvae.load(tmp_path / "model.skv")]
    expected = vae.partial_fit(X)
    for restored in copies:
        assert same_weights(weights(restored.partial_fit(X)), weights(expected))


def test_a_fit_that_fails_after_training_leaves_the_model_as_it_was(small_digits):
    # An error after epochs that trained (here a warning turned into one) restores the
    # weights, the optimizer state and the fitted record, not only the attributes.
    X, _ = small_digits
    vae = SparseVAE(**{**FAST, "warm_start": True}).fit(X)
    twin = copy.deepcopy(vae)
    before, loss_curve = weights(vae), list(vae.loss_curve_)
    optimizer = {
        k: v.clone() for k, v in vae._optimizer.state[vae.module_.encoder[0].weight].items()
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning):
            vae.fit(X)
    assert same_weights(weights(vae), before)
    assert vae.loss_curve_ == loss_curve and vae.n_iter_ == FAST["max_iter"]
    state = vae._optimizer.state[vae.module_.encoder[0].weight]
    assert all(torch.equal(state[k], v) for k, v in optimizer.items())
    # ... and the random state the fit drew from: the next fit continues as it would have.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae.fit(X)
        twin.fit(X)
    np.testing.assert_array_equal(vae.transform(X), twin.transform(X))


# -- verbose output ---------------------------------------------------------------------------


@pytest.mark.parametrize("stream", ["write only", None])
def test_verbose_takes_any_stdout(small_digits, monkeypatch, stream):
    # A stream with write and flush only (a logging redirector), or None (pythonw): fit
    # raised AttributeError on its isatty; MLPRegressor(verbose=True) runs.
    class Writer:
        def __init__(self):
            self.text = []

        def write(self, text):
            self.text.append(text)

        def flush(self):
            pass

    out = Writer() if stream else None
    monkeypatch.setattr(sys, "stdout", out)
    GaussianVAE(**{**FAST, "verbose": 1}).fit(small_digits[0])
    if out is not None:
        assert "".join(out.text).count("[GaussianVAE] Iteration") == FAST["max_iter"]


def test_verbose_prints_progress(small_digits, capsys):
    X, _ = small_digits
    SparseVAE(**{**FAST, "verbose": 1, "kl_warmup_epochs": 3}).fit(X)
    lines = capsys.readouterr().out.splitlines()
    pattern = (
        r"\[SparseVAE\] Iteration (\d+), loss = -?\d+\.\d{8}(?:, KL weight = ([\d.]+))?"
        r", time = \d+\.\d\ds"
    )
    matches = [re.fullmatch(pattern, line) for line in lines]
    assert [int(match.group(1)) for match in matches] == [1, 2, 3]
    # A warm-up of 3 epochs weights the KL term by 1/4, 1/2, 3/4 in them, and says so.
    assert [match.group(2) for match in matches] == ["0.25", "0.5", "0.75"]
    SparseVAE(**{**FAST, "verbose": 1}).fit(X)
    lines = capsys.readouterr().out.splitlines()
    assert [re.fullmatch(pattern, line).group(2) for line in lines] == [None] * 3


def test_the_convergence_warning_comes_after_the_progress_bar_closes(small_digits, monkeypatch):
    # Raised inside the bar, the warning was printed in the middle of a terminal's tqdm line.
    events = []

    class Recording(skvae._vae.ProgressReporter):
        def __exit__(self, *exc_info):
            events.append("closed")
            return super().__exit__(*exc_info)

    monkeypatch.setattr(skvae._vae, "ProgressReporter", Recording)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "showwarning", lambda *args, **kw: events.append("warned"))
        SparseVAE(**FAST).fit(small_digits[0])
    assert events == ["closed", "warned"]


def test_silent_by_default(small_digits, capsys):
    X, _ = small_digits
    SparseVAE(**FAST).fit(X)
    assert capsys.readouterr().out == ""


# -- the training loop's parts ----------------------------------------------------------------


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


def test_the_epoch_loss_is_summed_in_float64():
    # MLPClassifier sums its epoch loss in float64; in float32 the rounding of a sum over a
    # million rows passes the default tol of 1e-4, on which the stopping rule decides.
    n_batches = 20_000
    X = torch.zeros((n_batches, 1))
    losses = torch.rand(n_batches, generator=torch.Generator().manual_seed(0)) * 100
    batches = iter(losses)
    mean = train_epoch(
        lambda batch, noise: next(batches),
        X,
        batch_size=1,
        noise_width=1,
        generator=torch.Generator().manual_seed(0),
    )
    exact = losses.double().sum().item() / n_batches
    assert abs(mean - exact) < 1e-9 * exact
    running = torch.zeros(())  # what a float32 sum gives fails the bound above
    for loss in losses:
        running.add_(loss)
    assert abs(running.item() / n_batches - exact) > 1e-9 * exact


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
    # Wide data on the CPU: 16 MB at most (4096 rows of a 100,000-word vocabulary took 6 GB).
    assert inference_batch_size(cpu, 100_000) * 100_000 <= 2**22
    assert inference_batch_size(cpu, 100_000, draws=10) * 10 * 100_000 <= 2**22
    assert inference_batch_size(cpu, 10**9) == 1


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


def test_a_column_of_large_mean_and_small_spread_keeps_its_statistics():
    # Coordinates, timestamps, incomes: sums of squares of the values themselves cancel
    # their variance in float32 (this column's scale came out as 233 instead of 1.006).
    rng = np.random.RandomState(1)
    X = np.c_[1e6 + rng.randn(2000), rng.randn(2000)]
    params = {**FAST, "max_iter": 2, "tol": None}
    dense, sparse = GaussianVAE(**params).fit(X), GaussianVAE(**params).fit(sp.csr_matrix(X))
    for vae in (dense, sparse):  # dense X is read in float32, which rounds 1e6 + x to 1/16
        np.testing.assert_allclose(
            vae.module_.likelihood.loc_scale.cpu().numpy(), X.std(0), rtol=1e-3
        )
    assert dense.score(X) == pytest.approx(sparse.score(X), abs=1e-3)
