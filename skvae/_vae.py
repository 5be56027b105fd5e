"""Variational autoencoders as scikit-learn transformers: SparseVAE and GaussianVAE."""

import copy
import inspect
import io
import math
import textwrap
import time
import warnings
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_scalar
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._families import LIKELIHOODS, POSITIVE, POSTERIORS, PRIORS
from ._module import ACTIVATIONS, VAEModule
from ._training import (
    ProgressReporter,
    StoppingRule,
    as_tensor,
    clone_state,
    column_mean_std,
    fixed_noise,
    inference_batch_size,
    make_optimizer,
    make_training_step,
    map_batches,
    train_epoch,
    training_data,
)
from ._validation import (
    allocation_errors,
    available_device,
    check_architecture,
    check_codes,
    check_data,
    check_finite_output,
    check_finite_scores,
    check_float32_value,
    check_params_in_use,
    family_params,
    has_missing,
    outside_stacklevel,
    random_state_or_entropy,
    resolve_device,
    torch_generator,
    unchanged_on_error,
)


class _Fitted(NamedTuple):
    """One attribute of the fitted state: how it is stored, and its entry in the docs."""

    name: str
    store: str  # "json": a plain value; "torch": torch.save'd; "random": a NumPy RandomState
    type: str = None  # numpydoc type; None for private state, left out of the docs
    doc: str = None


#: The fitted state, listed once: pickling, ``skvae.save``/``load`` and the Attributes section
#: of the docstrings read it. Values derived from it are properties (``_n_features_out``).
FITTED_STATE = (
    _Fitted(
        "module_",
        "torch",
        "torch.nn.Module",
        "The fitted torch module: ``encoder`` and ``decoder`` MLPs, ``likelihood`` head, and "
        "the prior's parameters (buffers, and the parameter ``prior_log_scale`` where the "
        "prior's scale is learned).",
    ),
    _Fitted("n_features_in_", "json", "int", "Number of features seen during :term:`fit`."),
    _Fitted(
        "feature_names_in_",
        "json",
        "ndarray of shape (`n_features_in_`,)",
        "Names of features seen during :term:`fit`. Defined only when `X` has feature names "
        "that are all strings.",
    ),
    _Fitted("n_iter_", "json", "int", "Number of epochs run."),
    _Fitted(
        "loss_curve_",
        "json",
        "list of float",
        "Training loss (negative ELBO, with ``beta`` weighting the KL, in nats per row; the "
        "negative importance-weighted bound when ``n_importance_samples`` > 1) of each "
        "epoch; a warm-up epoch's weight is smaller (``kl_warmup_epochs``).",
    ),
    _Fitted(
        "best_loss_",
        "json",
        "float or None",
        "Lowest training loss; None under ``early_stopping``.",
    ),
    _Fitted(
        "validation_scores_",
        "json",
        "list of float or None",
        "Validation ELBO of each epoch of the last :meth:`fit` under ``early_stopping``, "
        "else None (:meth:`partial_fit` leaves it as it was).",
    ),
    _Fitted(
        "best_validation_score_",
        "json",
        "float or None",
        "Best validation ELBO of the last :meth:`fit` under ``early_stopping``, else None.",
    ),
    _Fitted("_optimizer", "torch"),
    _Fitted("_random_state", "random"),
)


def _attributes_doc():
    """The Attributes section of the docstrings: the public entries of ``FITTED_STATE``."""
    entries = [
        f"{f.name} : {f.type}\n    " + "\n    ".join(textwrap.wrap(f.doc, 88))
        for f in FITTED_STATE
        if f.type
    ]
    return "\n\n".join(entries)


def _fill_doc(cls):
    """Put the parameter and attribute sections the estimators share into the docstring."""
    for key, text in [
        ("shared_parameters", _SHARED_PARAMETERS),
        ("attributes", _attributes_doc()),
    ]:
        section = textwrap.indent(text.strip("\n"), "    ").lstrip()
        cls.__doc__ = cls.__doc__.replace(f"%({key})s", section)
    for key in ("activation", "posterior"):
        default = inspect.signature(cls).parameters[key].default
        cls.__doc__ = cls.__doc__.replace(f"%({key})s", repr(default))
    # The options the registries hold when skvae is imported.
    for key, names in [
        ("priors", [name for name, family in PRIORS.items() if family.in_sparse_vae]),
        ("posteriors", list(POSTERIORS)),
        ("likelihoods", list(LIKELIHOODS)),
    ]:
        cls.__doc__ = cls.__doc__.replace(f"%({key})s", "{" + ", ".join(map(repr, names)) + "}")
    return cls


