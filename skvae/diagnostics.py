"""Diagnostics of latent codes: sparsity, active units, KL per dimension, source recovery,
and how Gabor-like a model's filters are.

They take a fitted :class:`~skvae.SparseVAE` or :class:`~skvae.GaussianVAE` and data, or
codes as returned by ``transform``, or filters as rows of an array, and return NumPy values.
"""

import math
from numbers import Integral, Real

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from scipy.optimize import least_squares, linear_sum_assignment
from scipy.stats import rankdata
from sklearn.utils import Bunch, check_scalar
from sklearn.utils.validation import check_array, check_is_fitted

from ._training import inference_batch_size
from ._vae import _BaseVAE
from ._validation import check_finite_scores, check_params_in_use, random_state_or_entropy

__all__ = [
    "hoyer_sparsity",
    "latent_activity",
    "active_units",
    "kl_per_dimension",
    "log_likelihood",
    "mean_correlation_coefficient",
    "gabor_fit",
]


def hoyer_sparsity(Z, *, standardize=True):
    """Mean Hoyer sparsity of the rows of a code matrix.

    The Hoyer measure of a code z of length k is ``(sqrt(k) - ||z||_1 / ||z||_2) /
    (sqrt(k) - 1)``: 0 when all entries have the same magnitude, 1 when one entry alone is
    nonzero. As in Mathieu et al. (2019), each latent dimension is first divided by its
    standard deviation over the rows, so that a dimension with a wide spread does not look
    like the single active entry of every code.

    Parameters
    ----------
    Z : array-like of shape (n_samples, n_components)
        Codes, e.g. from ``transform``; needs ``n_components >= 2``.
    standardize : bool, default=True
        Divide each dimension by its standard deviation first (dimensions with zero spread
        are left as they are).

    Returns
    -------
    sparsity : float
        Mean over rows; rows that are all zero count as 0.

    References
    ----------
    P. O. Hoyer, "Non-negative matrix factorization with sparseness constraints", JMLR 2004.
    E. Mathieu, T. Rainforth, N. Siddharth, Y. W. Teh, "Disentangling disentanglement in
    variational autoencoders", ICML 2019.

    Examples
    --------
    >>> from skvae.diagnostics import hoyer_sparsity
    >>> hoyer_sparsity([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], standardize=False)
    1.0
    >>> hoyer_sparsity([[1.0, 1.0, 1.0], [2.0, -2.0, 2.0]], standardize=False)
    0.0
    """
    check_scalar(standardize, "standardize", (bool, np.bool_))
    Z = check_array(Z, dtype=np.float64, input_name="Z")
    n_components = Z.shape[1]
    if n_components < 2:
        raise ValueError(f"Hoyer sparsity needs at least 2 dimensions, got {n_components}.")
    if standardize:  # a constant column keeps its values
        scaled = _by_peak(Z, axis=0)
        constant = _constant_columns(scaled)
        Z = np.where(constant, Z, scaled / np.where(constant, 1.0, scaled.std(axis=0)))
    Z = _by_peak(Z, axis=1)
    l1, l2 = np.abs(Z).sum(axis=1), np.linalg.norm(Z, axis=1)
    ratio = np.divide(l1, l2, out=np.full_like(l1, math.sqrt(n_components)), where=l2 > 0)
    root = math.sqrt(n_components)
    # The measure lies in [0, 1]; clipping removes rounding error at the ends.
    return float(np.clip(np.mean((root - ratio) / (root - 1)), 0.0, 1.0))


def _by_peak(A, axis):
    """A divided by its largest magnitude along ``axis`` (where that is not 0): what the
    scale-invariant measures below compute from, so that squares neither overflow (values
    near 1e160) nor underflow (near 1e-170) in float64."""
    peak = np.abs(A).max(axis=axis, keepdims=True)
    return A / np.where(peak > 0, peak, 1.0)


def _constant_columns(A):
    """Columns of A whose spread is rounding error of their mean, by StandardScaler's
    bound: a column of 0.7s has a computed standard deviation of about 1e-16, not 0."""
    n, eps = A.shape[0], np.finfo(np.float64).eps
    mean, var = A.mean(axis=0), A.var(axis=0)
    return var <= n * eps * var + (n * mean * eps) ** 2


