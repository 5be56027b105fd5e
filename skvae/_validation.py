"""Checks of what users pass in: data, codes, devices, random states and architectures.

Each check raises an error that names the problem and the fix. The estimators call them at
their boundary, once per call; nothing past it validates again (distributions are built with
``validate_args=False`` in the hot loop).
"""

import copy
import math
import os
import sys
import warnings
from contextlib import contextmanager
from numbers import Integral

import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
import torch
from sklearn import get_config
from sklearn.utils import assert_all_finite, check_random_state
from sklearn.utils._param_validation import validate_parameter_constraints
from sklearn.utils.sparsefuncs import mean_variance_axis
from sklearn.utils.validation import check_array, validate_data

from ._families import LIKELIHOODS, MAX_RATE, POSTERIORS, check_kl_finite, shown
from ._module import UNBOUNDED_ACTIVATIONS
from ._training import torch_can_wrap


def random_state_or_entropy(random_state):
    """``check_random_state``, except that None draws fresh OS entropy.

    scikit-learn maps None to NumPy's global RandomState; drawing from it would advance the
    caller's global random state, which skvae never touches.
    """
    if random_state is None:
        return np.random.RandomState(np.random.SeedSequence().generate_state(4))
    return check_random_state(random_state)


def check_params_in_use(estimator, *names):
    """Validate parameters that a fitted model reads after fit (``set_params`` changes them
    without a refit, as ``n_mc_samples`` for scoring), with the error that fit gives; not
    under scikit-learn's ``skip_parameter_validation``."""
    if get_config()["skip_parameter_validation"]:
        return
    validate_parameter_constraints(
        {name: estimator._parameter_constraints[name] for name in names},
        {name: getattr(estimator, name) for name in names},
        caller_name=type(estimator).__name__,
    )


def torch_generator(random_state, device):
    """A torch.Generator on ``device`` seeded from a NumPy RandomState."""
    seed = int(random_state.randint(np.iinfo(np.int32).max))
    return torch.Generator(device=device).manual_seed(seed)


def resolve_device(device):
    """The torch device that the ``device`` parameter names, CUDA with its index (so that
    ``'cuda'`` compares equal to a model's ``cuda:0``); a ValueError if unavailable.
    ``'auto'`` is CUDA where torch has a GPU that holds and reads back a tensor, else the CPU
    (with a warning if a GPU is there but unusable)."""
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        # Probed before asking for the current GPU, which starts CUDA, where an unusable
        # GPU's errors come from.
        reason = _unusable(torch.device("cuda"))
        if reason is None:
            return torch.device("cuda", torch.cuda.current_device())
        warnings.warn(
            f"torch sees a CUDA GPU but cannot use it ({reason}); device='auto' uses the CPU.",
            UserWarning,
            stacklevel=outside_stacklevel(),
        )
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device={device!r} is not a torch device: {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; "
            "use device='cpu' or device='auto'."
        )
    reason = _unusable(resolved)
    if reason is not None:
        raise ValueError(
            f"device={device!r} is not usable here ({reason}); use device='cpu' or device='auto'."
        )
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", torch.cuda.current_device())
    return resolved


def _unusable(device):
    """Why torch cannot hold and read back a tensor on ``device``, or None if it can: this
    build may lack the backend (mps, xpu, hpu), the index may not exist (cuda:3), the device
    may hold no data (meta), or the GPU may be unsupported or taken. torch raises a
    different exception for each."""
    if device.type == "cpu":
        return None
    try:
        torch.zeros(1, device=device).cpu()
    except Exception as exc:  # noqa: BLE001
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def available_device(device, estimator=None):
    """The device a model fitted on ``device`` should use here: it, or the CPU with a warning
    at the first frame outside the libraries (whoever unpickles or loads). On the CPU,
    ``estimator``'s ``device`` parameter is set to ``'cpu'`` if it named the missing device
    (``'auto'`` stays): otherwise its next ``partial_fit`` would fail."""
    try:
        return resolve_device(device)
    except ValueError:
        cpu = torch.device("cpu")
        changed = estimator is not None and match_device_param(estimator, cpu)
        warnings.warn(
            f"The model was fitted on {device}, which is not available here; its weights are "
            "loaded on the CPU" + (", and its device parameter set to 'cpu'." if changed else "."),
            UserWarning,
            stacklevel=outside_stacklevel(),
        )
        return cpu


