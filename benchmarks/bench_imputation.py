"""Missing values on scikit-learn's bundled tables: VAEImputer against mean, KNN and iterative
imputation; a classifier downstream of each; and SparseVAE/GaussianVAE on unscaled columns.

Three tables:

1. **Imputation error**: mean squared error on the hidden entries of standardized tables
   (breast cancer with 50% of its values hidden, wine, diabetes and digits with 30%), hidden
   completely at random, over ``--seeds`` seeds (mean ± standard deviation), and one case
   missing not at random on breast cancer (a value above its feature's median is hidden with
   probability 0.45, one below with 0.15: 30% in all). Methods: ``SimpleImputer`` (mean),
   ``KNNImputer``, ``IterativeImputer``, ``VAEImputer()`` with its default model, the MIWAE
   authors' breast-cancer model (10 latent dimensions, two tanh layers of 128 units, batch
   64, a fixed budget of 300 epochs), and ``VAEImputer(GaussianVAE())``, the default before
   it (GaussianVAE()'s stopping rule ends the fit once the training loss levels off).
2. **Downstream accuracy**: 5-fold cross-validated accuracy of a logistic regression behind
   each imputer (in a Pipeline, so each fold's imputer is fitted on its training rows), on
   breast cancer, wine and digits with 30% of their values hidden.
3. **Unscaled columns**: a GaussianVAE given tables with columns of mixed scales as they are,
   against the same model behind a StandardScaler, and against the model as it was before
   skvae standardized what its encoder and decoder see (``RawUnits``, a seam that starts
   the module as skvae did then): ELBO in the data's units (the scaler's pipeline ELBO less
   the log-Jacobian sum(log scale_j)), reconstruction R² and the accuracy of a logistic
   regression on the codes.

Run: ``python benchmarks/bench_imputation.py`` (``--seeds 3``; about 15 minutes on one CPU
core; ``--quick`` for a smoke run).
"""

import argparse
import time
import warnings

import numpy as np
import torch
from _common import make_vae, positive_int, print_environment, print_settings, print_table
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import GaussianVAE, VAEImputer
from skvae._impute import _miwae_model

TABLES = {
    "breast cancer": load_breast_cancer,
    "wine": load_wine,
    "diabetes": load_diabetes,
    "digits": load_digits,
}
RATES = {"breast cancer": 0.5, "wine": 0.3, "diabetes": 0.3, "digits": 0.3}


def imputers(seed, epochs, ablation=False):
    # VAEImputer()'s default model is the MIWAE authors' (300 epochs); ``--quick`` shortens the
    # budget of every VAE model, and the stopping rule's model is GaussianVAE()'s default.
    model = _miwae_model()
    default = None if epochs == model.max_iter else model.set_params(max_iter=epochs)
    budget = min(200, epochs)
    methods = {
        "mean": SimpleImputer(),
        "KNN": KNNImputer(),
        "iterative": IterativeImputer(max_iter=20, random_state=seed),
        "VAEImputer()": VAEImputer(default, random_state=seed),
        "VAEImputer(GaussianVAE())": VAEImputer(GaussianVAE(max_iter=budget), random_state=seed),
    }
    if ablation:  # GaussianVAE() with two of the MIWAE model's settings
        tanh = GaussianVAE(activation="tanh", max_iter=budget, tol=None)
        methods["VAEImputer(GaussianVAE(activation='tanh', tol=None))"] = VAEImputer(
            tanh, random_state=seed
        )
    return methods


def hide_at_random(X, rate, rng):
    holes = rng.uniform(size=X.shape) < rate
    holes[holes.all(axis=1), 0] = False
    return holes


def hide_above_median(X, rng, high=0.45, low=0.15):
    """Missing not at random: a value above its feature's median is hidden more often."""
    above = X > np.median(X, axis=0)
    holes = rng.uniform(size=X.shape) < np.where(above, high, low)
    holes[holes.all(axis=1), 0] = False
    return holes


def imputation_error(X, holes, imputer):
    start = time.perf_counter()
    imputed = imputer.fit_transform(np.where(holes, np.nan, X))
    return np.mean((imputed[holes] - X[holes]) ** 2), time.perf_counter() - start


def imputation_rows(args):
    cases = [(name, RATES[name], "MCAR") for name in TABLES] + [("breast cancer", 0.3, "MNAR")]
    for name, rate, kind in cases:
        X = StandardScaler().fit_transform(TABLES[name]().data)
        X = X[:, X.std(axis=0) > 0]  # digits' constant pixels have nothing to impute
        errors, seconds = {}, {}
        for seed in range(args.seeds):
            rng = np.random.RandomState(seed)
            holes = hide_at_random(X, rate, rng) if kind == "MCAR" else hide_above_median(X, rng)
            for method, imputer in imputers(seed, args.epochs, args.ablation).items():
                error, took = imputation_error(X, holes, imputer)
                errors.setdefault(method, []).append(error)
                seconds.setdefault(method, []).append(took)
        best_sklearn = min(np.mean(errors[m]) for m in ("KNN", "iterative"))
        for method, values in errors.items():
            yield [
                name,
                f"{rate:.0%} {kind}",
                method,
                f"{np.mean(values):.3f} ± {np.std(values):.3f}",
                f"{np.mean(values) / best_sklearn:.2f}",
                f"{np.median(seconds[method]):.1f}",
            ]


