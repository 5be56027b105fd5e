"""Sparse codes on MNIST: each mechanism against the Gaussian and the plain Cauchy prior.

Every model has the same architecture, data and epoch budget; the rows differ in the prior
and the posterior family (``thresholded`` with its threshold, ``spike-and-slab`` with its
prior probability of an active code). For each: the test ELBO, an
importance-weighted estimate of log p(x), the codes' Hoyer sparsity, their share of exact
zeros (over all dimensions, and over the active ones only, since a collapsed dimension is
zero for free), the active units, and the accuracy of a logistic regression on the codes:
on all dimensions, and on the active ones only (a Gaussian VAE's unused dimensions still
vary a little with the digit, and the standardizing classifier reads that).

Usage::

    python benchmarks/bench_sparse_codes.py                 # 20000 train, 30 epochs, 32 dims
    python benchmarks/bench_sparse_codes.py --n-train 60000 --epochs 50 --n-components 50 \\
        --hidden 200,200 --importance-samples 5000
    python benchmarks/bench_sparse_codes.py --quick         # a fast check that it runs

A model is ``prior/posterior``, ``prior/thresholded:<threshold>`` or
``prior/spike-and-slab:<sparsity>`` (``--models``).

``--aggregate-mmd ALPHA`` trains every model with Mathieu et al.'s aggregate-posterior
regulariser (ICML 2019, ``iffsid/disentangling-disentanglement``, ``src/regularisers.py``):
ALPHA times their per-dimension MMD between the batch's codes (what the decoder reads) and
as many draws of the prior's, added to the negative ELBO; ``score`` still reports the
ELBO. Their sparse prior, ``gamma N(0, 0.05^2) + (1 - gamma) N(0, 1)`` with gamma = 0.8,
is the prior ``sparse-mixture``, registered by this script for the comparison only (with
``--vae-param prior_scale=1.0`` it is theirs; the learned scale multiplies both parts).

``--prior-mixture K`` replaces every SparseVAE's prior by a mixture of K products of its
family, ``p(z) = sum_k pi_k prod_d p(z_d; m_kd, s_kd)``, the weights, locations and scales
learned with the networks on the ELBO (its KL by Monte Carlo; with
``--prior-mixture-scales-only`` every ``m_kd`` is 0). Under a product prior a
dimension that is off in some codes and on in others pays the entropy of its on/off pattern
in KL; under the mixture the dimensions' patterns can be correlated, and the model pays for
the pattern of the whole code.
"""

import argparse
import time