def match_device_param(estimator, location):
    """Set ``estimator``'s ``device`` parameter to ``location``, where its weights were
    loaded, unless it names that device already (``'auto'`` on the device it picks), and
    say whether it changed: a model loaded elsewhere than its parameter says would
    otherwise fail in, or move back on, its next ``partial_fit``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unusable GPU's warning, for 'auto'
            if resolve_device(estimator.device) == location:
                return False
    except ValueError:
        pass
    estimator.device = str(location)
    return True


def family_params(family, given):
    """Values of ``family``'s hyper-parameters: those in ``given`` (a dict), else the family's
    defaults; a name the family does not have, or a value its constraint refuses, raises."""
    unknown = set(given) - set(family.params)
    if unknown:
        known = ", ".join(map(repr, family.params)) or "none"
        unknown = ", ".join(map(repr, sorted(unknown)))
        raise ValueError(
            f"The {family.kind} {family.name!r} has no parameter {unknown}; its parameters "
            f"are: {known}."
        )
    values = {name: given.get(name, default) for name, default in family.params.items()}
    for name, constraint in family.constraints.items():
        if not constraint.is_satisfied_by(values[name]):
            raise ValueError(
                f"The {family.kind} {family.name!r} needs {name} to be {constraint}, got "
                f"{values[name]!r}."
            )
    return {
        name: check_float32_value(
            value,
            f"{name} of the {family.kind} {family.name!r}",
            family.constraints.get(name),
        )
        for name, value in values.items()
    }


def check_float32_value(value, name, constraint=None):
    """``value`` as a float, refused if skvae, which computes in float32, would see it
    otherwise: beyond float32's range, or rounded out of ``constraint`` (a sparsity of
    0.99999999 is 1 there, a scale of 1e-46 is 0)."""
    with np.errstate(over="ignore"):
        rounded = np.float32(value)
    if not np.isfinite(rounded) or (
        constraint is not None and not constraint.is_satisfied_by(float(rounded))
    ):
        shown_constraint = f" and {constraint}" if constraint is not None else ""
        raise ValueError(
            f"{name} is {value!r}, which is {float(rounded)!r} in float32, the precision "
            f"skvae computes in; it must be finite{shown_constraint} there."
        )
    return float(value)


def check_architecture(architecture, fitted=None):
    """Refuse an architecture that cannot be trained: hidden layers that are not positive
    integers, a (posterior, prior) pair with an infinite KL, a posterior without a mean behind
    an unbounded decoder, or (``fitted``: a fitted module's architecture) a change of it."""
    hidden = architecture["hidden_layer_sizes"]
    if not all(isinstance(h, Integral) and h > 0 for h in hidden):
        raise ValueError(f"hidden_layer_sizes must be positive integers, got {hidden}.")
    posterior, activation = architecture["posterior"], architecture["activation"]
    check_kl_finite(
        posterior,
        architecture["prior"],
        architecture["prior_params"],
        architecture["posterior_params"],
    )
    if not POSTERIORS[posterior].has_mean and (not hidden or activation in UNBOUNDED_ACTIVATIONS):
        raise ValueError(
            f"posterior={posterior!r} needs a bounded decoder: activation='tanh' or "
            f"'logistic' and at least one hidden layer (got activation="
            f"{activation!r}, hidden_layer_sizes={hidden}). A {posterior} code has no "
            "mean, so through a decoder that grows linearly in z the expected "
            "log-likelihood E_q[log p(x|z)] is -inf, and training diverges."
        )
    for name, value in _flat(fitted or {}).items():
        # What the encoder reads follows from the likelihood and the training data, not from
        # parameters; a model continued on other data goes on reading what it was built for.
        if name not in DERIVED and _flat(architecture)[name] != value:
            raise ValueError(
                f"Cannot continue training a model fitted with {name}={value!r} "
                f"using {name}={_flat(architecture)[name]!r}; fit with warm_start=False "
                "to train a new model."
            )


#: Entries of the architecture that the data decide, not the parameters.
DERIVED = {"encoder_input", "missing_indicator"}


def _flat(architecture):
    """The architecture with the families' hyper-parameters as entries of their own (df=3.0)."""
    flat = dict(architecture)
    for key in ("prior_params", "posterior_params"):
        flat.update(flat.pop(key, {}))
    return flat


class OutOfSupportWarning(UserWarning):
    """Data scored by a model hold values outside its likelihood's support (pixels a little
    above 1 for ``likelihood='bernoulli'``, negative counts): they are clipped to it."""


def check_float32_range(
    X, name="X", missing="with NaN for a missing value", fix="rescale it, e.g. with StandardScaler"
):
    """skvae computes in float32: refuse values that would overflow to infinity there."""
    largest = np.finfo(np.float32).max
    if X.dtype == np.float64 and X.size and np.nanmax(np.abs(X), initial=0) > largest:
        if np.isinf(X).any():  # reached under assume_finite=True, which skips that check
            raise ValueError(
                f"Infinite values in {name}, which skvae cannot compute with (the "
                "assume_finite=True setting skips scikit-learn's check, not this one); "
                f"replace them, {missing}."
            )
        raise ValueError(
            f"Values beyond float32's range (|x| > {largest:.3g}) in {name}, in which skvae "
            f"computes; {fix}."
        )


def _value_range(values):
    """(min, max) of a float array in one pass; NaN if it holds a NaN."""
    if values.size == 0:
        return 0.0, 0.0
    if torch_can_wrap(values):
        low, high = torch.aminmax(torch.from_numpy(values))  # one multithreaded pass
        return low.item(), high.item()
    return values.min(), values.max()


# Frames a warning about the user's data skips: skvae's own, scikit-learn's and joblib's
# (through which cross_val_score and GridSearchCV call an estimator), and torch's (whose
# inference_mode(False) wraps skvae's loaders).
_LIBRARIES = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (__file__, sklearn.__file__, joblib.__file__, torch.__file__)
)