def _check_vae(estimator, function):
    """Refuse anything but a SparseVAE or GaussianVAE (a subclass included), naming where
    the VAE is in the containers a user is likely to pass."""
    if isinstance(estimator, _BaseVAE):
        return
    name = type(estimator).__name__
    where = {
        "Pipeline": " For a Pipeline ending in one, pass pipe[-1] and the data as it reaches "
        "it, pipe[:-1].transform(X).",
        "VAEImputer": " For a VAEImputer, pass its fitted VAE, imputer.estimator_.",
        "GridSearchCV": " For a search, pass search.best_estimator_.",
        "RandomizedSearchCV": " For a search, pass search.best_estimator_.",
    }.get(name, "")
    raise TypeError(f"{function} takes a SparseVAE or GaussianVAE, got {name}.{where}")


def latent_activity(estimator, X):
    """Variance over the data of each dimension of the code that ``transform`` returns.

    Burda et al. (2016) call a dimension active when this exceeds 0.01: the code moves with
    the input rather than staying at the prior. The code stands in for the posterior mean,
    which a Cauchy posterior does not have: the posterior location, or for the thresholded
    and spike-and-slab posteriors the thresholded or gated location.

    Parameters
    ----------
    estimator : fitted SparseVAE or GaussianVAE
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    activity : ndarray of shape (n_components,)
    """
    _check_vae(estimator, "latent_activity")
    return np.asarray(estimator.transform(X), dtype=np.float64).var(axis=0)


def active_units(estimator, X, *, threshold=0.01):
    """Number of active latent dimensions (Burda et al., 2016).

    Parameters
    ----------
    estimator : fitted SparseVAE or GaussianVAE
    X : array-like of shape (n_samples, n_features)
    threshold : float, default=0.01
        A dimension is active when its :func:`latent_activity` exceeds this.

    Returns
    -------
    n_active : int

    References
    ----------
    Y. Burda, R. Grosse, R. Salakhutdinov, "Importance weighted autoencoders", ICLR 2016.
    """
    check_scalar(threshold, "threshold", Real)
    if np.isnan(threshold):
        raise ValueError("threshold must be a number, got nan.")
    _check_vae(estimator, "active_units")
    return int(np.sum(latent_activity(estimator, X) > threshold))


def kl_per_dimension(estimator, X):
    """Mean KL(q(z_d|x) || p(z_d)) over the rows of X, for each latent dimension d, in nats.

    The closed form is used where torch registers one for the (posterior, prior) pair, and a
    Monte Carlo estimate with the estimator's ``n_mc_samples`` fixed draws otherwise (the same
    draws as :meth:`score_samples`). Dimensions with a KL near 0 are unused: their posterior
    is the prior whatever the input.

    Parameters
    ----------
    estimator : fitted SparseVAE or GaussianVAE
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    kl : ndarray of shape (n_components,)
        Sums to the mean KL term of the ELBO.
    """
    _check_vae(estimator, "kl_per_dimension")
    X = estimator._check_fitted_data(X)
    module = estimator.module_
    check_params_in_use(estimator, "n_mc_samples")
    fix = f"lower the estimator's n_mc_samples (now {estimator.n_mc_samples})"
    with estimator._allocating(X, fix):
        noise = estimator._fixed_noise(estimator.n_mc_samples)

    def kl(x):
        per_dimension = module.kl(*module.posterior_sample(x, noise))
        # Closed forms have no sample axis; Monte Carlo terms are averaged over it.
        return per_dimension if module.analytic_kl else per_dimension.mean(0)

    per_row = estimator._map_batches(kl, X, estimator.n_mc_samples, fix)
    return per_row.astype(np.float64).mean(axis=0)


