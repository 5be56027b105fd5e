"""Variational autoencoders as scikit-learn transformers: SparseVAE and GaussianVAE."""

import copy
import inspect
import io
import math
import sys
import textwrap
import time
import warnings
from contextlib import contextmanager, nullcontext
from functools import partial
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn import get_config
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import assert_all_finite, check_random_state, check_scalar
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.sparsefuncs import mean_variance_axis
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from . import _distributions
from ._module import ACTIVATIONS, LIKELIHOODS, UNBOUNDED_ACTIVATIONS, VAEModule
from ._training import (
    inference_batch_size,
    make_optimizer,
    predict,
    train_epoch,
    training_data,
    training_step,
)


def _check_random_state(random_state):
    """``check_random_state``, except that None draws fresh OS entropy.

    scikit-learn maps None to NumPy's global RandomState; drawing from it would advance the
    caller's global random state, which skvae never touches.
    """
    if random_state is None:
        return np.random.RandomState(np.random.SeedSequence().generate_state(4))
    return check_random_state(random_state)


def _torch_generator(random_state, device):
    """A torch.Generator on ``device`` seeded from a NumPy RandomState."""
    seed = int(random_state.randint(np.iinfo(np.int32).max))
    return torch.Generator(device=device).manual_seed(seed)


def _resolve_device(device):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device={device!r} is not a torch device: {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; "
            "use device='cpu' or device='auto'."
        )
    return resolved


def _available_device(device):
    """The device a model fitted on ``device`` should use here: it, or the CPU with a warning."""
    try:
        return _resolve_device(device)
    except ValueError:
        warnings.warn(
            f"The model was fitted on {device}, which is not available here; "
            "its weights are loaded on the CPU.",
            UserWarning,
            stacklevel=3,
        )
        return torch.device("cpu")


def _column_mean_std(X, device):
    """Per-feature mean and standard deviation of the training data (a tensor on the device,
    or a sparse matrix), as float32 tensors on ``device``."""
    if torch.is_tensor(X):
        # Sums of values and squares over chunks of rows, accumulated in float64: no
        # full-size temporary (NumPy's var materialises X - mean), and 0.03 s instead of
        # 0.5 s on MNIST (float64 reductions over the rows themselves take 0.2 s).
        total = torch.zeros(X.shape[1], dtype=torch.float64, device=device)
        total_of_squares = torch.zeros_like(total)
        for chunk in X.split(8192):
            total += chunk.sum(0).double()
            total_of_squares += chunk.square().sum(0).double()
        mean = total / X.shape[0]
        variance = (total_of_squares / X.shape[0] - mean.square()).clamp_min(0)
        return mean.float(), variance.sqrt().float()
    mean, variance = mean_variance_axis(X, axis=0)
    as_float32 = partial(torch.as_tensor, dtype=torch.float32, device=device)
    return as_float32(mean), as_float32(np.sqrt(variance))


def _progress_bar(verbose, n_epochs, name):
    """A tqdm bar over epochs under ``verbose`` on a terminal, if tqdm is installed (a
    context manager; it gives None when there is no bar).

    Otherwise (no tqdm, output to a file or a notebook's stream) progress is printed as
    lines in scikit-learn's format.
    """
    if not verbose or not sys.stdout.isatty():
        return nullcontext()
    try:
        from tqdm import tqdm
    except ImportError:
        return nullcontext()
    return tqdm(total=n_epochs, desc=name, unit="epoch", file=sys.stdout)


def _check_float32_range(X, name="X"):
    """skvae computes in float32: refuse values that would overflow to infinity there."""
    largest = np.finfo(np.float32).max
    if X.dtype == np.float64 and X.size and np.abs(X).max() > largest:
        raise ValueError(
            f"{name} has values beyond float32's range (|x| > {largest:.3g}), in which skvae "
            "computes; rescale it, e.g. with StandardScaler."
        )


def _value_range(values):
    """(min, max) of a float array in one pass; NaN if it holds a NaN."""
    if values.size == 0:
        return 0.0, 0.0
    if values.flags.writeable and values.dtype.isnative:
        low, high = torch.aminmax(torch.from_numpy(values))  # one multithreaded pass
        return low.item(), high.item()
    return values.min(), values.max()  # torch cannot wrap read-only memory