def outside_stacklevel():
    """The ``stacklevel`` at which ``warnings.warn``, called by the caller of this function,
    names the first frame outside skvae, scikit-learn, joblib and torch: the user's line,
    however the call came in (``score`` through ``score_samples``, a ``set_output`` wrapper,
    a Pipeline, a grid search), or the outermost frame (a joblib worker's) if none is."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_LIBRARIES):
        frame, level = frame.f_back, level + 1
    return level


# How far outside a bounded support float32 rounding puts data: MinMaxScaler on float32
# data maps a column's maximum to 1 + 1.2e-7, one float32 step above 1, on about a sixth of
# columns (as BernoulliRBM, skvae takes it, clipped; a value beyond stays refused).
_ROUNDING_STEPS = 4


def _rounding_off_support(likelihood, found_low, found_high):
    """Whether the data's range (NaN: unknown) leaves a real-valued likelihood's bounded
    support [low, high] by float32 rounding only, within ``_ROUNDING_STEPS`` steps of an
    edge. Only a support bounded on both sides has a scale for such steps (Bernoulli's [0,
    1]): on a one-sided one, a value 1e-7 below 0 may be data on a small scale."""
    low, high = likelihood.support
    if likelihood.integer_valued or not (math.isfinite(low) and math.isfinite(high)):
        return False  # a count of -1e-7 is no count; the count checks name it
    with np.errstate(over="ignore"):
        found_low, found_high = np.float32(found_low), np.float32(found_high)
    step = _ROUNDING_STEPS * float(np.finfo(np.float32).eps)
    slack_low, slack_high = step * max(1.0, abs(low)), step * max(1.0, abs(high))
    off = found_low < low or found_high > high
    return off and low - slack_low <= found_low and found_high <= high + slack_high


def _clip_rounding(values, likelihood, found_low, found_high):
    """``values`` and their range, clipped into the likelihood's support where they leave
    it by float32 rounding only (:func:`_rounding_off_support`); else as they are."""
    if not _rounding_off_support(likelihood, found_low, found_high):
        return values, found_low, found_high
    low, high = likelihood.support
    return np.clip(values, low, high), max(low, found_low), min(high, found_high)


def check_values(
    values, likelihood, estimator_name, *, support="refuse", implicit_zeros=False, far=None
):
    """Refuse infinite values and values beyond float32's range (NaN marks a missing value),
    and handle those outside the likelihood's support as ``support`` says: ``'refuse'`` (in
    fit: a model cannot learn data it cannot model), ``'clip'`` (in scoring: clip them to
    the support with an :class:`OutOfSupportWarning`), ``'ignore'`` (the encoder reads any
    value); ``implicit_zeros`` says that ``values`` are a sparse matrix's stored ones, beside
    zeros, which the warning's range then includes. ``far``, if given, is called with the
    (min, max) below before any clipping: the check of new data's distance from the
    training data, which refuses a placeholder that clipping would hide. Returns the values
    (clipped in a copy where that was needed), whether they may hold NaN (False when the
    first pass found none) and their (min, max) over the observed values (NaN where the
    first pass found a NaN and ``support='ignore'``; with the implicit zeros).

    Valid data without NaN cost one min/max pass, a third of the passes the separate checks
    make; they run, to name the problem, only when that pass finds one (or when counts must
    be checked). As in scikit-learn, ``sklearn.set_config(assume_finite=True)`` skips the
    finiteness check.
    """
    largest = float(np.finfo(np.float32).max)
    low, high = likelihood.support
    found_low, found_high = found = _value_range(values)
    # As skvae computes, in float32: a value that rounds into the support there is in it
    # (MinMaxScaler's 1 + 2.2e-16 is 1). NaN compares False.
    with np.errstate(over="ignore"):
        found_low, found_high = np.float32(found_low), np.float32(found_high)
    if support != "ignore":  # the encoder needs no support: no copy for transform
        values, found_low, found_high = _clip_rounding(values, likelihood, found_low, found_high)
    in_range = max(low, -largest) <= found_low and found_high <= min(high, largest)
    if in_range and (not likelihood.integer_valued or support == "ignore"):
        if far is not None:
            far(found)
        return values, False, found
    if not get_config()["assume_finite"]:
        assert_all_finite(values, allow_nan=True, input_name="X", estimator_name=estimator_name)
    check_float32_range(values)
    if far is not None:  # the NaN of a range with holes makes it find its own
        far(found)
    if support == "ignore":
        return values, True, found
    found_low, found_high = np.nanmin(values, initial=np.inf), np.nanmax(values, initial=-np.inf)
    if implicit_zeros:  # the values stored by a sparse matrix that also holds zeros
        found_low, found_high = min(found_low, 0.0), max(found_high, 0.0)
    values, found_low, found_high = _clip_rounding(values, likelihood, found_low, found_high)
    found = found_low, found_high
    clip = support == "clip" and (np.float32(found_low) < low or np.float32(found_high) > high)
    if clip:
        values = np.clip(values, low, high)
    try:
        likelihood.check_data(values)  # before the warning: values it refuses are not clipped
    except ValueError as error:
        negative = support == "refuse" and low >= 0 and np.float32(found_low) < 0
        if negative:  # in scikit-learn's words (check_non_negative)
            raise ValueError(
                f"Negative values in data passed to {estimator_name}: {error}"
            ) from None
        raise
    if clip:
        fix = (
            "Counts cannot be negative: check how these values were made."
            if likelihood.integer_valued
            else "Put MinMaxScaler(clip=True) (or another scaler that clips) before the model "
            "to keep new data in range."
        )
        warnings.warn(
            f"X has values in [{shown(found_low)}, {shown(found_high)}], outside the support "
            f"[{low:g}, {high:g}] of likelihood={likelihood.name!r}; the likelihood of "
            f"{estimator_name} weighs them clipped to it. {fix}",
            OutOfSupportWarning,
            stacklevel=outside_stacklevel(),
        )
    return values, True, found


def check_data(estimator, X, *, reset, support="refuse", training=False):
    """Validated float data for ``estimator``: a dense array, or a CSR matrix (batches are
    densified as they are drawn). NaN marks missing values; a row with no observed value,
    or (``reset``: in fit) a feature never observed, raises. ``support`` is as in
    :func:`check_values`, against the ``likelihood`` parameter in fit (``reset``) and the
    fitted model's likelihood otherwise. Sets ``n_features_in_`` and ``feature_names_in_``
    when ``reset``, and checks them otherwise."""
    X = validate_data(
        estimator,
        X,
        dtype=[np.float64, np.float32],
        accept_sparse=("csr", "csc"),
        reset=reset,
        ensure_all_finite=False,  # check_values does it, in its single pass
    )
    if sp.issparse(X):
        X = X.tocsr()
        if not X.has_canonical_format:  # duplicate entries: checked once summed
            X = X.copy()
            X.sum_duplicates()
    values = X.data if sp.issparse(X) else X  # implicit zeros suit every likelihood
    name = type(estimator).__name__
    checked, maybe_missing, value_range = check_values(
        values,
        # The fitted module's head, which set_params(likelihood=...) after fit does not change.
        LIKELIHOODS[estimator.likelihood] if reset else estimator.module_.likelihood,
        name,
        support=support,
        implicit_zeros=sp.issparse(X) and X.nnz < np.prod(X.shape),
        # New data: on the values as given, so that a placeholder (9.97e36) is refused, as
        # transform refuses it, rather than clipped to the support and scored.
        far=None
        if reset
        else lambda found: check_distance_from_training(X, estimator.module_.input, name, found),
    )
    if checked is not values:  # clipped: a copy, never the caller's data
        if sp.issparse(X):
            X = X.copy()
            X.data = checked
        else:
            X = checked
    if maybe_missing:
        check_observed(X, estimator, fitting=reset)
    if training:  # a model's first fit, or one that goes on (warm_start, partial_fit)
        likelihood = LIKELIHOODS[estimator.likelihood] if reset else estimator.module_.likelihood
        if likelihood.encoder_input == "log1p-standardized":
            check_training_counts(X, type(estimator).__name__, value_range)
        else:
            if likelihood.encoder_input == "standardized":
                check_training_spread(X, estimator, value_range)
            warn_float32_resolution(X, estimator)
    return X


# How far from the training data new values may lie, as the model reads each feature: in
# training standard deviations, since the encoder and the Gaussian likelihood work on
# (x - training mean) / std, and the likelihood squares it divided by its scale, which can be
# a thousandth of one (float32 overflows above 3.4e38); in the data's units only as far as
# the float32 difference x - training mean stays finite; and for counts, which the encoder
# reads after log1p, the count itself (a Poisson log-likelihood overflows from about 1e36).
MAX_DISTANCE = float(np.finfo(np.float32).max)
MAX_STANDARD_DEVIATIONS = 1e16
MAX_COUNT = 1e30
PLACEHOLDER_ADVICE = (
    "Such a value is usually a placeholder for a missing one: replace it with NaN, which "
    "skvae reads as missing (with VAEImputer, set missing_values to it)."
)


def check_distance_from_training(X, encoder_input, estimator_name, value_range):
    """Refuse values so far from the training data that the model's float32 arithmetic can
    overflow on them (see ``MAX_DISTANCE``): they are placeholders for missing values (1e20,
    netCDF's 9.97e36) far more often than data. X is a dense array or a CSR matrix, NaN for
    missing values; infinities are left to the finiteness check. ``value_range``, the (min,
    max) that :func:`check_values` found, decides whether the per-feature pass must run."""
    values = X.data if sp.issparse(X) else X
    low, high = value_range
    if np.isnan(low) or np.isnan(high):
        low, high = np.fmin.reduce(values, axis=None), np.fmax.reduce(values, axis=None)
    if sp.issparse(X) and X.nnz < np.prod(X.shape):
        low, high = min(low, 0.0), max(high, 0.0)  # the implicit zeros
    low, high = float(low), float(high)
    if encoder_input.log1p:  # counts: measured from 0, in counts
        shift, unit = np.zeros(X.shape[1]), np.ones(X.shape[1])
        max_distance, max_units = MAX_COUNT, np.inf
    else:
        shift = encoder_input.shift.double().cpu().numpy()
        unit = encoder_input.scale.double().cpu().numpy()
        max_distance, max_units = MAX_DISTANCE, MAX_STANDARD_DEVIATIONS
    widest = max(high - shift.min(), shift.max() - low)  # the most any |x - shift| can be
    if widest <= max_distance and widest / unit.min() <= max_units:
        return
    if sp.issparse(X):
        columns = X.indices
        candidates = values.astype(np.float64)
        zeros = np.flatnonzero(np.bincount(columns, minlength=X.shape[1]) < X.shape[0])
        columns, candidates = np.r_[columns, zeros], np.r_[candidates, np.zeros(zeros.size)]
    else:
        ends = np.fmin.reduce(values, axis=0), np.fmax.reduce(values, axis=0)
        far = np.abs(ends[0] - shift) > np.abs(ends[1] - shift)
        columns, candidates = np.arange(X.shape[1]), np.where(far, *ends).astype(np.float64)
    columns_shift, columns_unit = shift[columns], unit[columns]
    # As the model reads them, in float32, whose resolution at a feature's mean is also the
    # least spread it can have (a constant column near 1e24 has a unit of 1, and its values
    # differ from its mean by rounding alone).
    resolution = np.finfo(np.float32).eps * np.abs(columns_shift)
    # Such a column is read in a unit of 1, so that more than rounding off its mean soon
    # overflows the likelihood's square: allow a million rounding steps, as before the
    # likelihood worked on standardized values.
    constant = columns_unit < resolution
    columns_unit = np.maximum(columns_unit, resolution)
    max_distance = np.where(constant, 1e6 * resolution, max_distance)
    with np.errstate(invalid="ignore", over="ignore"):  # inf: left to the finiteness check
        candidates = candidates.astype(np.float32).astype(np.float64)
        distance = np.abs(candidates - columns_shift)
        too_far = (distance > max_distance) | (distance / columns_unit > max_units)
    too_far &= np.isfinite(candidates)
    if not too_far.any():
        return
    worst = np.flatnonzero(too_far)[np.argmax(distance[too_far])]
    if encoder_input.log1p:
        where = f"further than {MAX_COUNT:.0e} from 0, the most a count can be"
    elif encoder_input.kind == "raw":  # read as it is: measured from 0
        where = f"more than {MAX_STANDARD_DEVIATIONS:.0e} from 0"
    elif distance[worst] > max_distance[worst]:
        where = f"{distance[worst]:.1e} from that feature's training mean"
    else:
        where = (
            f"{distance[worst] / columns_unit[worst]:.1e} training standard deviations from "
            "that feature's training mean"
        )
    raise ValueError(
        f"X has the value {candidates[worst]:g} in feature {columns[worst]}, {where}. "
        f"{estimator_name} refuses values this far from its training data, where the "
        "likelihood's float32 arithmetic can overflow. " + PLACEHOLDER_ADVICE
    )


def check_finite_output(values, estimator, method, caller=None, why=None):
    """Raise a ValueError if ``values``, what ``caller.method`` (``caller``: the fitted VAE
    ``estimator`` by default) computed from finite input, are not finite: a decoded value
    that overflows float32 in its feature's units (a feature whose training spread is near
    1e30, with an input far from the training data). ``why`` replaces the explanation,
    which is about data, for a method whose input is not (codes)."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    row, feature = np.argwhere(bad)[0]
    unit = getattr(estimator.module_.likelihood, "loc_scale", None)
    spread = f" (training spread {float(unit[feature]):.3g})" if unit is not None else ""
    raise ValueError(
        f"{type(caller or estimator).__name__}.{method} decoded a value in row {row}, feature "
        f"{feature}, beyond float32's range in that feature's units{spread}: "
        f"{why or FAR_INPUT}"
    )


