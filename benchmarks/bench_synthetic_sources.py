"""Recovery of synthetic sparse sources: sparse and Gaussian VAEs against linear baselines.

For linear and nonlinear (leaky-ReLU network) mixtures of spike-and-slab Laplace sources
(:func:`skvae.datasets.make_sparse_sources`), and with ``--mixing`` post-nonlinear ones
(:func:`make_post_nonlinear_sources`), fit PCA, FastICA, dictionary learning,
:class:`~skvae.GaussianVAE` and :class:`~skvae.SparseVAE` with Laplace, Cauchy and
Student-t priors, and report, as medians over seeds: the mean correlation coefficient (MCC)
between sources and matched codes, Pearson's with its range over the seeds and Spearman's;
the Hoyer sparsity of the codes; and the fit time. Each seed draws new data and new model
initialisations. The settings are those of ``examples/plot_synthetic_sources.py``.

Run ``python benchmarks/bench_synthetic_sources.py`` (10,000 rows, 5 seeds), or add
``--quick`` (2,000 rows, 2 seeds). On a shared machine set ``OMP_NUM_THREADS=1``.

``--mixing linear,nonlinear,post-nonlinear`` picks the mixtures; ``--architecture default``
leaves ``hidden_layer_sizes`` and ``activation`` at each estimator's default instead of
matching them to the mixture; ``--vae-param NAME=VALUE`` overrides any other VAE setting
(``n_components=10``, ``max_iter=1000``, ...); ``--method NAME`` runs only the named methods;
``--prior-mixture K`` gives every SparseVAE a learned mixture prior, as in
``bench_sparse_codes.py``.
"""

import argparse
import time

import numpy as np
from _common import (
    add_kl_warmup_argument,
    add_prior_mixture_arguments,
    add_vae_param_argument,
    positive_int,
    print_environment,
    print_table,
    prior_mixture_seams,
    timed,
    warm_up,
)
from sklearn.decomposition import PCA, DictionaryLearning, FastICA
from sklearn.preprocessing import StandardScaler

from skvae import GaussianVAE, SparseVAE
from skvae.datasets import make_sparse_sources
from skvae.diagnostics import hoyer_sparsity, mean_correlation_coefficient

MIXINGS = ["linear", "nonlinear", "post-nonlinear"]
DEFAULT_MIXINGS = "linear,nonlinear"
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
# A linear decoder matches the linear mixture, one ReLU layer the one-layer mixing network;
# the post-nonlinear mixture gets the same one ReLU layer, a generic nonlinear decoder.
HIDDEN_LAYER_SIZES = {"linear": (), "nonlinear": (64,), "post-nonlinear": (64,)}
ARCHITECTURES = ["matched", "default"]
DICTIONARY_ALPHA = 1.0

# The monotone functions of the post-nonlinear mixture, each with the range of its parameter,
# drawn log-uniformly: saturating, expanding, a signed power (compressing or expanding), and
# an asymmetric one.
POST_NONLINEARITIES = {
    "tanh(a u)": (lambda u, a: np.tanh(a * u), (0.5, 2.0)),
    "u + a u^3": (lambda u, a: u + a * u**3, (0.1, 1.0)),
    "sign(u) |u|^a": (lambda u, a: np.sign(u) * np.abs(u) ** a, (0.5, 2.0)),
    "softplus(a u) / a": (lambda u, a: np.logaddexp(0, a * u) / a, (0.5, 2.0)),
}


def make_post_nonlinear_sources(n_samples, *, random_state, noise, **settings):
    """Sources and a post-nonlinear mixture of them: ``x_j = f_j((S A)_j) + noise * e_j``.

    The post-nonlinear model of Taleb and Jutten (1999): the linear mixture ``S A`` of
    :func:`make_sparse_sources` (the same sources and matrix as ``mixing='linear'`` with the
    same seed), then a strictly monotone function per feature, so that the sources stay
    identifiable. The features take the functions of ``POST_NONLINEARITIES`` in turn, in a
    random order, each with its own parameter, and every distorted feature is standardized
    before the Gaussian noise is added, so that ``noise`` is a noise-to-signal ratio as in
    the other mixtures.
    """
    X, S = make_sparse_sources(
        n_samples, mixing="linear", noise=0.0, random_state=random_state, **settings
    )
    rng = np.random.default_rng([random_state, 2])
    functions = list(POST_NONLINEARITIES.values())
    order = rng.permutation(np.arange(X.shape[1]) % len(functions))
    for j, k in enumerate(order):
        function, (low, high) = functions[k]
        column = function(X[:, j], np.exp(rng.uniform(np.log(low), np.log(high))))
        X[:, j] = (column - column.mean()) / column.std()
    X += noise * rng.standard_normal(X.shape)
    return X, S