def _check_values(values, likelihood, estimator_name):
    """Refuse non-finite values, values beyond float32's range, and data the likelihood cannot
    model (outside ``likelihood.support``, or not integers where it needs counts).

    Valid data costs one min/max pass, a third of the passes the separate checks make; they
    run, to name the problem, only when that pass finds one (or when counts must be checked).
    As in scikit-learn, ``sklearn.set_config(assume_finite=True)`` skips the finiteness check.
    """
    largest = float(np.finfo(np.float32).max)
    low, high = likelihood.support
    found_low, found_high = _value_range(values)
    in_range = max(low, -largest) <= found_low and found_high <= min(high, largest)  # NaN: False
    if in_range and not likelihood.integer_valued:
        return
    if not get_config()["assume_finite"]:
        assert_all_finite(values, input_name="X", estimator_name=estimator_name)
    _check_float32_range(values)
    likelihood.check_data(values)


@contextmanager
def _unchanged_on_error(estimator):
    """Restore the estimator's attributes if the block raises.

    ``validate_data`` sets ``n_features_in_`` and ``feature_names_in_`` before all checks have
    passed; bad input must leave a fitted model as it was.
    """
    state = estimator.__dict__.copy()
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(state)
        raise


def _fill_doc(cls):
    """Put the parameter and attribute sections the estimators share into the docstring."""
    for key, text in [("shared_parameters", _SHARED_PARAMETERS), ("attributes", _ATTRIBUTES)]:
        section = textwrap.indent(text.strip("\n"), "    ").lstrip()
        cls.__doc__ = cls.__doc__.replace(f"%({key})s", section)
    activation = inspect.signature(cls).parameters["activation"].default
    cls.__doc__ = cls.__doc__.replace("%(activation)s", repr(activation))
    return cls