@contextmanager
def allocation_errors(call, fix="ask for fewer rows at a time"):
    """Turn torch's allocator failures in ``call`` (a RuntimeError on the CPU, an
    OutOfMemoryError on CUDA) into a MemoryError that names the call and ``fix``, as
    NumPy's are MemoryErrors."""
    try:
        yield
    except RuntimeError as error:
        # torch.cuda.OutOfMemoryError is torch.OutOfMemoryError where torch has both.
        if "can't allocate memory" not in str(error) and not isinstance(
            error, torch.cuda.OutOfMemoryError
        ):
            raise
        raise MemoryError(
            f"{call} needs more memory than is free on the model's device; {fix}. ({error})"
        ) from error


def check_finite_scores(scores, where):
    """Raise a ValueError if the log-densities ``scores`` that ``where`` (a method or
    function, as the message names it) computed from finite input are not finite: -inf
    where a row's log-density, summed over its features, passes float32's range (each value
    passed the distance check alone), NaN where the arithmetic of such a row overflowed on
    the way."""
    bad = ~np.isfinite(scores)
    if not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
    raise ValueError(
        f"{where} computed {scores[row]} for row {row}: its "
        f"log-density passes float32's range (-3.4e38). {FAR_INPUT}"
    )


# Why a finite input gives a non-finite output, and what to do.
FAR_INPUT = (
    "The input is too far from the training data for skvae's float32 arithmetic. Check it "
    "for placeholders of missing values and for features in other units than in training; "
    "a feature whose training spread is near float32's limits needs a StandardScaler in "
    "front of the model."
)


