"""Sparse codes on MNIST: each mechanism against the Gaussian and the plain Cauchy prior.

Every model has the same architecture, data and epoch budget; the rows differ in the prior
and the posterior family (``thresholded`` with its threshold, ``spike-and-slab`` with its
prior probability of an active code). For each: the test ELBO, an
importance-weighted estimate of log p(x), the codes' Hoyer sparsity, their share of exact
zeros (over all dimensions, and over the active ones only, since a collapsed dimension is
zero for free), the active units, and the accuracy of a logistic regression on the codes.

Usage::

    python benchmarks/bench_sparse_codes.py                 # 20000 train, 30 epochs, 32 dims
    python benchmarks/bench_sparse_codes.py --n-train 60000 --epochs 50 --n-components 50 \\
        --hidden 200,200 --importance-samples 5000
    python benchmarks/bench_sparse_codes.py --quick         # a fast check that it runs

A model is ``prior/posterior``, ``prior/thresholded:<threshold>`` or
``prior/spike-and-slab:<sparsity>`` (``--models``).
"""

import argparse
import time

import numpy as np
from _common import (
    add_vae_param_argument,
    make_vae,
    parse_model,
    print_settings,
    print_table,
    set_default_mnist_dir,
    timed,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

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


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=20000, help="training digits")
    parser.add_argument("--n-test", type=int, default=10000, help="test digits")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of every VAE")
    parser.add_argument("--n-components", type=int, default=32, help="latent dimensions")
    parser.add_argument(
        "--hidden", default="256,128", help="hidden layers (the estimators' default)"
    )
    parser.add_argument(
        "--importance-samples", type=int, default=200, help="K of the log p(x) estimate"
    )
    parser.add_argument(
        "--n-iwae", type=int, default=2000, help="test digits of the log p(x) estimate"
    )
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated models")
    parser.add_argument("--seed", type=int, default=0)
    add_vae_param_argument(
        parser, "set a VAE parameter for every model, e.g. n_importance_samples=5 (repeatable)"
    )
    parser.add_argument("--data-dir", default=None, help="directory of the MNIST IDX files")
    parser.add_argument("--quick", action="store_true", help="2000/500 digits, 2 epochs")
    args = parser.parse_args()
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
    return make_vae(prior, **{**settings, **dict(args.vae_param)})


def measure(model, X_train, y_train, X_test, y_test, args):
    vae = make_model(model, args)
    seconds, _ = timed(vae.fit, X_train)
    Z_train, Z_test = vae.transform(X_train), vae.transform(X_test)
    active = latent_activity(vae, X_test) > 0.01
    zeros = Z_test == 0
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    accuracy = classifier.fit(Z_train, y_train).score(Z_test, y_test)
    log_px = log_likelihood(vae, X_test[: args.n_iwae], n_samples=args.importance_samples)
    return [
        model,
        f"{vae.score(X_test):.2f}",
        f"{log_px.mean():.2f}",
        f"{hoyer_sparsity(Z_test):.3f}",
        f"{100 * zeros.mean():.1f}",
        f"{100 * zeros[:, active].mean():.1f}" if active.any() else "-",
        f"{active_units(vae, X_test)}",
        f"{accuracy:.4f}",
        f"{seconds / args.epochs:.2f}",
    ]


def main():
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
        f"active (of {args.n_components})",
        "accuracy",
        "s/epoch",
    ]
    models = args.models.split(",")
    print_table(headers, (measure(m, X_train, y_train, X_test, y_test, args) for m in models))
    print(f"\nTotal wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
