"""Recovery of synthetic sparse sources: sparse and Gaussian VAEs against linear baselines.

For linear and nonlinear (leaky-ReLU network) mixtures of spike-and-slab Laplace sources
(:func:`skvae.datasets.make_sparse_sources`), fit PCA, FastICA, dictionary learning,
:class:`~skvae.GaussianVAE` and :class:`~skvae.SparseVAE` with Laplace, Cauchy and
Student-t priors, and report, as medians over seeds: the mean correlation coefficient (MCC)
between sources and matched codes, Pearson's with its range over the seeds and Spearman's;
the Hoyer sparsity of the codes; and the fit time. Each seed draws new data and new model
initialisations. The settings are those of ``examples/plot_synthetic_sources.py``.

Run ``python benchmarks/bench_synthetic_sources.py`` (10,000 rows, 5 seeds), or add
``--quick`` (2,000 rows, 2 seeds). On a shared machine set ``OMP_NUM_THREADS=1``.
"""

import argparse
import time

import numpy as np
from _common import add_kl_warmup_argument, print_environment, print_table, timed
from sklearn.decomposition import PCA, DictionaryLearning, FastICA
from sklearn.preprocessing import StandardScaler

from skvae import GaussianVAE, SparseVAE
from skvae.datasets import make_sparse_sources
from skvae.diagnostics import hoyer_sparsity, mean_correlation_coefficient

MIXINGS = ["linear", "nonlinear"]
DATA_SETTINGS = dict(n_sources=5, n_features=20, sparsity=0.7, noise=0.1)
VAE_SETTINGS = dict(
    n_components=DATA_SETTINGS["n_sources"],
    activation="relu",
    likelihood="gaussian",
    posterior="normal",
    beta=1.0,
    batch_size=128,
    learning_rate=3e-3,
    max_iter=300,
    tol=1e-4,
    n_iter_no_change=10,
    device="cpu",
)
# A linear decoder matches the linear mixture, one ReLU layer the one-layer mixing network.
HIDDEN_LAYER_SIZES = {"linear": (), "nonlinear": (64,)}
DICTIONARY_ALPHA = 1.0


# With --sparse-posteriors: the posterior families that put exact zeros in the codes.
SPARSE_POSTERIORS = {"thresholded": {"threshold": 0.5}, "spike-and-slab": {"sparsity": 0.5}}


def make_models(mixing, seed, kl_warmup_epochs=0, sparse_posteriors=False):
    """The methods to compare, by name, with their settings for ``mixing``."""
    n_components = DATA_SETTINGS["n_sources"]
    vae_params = dict(
        VAE_SETTINGS,
        hidden_layer_sizes=HIDDEN_LAYER_SIZES[mixing],
        kl_warmup_epochs=kl_warmup_epochs,
        random_state=seed,
    )
    models = {
        "PCA": PCA(n_components, random_state=seed),
        "FastICA": FastICA(n_components, whiten="unit-variance", max_iter=1000, random_state=seed),
        "DictionaryLearning": DictionaryLearning(
            n_components, alpha=DICTIONARY_ALPHA, fit_algorithm="cd", random_state=seed
        ),
        "GaussianVAE": GaussianVAE(**vae_params),
        "SparseVAE (laplace)": SparseVAE(prior="laplace", **vae_params),
        "SparseVAE (cauchy)": SparseVAE(prior="cauchy", **vae_params),
        "SparseVAE (student-t, df=3)": SparseVAE(prior="student-t", df=3.0, **vae_params),
    }
    for posterior, params in SPARSE_POSTERIORS.items() if sparse_posteriors else ():
        for prior in ("laplace", "cauchy"):
            models[f"SparseVAE ({prior}, {posterior})"] = SparseVAE(
                prior=prior, **dict(vae_params, posterior=posterior, posterior_params=params)
            )
    return models


def measure(n_samples, seeds, kl_warmup_epochs=0, sparse_posteriors=False):
    """Scores of every method, mixing and seed: ``{(name, mixing): [(mcc_p, mcc_s, hoyer, s)]}``.

    The true sources enter as a method named "true sources", scored against themselves, so
    that their Hoyer sparsity serves as a reference.
    """
    results = {}
    for seed in seeds:
        for mixing in MIXINGS:
            X, S = make_sparse_sources(
                n_samples, mixing=mixing, random_state=seed, **DATA_SETTINGS
            )
            X = StandardScaler().fit_transform(X)
            results.setdefault(("true sources", mixing), []).append(
                (1.0, 1.0, hoyer_sparsity(S), np.nan)
            )
            models = make_models(mixing, seed, kl_warmup_epochs, sparse_posteriors)
            for name, model in models.items():
                seconds, codes = timed(model.fit_transform, X)
                scores = (
                    mean_correlation_coefficient(S, codes, method="pearson"),
                    mean_correlation_coefficient(S, codes, method="spearman"),
                    hoyer_sparsity(codes),
                    seconds,
                )
                results.setdefault((name, mixing), []).append(scores)
                print(
                    f"seed {seed}, {mixing}, {name}: MCC {scores[0]:.3f} (Pearson) "
                    f"{scores[1]:.3f} (Spearman), Hoyer {scores[2]:.3f}, {seconds:.1f} s",
                    flush=True,
                )
    return results


def summary_rows(results):
    """A row for each method: medians over the seeds, for each mixing."""
    for name in dict.fromkeys(name for name, _ in results):
        cells = [name]
        for mixing in MIXINGS:
            scores = np.array(results[name, mixing])
            pearson, spearman, hoyer, seconds = np.median(scores, axis=0)
            low, high = scores[:, 0].min(), scores[:, 0].max()
            cells += [
                f"{pearson:.3f} [{low:.3f}, {high:.3f}]",
                f"{spearman:.3f}",
                f"{hoyer:.3f}",
                "" if np.isnan(seconds) else f"{seconds:.1f}",
            ]
        yield cells


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 rows and 2 seeds")
    parser.add_argument("--n-samples", type=int, help="rows per data set (default 10,000)")
    parser.add_argument("--seeds", type=int, help="number of seeds, 0, 1, ... (default 5)")
    add_kl_warmup_argument(parser)
    parser.add_argument(
        "--sparse-posteriors",
        action="store_true",
        help=f"add SparseVAEs with the posteriors {SPARSE_POSTERIORS}",
    )
    args = parser.parse_args()
    n_samples = args.n_samples or (2000 if args.quick else 10_000)
    seeds = range(args.seeds or (2 if args.quick else 5))

    print(f"Data: make_sparse_sources(n_samples={n_samples}, {DATA_SETTINGS}), standardized")
    print(f"Seeds: {list(seeds)} (data and models); medians over seeds")
    print(
        f"VAEs: {VAE_SETTINGS}, hidden_layer_sizes={HIDDEN_LAYER_SIZES}, "
        f"kl_warmup_epochs={args.kl_warmup_epochs}"
    )
    print(
        "Baselines: PCA; FastICA(whiten='unit-variance', max_iter=1000); "
        f"DictionaryLearning(alpha={DICTIONARY_ALPHA}, fit_algorithm='cd')"
    )
    print_environment()
    start = time.perf_counter()
    results = measure(n_samples, seeds, args.kl_warmup_epochs, args.sparse_posteriors)
    print()
    columns = ["MCC Pearson [range]", "MCC Spearman", "Hoyer", "fit (s)"]
    headers = ["method", *(f"{m} {c}" for m in MIXINGS for c in columns)]
    print_table(headers, summary_rows(results))
    print(f"\nTotal time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