def check_training_counts(X, estimator_name, value_range):
    """In fit, refuse a count above ``MAX_RATE``, the largest mean the count likelihoods
    model (a model could not fit it; beyond ``MAX_COUNT`` their float32 arithmetic would
    overflow, the check new data gets from :func:`check_distance_from_training`)."""
    values = X.data if sp.issparse(X) else X
    high = value_range[1]
    if np.isnan(high):
        high = np.fmax.reduce(values, axis=None)
    if not high > MAX_RATE:
        return
    flat = np.nanargmax(values)
    column = X.indices[flat] if sp.issparse(X) else np.unravel_index(flat, X.shape)[1]
    raise ValueError(
        f"X has the value {values.flat[flat]:g} in feature {column}, a count above "
        f"{MAX_RATE:.2g}, the largest mean that the count likelihoods model (exp(30)); "
        f"{estimator_name} cannot train on it. Count in larger units (divide the feature), "
        "or model log1p of the data with likelihood='gaussian'. " + PLACEHOLDER_ADVICE
    )


# A feature whose float32 rounding errors have a standard deviation above this share of its
# own reaches the model, which reads it in float32, as a few levels: 1e7 plus or minus 1
# (rounded to steps of 1, errors of 0.29 standard deviations) keeps five. At 1e6 plus or
# minus 1 (steps of 1/16) the errors are 0.018 of the spread.
MAX_ROUNDING_SHARE = 0.1