def make_data(mixing, n_samples, seed):
    """The features, standardized, and the sources, for ``mixing`` and ``seed``."""
    if mixing == "post-nonlinear":
        X, S = make_post_nonlinear_sources(n_samples, random_state=seed, **DATA_SETTINGS)
    else:
        X, S = make_sparse_sources(n_samples, mixing=mixing, random_state=seed, **DATA_SETTINGS)
    return StandardScaler().fit_transform(X), S


# With --sparse-posteriors: the posterior families that put exact zeros in the codes.
SPARSE_POSTERIORS = {"thresholded": {"threshold": 0.5}, "spike-and-slab": {"sparsity": 0.5}}


def make_models(
    mixing,
    seed,
    kl_warmup_epochs=0,
    sparse_posteriors=False,
    architecture="matched",
    vae_overrides=None,
    sparse_seams=(),
):
    """The methods to compare, by name, with their settings for ``mixing``.

    ``architecture="default"`` leaves out ``hidden_layer_sizes`` and ``activation``, so that
    each VAE has its estimator's defaults; ``vae_overrides`` replace VAE settings;
    ``sparse_seams`` are mixins put in front of every SparseVAE (``--prior-mixture``).
    """
    sparse_vae = type("SparseVAE", (*sparse_seams, SparseVAE), {}) if sparse_seams else SparseVAE
    n_components = DATA_SETTINGS["n_sources"]
    vae_params = dict(
        VAE_SETTINGS,
        hidden_layer_sizes=HIDDEN_LAYER_SIZES[mixing],
        kl_warmup_epochs=kl_warmup_epochs,
        random_state=seed,
    )
    if architecture == "default":
        del vae_params["hidden_layer_sizes"], vae_params["activation"]
    vae_params.update(vae_overrides or {})
    models = {
        "PCA": PCA(n_components, random_state=seed),
        "FastICA": FastICA(n_components, whiten="unit-variance", max_iter=1000, random_state=seed),
        "DictionaryLearning": DictionaryLearning(
            n_components, alpha=DICTIONARY_ALPHA, fit_algorithm="cd", random_state=seed
        ),
        "GaussianVAE": GaussianVAE(**vae_params),
        "SparseVAE (laplace)": sparse_vae(prior="laplace", **vae_params),
        "SparseVAE (cauchy)": sparse_vae(prior="cauchy", **vae_params),
        "SparseVAE (student-t, df=3)": sparse_vae(prior="student-t", df=3.0, **vae_params),
    }
    for posterior, params in SPARSE_POSTERIORS.items() if sparse_posteriors else ():
        for prior in ("laplace", "cauchy"):
            models[f"SparseVAE ({prior}, {posterior})"] = sparse_vae(
                prior=prior, **dict(vae_params, posterior=posterior, posterior_params=params)
            )
    return models


def measure(
    n_samples,
    seeds,
    kl_warmup_epochs=0,
    sparse_posteriors=False,
    *,
    mixings=("linear", "nonlinear"),
    architecture="matched",
    vae_overrides=None,
    methods=None,
    sparse_seams=(),
):
    """Scores of every method, mixing and seed: ``{(name, mixing): [(mcc_p, mcc_s, hoyer, s)]}``.

    The true sources enter as a method named "true sources", scored against themselves, so
    that their Hoyer sparsity serves as a reference. ``methods``, if given, names the
    methods to run.
    """
    results = {}
    for seed in seeds:
        for mixing in mixings:
            X, S = make_data(mixing, n_samples, seed)
            results.setdefault(("true sources", mixing), []).append(
                (1.0, 1.0, hoyer_sparsity(S), np.nan)
            )
            models = make_models(
                mixing,
                seed,
                kl_warmup_epochs,
                sparse_posteriors,
                architecture,
                vae_overrides,
                sparse_seams,
            )
            for name, model in models.items():
                if methods is not None and name not in methods:
                    continue
                seconds, codes = timed(model.fit_transform, X)
                scores = (
                    mean_correlation_coefficient(S, codes, method="pearson"),
                    mean_correlation_coefficient(S, codes, method="spearman"),
                    hoyer_sparsity(codes),
                    seconds,
                )
                results.setdefault((name, mixing), []).append(scores)
                # A VAE's epochs and ELBO on its training rows tell a local optimum (a lower
                # ELBO) from a code the model likes as well as the sources (the same ELBO).
                fit = (
                    f", {model.n_iter_} epochs, ELBO {model.score(X):.3f}"
                    if isinstance(model, (GaussianVAE, SparseVAE))
                    else ""
                )
                print(
                    f"seed {seed}, {mixing}, {name}: MCC {scores[0]:.3f} (Pearson) "
                    f"{scores[1]:.3f} (Spearman), Hoyer {scores[2]:.3f}, {seconds:.1f} s{fit}",
                    flush=True,
                )
    return results