def accuracy_rows(args):
    for name in ("breast cancer", "wine", "digits"):
        data = TABLES[name]()
        X, y = data.data, data.target
        X = X[:, X.std(axis=0) > 0]
        holes = hide_at_random(X, 0.3, np.random.RandomState(0))
        X_missing = np.where(holes, np.nan, X)
        complete = cross_val_score(
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)), X, y, cv=5
        ).mean()
        yield [name, "no value hidden", f"{complete:.3f}"]
        for method, imputer in imputers(0, args.epochs).items():
            # The scaler first: the imputers then all see standardized columns, as in table 1.
            pipe = make_pipeline(StandardScaler(), imputer, LogisticRegression(max_iter=2000))
            accuracy = cross_val_score(pipe, X_missing, y, cv=5).mean()
            yield [name, method, f"{accuracy:.3f}"]


def mixed_scale_tables():
    diabetes = load_diabetes(scaled=False).data.copy()
    diabetes[:, 0] *= 2e4  # age in years -> an income-like column around 1e6
    wine, cancer = load_wine(), load_breast_cancer()
    return {
        "breast cancer (raw)": (cancer.data, cancer.target),
        "wine (raw)": (wine.data, wine.target),
        "diabetes (raw, one column x 2e4)": (diabetes, None),
    }


class RawUnits:
    """A seam for ``make_vae``: the module as skvae started it before it standardized the
    data for the encoder and the Gaussian decoder (commit a908731): the encoder reads the
    raw data, the decoder outputs the mean itself, starting at the data's mean, and the
    noise scale starts at each feature's spread (at least the mean spread) and is floored at
    1e-3 times the mean spread."""

    @torch.no_grad()
    def _start_output(self, X):
        super()._start_output(X)
        module = self.module_
        likelihood, shift = module.likelihood, module.likelihood.loc_shift.clone()
        std = likelihood.loc_scale.clone()
        typical = std.mean().item() or 1.0
        module.input.shift.zero_()
        module.input.scale.fill_(1.0)
        module.input.fill.copy_(shift)
        likelihood.loc_shift.zero_()
        likelihood.loc_scale.fill_(1.0)
        likelihood.min_scale.fill_(1e-3 * typical)
        raw = std.clamp_min(typical) - likelihood.min_scale
        likelihood.raw_scale.copy_(raw + torch.log(-torch.expm1(-raw)))
        module.decoder[-1].bias.copy_(shift)


def scale_rows(args):
    for name, (X, y) in mixed_scale_tables().items():
        X_train, X_test, *ys = train_test_split(
            X, *(() if y is None else (y,)), test_size=0.3, random_state=0
        )
        span = f"{X.std(axis=0).min():.2g} to {X.std(axis=0).max():.2g}"
        for how in ("as it is", "behind StandardScaler", "as it is, before"):
            seams = (RawUnits,) if how.endswith("before") else ()
            vae = make_vae("normal", seams=seams, n_components=2, max_iter=args.scale_epochs)
            vae.set_params(random_state=0)
            scaler = StandardScaler().fit(X_train) if how == "behind StandardScaler" else None
            transform = scaler.transform if scaler else (lambda A: A)
            vae.fit(transform(X_train))
            elbo = vae.score(transform(X_test))
            if scaler:
                elbo -= np.log(scaler.scale_).sum()  # back to nats of the data's own units
            back = vae.inverse_transform(vae.transform(transform(X_test)))
            back = scaler.inverse_transform(back) if scaler else back
            r2 = r2_score(X_test, back)
            accuracy = "n/a"
            if y is not None:
                classifier = LogisticRegression(max_iter=2000)
                codes = [vae.transform(transform(A)) for A in (X_train, X_test)]
                accuracy = f"{classifier.fit(codes[0], ys[0]).score(codes[1], ys[1]):.3f}"
            yield [name, span, how, f"{elbo:.1f}", f"{r2:.3f}", accuracy]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=positive_int, default=3)
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=_miwae_model().max_iter,
        help="budget of VAEImputer()'s model",
    )
    parser.add_argument("--scale-epochs", type=positive_int, default=50, help="table 3's budget")
    parser.add_argument("--quick", action="store_true", help="one seed, few epochs")
    parser.add_argument(
        "--ablation",
        action="store_true",
        help="table 1 also imputes with GaussianVAE(activation='tanh', tol=None)",
    )
    parser.add_argument(
        "--only", choices=["imputation", "accuracy", "scales"], help="run one table"
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.scale_epochs = 1, 5, 5
    print_settings(args)
    print_environment()
    warnings.simplefilter("ignore", ConvergenceWarning)
    if args.only in (None, "imputation"):
        print("\nImputation error on the hidden entries of standardized tables (MSE)\n")
        headers = ["table", "hidden", "method", "MSE", "/ best of KNN, iterative", "seconds"]
        print_table(headers, imputation_rows(args), align="lllrrr")
    if args.only in (None, "accuracy"):
        print("\nAccuracy of a logistic regression behind each imputer (5-fold CV)\n")
        print_table(["table", "imputer", "accuracy"], accuracy_rows(args), align="llr")
    if args.only in (None, "scales"):
        print("\nGaussianVAE(n_components=2) on columns of mixed scales (30% held out)\n")
        headers = ["table", "column std", "data given", "test ELBO", "R²", "accuracy"]
        print_table(headers, scale_rows(args), align="lllrrr")


if __name__ == "__main__":
    main()