def feature_label(estimator, feature, word="Feature"):
    """``Feature 'income'`` for a model fitted on a DataFrame, ``Feature 3`` otherwise (with
    ``word`` for "Feature")."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:  # a VAEImputer's model, fitted on its arrays, names the frame's columns
        names = getattr(estimator, "_column_names", None)
        if names is not None and len(names) != getattr(estimator, "n_features_in_", len(names)):
            names = None  # refitted since on other data
    return f"{word} {names[feature]!r}" if names is not None else f"{word} {feature}"


# The largest training spread of a feature that the Gaussian likelihood takes: its values
# are computed as mean + spread * (the decoder's standardized output), in float32, for
# inverse_transform, sample and VAEImputer, and 1e30 leaves 3e8 standard deviations before
# float32's 3.4e38.
MAX_SPREAD = 1e30


def check_training_spread(X, estimator, value_range):
    """In a fit, refuse a feature whose standard deviation exceeds ``MAX_SPREAD``: the model
    fits it (it works on standardized values), but its decoded values and draws, in the
    feature's own units, would overflow float32."""
    low, high = value_range
    if not np.isnan(low) and not np.isnan(high) and float(high) - float(low) <= MAX_SPREAD:
        return  # a spread is at most the range
    with np.errstate(over="ignore", invalid="ignore"):
        if sp.issparse(X):  # without densifying; NaN are ignored, as by nanstd
            std = np.sqrt(mean_variance_axis(X.astype(np.float64).tocsc(), axis=0)[1])
        else:
            std = np.nanstd(X.astype(np.float64), axis=0)
    wide = np.flatnonzero(std > MAX_SPREAD)
    if not wide.size:
        return
    feature = wide[np.argmax(std[wide])]
    name = feature_label(estimator, feature)
    raise ValueError(
        f"{name} of X has a standard deviation of {std[feature]:.3g}, more than the "
        f"{MAX_SPREAD:.0e} that {type(estimator).__name__} takes: it would fit it, but it "
        "computes in float32, and its decoded values and samples in the feature's own units "
        "would overflow. Rescale the feature first: put StandardScaler() before the model in "
        "a Pipeline."
    )


