"""MNIST: Gaussian versus sparse priors, and latent codes as classifier features.

The two experiments of ``examples/plot_mnist.py`` and ``examples/plot_mnist_features.py`` at
a size the examples cannot afford: every VAE has the same architecture and epoch budget and
differs from the others only in its prior. Prints the settings, two Markdown tables (mean and
standard deviation over ``--seeds`` when there are several) and the wall time.

Usage::

    python benchmarks/bench_mnist.py                      # 60000 train, 10000 test, 50 epochs
    python benchmarks/bench_mnist.py --n-train 20000 --epochs 30 --seeds 3
    python benchmarks/bench_mnist.py --quick              # a fast check that it runs

The data comes from ``--data-dir``, else from the ``SKVAE_MNIST_DIR`` environment variable,
else from OpenML (see :func:`skvae.datasets.load_mnist`). Run with ``OMP_NUM_THREADS=1`` when
other processes share the cores: torch's threads slow down badly under contention.
"""

import argparse
import time

import numpy as np
from _common import (
    add_kl_warmup_argument,
    make_vae,
    positive_int,
    print_settings,
    print_table,
    set_default_mnist_dir,
    timed,
    warm_up,
)
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae.datasets import load_mnist
from skvae.diagnostics import active_units, hoyer_sparsity, log_likelihood

PRIORS = ["normal", "cauchy", "laplace"]
PRIOR_NAMES = {"normal": "Gaussian prior", "cauchy": "Cauchy prior", "laplace": "Laplace prior"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=positive_int, default=60000, help="training digits")
    parser.add_argument(
        "--n-test",
        type=positive_int,
        default=10000,
        help="test digits of the prior comparison (the features are scored on all 10000)",
    )
    parser.add_argument("--epochs", type=positive_int, default=50, help="epochs of every VAE")
    parser.add_argument(
        "--importance-samples",
        type=positive_int,
        default=1000,
        help="importance samples per test digit for the log-likelihood estimate",
    )
    parser.add_argument(
        "--n-components",
        type=positive_int,
        default=50,
        help="latent dimensions in the first experiment (Burda et al. use 50)",
    )
    parser.add_argument(
        "--n-features",
        type=positive_int,
        default=32,
        help="size of the codes of every method in the second experiment",
    )
    parser.add_argument(
        "--seeds", type=positive_int, default=1, help="repetitions with seeds 0, 1, ..."
    )
    add_kl_warmup_argument(parser)
    parser.add_argument("--data-dir", default=None, help="directory of the MNIST IDX files")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2000 train and 500 test digits, 3 epochs, 20 importance samples",
    )
    args = parser.parse_args()
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.importance_samples = 2000, 500, 3, 20
    return args


def mnist_vae(prior, n_components, n_epochs, seed, kl_warmup_epochs=0):
    """A VAE with the settings shared by all models of both experiments, and ``prior``.

    ``tol=None`` gives every model exactly ``n_epochs`` epochs.
    """
    return make_vae(
        prior,
        n_components=n_components,
        hidden_layer_sizes=(200, 200),
        activation="tanh",
        likelihood="bernoulli",
        posterior="normal",
        beta=1.0,
        kl_warmup_epochs=kl_warmup_epochs,
        batch_size=128,
        learning_rate=1e-3,
        max_iter=n_epochs,
        tol=None,
        early_stopping=False,
        n_mc_samples=10,
        random_state=seed,
    )


def prior_comparison(X_train, X_test, args, seed):
    """Test ELBO, log-likelihood, sparsity, active units and fit time of each prior."""
    results = {}
    for prior in PRIORS:
        vae = mnist_vae(prior, args.n_components, args.epochs, seed, args.kl_warmup_epochs)
        fit_time, _ = timed(vae.fit, X_train)
        iw_estimate = log_likelihood(vae, X_test, n_samples=args.importance_samples)
        results[PRIOR_NAMES[prior]] = {
            "test ELBO (nats)": vae.score(X_test),
            f"log p(x), K={args.importance_samples} (nats)": iw_estimate.mean(),
            "Hoyer sparsity": hoyer_sparsity(vae.transform(X_test)),
            f"active units (of {args.n_components})": active_units(vae, X_test),
            "fit time (s)": fit_time,
        }
    return results


def make_classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def feature_comparison(X_train, y_train, X_test, y_test, args, seed):
    """Test accuracy of logistic regression on codes of each method, and their fit time."""
    n = args.n_features
    extractors = {
        "PCA": PCA(n_components=n, random_state=seed),
        "Factor analysis": FactorAnalysis(n_components=n, random_state=seed),
        "Bernoulli RBM": BernoulliRBM(n_components=n, n_iter=20, random_state=seed),
    }
    for prior in PRIORS:
        name = "GaussianVAE" if prior == "normal" else f"SparseVAE, {prior.capitalize()}"
        extractors[name] = mnist_vae(prior, n, args.epochs, seed, args.kl_warmup_epochs)
    results = {}
    for name, extractor in extractors.items():
        fit_time, _ = timed(extractor.fit, X_train)
        classifier = make_classifier().fit(extractor.transform(X_train), y_train)
        accuracy = classifier.score(extractor.transform(X_test), y_test)
        results[name] = {"test accuracy": accuracy, "fit time (s)": fit_time}
    # Raw pixels share one scale already; standardizing them would inflate the near-constant
    # border pixels, so the reference classifier takes them as they are.
    pixels = LogisticRegression(max_iter=1000).fit(X_train, y_train)
    results["raw pixels (784), for reference"] = {"test accuracy": pixels.score(X_test, y_test)}
    return results


def print_summary(runs, first_column):
    """A Markdown table of the mean (and, over several runs, the std) of each value."""
    columns = list(next(iter(runs[0].values())))
    rows = []
    for row in runs[0]:
        cells = [row]
        for column in columns:
            values = [run[row][column] for run in runs if column in run[row]]
            digits = 3 if column in ("Hoyer sparsity", "test accuracy") else 1
            if not values:
                cells.append("")
            elif len(values) == 1 and isinstance(values[0], int):
                cells.append(str(values[0]))
            elif len(values) == 1:
                cells.append(f"{values[0]:.{digits}f}")
            else:
                cells.append(f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}")
        rows.append(cells)
    print_table([first_column, *columns], rows)


def main():
    args = parse_args()
    set_default_mnist_dir()
    start = time.perf_counter()
    print_settings(args)
    print(
        "  VAEs: 784-200-200-latent tanh MLPs, Bernoulli likelihood on intensities, normal "
        f"posterior, Adam lr=1e-3, batch 128, exactly {args.epochs} epochs"
    )

    X_train, y_train = load_mnist(subset="train", data_dir=args.data_dir)
    X_test, y_test = load_mnist(subset="test", data_dir=args.data_dir)
    warm_up()
    prior_runs, feature_runs = [], []
    for seed in range(args.seeds):
        rows = np.random.default_rng(seed).permutation(len(X_train))[: args.n_train]
        prior_runs.append(prior_comparison(X_train[rows], X_test[: args.n_test], args, seed))
        feature_runs.append(
            feature_comparison(X_train[rows], y_train[rows], X_test, y_test, args, seed)
        )

    n_test = len(X_test[: args.n_test])  # MNIST has 10,000
    print(f"\nPriors ({args.n_components} latent dimensions), on {n_test} test digits:")
    print_summary(prior_runs, "model")
    print(f"\nCodes of {args.n_features} dimensions as features, on {len(X_test)} test digits:")
    print_summary(feature_runs, "features")
    print(f"\nTotal wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