class _BaseVAE(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Base class of the VAE estimators; subclasses differ only in their prior.

    The prior is read from ``self.prior`` (and ``self.df`` for a Student-t prior): a
    constructor parameter of SparseVAE, a class attribute of GaussianVAE.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "likelihood": [StrOptions(set(LIKELIHOODS))],
        "posterior": [StrOptions(set(_distributions.POSTERIORS))],
        "beta": [Interval(Real, 0, None, closed="left")],
        "kl_warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "warm_start": ["boolean"],
        "n_mc_samples": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str],
        "verbose": ["verbose"],
    }

    prior = "normal"
    df = None

    def __init__(
        self,
        n_components=10,
        *,
        hidden_layer_sizes=(256, 128),
        activation="relu",
        likelihood="gaussian",
        posterior="normal",
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
        random_state=None,
        device="auto",
        verbose=0,
    ):
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.likelihood = likelihood
        self.posterior = posterior
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
        reset = not (self.warm_start and hasattr(self, "module_"))
        with _unchanged_on_error(self):  # bad input or a failed fit keeps the fitted model
            X, device = self._validate_fit_data(X, reset=reset)
            return self._fit(X, device, reset=reset, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Fit the model with one pass (epoch) over X, continuing from the current state.

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
        reset = not hasattr(self, "module_")
        with _unchanged_on_error(self):  # bad input or a failed fit keeps the fitted model
            X, device = self._validate_fit_data(X, reset=reset)
            return self._fit(X, device, reset=reset, incremental=True)

    def _architecture(self):
        """The constructor arguments of the torch module that these parameters describe."""
        hidden = self.hidden_layer_sizes
        hidden = (hidden,) if isinstance(hidden, Integral) else tuple(hidden)
        return {
            "n_components": self.n_components,
            "hidden_layer_sizes": hidden,
            "activation": self.activation,
            "prior": self.prior,
            "posterior": self.posterior,
            "likelihood": self.likelihood,
            "df": None if self.prior != "student-t" else float(self.df),
        }

    def _validate_fit_data(self, X, reset):
        device = _resolve_device(self.device)
        architecture = self._architecture()
        hidden = architecture["hidden_layer_sizes"]
        if not all(isinstance(h, Integral) and h > 0 for h in hidden):
            raise ValueError(f"hidden_layer_sizes must be positive integers, got {hidden}.")
        _distributions.check_kl_finite(self.posterior, self.prior, architecture["df"])
        if self.posterior == "cauchy" and (not hidden or self.activation in UNBOUNDED_ACTIVATIONS):
            raise ValueError(
                "posterior='cauchy' needs a bounded decoder: activation='tanh' or "
                f"'logistic' and at least one hidden layer (got activation="
                f"{self.activation!r}, hidden_layer_sizes={hidden}). A Cauchy code has no "
                "mean, so through a decoder that grows linearly in z the expected "
                "log-likelihood E_q[log p(x|z)] is -inf, and training diverges."
            )
        if not reset:
            for name, value in self.module_.architecture.items():
                if architecture[name] != value:
                    raise ValueError(
                        f"Cannot continue training a model fitted with {name}={value!r} "
                        f"using {name}={architecture[name]!r}; set warm_start=False, or "
                        "fit again, to train a new model."
                    )
        X = self._check_X(X, reset=reset)
        return X, device

    def _fit(self, X, device, *, reset, incremental):
        X_all = training_data(X, device)
        if reset:
            self._random_state = _check_random_state(self.random_state)
            init_generator = _torch_generator(self._random_state, "cpu")
            architecture = self._architecture()
            n_features = X.shape[1]
            self.module_ = VAEModule(n_features, **architecture, generator=init_generator)
            self.module_.architecture = architecture
            self.module_.to(device).reset_output(*_column_mean_std(X_all, device))
            self._optimizer = make_optimizer(self.module_.parameters())
            self._n_features_out = self.n_components
            self.n_iter_ = 0
            self.loss_curve_ = []
            self.best_loss_ = np.inf
        elif next(self.module_.parameters()).device != device:
            self.module_.to(device)
            # Loading the state casts the optimizer's moments onto the parameters' device.
            self._optimizer.load_state_dict(self._optimizer.state_dict())
        for group in self._optimizer.param_groups:
            group["lr"] = self.learning_rate

        early_stopping = self.early_stopping and not incremental
        if early_stopping:
            X, X_val = train_test_split(
                X, test_size=self.validation_fraction, random_state=self._random_state
            )
            X_val = training_data(X_val, device)
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
            best_state = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            if self.best_loss_ is None:
                self.best_loss_ = np.inf

        X = training_data(X, device) if early_stopping else X_all
        generator = _torch_generator(self._random_state, device)
        # A 0-d tensor rather than a float, so that a step captured as a CUDA graph reads the
        # weight each epoch sets during the KL warm-up.
        kl_weight = torch.tensor(float(self.beta), device=device)
        step = training_step(
            self.module_, self._optimizer, beta=kl_weight, batch_size=self.batch_size
        )
        name = type(self).__name__
        no_improvement_count = 0
        n_epochs = 1 if incremental else self.max_iter
        with _progress_bar(self.verbose, n_epochs, name) as bar:
            report = bar.write if bar else print
            self.module_.train()
            for _ in range(n_epochs):
                start = time.perf_counter()
                warmup = self._kl_warmup_factor(self.n_iter_ + 1)
                kl_weight.fill_(self.beta * warmup)
                state = self._training_state()  # what an interrupted or diverged epoch returns to
                try:
                    loss = train_epoch(
                        step,
                        X,
                        batch_size=self.batch_size,
                        n_components=self.n_components,
                        generator=generator,
                    )
                    finite = math.isfinite(loss) and self._weights_are_finite()
                    if finite and early_stopping:
                        score = float(self._elbo(X_val, device).mean())
                except KeyboardInterrupt:
                    self._set_training_state(state)
                    warnings.warn(
                        f"{name}: fit interrupted during epoch {self.n_iter_ + 1}; the model "
                        f"keeps the weights of the last completed epoch ({self.n_iter_}).",
                        UserWarning,
                        stacklevel=3,
                    )
                    break
                if not finite:
                    self._set_training_state(state)
                    cause = f"a {loss} loss" if not math.isfinite(loss) else "non-finite weights"
                    advice = (
                        f"Lower learning_rate (now {self.learning_rate}) or rescale the data, "
                        "e.g. with StandardScaler."
                    )
                    if self.n_iter_ == 0:
                        raise ValueError(
                            f"{name} could not make a single finite training step: the first "
                            f"epoch gave {cause}. {advice}"
                        )
                    warnings.warn(
                        f"{name}: training diverged in epoch {self.n_iter_ + 1} with {cause}; it "
                        f"stopped and restored the weights of epoch {self.n_iter_}. {advice}",
                        ConvergenceWarning,
                        stacklevel=3,
                    )
                    break
                self.n_iter_ += 1
                self.loss_curve_.append(loss)
                message = f"[{name}] Iteration {self.n_iter_}, loss = {loss:.2f}"
                if early_stopping:
                    self.validation_scores_.append(score)
                    improved = score > self.best_validation_score_ + self.tol
                    if score > self.best_validation_score_:
                        self.best_validation_score_ = score
                        best_state = {k: v.clone() for k, v in self.module_.state_dict().items()}
                    message += f", validation ELBO = {score:.2f}"
                elif warmup == 1:  # a warm-up epoch's loss weighs the KL less: not comparable
                    improved = loss < self.best_loss_ - self.tol
                    self.best_loss_ = min(self.best_loss_, loss)
                if warmup < 1:
                    message += f", KL weight = {self.beta * warmup:.3g}"
                    improved = True  # the warm-up epochs do not count towards n_iter_no_change
                no_improvement_count = 0 if improved else no_improvement_count + 1
                if bar:
                    bar.set_postfix_str(message.split(", ", 1)[1], refresh=False)
                    bar.update()
                elif self.verbose:
                    print(f"{message}, time = {time.perf_counter() - start:.2f}s")
                if no_improvement_count > self.n_iter_no_change:
                    if self.verbose:
                        what = "Validation ELBO" if early_stopping else "Training loss"
                        report(
                            f"{what} did not improve more than tol={self.tol} for "
                            f"{self.n_iter_no_change} consecutive epochs. Stopping."
                        )
                    break
            else:
                if not incremental:
                    warnings.warn(
                        f"{name}: maximum iterations ({self.max_iter}) reached and the ELBO has "
                        "not converged yet; increase max_iter.",
                        ConvergenceWarning,
                        stacklevel=3,
                    )
        if early_stopping and best_state is not None:
            self.module_.load_state_dict(best_state)
        self.module_.eval()
        return self

    def _kl_warmup_factor(self, epoch):
        """Share of ``beta`` that weighs the KL term in epoch ``epoch`` (counted from 1)."""
        return min(1.0, epoch / (self.kl_warmup_epochs + 1))

    def _training_state(self):
        """Copies of the module's and the optimizer's state, to return to."""
        module_state = {k: v.clone() for k, v in self.module_.state_dict().items()}
        return module_state, copy.deepcopy(self._optimizer.state_dict())

    def _set_training_state(self, state):
        module_state, optimizer_state = state
        self.module_.load_state_dict(module_state)
        self._optimizer.load_state_dict(optimizer_state)

    def _weights_are_finite(self):
        finite = [torch.isfinite(p).all() for p in self.module_.parameters()]
        return bool(torch.stack(finite).all())

    # -- inference -----------------------------------------------------------------------

    def _device(self):
        return next(self.module_.parameters()).device

    def _validate_data(self, X):
        check_is_fitted(self)
        return self._check_X(X, reset=False)

    def _check_X(self, X, reset):
        """Validated float data: a dense array, or a CSR matrix (batches are densified)."""
        X = validate_data(
            self,
            X,
            dtype=[np.float64, np.float32],
            accept_sparse=("csr", "csc"),
            reset=reset,
            ensure_all_finite=False,  # _check_values does it, in its single pass
        )
        if sp.issparse(X):
            X = X.tocsr()
        values = X.data if sp.issparse(X) else X  # implicit zeros suit every likelihood
        _check_values(values, LIKELIHOODS[self.likelihood], type(self).__name__)
        return X

    def _elbo(self, X, device):
        """ELBO of each row of X (array or device tensor), with fixed Monte Carlo noise.

        The same ``n_mc_samples`` uniform draws serve every row, so the result for a row does
        not depend on which other rows are scored with it, and the same call gives the same
        numbers every time.
        """
        generator = torch.Generator(device=device).manual_seed(0)
        noise = _distributions.uniform(
            (self.n_mc_samples, 1, self._n_features_out), generator, device=device
        )
        return self._predict(lambda x: self.module_.elbo(x, noise).mean(0), X, self.n_mc_samples)

    def _predict(self, function, X, draws=1):
        """``function`` of batches of X on the model's device, concatenated as a NumPy array;
        batches sized for the device and for ``draws`` decoder passes per row."""
        device = self._device()
        batch_size = inference_batch_size(device, self.n_features_in_, draws)
        return predict(function, X, device, batch_size)

    def transform(self, X):
        """Encode X as the location (mode) of the posterior q(z|x).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Data to encode.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_components)
            Latent codes, of the dtype of X (float32 or float64).
        """
        X = self._validate_data(X)
        Z = self._predict(self.module_.posterior_mode, X)
        return Z.astype(X.dtype, copy=False)

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
            one.
        """
        check_is_fitted(self)
        Z = check_array(X, dtype=[np.float64, np.float32])
        _check_float32_range(Z)
        if Z.shape[1] != self._n_features_out:
            raise ValueError(
                f"X has {Z.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self._n_features_out} latent components as input."
            )
        X_original = self._predict(lambda z: self.module_.decode(z).mean, Z)
        return self._with_feature_names(X_original.astype(Z.dtype, copy=False))

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
        device = self._device()
        generator = _torch_generator(_check_random_state(random_state), device)
        with torch.inference_mode():
            z = _distributions.sample(self.module_.prior(), (n_samples,), generator)
            X = _distributions.sample(self.module_.decode(z), (), generator)
        return self._with_feature_names(X.cpu().numpy().astype(np.float64))

    def _with_feature_names(self, X):
        """X as a pandas DataFrame with the fitted column names, if fitted on a DataFrame."""
        if not hasattr(self, "feature_names_in_"):
            return X
        import pandas as pd  # installed: the model was fitted on a DataFrame

        return pd.DataFrame(X, columns=self.feature_names_in_)

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
        X = self._validate_data(X)
        return self._elbo(X, self._device()).astype(np.float64)

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
        if "module_" in state:
            buffer = io.BytesIO()
            state["_torch_device"] = str(self._device())
            torch_state = {"module": state.pop("module_"), "optimizer": state.pop("_optimizer")}
            torch.save(torch_state, buffer)
            state["_torch_state"] = buffer.getvalue()
        return state

    def __setstate__(self, state):
        torch_state, device = state.pop("_torch_state", None), state.pop("_torch_device", None)
        super().__setstate__(state)
        if torch_state is not None:
            location = _available_device(device)
            loaded = torch.load(io.BytesIO(torch_state), map_location=location, weights_only=False)
            self.module_, self._optimizer = loaded["module"], loaded["optimizer"]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.sparse = True
        return tags


_SHARED_PARAMETERS = """
hidden_layer_sizes : array-like of int, default=(256, 128)
    Widths of the encoder's hidden layers; the decoder mirrors them. ``()`` makes both
    linear.

activation : {'relu', 'tanh', 'logistic', 'identity'}, default=%(activation)s
    Activation between hidden layers.

likelihood : {'gaussian', 'bernoulli', 'poisson', 'negative-binomial'}, default='gaussian'
    Observation model p(x|z). ``'gaussian'``: a normal with the decoder's output as mean and
    a learned per-feature scale (floored at 1e-3 times the mean feature standard
    deviation), so that :meth:`score` bounds a log-density. ``'bernoulli'``: data in [0, 1],
    binary or intensities such as MNIST pixels. ``'poisson'`` and ``'negative-binomial'``
    (mean from the decoder, a learned per-feature inverse dispersion, as in scvi-tools):
    counts such as bag-of-words. Data outside a likelihood's support raise a ValueError.

posterior : {'normal', 'cauchy'}, default='normal'
    Family of the approximate posterior q(z|x), a location and a scale per latent
    dimension given by the encoder. ``'cauchy'`` needs a bounded decoder
    (``activation='tanh'`` or ``'logistic'``): its codes have no mean, so through a ReLU
    or linear decoder the expected log-likelihood is -inf.

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

tol : float, default=1e-4
    Improvement, in nats per row, that resets the ``n_iter_no_change`` count: of the
    training loss, or of the validation ELBO under ``early_stopping``.

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

random_state : int, RandomState instance or None, default=None
    Seed of the weights, the minibatch order, the training noise and the validation split.
    None draws fresh entropy; NumPy's and torch's global random states are never used.

device : str, default='auto'
    Torch device to train and infer on: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ...;
    ``'auto'`` picks CUDA when it is available.

verbose : int, default=0
    Report the loss of every epoch when positive: a tqdm progress bar on a terminal when
    tqdm is installed, else one line per epoch.
"""

_ATTRIBUTES = """
module_ : torch.nn.Module
    The fitted torch module: ``encoder`` and ``decoder`` MLPs, ``likelihood`` head, and the
    prior's parameters as buffers.

n_features_in_ : int
    Number of features seen during :term:`fit`.

feature_names_in_ : ndarray of shape (`n_features_in_`,)
    Names of features seen during :term:`fit`. Defined only when `X` has feature names
    that are all strings.

n_iter_ : int
    Number of epochs run.

loss_curve_ : list of float
    Training loss (negative ELBO, with ``beta`` weighting the KL, in nats per row) of each
    epoch; a warm-up epoch's weight is smaller (``kl_warmup_epochs``).

best_loss_ : float or None
    Lowest training loss; None under ``early_stopping``.

validation_scores_ : list of float or None
    Validation ELBO of each epoch under ``early_stopping``, else None.

best_validation_score_ : float or None
    Best validation ELBO under ``early_stopping``, else None.
"""


@_fill_doc
class SparseVAE(_BaseVAE):
    """Variational autoencoder with a heavy-tailed, sparsity-inducing prior.

    The latent prior p(z) is a product of heavy-tailed laws: Cauchy (the Lévy alpha-stable
    law with alpha = 1) by default, Laplace, or Student-t. Most codes then sit near zero
    with a few large coordinates, so each latent dimension tends to mean more than under
    the Gaussian prior of :class:`GaussianVAE`. The KL term of the ELBO is taken in closed
    form where torch registers one for the (posterior, prior) pair (Cauchy-Cauchy,
    Normal-Laplace) and estimated by Monte Carlo, ``log q(z|x) - log p(z)`` at the sampled z,
    otherwise.

    Parameters
    ----------
    n_components : int, default=10
        Dimension of the latent code: the number of columns :meth:`transform` returns.

    prior : {'cauchy', 'laplace', 'student-t'}, default='cauchy'
        Family of the prior on each latent coordinate, with location 0 and scale 1.

    df : float, default=3.0
        Degrees of freedom of the Student-t prior; ignored by the other priors.

    %(shared_parameters)s

    Attributes
    ----------
    %(attributes)s

    See Also
    --------
    GaussianVAE : The same model with the standard normal prior.
    sklearn.decomposition.FactorAnalysis : Linear Gaussian latent variable model.
    sklearn.neural_network.BernoulliRBM : Another neural latent variable model.

    Notes
    -----
    The defaults come from measurements (``benchmarks/bench_heavy_tails.py``: digits,
    held-out ELBO, 3 seeds). ``activation='tanh'``, unlike GaussianVAE's ``'relu'``: the
    decoder saturates on the large codes a heavy-tailed prior allows instead of
    extrapolating them linearly, which gave the Cauchy prior a 1.4 to 1.7 nat better ELBO
    and sparser codes than ReLU. ``posterior='normal'``: a Cauchy posterior scored 8 to 9
    nats lower and, with the Bernoulli likelihood, left no active unit.

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

    _parameter_constraints: dict = {
        **_BaseVAE._parameter_constraints,
        "prior": [StrOptions({"cauchy", "laplace", "student-t"})],
        "df": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        n_components=10,
        *,
        prior="cauchy",
        df=3.0,
        hidden_layer_sizes=(256, 128),
        activation="tanh",
        likelihood="gaussian",
        posterior="normal",
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
            random_state=random_state,
            device=device,
            verbose=verbose,
        )
        self.prior = prior
        self.df = df


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