def warn_float32_resolution(X, estimator):
    """In a fit, warn of the features of float64 data whose values lie so close together
    for their size (an offset of 1e8 and a spread of 1) that float32, the model's
    precision, rounds them to a few levels: the model loses most of their variation and
    scores them as almost constant. (A sparse X's batches are rounded the same way; its
    stored values are not checked.)"""
    if sp.issparse(X) or X.dtype != np.float64 or X.shape[0] < 2:
        return
    low, high = np.fmin.reduce(X, axis=0), np.fmax.reduce(X, axis=0)
    with np.errstate(over="ignore", invalid="ignore"):
        step = np.spacing(np.fmax(np.abs(low), np.abs(high)).astype(np.float32))
    # Rounding errors are at most half a step, and a range r over n rows has a standard
    # deviation of at least r / sqrt(2 n): only the features that pass both bounds need
    # their errors measured.
    bound = 0.5 * step.astype(np.float64) / MAX_ROUNDING_SHARE
    candidates = np.flatnonzero((high > low) & (bound > (high - low) / np.sqrt(2 * len(X))))
    if not candidates.size:
        return
    values = X[:, candidates]
    # Near float64's limits the spreads overflow: inf / inf is NaN, and not coarse.
    with np.errstate(over="ignore", invalid="ignore"):
        errors = values.astype(np.float32).astype(np.float64) - values
        std = np.nanstd(values, axis=0)
        share = np.nanstd(errors, axis=0) / std
    coarse = share > MAX_ROUNDING_SHARE
    if not coarse.any():
        return
    worst = np.argmax(np.where(coarse, share, 0.0))
    feature = candidates[worst]
    name = feature_label(estimator, feature)
    others = int(coarse.sum()) - 1
    warnings.warn(
        f"{name} of X (mean {np.nanmean(values[:, worst]):.6g}, standard deviation "
        f"{std[worst]:.3g}) varies too little for its size: "
        f"{type(estimator).__name__} computes in float32, whose rounding errors there are "
        f"{share[worst]:.0%} of its standard deviation (steps of {step[feature]:.3g}), so the "
        "model reads a few levels of it at most"
        + (f" (and {others} more such features)" if others else "")
        + ". Subtract an offset first: put StandardScaler() before the model in a Pipeline.",
        UserWarning,
        stacklevel=outside_stacklevel(),
    )