def log_likelihood(estimator, X, *, n_samples=1000, random_state=0):
    """Importance-weighted estimate of log p(x) for each row, in nats (Burda et al., 2016).

    ``log (1/K) sum_k p(x, z_k) / q(z_k|x)`` with K = ``n_samples`` draws z_k from the
    posterior. It is a lower bound on log p(x) that is never looser than the ELBO in
    expectation and tends to log p(x) as K grows. The IWAE paper's MNIST figures use
    K = 5000.

    Parameters
    ----------
    estimator : fitted SparseVAE or GaussianVAE
    X : array-like of shape (n_samples_X, n_features)
    n_samples : int, default=1000
        Importance samples K per row.
    random_state : int, RandomState instance or None, default=0
        Seed of the draws, shared by all rows: with an int (0 to 2**32 - 1, the seed of
        torch's generator itself) the same call gives the same numbers; a RandomState
        instance is drawn from for a seed; None draws fresh ones.

    Returns
    -------
    log_likelihood : ndarray of shape (n_samples_X,)
    """
    _check_vae(estimator, "log_likelihood")
    check_is_fitted(estimator)
    check_scalar(n_samples, "n_samples", Integral, min_val=1)
    n_samples = int(n_samples)
    if isinstance(random_state, Integral):
        # As check_random_state's seeds: torch's CPU generator reads only the low 32 bits.
        check_scalar(random_state, "random_state", Integral, min_val=0, max_val=2**32 - 1)
        seed = int(random_state)
    else:
        seed = int(random_state_or_entropy(random_state).randint(np.iinfo(np.int32).max))
    X = estimator._check_fitted_data(X)
    module = estimator.module_
    fix = f"lower n_samples (now {n_samples}), or pass fewer rows at a time"
    with estimator._allocating(X, fix):
        noise = estimator._fixed_noise(n_samples, seed=seed)
    draws_per_pass = min(n_samples, inference_batch_size(estimator._device(), X.shape[1]))

    def importance_weighted(x):
        total = torch.full((x.shape[0],), -math.inf, device=x.device)
        for start in range(0, n_samples, draws_per_pass):
            log_w = module.log_importance_weights(x, noise[start : start + draws_per_pass])
            total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
        return total - math.log(n_samples)

    log_p = estimator._map_batches(importance_weighted, X, draws_per_pass, fix)
    log_p = log_p.astype(np.float64)
    check_finite_scores(log_p, "log_likelihood")
    return log_p


