"""Training on the importance-weighted bound (``n_importance_samples`` > 1)."""

import numpy as np
import pytest
import torch
from conftest import FAST
from sklearn.exceptions import ConvergenceWarning

from skvae import GaussianVAE, SparseVAE
from skvae.diagnostics import log_likelihood

pytestmark = pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)

FAMILIES = [
    (GaussianVAE, {}),
    (SparseVAE, {"prior": "cauchy", "posterior": "normal"}),
    (SparseVAE, {}),  # laplace prior, thresholded codes
    (SparseVAE, {"posterior": "spike-and-slab"}),
    (SparseVAE, {"prior": "student-t", "posterior": "cauchy"}),
]


def test_the_bound_is_jensen_tighter_than_the_mean_of_its_weights(small_digits):
    vae = SparseVAE(**FAST).fit(small_digits[0])
    module, device = vae.module_, vae._device()
    X = torch.as_tensor(small_digits[0][:50], dtype=torch.float32, device=device)
    noise = torch.rand(
        5, X.shape[0], module.noise_width, generator=torch.Generator().manual_seed(0)
    ).to(device)
    with torch.no_grad():
        bound = module.importance_weighted_bound(X, noise)
        log_w = module.log_importance_weights(X, noise)
    expected = torch.logsumexp(log_w, dim=0) - np.log(5)
    torch.testing.assert_close(bound, expected)
    assert (bound >= log_w.mean(0) - 1e-5).all()


@pytest.mark.parametrize("estimator, params", FAMILIES, ids=lambda p: str(p))
def test_every_family_trains_on_the_bound(small_digits, estimator, params):
    X = small_digits[0]
    params = {**FAST, **params, "likelihood": "bernoulli"}
    if params.get("posterior") == "cauchy":
        params["activation"] = "tanh"
    vae = estimator(**params, n_importance_samples=4).fit(X)
    assert np.isfinite(vae.loss_curve_).all() and np.isfinite(vae.score(X))
    # The loss of an epoch is the negative 4-sample bound: close to, and below, the ELBO's
    # negative once trained (averaged over the epoch's batches, so loosely).
    assert vae.loss_curve_[-1] < -vae.score(X) + 5


def test_one_sample_is_the_elbo_bit_for_bit(small_digits):
    X = small_digits[0]
    default = SparseVAE(**FAST).fit(X)
    explicit = SparseVAE(**FAST, n_importance_samples=1).fit(X)
    assert default.loss_curve_ == explicit.loss_curve_


def test_five_samples_give_a_higher_log_likelihood(small_digits):
    # Burda et al.: a model trained on the k = 5 bound has a higher log p(x) than one trained
    # on the ELBO, while its ELBO may be lower (its posterior need not fit as tightly).
    X = small_digits[0]
    train, test = X[:450], X[450:]
    settings = dict(n_components=8, likelihood="bernoulli", max_iter=30, tol=None, random_state=0)
    fits = {k: GaussianVAE(**settings, n_importance_samples=k).fit(train) for k in (1, 5)}
    scores = {k: log_likelihood(vae, test, n_samples=500).mean() for k, vae in fits.items()}
    assert scores[5] > scores[1]