def has_missing(X):
    """Whether X (an array or a sparse matrix) holds a NaN."""
    return bool(np.isnan(X.data if sp.issparse(X) else X).any())


def check_observed(X, estimator, *, fitting):
    """Refuse rows without an observed value (their likelihood is empty), and in fit features
    without one (nothing to learn them from)."""
    if not has_missing(X):
        return
    if sp.issparse(X):
        missing = X.copy()
        missing.data = np.isnan(X.data).astype(np.int8)
        missing.eliminate_zeros()
        missing_per_row = np.asarray(missing.sum(axis=1)).ravel()
        missing_per_column = np.asarray(missing.sum(axis=0)).ravel()
    else:
        missing = np.isnan(X)
        missing_per_row, missing_per_column = missing.sum(axis=1), missing.sum(axis=0)
    name = type(estimator).__name__
    empty_rows = np.flatnonzero(missing_per_row == X.shape[1])
    if empty_rows.size:
        raise ValueError(
            f"{empty_rows.size} rows of X have no observed value (all NaN), such as row "
            f"{empty_rows[0]}; {name} has nothing to encode or score in them. Drop them, "
            "e.g. X[~np.isnan(X).all(axis=1)]."
        )
    empty_columns = np.flatnonzero(missing_per_column == X.shape[0])
    if fitting and empty_columns.size:
        raise ValueError(
            f"{empty_columns.size} features of X have no observed value (all NaN), such as "
            f"{feature_label(estimator, empty_columns[0], 'feature')}; {name} cannot learn them. "
            "Drop them, as "
            "SimpleImputer(keep_empty_features=False) does."
        )


def check_codes(estimator, Z):
    """Validated latent codes for ``estimator.inverse_transform``."""
    Z = check_array(Z, dtype=[np.float64, np.float32])
    check_float32_range(
        Z, "the codes", "with codes transform returns", "decode codes that transform returns"
    )
    if not np.isfinite(Z).all():  # NaN, under assume_finite=True: no code of any row
        raise ValueError(
            "The codes hold NaN, which encodes no row; decode the codes that transform "
            "returns (assume_finite=True skips scikit-learn's check, not this one)."
        )
    if Z.shape[1] != estimator._n_features_out:
        raise ValueError(
            f"X has {Z.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator._n_features_out} latent components as input."
        )
    return Z


@contextmanager
def unchanged_on_error(estimator):
    """Restore the estimator if the block raises: its attributes, and the weights, optimizer
    state and random state of a fitted model, which training changes in place.

    ``validate_data`` sets ``n_features_in_`` and ``feature_names_in_`` before all checks have
    passed, and a fit can fail after epochs that trained (a warning turned into an error, an
    exception from a callback); bad input or a failed fit must leave a fitted model as it was.
    """
    state = copy.copy(estimator.__dict__)
    fitted = estimator._training_state() if "module_" in state else None
    # Training draws from the fitted random state in place: keep where it stood.
    random_state = state.get("_random_state")
    drawn = random_state.get_state() if random_state is not None else None
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(state)
        if fitted is not None:
            estimator._set_training_state(fitted)
        if random_state is not None:
            random_state.set_state(drawn)
        raise