class _BaseVAE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class of the VAE estimators; subclasses differ only in their prior.

    The prior is read from ``self.prior`` (and the attributes its family's ``params`` name,
    such as ``self.df`` for a Student-t prior): constructor parameters of SparseVAE, class
    attributes of GaussianVAE.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "likelihood": [LIKELIHOODS.constraint()],
        "posterior": [POSTERIORS.constraint()],
        "posterior_params": [dict, None],
        "beta": [Interval(Real, 0, None, closed="left")],
        "kl_warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "warm_start": ["boolean"],
        "n_mc_samples": [Interval(Integral, 1, None, closed="left")],
        "n_importance_samples": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str],
        "verbose": ["verbose"],
    }

    prior = "normal"
    prior_scale = 1.0
    # The estimator parameters that set a prior hyper-parameter of the same name.
    _prior_hyperparameters = ()

    #: Whether full CUDA batches replay a captured graph of the training step; a subclass sets
    #: it to False to train with the eager step (the benchmarks time both).
    _cuda_graphs = True

    #: The torch module a fit builds; a benchmark's subclass sets a subclass of it to try
    #: another model (``bench_sparse_codes.py --prior-mixture``).
    _module_class = VAEModule

    def __init__(
        self,
        n_components=10,
        *,
        hidden_layer_sizes=(256, 128),
        activation="relu",
        likelihood="gaussian",
        posterior="normal",
        posterior_params=None,
        beta=1.0,
        kl_warmup_epochs=0,
        batch_size=128,
        learning_rate=1e-3,
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        warm_start=False,
        n_mc_samples=10,
        n_importance_samples=1,
        random_state=None,
        device="auto",
        verbose=0,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.likelihood = likelihood
        self.posterior = posterior
        self.posterior_params = posterior_params
        self.beta = beta
        self.kl_warmup_epochs = kl_warmup_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.warm_start = warm_start
        self.n_mc_samples = n_mc_samples
        self.n_importance_samples = n_importance_samples
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # -- fitting -------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the model to X by maximising the ELBO with Adam.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. A sparse matrix stays sparse: batches are densified as they
            are drawn.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._fit(X, incremental=False)

    def partial_fit(self, X, y=None):
        """Fit the model with one pass (epoch) over X, continuing from the current state.

        As in :class:`~sklearn.neural_network.MLPClassifier`, ``early_stopping=True`` is
        refused: one pass over a chunk has no held-out data to stop on. The stopping rule's
        other state carries over (``best_loss_``), and ``validation_scores_`` keeps what the
        last :meth:`fit` recorded.

        The first call builds the model from its chunk, as :meth:`fit` does from its data:
        each feature's mean and standard deviation in that chunk become the units the
        encoder (and the Gaussian likelihood) work in, and later chunks do not change them.
        Start with a chunk that represents the data: not a single row (which warns), nor
        the first rows of data sorted or grouped by a column, where a feature may be
        constant (its unit is then taken as 1).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, e.g. one chunk of a dataset too large for memory.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        return self._partial_fit(X)

    # Not named partial_fit: scikit-learn's _fit_context validates the parameters of a fitted
    # model's partial_fit only in the first call, and set_params may have changed them since.
    # Checking them costs microseconds; an epoch with a bad learning rate costs the model.
    @_fit_context(prefer_skip_nested_validation=True)
    def _partial_fit(self, X):
        if self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True (one pass over a chunk has "
                "no held-out data to stop on); set early_stopping=False, or use fit."
            )
        return self._fit(X, incremental=True)

    def _fit(self, X, *, incremental):
        """Validate, then build or continue the model, then train: one epoch (``incremental``)
        or up to ``max_iter``, under the stopping rule. Bad input, or a first epoch without a
        finite step, leaves a fitted model as it was."""
        continued = hasattr(self, "module_") and (incremental or self.warm_start)
        # Whatever the caller's grad mode: under its torch.no_grad() training had no
        # gradients, and under inference_mode() restoring the optimizer after an error made
        # its state inference tensors that the next step could not update.
        method = "partial_fit" if incremental else "fit"
        if continued:
            fix = "pass fewer rows per call, or lower batch_size or n_importance_samples"
        elif getattr(self, "_fitted_for", None):  # a VAEImputer's model: no partial_fit there
            fix = "lower its batch_size, hidden_layer_sizes or n_importance_samples"
        else:
            fix = (
                "lower batch_size, hidden_layer_sizes or n_importance_samples, or train on "
                "chunks of the rows with partial_fit"
            )
        with (
            torch.inference_mode(False),
            torch.enable_grad(),
            unchanged_on_error(self),
            allocation_errors(f"{type(self).__name__}.{method}", fix),
        ):
            device = resolve_device(self.device)
            check_architecture(
                self._architecture(), self.module_.architecture if continued else None
            )
            check_float32_value(self.beta, "beta")  # the KL weight is a float32 tensor
            X = check_data(self, X, reset=not continued, training=True)
            if self.early_stopping and not incremental:
                self._check_validation_rows(X.shape[0])  # before a warning about one row
            X_all = training_data(X, device)
            if continued:
                self._move_to(device)
            else:
                # One row has no spread; a Bernoulli model's encoder reads the data raw.
                raw = LIKELIHOODS[self.likelihood].encoder_input == "raw"
                if X.shape[0] == 1 and not raw:
                    start = (
                        "Start with a chunk that represents the data, or fit a sample."
                        if incremental
                        else "Fit more rows."
                    )
                    warnings.warn(
                        f"{type(self).__name__}.{method} builds the model from one row: each "
                        "feature's mean and spread, which the model keeps as its units, are "
                        "taken from it, and one row has no spread (it is taken as 1). "
                        f"{start}",
                        UserWarning,
                        stacklevel=outside_stacklevel(),
                    )
                architecture = {**self._architecture(), "missing_indicator": has_missing(X)}
                self._initialize(X.shape[1], device, architecture)
                self._start_output(X_all)
            for group in self._optimizer.param_groups:
                group["lr"] = float(self.learning_rate)  # not a NumPy scalar from a grid
            validation = self.early_stopping and not incremental
            if validation:
                del X_all  # on a GPU, before its rows are uploaded again as the split's
                X_train, X_val = self._validation_split(X, device)
            else:
                X_train, X_val = X_all, None
            self._train(X_train, X_val, device, incremental=incremental)
        return self

    def _initialize(self, n_features, device, architecture=None):
        """Build the module and its optimizer, and start the fitted history afresh: the one
        place a model is built (``fit``, ``partial_fit``, ``load``). The module is the one the
        parameters describe, or ``architecture`` (a loaded model's)."""
        self._random_state = random_state_or_entropy(self.random_state)
        generator = torch_generator(self._random_state, "cpu")
        architecture = architecture or self._architecture()
        self.module_ = self._module_class(n_features, **architecture, generator=generator)
        self.module_.to(device)
        self._optimizer = make_optimizer(self.module_.parameters())
        self.n_iter_, self.loss_curve_, self.best_loss_ = 0, [], np.inf
        self.validation_scores_ = self.best_validation_score_ = None

    def _start_output(self, X):
        """Start the decoder's output at the training data's per-feature mean and spread, and
        standardize what the encoder reads with them (after log1p for counts)."""
        mean_std = column_mean_std(X, self._device())
        self.module_.reset_output(*mean_std)
        if self.module_.encoder_log1p:
            mean_std = column_mean_std(X, self._device(), log1p=True)
        self.module_.reset_input(*mean_std)

    def _move_to(self, device):
        """Move a fitted model, with its optimizer's moments, onto ``device``."""
        if self._device() != device:
            self.module_.to(device)
            # Loading the state casts the optimizer's moments onto the parameters' device.
            self._optimizer.load_state_dict(self._optimizer.state_dict())

    def _check_validation_rows(self, n_rows):
        """Refuse an ``early_stopping`` split that leaves no row to train on."""
        n_val = math.ceil(self.validation_fraction * n_rows)  # as train_test_split counts
        if n_rows - n_val < 1:
            raise ValueError(
                f"early_stopping=True holds out validation_fraction={self.validation_fraction} "
                f"of the {n_rows} rows, which leaves none to train on; lower "
                "validation_fraction, pass more rows, or set early_stopping=False."
            )

    def _validation_split(self, X, device):
        """Training and validation rows for ``early_stopping``, each as held during fit
        (``_fit`` has checked that rows are left to train on)."""
        X_train, X_val = train_test_split(
            X, test_size=self.validation_fraction, random_state=self._random_state
        )
        return training_data(X_train, device), training_data(X_val, device)

    def _train(self, X, X_val, device, *, incremental):
        """One epoch over X (``incremental``), or up to ``max_iter`` stopped by the stopping
        rule (on the ELBO of ``X_val`` if given), ending with the rule's best weights."""
        n_epochs = 1 if incremental else self.max_iter
        rule = StoppingRule(
            self.tol,
            self.n_iter_no_change,
            validation=X_val is not None,
            best_loss=np.inf if self.best_loss_ is None else self.best_loss_,
        )
        generator = torch_generator(self._random_state, device)
        # A 0-d tensor rather than a float, so that a step captured as a CUDA graph reads the
        # weight each epoch sets during the KL warm-up.
        kl_weight = torch.tensor(float(self.beta), device=device)
        step = make_training_step(
            self.module_,
            self._optimizer,
            beta=kl_weight,
            batch_size=self.batch_size,
            n_importance_samples=self.n_importance_samples,
            cuda_graphs=self._cuda_graphs,
        )
        self.loss_curve_ = list(self.loss_curve_)  # a new list: a failed fit restores the old one
        self.module_.train()
        unconverged = None
        with ProgressReporter(self.verbose, n_epochs, type(self).__name__) as progress:
            for _ in range(n_epochs):
                # Ctrl-C anywhere in an epoch, its bookkeeping included, undoes the epoch.
                marks = state = None
                try:
                    marks = self.n_iter_, len(self.loss_curve_), rule.marks()
                    state = self._training_state()
                    start = time.perf_counter()
                    warmup = self._kl_warmup_factor(self.n_iter_ + 1)
                    kl_weight.fill_(self.beta * warmup)
                    result = self._guarded_epoch(step, X, X_val, generator, state)
                    if result is None:  # diverged, and restored
                        break
                    loss, score = result
                    stop = rule.update(self.module_, loss, score, warmup=warmup < 1)
                    self.n_iter_ += 1
                    self.loss_curve_.append(loss)
                    shown_weight = self.beta * warmup if warmup < 1 else None
                    elapsed = time.perf_counter() - start
                    progress.epoch(
                        self.n_iter_, loss, elapsed, score=score, kl_weight=shown_weight
                    )
                except KeyboardInterrupt:
                    self._undo_interrupted_epoch(state, marks, rule)
                    break
                if stop:
                    progress.write(
                        f"{rule.monitored} did not improve more than tol={self.tol} for "
                        f"{self.n_iter_no_change} consecutive epochs. Stopping."
                    )
                    break
            else:
                if not incremental and self.tol is not None:
                    fix = (
                        "increase max_iter."
                        if self.early_stopping
                        else "increase max_iter, or set early_stopping=True to stop on the ELBO "
                        "of held-out rows (on a small data set the training ELBO can keep "
                        "rising while the model overfits)."
                    )
                    name = type(self).__name__
                    message = (
                        f"{name}: maximum iterations ({self.max_iter}) reached and the ELBO "
                        f"has not converged yet; {fix}"
                    )
                    owner = getattr(self, "_fitted_for", None)  # fitted by a VAEImputer
                    if owner:
                        message = (
                            f"{owner}'s estimator, {message} Set these on the estimator: "
                            f"{owner}(estimator={name}(max_iter=...))."
                        )
                    unconverged = message
        if unconverged:  # after the progress bar has closed, so that it does not cut the bar
            warnings.warn(unconverged, ConvergenceWarning, stacklevel=outside_stacklevel())
        rule.restore_best(self.module_)
        self.module_.eval()
        self.best_loss_ = rule.best_loss
        if not incremental:  # a partial_fit leaves the last fit's record
            self.validation_scores_ = rule.validation_scores
            self.best_validation_score_ = rule.best_validation_score

    def _undo_interrupted_epoch(self, state, marks, rule):
        """Return to the end of the last completed epoch after Ctrl-C: the module and
        optimizer to ``state``, the record and the stopping rule to ``marks`` (either None
        if the interrupt came before it was taken, when nothing had changed yet)."""
        if state is not None:
            self._set_training_state(state)
        if marks is not None:
            self.n_iter_, n_losses, rule_marks = marks
            del self.loss_curve_[n_losses:]
            rule.restore_marks(rule_marks)
        warnings.warn(
            f"{type(self).__name__}: fit interrupted during epoch {self.n_iter_ + 1}; the "
            f"model keeps the weights of the last completed epoch ({self.n_iter_}).",
            UserWarning,
            stacklevel=outside_stacklevel(),
        )

    def _guarded_epoch(self, step, X, X_val, generator, state):
        """One epoch of training, then the validation ELBO if ``X_val`` is given: ``(loss,
        score)``. An epoch ending with a non-finite loss, non-finite weights, or weights whose
        ELBO is not finite returns the module and optimizer to ``state``, their state before
        it, warns and gives None; a first epoch without a finite step raises instead."""
        name = type(self).__name__
        loss = self._run_epoch(step, X, generator)
        cause = None
        if not math.isfinite(loss):
            cause = f"a {loss} loss"
        elif not self._weights_are_finite():
            cause = "non-finite weights"
        elif not self._last_step_is_finite(X):
            cause = "weights whose ELBO is not finite"
        if cause is None:
            score = float(self._elbo(X_val).mean()) if X_val is not None else None
            return loss, score
        self._set_training_state(state)
        advice = (
            f"Lower learning_rate (now {self.learning_rate}) or rescale the data, "
            "e.g. with StandardScaler."
        )
        if self.n_iter_ == 0:
            raise ValueError(
                f"{name} could not make a single finite training step: the first epoch gave "
                f"{cause}. {advice}"
            )
        warnings.warn(
            f"{name}: training diverged in epoch {self.n_iter_ + 1} with {cause}; it stopped "
            f"and restored the weights of epoch {self.n_iter_}. {advice}",
            ConvergenceWarning,
            stacklevel=outside_stacklevel(),
        )
        return None

    def _run_epoch(self, step, X, generator):
        """One pass over X; the loss. The seam that tests and benchmarks wrap in a subclass
        (to interrupt a fit, or to score the model after each epoch)."""
        return train_epoch(
            step,
            X,
            batch_size=self.batch_size,
            noise_width=self.module_.noise_width,
            generator=generator,
            n_importance_samples=self.n_importance_samples,
        )

    def _architecture(self):
        """The constructor arguments of the torch module that these parameters describe."""
        hidden = self.hidden_layer_sizes
        hidden = (hidden,) if isinstance(hidden, Integral) else tuple(hidden)
        # Plain ints, as torch's sizes must be: True and np.int64(3) are Integral too.
        hidden = tuple(int(h) if isinstance(h, Integral) else h for h in hidden)
        # Family hyper-parameters: the prior's from the estimator parameter made for it
        # (SparseVAE's df), the posterior's from posterior_params; each defaults to its family's.
        # A prior parameter named like another estimator parameter (beta) is not read from it.
        prior = PRIORS[self.prior]
        prior_params = family_params(
            prior, {k: getattr(self, k) for k in prior.params if k in self._prior_hyperparameters}
        )
        posterior_params = family_params(POSTERIORS[self.posterior], self.posterior_params or {})
        return {
            "n_components": int(self.n_components),
            "hidden_layer_sizes": hidden,
            "activation": self.activation,
            "prior": self.prior,
            "posterior": self.posterior,
            "likelihood": self.likelihood,
            "prior_params": prior_params,
            "posterior_params": posterior_params,
            "encoder_input": LIKELIHOODS[self.likelihood].encoder_input,
            "prior_scale": (
                self.prior_scale
                if self.prior_scale == "learned"
                else check_float32_value(self.prior_scale, "prior_scale", POSITIVE)
            ),
        }

    def _kl_warmup_factor(self, epoch):
        """Share of ``beta`` that weighs the KL term in epoch ``epoch`` (counted from 1)."""
        return min(1.0, epoch / (self.kl_warmup_epochs + 1))

    def _training_state(self):
        """Copies of the module's and the optimizer's state, to return to."""
        return clone_state(self.module_), copy.deepcopy(self._optimizer.state_dict())

    def _set_training_state(self, state):
        module_state, optimizer_state = state
        self.module_.load_state_dict(module_state)
        self._optimizer.load_state_dict(optimizer_state)

    def _last_step_is_finite(self, X):
        """Whether the weights after an epoch's last step give a finite ELBO on a batch of
        the training rows ``X``: the epoch's loss is taken before each step, so it cannot tell
        (a chunk of one batch, at a huge learning rate, once left a model scoring -inf)."""
        with torch.no_grad():
            batch = as_tensor(X[: self.batch_size], self._device())
            return bool(torch.isfinite(self.module_.elbo(batch, self._fixed_noise(1))).all())

    def _weights_are_finite(self):
        finite = [torch.isfinite(p).all() for p in self.module_.parameters()]
        return bool(torch.stack(finite).all())

    # -- inference -----------------------------------------------------------------------

    @property
    def _n_features_out(self):
        """The code's width, which ``get_feature_names_out`` reads (fitted models only)."""
        return self.module_.architecture["n_components"]

    def _device(self):
        return next(self.module_.parameters()).device

    def _check_fitted_data(self, X, support="clip"):
        """X validated for a fitted model: the same features, finite or missing (NaN)
        values, and those outside the likelihood's support clipped with a warning (scoring)
        or left as they are (``support='ignore'``: encoding, which does not need them in it)."""
        check_is_fitted(self)
        return check_data(self, X, reset=False, support=support)

    def _fixed_noise(self, n_draws, seed=0):
        """The fixed Monte Carlo noise of the ELBO and of the diagnostics."""
        return fixed_noise(n_draws, self.module_.noise_width, self._device(), seed)

    def _elbo(self, X):
        """ELBO of each row of X (array or device tensor), with fixed Monte Carlo noise.

        The same ``n_mc_samples`` uniform draws serve every row, so the result for a row does
        not depend on which other rows are scored with it, and the same call gives the same
        numbers every time.
        """
        check_params_in_use(self, "n_mc_samples")
        fix = f"lower n_mc_samples (now {self.n_mc_samples}), or pass fewer rows at a time"
        with self._allocating(X, fix):
            noise = self._fixed_noise(self.n_mc_samples)
        elbo = lambda x: self.module_.elbo(x, noise).mean(0)  # noqa: E731
        return self._map_batches(elbo, X, self.n_mc_samples, fix)

    def _allocating(self, X, fix="ask for fewer rows at a time"):
        """A context in which torch's allocator failures become a MemoryError that names
        this call on ``X`` and ``fix``."""
        return allocation_errors(f"This {type(self).__name__} call on {X.shape[0]} rows", fix)

    def _map_batches(self, function, X, draws=1, fix="ask for fewer rows at a time"):
        """``function`` of batches of X on the model's device, concatenated as a NumPy array;
        batches sized for the device and for ``draws`` decoder passes per row."""
        device = self._device()
        batch_size = inference_batch_size(device, self.n_features_in_, draws)
        with self._allocating(X, fix):
            return map_batches(function, X, device, batch_size)

    def transform(self, X):
        """Encode X as the deterministic code of the posterior q(z|x).

        The code is what the decoder reads at the posterior's location: the location (the
        mode of a normal posterior) itself, or with ``posterior='thresholded'`` or
        ``'thresholded-laplace'`` the soft-thresholded location, the median of q(h|x),
        exactly 0 where the location lies within the threshold, and with
        ``posterior='spike-and-slab'`` the slab's location where the gate is more likely on
        than off, else 0.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Latent codes, of the dtype of X (float32 or float64).
        """
        X = self._check_fitted_data(X, support="ignore")
        return self._map_batches(self.module_.code, X).astype(X.dtype, copy=False)

    def inverse_transform(self, X):
        """Decode latent codes into the mean of p(x|z).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Latent codes, as :meth:`transform` returns them.

        Returns
        -------
        X_original : ndarray or DataFrame of shape (n_samples, n_features)
            Decoder means (probabilities for ``likelihood='bernoulli'``), of the dtype of the
            codes; a pandas DataFrame with the training columns if the model was fitted on
            one, with the index of the codes if they are a DataFrame.
        """
        check_is_fitted(self)
        Z = check_codes(self, X)
        X_original = self._map_batches(lambda z: self.module_.decode(z).mean, Z)
        largest = float(np.abs(Z).max(initial=0))  # check_codes refused non-finite codes
        check_finite_output(
            X_original,
            self,
            "inverse_transform",
            why=f"the codes reach {largest:.3g}, far outside the prior. Decode codes on the "
            "scale that transform returns.",
        )
        index = X.index if hasattr(X, "iloc") else None  # a DataFrame's rows keep their labels
        return self._with_feature_names(X_original.astype(Z.dtype, copy=False), index)

    def sample(self, n_samples=1, random_state=None):
        """Generate random rows from the model: z from the prior, then x from p(x|z).

        Parameters
        ----------
        n_samples : int, default=1
            Number of rows to generate.
        random_state : int, RandomState instance or None, default=None
            Seed of the draw; None draws fresh entropy (the global RNG is not used).

        Returns
        -------
        X : ndarray or DataFrame of shape (n_samples, n_features)
            Generated rows; a pandas DataFrame with the training columns if the model was
            fitted on one. For the decoder mean of random codes instead, pass codes to
            :meth:`inverse_transform`.
        """
        check_is_fitted(self)
        check_scalar(n_samples, "n_samples", Integral, min_val=1)
        n_samples = int(n_samples)  # a NumPy integer's product below would wrap around
        width = max(self.n_features_in_, self.module_.noise_width)
        if n_samples * width >= 2**60:  # torch's storage size overflows int64 bytes
            raise ValueError(
                f"sample({n_samples}) asks for {n_samples * width:.3g} values at once, more "
                "than any memory holds; draw fewer rows per call."
            )
        generator = torch_generator(random_state_or_entropy(random_state), self._device())
        with torch.inference_mode(), allocation_errors(f"sample({n_samples})"):
            X = self.module_.sample(n_samples, generator)
        X = X.cpu().numpy().astype(np.float64)
        bad = ~np.isfinite(X)
        if bad.any():
            row, feature = np.argwhere(bad)[0]
            raise ValueError(
                f"{type(self).__name__}.sample drew {X[row, feature]} in row {row}, feature "
                f"{feature}: a draw of the prior, or its decoding, passed float32's range. "
                "This happens with very heavy tails (prior='student-t' with a small df), "
                "whose draws can pass it; a larger df avoids it."
            )
        return self._with_feature_names(X)

    def _with_feature_names(self, X, index=None):
        """X as a pandas DataFrame with the fitted column names (and ``index``), if fitted on
        a DataFrame."""
        if not hasattr(self, "feature_names_in_"):
            return X
        import pandas as pd  # installed: the model was fitted on a DataFrame

        return pd.DataFrame(X, columns=self.feature_names_in_, index=index)

    def score_samples(self, X):
        """Evidence lower bound (ELBO) of each row, in nats.

        ``E_q[log p(x|z)] - KL(q(z|x) || p(z))`` with ``beta=1`` whatever ``beta`` was used in
        training, so that it bounds ``log p(x)`` from below. Expectations are Monte Carlo
        averages over ``n_mc_samples`` draws of fixed noise (the KL is exact where torch
        registers a closed form): the same model and data always give the same numbers.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.

        Returns
        -------
        elbo : ndarray of shape (n_samples,)
            ELBO of each row.
        """
        X = self._check_fitted_data(X)
        elbo = self._elbo(X).astype(np.float64)
        check_finite_scores(elbo, f"{type(self).__name__}.score_samples")
        return elbo

    def score(self, X, y=None):
        """Mean ELBO of the rows of X, in nats (higher is better).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to score.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        score : float
            Mean of :meth:`score_samples`.
        """
        return float(np.mean(self.score_samples(X)))

    def __getstate__(self):
        # The torch state travels as torch.save bytes, so that unpickling can map it onto a
        # device that exists where it is loaded (a CUDA model on a CPU-only machine).
        state = dict(super().__getstate__())  # may be self.__dict__ itself: never mutate it
        torch_state = {
            f.name: state.pop(f.name)
            for f in FITTED_STATE
            if f.store == "torch" and f.name in state
        }
        if torch_state:
            buffer = io.BytesIO()
            torch.save(torch_state, buffer)
            state["_torch_device"] = str(self._device())
            state["_torch_state"] = buffer.getvalue()
        return state

    @torch.inference_mode(False)  # not inference tensors, which training could not update
    def __setstate__(self, state):
        torch_state, device = state.pop("_torch_state", None), state.pop("_torch_device", None)
        super().__setstate__(state)
        if torch_state is None:
            return
        # Where the weights were, or the CPU if that is missing here (and then the device
        # parameter says so, if it named the missing device).
        location = available_device(device, self)
        try:
            loaded = torch.load(io.BytesIO(torch_state), map_location=location, weights_only=False)
        except (ModuleNotFoundError, AttributeError) as error:
            # A class the pickle names is not there: a likelihood head registered from user
            # code whose registration has not run, or a class of another version of skvae.
            raise ValueError(
                f"This {type(self).__name__} cannot be unpickled: {error}. If the model uses "
                "a family registered from user code (a likelihood head, say), import or run "
                "that registration first; if it was pickled by another version of skvae, "
                "move it with skvae.save and skvae.load, which work across versions."
            ) from error
        module = loaded.get("module_")
        if set(loaded) != {f.name for f in FITTED_STATE if f.store == "torch"} or set(
            getattr(module, "architecture", ())
        ) != set(_MODULE_ARCHITECTURE):
            # A module of another version unpickles into this version's class with its own
            # attributes; one built with other constructor arguments (before the prior scale,
            # say) would fail later, in score or sample.
            raise ValueError(
                f"This {type(self).__name__} was pickled by another version of skvae, whose "
                "torch module this version cannot rebuild. Pickles are for the version that "
                "wrote them; to move a model between versions, use skvae.save and skvae.load."
            )
        self.__dict__.update(loaded)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.sparse = True
        tags.input_tags.allow_nan = True
        # Counts and Bernoulli data cannot be negative, and fit refuses them, as NMF's does.
        head = LIKELIHOODS.get(self.likelihood) if isinstance(self.likelihood, str) else None
        tags.input_tags.positive_only = head is not None and head.support[0] >= 0
        return tags


# The keys of VAEModule.architecture: its constructor's arguments but the data-dependent two.
_MODULE_ARCHITECTURE = tuple(
    name
    for name in inspect.signature(VAEModule).parameters
    if name not in ("n_features", "generator")
)

_SHARED_PARAMETERS = """
hidden_layer_sizes : array-like of int, default=(256, 128)
    Widths of the encoder's hidden layers; the decoder mirrors them. ``()`` makes both
    linear.

activation : {'relu', 'tanh', 'logistic', 'identity'}, default=%(activation)s
    Activation between hidden layers.

likelihood : %(likelihoods)s, default='gaussian'
    Observation model p(x|z). ``'gaussian'``: a normal with the decoder's output as mean and
    a learned per-feature scale (floored at 1e-3 times that feature's training standard
    deviation), so that :meth:`score` bounds a log-density. ``'bernoulli'``: data in [0, 1],
    binary or intensities such as MNIST pixels. ``'poisson'`` and ``'negative-binomial'``
    (mean from the decoder, a learned per-feature inverse dispersion, as in scvi-tools):
    counts such as bag-of-words. Data outside a likelihood's support raise a ValueError.

posterior : %(posteriors)s, default=%(posterior)s
    Family of the approximate posterior q(z|x), given by the encoder. ``'normal'`` and
    ``'cauchy'``: a location and a scale per latent dimension; ``'cauchy'`` needs a bounded
    decoder (``activation='tanh'`` or ``'logistic'``): its codes have no mean, so through a
    ReLU or linear decoder the expected log-likelihood is -inf. Two families put exact
    zeros in the codes, and change the generative model to match (see the user guide,
    "Exact zeros"): ``'thresholded'``, a normal posterior whose model decodes the
    soft-thresholded code (``'thresholded-laplace'``: the same with a Laplace posterior,
    which keeps fewer latent dimensions), and ``'spike-and-slab'``, whose model switches
    each code on with prior probability ``sparsity`` and draws its value from the prior.

posterior_params : dict, default=None
    Hyper-parameters of the posterior family, by name (as ``kernel_params`` in
    scikit-learn); None or a missing name takes the family's default:
    ``{'threshold': 0.5}`` for ``'thresholded'`` and ``'thresholded-laplace'`` (a float
    >= 0), ``{'sparsity': 0.5}`` for ``'spike-and-slab'`` (in (0, 1)); ``'normal'`` and
    ``'cauchy'`` have none. A name the family does not have raises a ValueError.

beta : float, default=1.0
    Weight of the KL term in the training objective (beta-VAE). :meth:`score` always uses
    1, the true ELBO.

kl_warmup_epochs : int, default=0
    Number of epochs at the start of training whose KL term is weighted less: epoch ``e``
    (counted from 1, over :meth:`fit` and :meth:`partial_fit` calls alike) uses
    ``beta * e / (kl_warmup_epochs + 1)``, and later epochs ``beta`` (Sønderby et al.,
    2016). It keeps latent dimensions from collapsing to the prior early in training, which
    a full KL weight can do before the decoder has learnt to use them, notably with large
    batches. It can also cost the sparse priors their sparsity: on natural-image patches
    with MLP decoders, three warm-up epochs left the codes dense (see the user guide).
    Warm-up epochs do not count towards ``n_iter_no_change``.

batch_size : int, default=128
    Rows per minibatch.

learning_rate : float, default=1e-3
    Step size of Adam.

max_iter : int, default=200
    Maximum number of epochs (passes over the training data).

tol : float or None, default=1e-4
    Improvement, in nats per row, that resets the ``n_iter_no_change`` count: of the
    training loss, or of the validation ELBO under ``early_stopping``. None turns the
    stopping rule off, as in :class:`~sklearn.linear_model.SGDClassifier`: :meth:`fit` runs
    all ``max_iter`` epochs, without a ConvergenceWarning (``early_stopping`` still keeps
    the weights of the epoch with the best validation ELBO).

n_iter_no_change : int, default=10
    Training stops after more than this many consecutive epochs without an improvement of
    ``tol``.

early_stopping : bool, default=False
    Hold out ``validation_fraction`` of the data, stop on its ELBO, and keep the weights
    of the epoch that scored best on it.

validation_fraction : float, default=0.1
    Share of the training data held out under ``early_stopping``.

warm_start : bool, default=False
    Continue training the fitted model (weights and optimizer state) on the next
    :meth:`fit` instead of starting anew. The architecture must stay the same.

n_mc_samples : int, default=10
    Monte Carlo draws per row used by :meth:`score_samples` and :meth:`score`.

n_importance_samples : int, default=1
    Draws k of z per row in the training objective. 1 trains on the ELBO; k > 1 on the
    k-sample importance-weighted bound of Burda et al. (2016), log (1/k) sum_k p(x|z_k)
    p(z_k) / q(z_k|x) (the prior-to-posterior ratio raised to ``beta``), which is tighter
    and gives models of higher log-likelihood, for k times the decoder passes per step.
    :meth:`score` still reports the ELBO, which understates such a model's likelihood;
    compare models trained with different k by :func:`skvae.diagnostics.log_likelihood`.
    ``loss_curve_`` records the negative bound trained on.

random_state : int, RandomState instance or None, default=None
    Seed of the weights, the minibatch order, the training noise and the validation split.
    None draws fresh entropy; NumPy's and torch's global random states are never used.

device : str, default='auto'
    Torch device to train and infer on: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ``'mps'``,
    ...; ``'auto'`` picks CUDA when torch sees a GPU that holds and reads back a tensor,
    else the CPU (with a warning if the GPU is there but unusable). ``fit`` refuses a named
    device that this machine or build of torch cannot use, with a ValueError.

verbose : int, default=0
    Report the loss of every epoch when positive: a tqdm progress bar on a terminal when
    tqdm is installed, else one line per epoch.
"""


@_fill_doc
class SparseVAE(_BaseVAE):
    """Variational autoencoder with a sparsity-inducing prior and sparse codes.

    The latent prior p(z) is a product of sparse, heavy-tailed laws: Laplace by default,
    Cauchy (the Lévy alpha-stable law with alpha = 1, the original proposal) or Student-t.
    By default the model decodes soft-thresholded codes (``posterior='thresholded'``),
    ``h = sign(z) max(|z| - 0.5, 0)``, so that the prior puts an atom at zero on each code and
    :meth:`transform` returns exact zeros for the dimensions an input leaves off; each
    dimension then means more than under the Gaussian prior of :class:`GaussianVAE`. The
    KL term of the ELBO is taken in closed form where torch registers one for the
    (posterior, prior) pair (Normal-Laplace, Cauchy-Cauchy) and estimated by Monte Carlo,
    ``log q(z|x) - log p(z)`` at the sampled z, otherwise.

    Parameters
    ----------
    n_components : int, default=10
        Dimension of the latent code: the number of columns :meth:`transform` returns.

    prior : %(priors)s, default='laplace'
        Family of the prior on each latent coordinate, with location 0 and the scale that
        ``prior_scale`` sets.

    df : float, default=3.0
        Degrees of freedom of the Student-t prior; ignored by the other priors.

    prior_scale : float or 'learned', default='learned'
        Scale of the prior on each latent coordinate. ``'learned'`` makes it a parameter of
        the model, one per coordinate, fitted with the networks by maximising the ELBO
        (empirical Bayes; it starts at 1): with thresholded codes it sets, for each
        dimension, how much of its prior mass lies in the dead zone, which the fixed scale
        of 1 can only do for all at once. The ELBO stays a bound of the model fitted, whose
        prior has the learned scales. A float fixes every scale to it; models saved before
        the scale was learned load with 1.

    %(shared_parameters)s

    Attributes
    ----------
    %(attributes)s

    prior_scale_ : ndarray of shape (n_components,)
        The prior's scale of each latent coordinate: the learned ones, or ``prior_scale``.

    See Also
    --------
    GaussianVAE : The same model with the standard normal prior.
    sklearn.decomposition.FactorAnalysis : Linear Gaussian latent variable model.
    sklearn.neural_network.BernoulliRBM : Another neural latent variable model.

    Notes
    -----
    The defaults come from measurements (``docs/experiments.rst``, "SparseVAE's
    defaults" and "A learned prior scale"). ``posterior='thresholded'``: with a normal
    posterior no prior makes the codes sparse (MNIST, 20,000 digits, 32 dimensions: Hoyer
    sparsity 0.25 for the Cauchy and the Laplace prior against GaussianVAE's 0.23, no exact
    zero). ``prior_scale='learned'``: a code pays in KL for being on or off, and a learned
    scale lets each dimension's prior match how often it is off; on all 60,000 MNIST digits
    it raised the test ELBO by 3.8 to 4.5 nats, to within 0.6 nats of GaussianVAE's or
    above it, with codes of Hoyer sparsity 0.61 to 0.70 and 59 to 74% exact zeros.
    ``beta=1``: ``beta=2`` gives sparser codes (72 to 82% zeros on MNIST, and on whitened
    image patches 18 to 23 Gabor-like filters of 25 against 14 to 17) for 2 to 4 nats of
    ELBO, but on the linear mixture of synthetic sources its MCC fell to 0.87 on one seed
    of six, and ``beta=1.5`` lost to FastICA on one post-nonlinear seed; the user guide has
    both as recipes. The spike-and-slab posterior put more zeros inside the dimensions in
    use on MNIST, but cost 22 nats and most Gabor-like filters on the patches.
    ``posterior='thresholded-laplace'`` met the MNIST zeros and likelihood targets at 32
    and 50 dimensions (71 to 82% zeros), but lost synthetic sources on two seeds of six,
    and kept 13 Gabor-like filters of 25 on the patches where the default keeps 21.
    ``prior='laplace'``: a normal posterior cannot match a Cauchy prior, so every unused
    dimension costs at least 0.18 nats (0.05 for Laplace), and on MNIST the Cauchy prior
    scored 4 nats lower with the same posterior.
    ``activation='tanh'``, unlike GaussianVAE's ``'relu'``: the decoder saturates on the
    large codes a heavy-tailed prior allows instead of extrapolating them linearly, which
    gave the Cauchy prior a 1.4 to 1.7 nat better ELBO and sparser codes than ReLU
    (``benchmarks/bench_heavy_tails.py``).

    References
    ----------
    D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.

    C. K. Sønderby, T. Raiko, L. Maaløe, S. K. Sønderby and O. Winther, "Ladder variational
    autoencoders", NeurIPS 2016 (``kl_warmup_epochs``).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skvae import SparseVAE
    >>> X, _ = load_digits(return_X_y=True)
    >>> vae = SparseVAE(n_components=4, max_iter=5, random_state=0).fit(X / 16)
    >>> vae.transform(X[:3] / 16).shape
    (3, 4)
    >>> vae.sample(2, random_state=0).shape
    (2, 64)
    """

    _prior_hyperparameters = ("df",)

    _parameter_constraints: dict = {
        **_BaseVAE._parameter_constraints,
        "prior": [PRIORS.constraint(where=lambda family: family.in_sparse_vae)],
        "df": [Interval(Real, 0, None, closed="neither")],
        "prior_scale": [StrOptions({"learned"}), Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        n_components=10,
        *,
        prior="laplace",
        df=3.0,
        prior_scale="learned",
        hidden_layer_sizes=(256, 128),
        activation="tanh",
        likelihood="gaussian",
        posterior="thresholded",
        posterior_params=None,
        beta=1.0,
        kl_warmup_epochs=0,
        batch_size=128,
        learning_rate=1e-3,
        max_iter=200,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        warm_start=False,
        n_mc_samples=10,
        n_importance_samples=1,
        random_state=None,
        device="auto",
        verbose=0,
    ):
        super().__init__(
            n_components,
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            likelihood=likelihood,
            posterior=posterior,
            posterior_params=posterior_params,
            beta=beta,
            kl_warmup_epochs=kl_warmup_epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            max_iter=max_iter,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            warm_start=warm_start,
            n_mc_samples=n_mc_samples,
            n_importance_samples=n_importance_samples,
            random_state=random_state,
            device=device,
            verbose=verbose,
        )
        self.prior = prior
        self.df = df
        self.prior_scale = prior_scale

    @property
    def prior_scale_(self):
        check_is_fitted(self)
        with torch.no_grad():
            return self.module_.prior_scales().detach().cpu().numpy().astype(np.float64)


@_fill_doc
class GaussianVAE(_BaseVAE):
    """Variational autoencoder with the standard normal prior N(0, I).

    The classic VAE of Kingma and Welling, and the baseline for :class:`SparseVAE`. With the
    default normal posterior the KL term is exact (torch's closed form). A Cauchy posterior
    is refused: its KL to a normal prior is infinite.

    Parameters
    ----------
    n_components : int, default=10
        Dimension of the latent code: the number of columns :meth:`transform` returns.

    %(shared_parameters)s

    Attributes
    ----------
    %(attributes)s

    See Also
    --------
    SparseVAE : The same model with a heavy-tailed sparse prior.
    sklearn.decomposition.FactorAnalysis : Linear Gaussian latent variable model.

    References
    ----------
    D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.

    C. K. Sønderby, T. Raiko, L. Maaløe, S. K. Sønderby and O. Winther, "Ladder variational
    autoencoders", NeurIPS 2016 (``kl_warmup_epochs``).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skvae import GaussianVAE
    >>> X, _ = load_digits(return_X_y=True)
    >>> vae = GaussianVAE(n_components=4, max_iter=5, random_state=0).fit(X / 16)
    >>> vae.transform(X[:3] / 16).shape
    (3, 4)
    >>> vae.inverse_transform(vae.transform(X[:3] / 16)).shape
    (3, 64)
    """