def summary_rows(results, mixings=("linear", "nonlinear")):
    """A row for each method: medians over the seeds, for each mixing."""
    for name in dict.fromkeys(name for name, _ in results):
        cells = [name]
        for mixing in mixings:
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


def mean_min_rows(results, mixings):
    """A row for each method: the mean and the smallest Pearson MCC over the seeds, for each
    mixing."""
    for name in dict.fromkeys(name for name, _ in results if name != "true sources"):
        cells = [name]
        for mixing in mixings:
            pearson = np.array(results[name, mixing])[:, 0]
            cells += [f"{pearson.mean():.3f}", f"{pearson.min():.3f}"]
        yield cells


def mixing_list(text):
    """The ``--mixing`` option: comma-separated names from ``MIXINGS``."""
    names = text.split(",")
    unknown = [name for name in names if name not in MIXINGS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown mixing {unknown}; choose from {MIXINGS}")
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 rows and 2 seeds")
    parser.add_argument(
        "--n-samples", type=positive_int, help="rows per data set (default 10,000)"
    )
    parser.add_argument(
        "--seeds", type=positive_int, help="number of seeds, 0, 1, ... (default 5)"
    )
    add_kl_warmup_argument(parser)
    parser.add_argument(
        "--sparse-posteriors",
        action="store_true",
        help=f"add SparseVAEs with the posteriors {SPARSE_POSTERIORS}",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=SPARSE_POSTERIORS["thresholded"]["threshold"],
        help="the threshold of the thresholded posterior's rows",
    )
    parser.add_argument(
        "--mixing",
        type=mixing_list,
        default=mixing_list(DEFAULT_MIXINGS),
        help=f"comma-separated, from {MIXINGS} (default {DEFAULT_MIXINGS}); 'nonlinear' is "
        "the leaky-ReLU network",
    )
    parser.add_argument(
        "--architecture",
        choices=ARCHITECTURES,
        default="matched",
        help="'matched': the VAEs' hidden_layer_sizes and activation fit the mixture "
        f"({HIDDEN_LAYER_SIZES}, ReLU); 'default': each estimator's defaults",
    )
    add_vae_param_argument(
        parser, "override a VAE setting, e.g. max_iter=1000 or n_components=10 (repeatable)"
    )
    add_prior_mixture_arguments(parser)
    parser.add_argument(
        "--method",
        action="append",
        metavar="NAME",
        help="run only this method, by its name in the table (repeatable)",
    )
    args = parser.parse_args()
    SPARSE_POSTERIORS["thresholded"] = {"threshold": args.threshold}
    vae_overrides = dict(args.vae_param)
    if args.method:  # a name the table does not have would run nothing, without a word
        known = make_models(
            args.mixing[0], 0, args.kl_warmup_epochs, args.sparse_posteriors, args.architecture
        )
        unknown = [name for name in args.method if name not in known]
        if unknown:
            parser.error(
                f"--method {unknown[0]!r} is not a method of this run; its methods: "
                f"{', '.join(known)} (the sparse posteriors' need --sparse-posteriors)"
            )
    n_samples = args.n_samples or (2000 if args.quick else 10_000)
    seeds = range(args.seeds or (2 if args.quick else 5))

    print(f"Data: make_sparse_sources(n_samples={n_samples}, {DATA_SETTINGS}), standardized")
    print(f"Seeds: {list(seeds)} (data and models); medians over seeds")
    settings, architecture = dict(VAE_SETTINGS), f"hidden_layer_sizes={HIDDEN_LAYER_SIZES}"
    if args.architecture == "default":
        del settings["activation"]
        architecture = "hidden_layer_sizes and activation: each estimator's defaults"
    print(f"Mixings: {args.mixing}")
    print(
        f"VAEs: {settings | vae_overrides}, {architecture}, "
        f"kl_warmup_epochs={args.kl_warmup_epochs}"
    )
    print(
        "Baselines: PCA; FastICA(whiten='unit-variance', max_iter=1000); "
        f"DictionaryLearning(alpha={DICTIONARY_ALPHA}, fit_algorithm='cd')"
    )
    print_environment()
    warm_up()
    start = time.perf_counter()
    results = measure(
        n_samples,
        seeds,
        args.kl_warmup_epochs,
        args.sparse_posteriors,
        mixings=args.mixing,
        architecture=args.architecture,
        vae_overrides=vae_overrides,
        methods=args.method,
        sparse_seams=prior_mixture_seams(args),
    )
    print()
    columns = ["MCC Pearson [range]", "MCC Spearman", "Hoyer", "fit (s)"]
    headers = ["method", *(f"{m} {c}" for m in args.mixing for c in columns)]
    print_table(headers, summary_rows(results, args.mixing))
    print()
    headers = ["method", *(f"{m} MCC {c}" for m in args.mixing for c in ("mean", "min"))]
    print_table(headers, mean_min_rows(results, args.mixing))
    print(f"\nTotal time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