import numpy as np
import torch
from _common import (
    add_prior_mixture_arguments,
    add_vae_param_argument,
    make_vae,
    model_list,
    non_negative_int,
    parse_model,
    positive_int,
    print_settings,
    print_table,
    prior_mixture_seams,
    set_default_mnist_dir,
    timed,
    warm_up,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.distributions import Categorical, MixtureSameFamily, Normal

from skvae._families import PRIORS, Prior, uniform
from skvae.datasets import load_mnist
from skvae.diagnostics import active_units, hoyer_sparsity, latent_activity, log_likelihood

MODELS = [
    "normal/normal",
    "cauchy/normal",
    "cauchy/thresholded:0.5",
    "cauchy/thresholded:1",
    "normal/thresholded:0.5",
    "laplace/thresholded:0.5",
    "normal/spike-and-slab:0.5",
    "cauchy/spike-and-slab:0.5",
    "cauchy/spike-and-slab:0.2",
]

SPIKE_WEIGHT, SPIKE_SCALE = 0.8, 0.05  # Mathieu et al.'s gamma and spike width


def sparse_mixture(loc, scale):
    """Mathieu et al.'s sparse prior of each coordinate: a narrow spike and a unit slab."""
    loc, scale = torch.broadcast_tensors(torch.as_tensor(loc), torch.as_tensor(scale))
    weights = torch.tensor([SPIKE_WEIGHT, 1 - SPIKE_WEIGHT]).expand(*loc.shape, 2)
    parts = Normal(
        torch.stack([loc, loc], -1),
        torch.stack([SPIKE_SCALE * scale, scale], -1),
        validate_args=False,
    )
    return MixtureSameFamily(Categorical(probs=weights), parts, validate_args=False)


class MixturePrior(Prior):
    def sample(self, distribution, sample_shape, generator):
        """Draws from ``generator``: a part for each coordinate, then its inverse CDF (the
        mixture itself has none)."""
        parts = distribution.component_distribution
        shape = torch.Size(sample_shape) + distribution.batch_shape
        spike = uniform(shape, generator, parts.loc.device) < SPIKE_WEIGHT
        scale = torch.where(spike, parts.scale[..., 0], parts.scale[..., 1])
        return Normal(parts.loc[..., 0], scale).icdf(uniform(shape, generator, scale.device))


def register_sparse_mixture():
    """Offer Mathieu et al.'s prior as ``sparse-mixture``, in this script's process only."""
    if "sparse-mixture" not in PRIORS:
        PRIORS.register(MixturePrior("sparse-mixture", sparse_mixture))


def dimensionwise_mmd(X, Y, scales=(0.1, 0.2, 0.5, 1.0, 2.0, 5.0)):
    """Mathieu et al.'s ``imq_dim_kernel``: for each column, an estimate of the squared MMD
    between the columns of X and Y (unbiased within each sample, biased between them) under
    inverse multiquadric kernels C / (C + d^2), C = 2 * scale, summed over the columns and
    the scales."""
    n = X.shape[0]
    off_diagonal = 1 - torch.eye(n, dtype=X.dtype, device=X.device).unsqueeze(-1)
    d_x = (X.unsqueeze(0) - X.unsqueeze(1)).square()
    d_y = (Y.unsqueeze(0) - Y.unsqueeze(1)).square()
    d_xy = (X.unsqueeze(0) - Y.unsqueeze(1)).square()
    total = 0.0
    for scale in scales:
        c = 2 * scale
        within = (off_diagonal * (c / (c + d_x) + c / (c + d_y))).sum((0, 1)) / (n - 1)
        between = (c / (c + d_xy)).sum((0, 1)) * 2 / n
        total = total + (within - between).sum()
    return total / n


class AggregateMMD:
    """A seam for :func:`make_vae`: each epoch trains on the negative ELBO (its KL weighted by
    beta and the warm-up) plus ``aggregate_mmd`` times :func:`dimensionwise_mmd` between the
    batch's codes and the prior's (an Adam step of the estimator's own optimizer)."""

    aggregate_mmd = 0.0

    def _run_epoch(self, step, X, generator):
        module, optimizer = self.module_, self._optimizer
        family = module.posterior_family
        params = module._params("posterior", family)
        beta = self.beta * self._kl_warmup_factor(self.n_iter_ + 1)

        def regularised_step(batch, noise):
            posterior, z, _, log_likelihood = module._reconstruct(batch, noise)
            loss = -(log_likelihood - beta * module.kl(posterior, z).sum(-1)).mean()
            h = family.decoder_input(z, **params).reshape(-1, z.shape[-1])
            draws = module.prior_family.sample(module.prior(), (len(h),), generator)
            loss = loss + self.aggregate_mmd * dimensionwise_mmd(
                h, family.decoder_input(draws, **params)
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss.detach()

        return super()._run_epoch(regularised_step, X, generator)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=positive_int, default=20000, help="training digits")
    parser.add_argument("--n-test", type=positive_int, default=10000, help="test digits")
    parser.add_argument("--epochs", type=positive_int, default=30, help="epochs of every VAE")
    parser.add_argument("--n-components", type=positive_int, default=32, help="latent dimensions")
    parser.add_argument(
        "--hidden", default="256,128", help="hidden layers (the estimators' default)"
    )
    parser.add_argument(
        "--importance-samples", type=positive_int, default=200, help="K of the log p(x) estimate"
    )
    parser.add_argument(
        "--n-iwae", type=positive_int, default=2000, help="test digits of the log p(x) estimate"
    )
    parser.add_argument(
        "--models", type=model_list, default=",".join(MODELS), help="comma-separated models"
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument(
        "--aggregate-mmd",
        type=float,
        default=0.0,
        metavar="ALPHA",
        help="weight of Mathieu et al.'s aggregate-posterior MMD in training (0: none)",
    )
    add_prior_mixture_arguments(parser)
    add_vae_param_argument(
        parser, "set a VAE parameter for every model, e.g. n_importance_samples=5 (repeatable)"
    )
    parser.add_argument("--data-dir", default=None, help="directory of the MNIST IDX files")
    parser.add_argument("--quick", action="store_true", help="2000/500 digits, 2 epochs")
    args = parser.parse_args()
    if args.aggregate_mmd and args.prior_mixture:
        parser.error("--aggregate-mmd draws from the prior, which --prior-mixture cannot")
    if args.quick:
        args.n_train, args.n_test, args.epochs = 2000, 500, 2
        args.importance_samples, args.n_iwae = 10, 100
    return args


def make_model(model, args):
    prior, posterior, posterior_params = parse_model(model)
    settings = dict(
        n_components=args.n_components,
        hidden_layer_sizes=tuple(int(h) for h in args.hidden.split(",")),
        activation="relu" if prior == "normal" else "tanh",  # each estimator's default
        likelihood="bernoulli",
        posterior=posterior,
        posterior_params=posterior_params,
        max_iter=args.epochs,
        tol=None,
        random_state=args.seed,
    )
    # --vae-param prior_scale=1.0 or df=... set SparseVAE's prior; GaussianVAE has neither.
    vae_params = {
        name: value
        for name, value in args.vae_param
        if prior != "normal" or name not in ("prior_scale", "df")
    }
    seams = (AggregateMMD,) if args.aggregate_mmd else ()
    if prior != "normal":
        seams += prior_mixture_seams(args)
    vae = make_vae(prior, seams=seams, **{**settings, **vae_params})
    if args.aggregate_mmd:
        vae.aggregate_mmd = args.aggregate_mmd
    return vae


def measure(model, X_train, y_train, X_test, y_test, args):
    vae = make_model(model, args)
    seconds, _ = timed(vae.fit, X_train)
    Z_train, Z_test = vae.transform(X_train), vae.transform(X_test)
    active = latent_activity(vae, X_test) > 0.01
    zeros = Z_test == 0
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    accuracy = classifier.fit(Z_train, y_train).score(Z_test, y_test)
    active_accuracy = (
        f"{classifier.fit(Z_train[:, active], y_train).score(Z_test[:, active], y_test):.4f}"
        if active.any()
        else "-"
    )
    log_px = log_likelihood(vae, X_test[: args.n_iwae], n_samples=args.importance_samples)
    return [
        model,
        f"{vae.score(X_test):.2f}",
        f"{log_px.mean():.2f}",
        f"{hoyer_sparsity(Z_test):.3f}",
        f"{100 * zeros.mean():.1f}",
        f"{100 * zeros[:, active].mean():.1f}" if active.any() else "-",
        f"{active_units(vae, X_test)} of {vae.n_components}",
        f"{accuracy:.4f}",
        active_accuracy,
        f"{seconds / vae.n_iter_:.2f}",  # the epochs it ran (--vae-param max_iter=...)
    ]


def main():
    register_sparse_mixture()  # before --models is checked: it names this prior
    args = parse_args()
    set_default_mnist_dir()
    start = time.perf_counter()
    print_settings(args)
    X_train, y_train = load_mnist(subset="train", data_dir=args.data_dir)
    X_test, y_test = load_mnist(subset="test", data_dir=args.data_dir)
    rows = np.random.default_rng(args.seed).permutation(len(X_train))[: args.n_train]
    X_train, y_train = X_train[rows], y_train[rows]
    X_test, y_test = X_test[: args.n_test], y_test[: args.n_test]
    headers = [
        "prior/posterior",
        "test ELBO",
        f"log p(x), K={args.importance_samples}",
        "Hoyer",
        "zeros %",
        "zeros % (active dims)",
        "active units",
        "accuracy",
        "accuracy (active dims)",
        "s/epoch",
    ]
    warm_up()
    print_table(headers, (measure(m, X_train, y_train, X_test, y_test, args) for m in args.models))
    print(f"\nTotal wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
