"""Small tables: the estimators' defaults on scikit-learn's offline data sets, held out.

Each data set is split 75 / 25 (``train_test_split`` with the seed), and each model is
fitted on the training rows with ``n_components=min(10, n_features)`` and otherwise its
defaults, under three budgets: the default (``max_iter=200`` with the stopping rule),
``max_iter=1000`` (what the ConvergenceWarning's "increase max_iter" leads to) and
``max_iter=1000`` with ``early_stopping=True`` (a tenth of the training rows held out to
stop on). The table gives the held-out ELBO under each, with the epochs run, and the train
ELBO of the 1000-epoch fit: the gap between the two is overfitting. ``zeros %`` is the
share of exact zeros in the default fit's codes of the held-out rows.

Usage::

    python benchmarks/bench_small_tables.py                 # seeds 0 1 2
    python benchmarks/bench_small_tables.py --seeds 0 --datasets digits
    python benchmarks/bench_small_tables.py --quick         # a fast check that it runs

The data sets ship with scikit-learn (no download): ``digits`` (1,797 rows of 64 grey
levels 0 to 16), ``breast_cancer`` (569 x 30), ``wine`` (178 x 13) and ``diabetes`` (442 x
10, already centred and scaled). All use the Gaussian likelihood, the estimators' default.
"""

import argparse
import time
import warnings

from _common import non_negative_int, print_settings, print_table
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skvae import GaussianVAE, SparseVAE

DATASETS = {
    "digits": load_digits,
    "breast_cancer": load_breast_cancer,
    "wine": load_wine,
    "diabetes": load_diabetes,
}
MODELS = {
    "GaussianVAE()": lambda: GaussianVAE(),
    "SparseVAE()": lambda: SparseVAE(),
    "SparseVAE(activation='relu')": lambda: SparseVAE(activation="relu"),
}
BUDGETS = {
    "default": {},
    "max_iter=1000": {"max_iter": 1000},
    "early stopping": {"max_iter": 1000, "early_stopping": True},
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(MODELS),
        choices=MODELS,
        metavar="MODEL",
        help=f"any of: {', '.join(repr(model) for model in MODELS)} (quote them in a shell)",
    )
    parser.add_argument("--quick", action="store_true", help="one seed, wine, 20 epochs")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.datasets = [0], ["wine"]
        for budget in BUDGETS.values():
            budget["max_iter"] = 20
    return args


def measure(dataset, seed, model):
    X, _ = DATASETS[dataset](return_X_y=True)
    X_train, X_test = train_test_split(X, random_state=seed)
    row = [dataset, seed, model]
    for name, budget in BUDGETS.items():
        vae = MODELS[model]().set_params(
            n_components=min(10, X.shape[1]), random_state=seed, **budget
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae.fit(X_train)
        row.append(f"{vae.score(X_test):.2f} ({vae.n_iter_})")
        if name == "default":
            zeros = 100 * (vae.transform(X_test) == 0).mean()
        if name == "max_iter=1000":
            train_score = vae.score(X_train)
    return [*row, f"{train_score:.2f}", f"{zeros:.1f}"]


def main():
    args = parse_args()
    start = time.perf_counter()
    print_settings(args)
    capped = " (--quick: 20 epochs)" if args.quick else ""  # every budget's max_iter
    headers = [
        "data",
        "seed",
        "model",
        *(f"held-out ELBO (epochs), {name}{capped}" for name in BUDGETS),
        f"train ELBO, max_iter=1000{capped}",
        "zeros %",
    ]
    rows = (
        measure(dataset, seed, model)
        for dataset in args.datasets
        for seed in args.seeds
        for model in args.models
    )
    print_table(headers, rows, align="lrl" + "r" * (len(headers) - 3))
    print(f"\nTotal wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
