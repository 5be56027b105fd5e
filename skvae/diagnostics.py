"""Diagnostics of latent codes: sparsity, active units, KL per dimension, source recovery.

They take a fitted :class:`~skvae.SparseVAE` or :class:`~skvae.GaussianVAE` and data, or
codes as returned by ``transform``, and return NumPy values.
"""

import math

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import spearmanr
from sklearn.utils import check_scalar
from sklearn.utils.validation import check_array, check_is_fitted

from ._training import inference_batch_size

__all__ = [
    "hoyer_sparsity",
    "latent_activity",
    "active_units",
    "kl_per_dimension",
    "log_likelihood",
    "mean_correlation_coefficient",
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
    Z = check_array(Z, dtype=np.float64, input_name="Z")
    n_components = Z.shape[1]
    if n_components < 2:
        raise ValueError(f"Hoyer sparsity needs at least 2 dimensions, got {n_components}.")
    if standardize:
        std = Z.std(axis=0)
        Z = Z / np.where(std > 0, std, 1.0)
    l1, l2 = np.abs(Z).sum(axis=1), np.linalg.norm(Z, axis=1)
    ratio = np.divide(l1, l2, out=np.full_like(l1, math.sqrt(n_components)), where=l2 > 0)
    root = math.sqrt(n_components)
    # The measure lies in [0, 1]; clipping removes rounding error at the ends.
    return float(np.clip(np.mean((root - ratio) / (root - 1)), 0.0, 1.0))


def latent_activity(estimator, X):
    """Variance over the data of each dimension of the posterior location.

    Burda et al. (2016) call a dimension active when this exceeds 0.01: the code moves with
    the input rather than staying at the prior. The posterior location (``transform``) stands
    in for the posterior mean, which a Cauchy posterior does not have.

    Parameters
    ----------
    estimator : fitted SparseVAE or GaussianVAE
    X : array-like of shape (n_samples, n_features)

    Returns
    -------
    activity : ndarray of shape (n_components,)
    """
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
    X = estimator._check_fitted_data(X)
    module = estimator.module_
    noise = estimator._fixed_noise(estimator.n_mc_samples)

    def kl(x):
        per_dimension = module.kl(*module.posterior_sample(x, noise))
        # Closed forms have no sample axis; Monte Carlo terms are averaged over it.
        return per_dimension if module.analytic_kl else per_dimension.mean(0)

    return estimator._map_batches(kl, X, estimator.n_mc_samples).astype(np.float64).mean(axis=0)


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
    random_state : int, default=0
        Seed of the draws, shared by all rows: the same call gives the same numbers.

    Returns
    -------
    log_likelihood : ndarray of shape (n_samples_X,)
    """
    check_is_fitted(estimator)
    check_scalar(n_samples, "n_samples", int, min_val=1)
    X = estimator._check_fitted_data(X)
    module = estimator.module_
    noise = estimator._fixed_noise(n_samples, seed=int(random_state))
    draws_per_pass = min(n_samples, inference_batch_size(estimator._device(), X.shape[1]))

    def importance_weighted(x):
        total = torch.full((x.shape[0],), -math.inf, device=x.device)
        for start in range(0, n_samples, draws_per_pass):
            log_w = module.log_importance_weights(x, noise[start : start + draws_per_pass])
            total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
        return total - math.log(n_samples)

    return estimator._map_batches(importance_weighted, X, draws_per_pass).astype(np.float64)


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
    sources = check_array(sources, dtype=np.float64, input_name="sources")
    codes = check_array(codes, dtype=np.float64, input_name="codes")
    if sources.shape[0] != codes.shape[0]:
        raise ValueError(
            f"sources and codes need the same rows, got {sources.shape[0]} and {codes.shape[0]}."
        )
    n_sources = sources.shape[1]
    if codes.shape[1] < n_sources:
        raise ValueError(f"codes have {codes.shape[1]} dimensions for {n_sources} sources.")
    if method == "spearman":
        correlation = spearmanr(sources, codes).statistic
        correlation = np.atleast_2d(correlation)[:n_sources, n_sources:]
    elif method == "pearson":
        correlation = np.corrcoef(sources, codes, rowvar=False)[:n_sources, n_sources:]
    else:
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}.")
    correlation = np.nan_to_num(np.abs(correlation))  # a constant column correlates with nothing
    rows, cols = linear_sum_assignment(-correlation)
    return float(correlation[rows, cols].mean())
