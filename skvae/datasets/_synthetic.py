"""Synthetic sparse sources mixed linearly or through a random leaky-ReLU network."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_scalar

from .._validation import random_state_or_entropy

# Negative slope of the leaky ReLU of the nonlinear mixture, as in the iVAE experiments.
_LEAKY_SLOPE = 0.2


def _random_mixing_matrix(n_rows, n_columns, random_state):
    """Gaussian matrix whose columns have unit norm.

    Applied to unit-variance, independent inputs, every output then has unit variance, so
    the ``noise`` of :func:`make_sparse_sources` is a noise-to-signal ratio of standard
    deviations. Gaussian entries make the matrix full rank with probability one.
    """
    matrix = random_state.standard_normal((n_rows, n_columns))
    return matrix / np.linalg.norm(matrix, axis=0)


def _leaky_relu(values):
    # Rescaled so that a symmetric input keeps its second moment: E[f(y)^2] = E[y^2].
    gain = np.sqrt(2 / (1 + _LEAKY_SLOPE**2))
    return gain * np.where(values > 0, values, _LEAKY_SLOPE * values)


def make_sparse_sources(
    n_samples=2000,
    n_sources=5,
    n_features=20,
    *,
    mixing="linear",
    sparsity=0.7,
    noise=0.1,
    random_state=None,
):
    """Generate independent sparse sources and noisy observations of their mixture.

    Each source is spike-and-slab Laplace: an entry is exactly 0 with probability
    ``sparsity`` and otherwise drawn from a Laplace law of location 0, whose scale
    ``1 / sqrt(2 * (1 - sparsity))`` gives every source unit variance. The sources S
    are mixed into ``n_features`` observed features and Gaussian noise of standard deviation
    ``noise`` is added:

    - ``mixing='linear'``: ``X = S A + noise * E``, with A a random
      ``(n_sources, n_features)`` matrix of Gaussian entries whose columns are scaled to unit
      norm, so that every noiseless feature has unit variance. A is full rank with
      probability one, so the sources are identifiable up to order, sign and scale, as in
      (noisy) independent component analysis.
    - ``mixing='nonlinear'``: ``X = f(S A) B + noise * E``, a random one-hidden-layer
      network as in the nonlinear ICA experiments of Hyvärinen and Morioka (2016) and
      Khemakhem et al. (2020). A is drawn as above, B is a random square
      ``(n_features, n_features)`` matrix drawn the same way, and f is the leaky ReLU of
      negative slope 0.2 scaled by ``sqrt(2 / (1 + 0.2**2))`` so that it keeps the second
      moment of its symmetric input. Every step is injective, so X still determines S
      when there is no noise, but no linear map recovers S from X.

    Parameters
    ----------
    n_samples : int, default=2000
        Number of rows.
    n_sources : int, default=5
        Number of independent sources (columns of S).
    n_features : int, default=20
        Number of observed features (columns of X); at least ``n_sources``.
    mixing : {'linear', 'nonlinear'}, default='linear'
        How the sources are mixed into the features; see above.
    sparsity : float, default=0.7
        Probability, in [0, 1), that an entry of S is exactly 0.
    noise : float, default=0.1
        Standard deviation of the Gaussian noise added to each feature; the noiseless
        features of the linear mixture have unit variance.
    random_state : int, RandomState instance or None, default=None
        Seed of the sources, the mixing and the noise. Pass an int for reproducible output;
        None draws fresh entropy (NumPy's global random state is never used).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Noisy mixtures of the sources.
    S : ndarray of shape (n_samples, n_sources)
        The sources.

    References
    ----------
    A. Hyvärinen and H. Morioka, "Unsupervised feature extraction by time-contrastive
    learning and nonlinear ICA", NeurIPS 2016.
    I. Khemakhem, D. P. Kingma, R. P. Monti and A. Hyvärinen, "Variational autoencoders and
    nonlinear ICA: a unifying framework", AISTATS 2020.

    Examples
    --------
    >>> from skvae.datasets import make_sparse_sources
    >>> X, S = make_sparse_sources(n_samples=1000, sparsity=0.8, random_state=0)
    >>> X.shape, S.shape
    ((1000, 20), (1000, 5))
    >>> round(float((S == 0).mean()), 2)
    0.8
    """
    check_scalar(n_samples, "n_samples", Integral, min_val=1)
    check_scalar(n_sources, "n_sources", Integral, min_val=1)
    check_scalar(n_features, "n_features", Integral, min_val=1)
    # As scikit-learn's generators read them: True is 1 (NumPy refused a bool as a size).
    n_samples, n_sources, n_features = int(n_samples), int(n_sources), int(n_features)
    if n_features < n_sources:
        raise ValueError(
            f"n_features={n_features} must be at least n_sources={n_sources}: fewer features "
            "than sources cannot determine the sources."
        )
    if mixing not in ("linear", "nonlinear"):
        raise ValueError(f"mixing must be 'linear' or 'nonlinear', got {mixing!r}.")
    check_scalar(sparsity, "sparsity", Real, min_val=0, max_val=1, include_boundaries="left")
    check_scalar(noise, "noise", Real, min_val=0)
    for name, value in [("sparsity", sparsity), ("noise", noise)]:
        if not np.isfinite(value):  # check_scalar's comparisons are all False for NaN
            raise ValueError(f"{name} must be a finite number, got {value}.")
    random_state = random_state_or_entropy(random_state)

    # The mixing is drawn first, so that a seed gives the same mixing for any n_samples.
    first_layer = _random_mixing_matrix(n_sources, n_features, random_state)
    if mixing == "nonlinear":
        second_layer = _random_mixing_matrix(n_features, n_features, random_state)

    slab_scale = 1 / np.sqrt(2 * (1 - sparsity))
    slab = random_state.laplace(scale=slab_scale, size=(n_samples, n_sources))
    S = np.where(random_state.uniform(size=slab.shape) < sparsity, 0.0, slab)

    X = S @ first_layer
    if mixing == "nonlinear":
        X = _leaky_relu(X) @ second_layer
    X += noise * random_state.standard_normal(X.shape)
    return X, S