def mean_correlation_coefficient(sources, codes, *, method="pearson"):
    """Mean absolute correlation between sources and codes, matched one to one.

    The standard score of source recovery in ICA and identifiable-VAE work: correlate every
    source with every code dimension, pair them by the Hungarian algorithm to maximise the
    total absolute correlation, and average over the pairs. 1 means every source is
    recovered up to scale, sign and order. Spearman's rank correlation suits heavy-tailed
    sources, whose Pearson correlation a few extreme values dominate.

    Parameters
    ----------
    sources : array-like of shape (n_samples, n_sources)
    codes : array-like of shape (n_samples, n_components)
        With ``n_components >= n_sources``; unmatched code dimensions are ignored.
    method : {'pearson', 'spearman'}, default='pearson'

    Returns
    -------
    mcc : float

    Examples
    --------
    >>> import numpy as np
    >>> from skvae.diagnostics import mean_correlation_coefficient
    >>> s = np.random.RandomState(0).laplace(size=(500, 3))
    >>> round(mean_correlation_coefficient(s, -2 * s[:, ::-1]), 6)
    1.0
    """
    sources = check_array(sources, dtype=np.float64, input_name="sources", ensure_min_samples=2)
    codes = check_array(codes, dtype=np.float64, input_name="codes", ensure_min_samples=2)
    if sources.shape[0] != codes.shape[0]:
        raise ValueError(
            f"sources and codes need the same rows, got {sources.shape[0]} and {codes.shape[0]}."
        )
    n_sources = sources.shape[1]
    if codes.shape[1] < n_sources:
        raise ValueError(f"codes have {codes.shape[1]} dimensions for {n_sources} sources.")
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}.")
    if method == "spearman":  # Pearson's coefficient of the ranks (ties share their mean rank)
        sources, codes = rankdata(sources, axis=0), rankdata(codes, axis=0)
    else:
        sources, codes = _by_peak(sources, axis=0), _by_peak(codes, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant column: NaN, then 0
        correlation = np.corrcoef(sources, codes, rowvar=False)[:n_sources, n_sources:]
    correlation = np.nan_to_num(np.abs(correlation))  # a constant column correlates with nothing
    rows, cols = linear_sum_assignment(-correlation)
    return float(correlation[rows, cols].mean())


# Columns of the Gabor parameter vector that ``_gabor`` and ``_gabor_jacobian`` take.
_GABOR_PARAMS = (
    "amplitude",
    "row",
    "column",
    "orientation",
    "frequency",
    "phase",
    "sigma_x",
    "sigma_y",
    "offset",
)


def _gabor_parts(params, rows, columns):
    """The terms of the Gabor at ``params`` on the pixel grid that its value and its
    Jacobian share."""
    amplitude, row, column, orientation, frequency, phase, sigma_x, sigma_y, _ = params
    cos, sin = math.cos(orientation), math.sin(orientation)
    d_column, d_row = columns - column, rows - row
    # u runs along the wave vector (across the stripes), v along the stripes.
    u = d_column * cos + d_row * sin
    v = -d_column * sin + d_row * cos
    envelope = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    angle = 2 * math.pi * frequency * u + phase
    return u, v, envelope, np.cos(angle), np.sin(angle), cos, sin


def _gabor(params, rows, columns):
    """The Gabor's value at each pixel."""
    _, _, envelope, carrier, _, _, _ = _gabor_parts(params, rows, columns)
    return params[0] * envelope * carrier + params[8]


def _gabor_jacobian(params, rows, columns):
    """Derivatives of :func:`_gabor` with respect to ``params``, one column each."""
    amplitude, _, _, _, frequency, _, sigma_x, sigma_y, _ = params
    u, v, envelope, carrier, quadrature, cos, sin = _gabor_parts(params, rows, columns)
    wave = amplitude * envelope * carrier
    d_u = -wave * u / sigma_x**2 - amplitude * envelope * quadrature * 2 * math.pi * frequency
    d_v = -wave * v / sigma_y**2
    return np.stack(
        [
            envelope * carrier,
            -d_u * sin - d_v * cos,  # row: u and v move by -sin and -cos
            -d_u * cos + d_v * sin,  # column: by -cos and +sin
            d_u * v - d_v * u,  # orientation
            -amplitude * envelope * quadrature * 2 * math.pi * u,
            -amplitude * envelope * quadrature,
            wave * u**2 / sigma_x**3,
            wave * v**2 / sigma_y**3,
            np.ones_like(u),
        ],
        axis=1,
    )


def _spectral_peaks(image, n_peaks, padding):
    """(frequency, orientation) of the ``n_peaks`` largest peaks of the image's amplitude
    spectrum, each at least one spectral resolution away from the others (and from their
    mirror images, which have the same orientation)."""
    height, width = image.shape
    power = np.abs(np.fft.fft2(image - image.mean(), s=(padding, padding))) ** 2
    f_rows = np.fft.fftfreq(padding)[:, np.newaxis] + np.zeros((1, padding))
    f_columns = np.fft.fftfreq(padding)[np.newaxis, :] + np.zeros((padding, 1))
    resolution = 1.0 / min(height, width)
    peaks = []
    for index in np.argsort(power, axis=None)[::-1]:
        f_row, f_column = f_rows.flat[index], f_columns.flat[index]
        if all(
            min(math.hypot(f_row - r, f_column - c), math.hypot(f_row + r, f_column + c))
            > resolution
            for r, c in peaks
        ):
            peaks.append((f_row, f_column))
            if len(peaks) == n_peaks:
                break
    return [(math.hypot(r, c), math.atan2(r, c)) for r, c in peaks]


def _gabor_starts(image, rows, columns):
    """Initial parameters: two centres (of the filter's energy, and at its peak) times the
    two largest peaks of its spectrum (frequency and orientation), each with the envelope's
    width from the energy's spread and amplitude, phase and offset by linear least squares."""
    height, width = image.shape
    energy = (image - image.mean()) ** 2
    energy = energy / energy.sum()
    row, column = (energy * rows).sum(), (energy * columns).sum()
    spread = math.sqrt((energy * ((rows - row) ** 2 + (columns - column) ** 2)).sum())
    peak = np.unravel_index(np.argmax(gaussian_filter(energy, 1.0)), image.shape)
    centres = [(row, column, spread), (float(peak[0]), float(peak[1]), max(spread / 2, 1.0))]
    starts = []
    for frequency, orientation in _spectral_peaks(image, 2, 4 * max(height, width)):
        for row, column, sigma in centres:
            params = np.array([1.0, row, column, orientation, frequency, 0.0, sigma, sigma, 0.0])
            _, _, envelope, carrier, quadrature, _, _ = _gabor_parts(params, rows, columns)
            design = np.stack([envelope * carrier, envelope * quadrature, np.ones_like(carrier)])
            design = design.reshape(3, -1)
            a, b, offset = np.linalg.lstsq(design.T, image.ravel(), rcond=None)[0]
            # a cos + b sin = A cos(angle + phase) with A = hypot(a, b), phase = atan2(-b, a).
            params[0], params[5], params[8] = math.hypot(a, b), math.atan2(-b, a), offset
            starts.append(params)
    return starts


def gabor_fit(filters, *, patch_shape=None):
    """Fit a 2-D Gabor function to each filter by least squares, and its R².

    A Gabor is a plane wave under a Gaussian envelope, the shape of the receptive fields of
    simple cells in the visual cortex, and of the filters that sparse coding and ICA learn
    from natural-image patches (Olshausen and Field, 1996): localized, oriented and
    bandpass. On pixel (row, column), with ``u`` the distance from the centre along the
    wave vector (across the stripes) and ``v`` along the stripes::

        g = amplitude * exp(-u**2 / (2 sigma_x**2) - v**2 / (2 sigma_y**2))
            * cos(2 pi frequency u + phase) + offset

    Each filter is fitted from four starts by :func:`scipy.optimize.least_squares`: the
    two largest peaks of the filter's zero-padded amplitude spectrum give the frequency and
    orientation, and the centre of mass of the filter's squared values and their peak give
    the centre. R² is ``1 - (residual sum of squares) / (sum of squares about the filter's
    mean)``: 1 for a perfect Gabor, near 0 for a filter a Gabor cannot describe; white
    noise on 12x12 pixels scores about 0.15, and skvae's benchmarks call a filter Gabor-like
    from 0.7. A plane wave over the whole patch is a Gabor with a wide envelope, and a
    single pixel one with an envelope of half a pixel (R² near 1 for both), so pair R²
    with a measure of localization (``sigma_x``, ``sigma_y``). A few hundred 12x12 filters
    take seconds.

    Parameters
    ----------
    filters : array-like of shape (n_filters, n_pixels) or (n_filters, height, width)
        One flattened (row-major) filter per row: e.g. the columns of a linear decoder's
        weight matrix, ``FastICA().mixing_.T`` or ``MiniBatchDictionaryLearning().components_``;
        or a stack of filter images. A single 2-D image is read as rows of filters: pass it
        as ``image.reshape(1, -1)``.
    patch_shape : tuple of (int, int), default=None
        Height and width of a filter; None takes a stack's image shape, or a square of side
        ``sqrt(n_pixels)``.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``r2``, an ndarray of shape (n_filters,), and the fitted parameters, one ndarray of
        shape (n_filters,) each: ``amplitude``; ``row`` and ``column``, the centre in pixels
        (it may lie slightly outside the patch); ``orientation``, the angle of the wave
        vector from the column axis towards the row axis, in radians; ``frequency``, in
        cycles per pixel; ``phase``; ``sigma_x`` and ``sigma_y``, the widths of the
        envelope across and along the stripes, in pixels; and ``offset``. A constant filter
        (up to rounding) has R² 0, and R² does not depend on the filters' scale.

    References
    ----------
    B. A. Olshausen and D. J. Field, "Emergence of simple-cell receptive field properties by
    learning a sparse code for natural images", Nature 381, 1996.
    J. P. Jones and L. A. Palmer, "An evaluation of the two-dimensional Gabor filter model
    of simple receptive fields in cat striate cortex", Journal of Neurophysiology 58, 1987.
    D. L. Ringach, "Spatial structure and symmetry of simple-cell receptive fields in
    macaque primary visual cortex", Journal of Neurophysiology 88, 2002.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae.diagnostics import gabor_fit
    >>> rows, columns = np.mgrid[:12, :12]
    >>> envelope = np.exp(-((rows - 6) ** 2 + (columns - 5) ** 2) / (2 * 2.0**2))
    >>> gabor = envelope * np.cos(2 * np.pi * 0.2 * columns)
    >>> noise = np.random.RandomState(0).normal(size=144)
    >>> fit = gabor_fit([gabor.ravel(), noise])
    >>> fit.r2 > 0.7
    array([ True, False])
    >>> round(float(fit.frequency[0]), 3), round(float(fit.sigma_x[0]), 3)
    (0.2, 2.0)
    """
    if np.ndim(filters) == 3:  # a stack of filter images, each (height, width)
        filters = np.asarray(filters)
        if patch_shape is not None and tuple(patch_shape) != filters.shape[1:]:
            raise ValueError(
                f"patch_shape={tuple(patch_shape)} differs from the shape of the filter "
                f"images, {filters.shape[1:]}; leave it out for a stack of images."
            )
        patch_shape = filters.shape[1:]
        filters = filters.reshape(filters.shape[0], filters.shape[1] * filters.shape[2])
    filters = check_array(filters, dtype=np.float64, input_name="filters")
    n_filters, n_pixels = filters.shape
    if patch_shape is None:
        side = math.isqrt(n_pixels)
        if side * side != n_pixels:
            raise ValueError(
                f"filters have {n_pixels} pixels, not a square number; pass patch_shape. "
                "(filters holds one flattened filter per row; a single filter image goes "
                "in as image.reshape(1, -1), or in a stack of shape (n, height, width).)"
            )
        patch_shape = (side, side)
    if (
        np.ndim(patch_shape) != 1
        or len(patch_shape) != 2
        or not all(isinstance(n, Integral) and not isinstance(n, bool) for n in patch_shape)
    ):
        raise ValueError(f"patch_shape must be (height, width), two ints, got {patch_shape!r}.")
    height, width = (int(n) for n in patch_shape)
    if min(height, width) < 2:
        raise ValueError(
            f"Filters of shape {(height, width)} have a side below 2 pixels; a Gabor's "
            "orientation and frequency need two in each direction."
        )
    if height * width != n_pixels:
        raise ValueError(
            f"patch_shape={(height, width)} does not fit filters of {n_pixels} pixels."
        )
    rows, columns = (grid.astype(np.float64) for grid in np.mgrid[:height, :width])
    flat_rows, flat_columns = rows.ravel(), columns.ravel()
    # The centre may lie a pixel outside the patch; the envelope is at least half a pixel
    # wide (a single pixel still fits it, R² near 1: the docstring says to read sigma too)
    # and at most twice the patch; the frequency is at most the Nyquist frequency along the
    # diagonal. The angles are free.
    size = max(height, width)
    lower = [-np.inf, -1, -1, -np.inf, 0, -np.inf, 0.5, 0.5, -np.inf]
    upper = [np.inf, height, width, np.inf, math.sqrt(0.5), np.inf, 2 * size, 2 * size, np.inf]

    def residuals(params, image):
        return _gabor(params, flat_rows, flat_columns) - image

    def jacobian(params, image):
        return _gabor_jacobian(params, flat_rows, flat_columns)

    r2 = np.zeros(n_filters)
    fitted = np.zeros((n_filters, len(_GABOR_PARAMS)))
    peaks = np.abs(filters).max(axis=1)
    scaled = _by_peak(filters, axis=1)  # no square overflows or underflows (1e160, 1e-170)
    constant = _constant_columns(scaled.T)
    for i, image in enumerate(scaled):
        # Fitted in units of the filter's own spread, so that R² does not depend on the
        # filters' scale (least_squares' gradient tolerance is absolute); the amplitude and
        # offset are scaled back below.
        mean, std = image.mean(), image.std()
        fitted[i, 8] = mean * peaks[i]
        if constant[i]:
            continue
        image = (image - mean) / std
        mean, std = mean * peaks[i], std * peaks[i]
        total = np.sum(image**2)
        best = np.inf
        for start in _gabor_starts(image.reshape(height, width), rows, columns):
            start = np.clip(start, lower, upper)
            # Tolerances of 1e-6 change R² by less than 1e-4 and save a third of the time.
            result = least_squares(
                residuals,
                start,
                jac=jacobian,
                bounds=(lower, upper),
                ftol=1e-6,
                xtol=1e-6,
                max_nfev=200,
                args=(image,),
            )
            if 2 * result.cost < best:
                best, fitted[i] = 2 * result.cost, result.x
        r2[i] = max(1.0 - best / total, 0.0)
        if np.isfinite(best):
            fitted[i, 0] *= std
            fitted[i, 8] = fitted[i, 8] * std + mean
    # One parameter vector per Gabor: a positive amplitude (a sign is a phase of pi), and an
    # orientation in [0, pi) (turning by pi mirrors u and v, the same as negating the phase).
    negative = fitted[:, 0] < 0
    fitted[negative, 0] *= -1
    fitted[negative, 5] += math.pi
    turns = np.floor_divide(fitted[:, 3], math.pi)
    fitted[:, 3] -= turns * math.pi
    fitted[:, 5] *= np.where(turns % 2 == 1, -1, 1)
    fitted[:, 5] = np.angle(np.exp(1j * fitted[:, 5]))  # wrapped into (-pi, pi]
    return Bunch(r2=r2, **dict(zip(_GABOR_PARAMS, fitted.T, strict=True)))
