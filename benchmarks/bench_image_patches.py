"""Natural-image patches: Gaussian versus sparse priors, with MLP and linear decoders.

The experiment of ``examples/plot_image_patches.py`` at the size of the 2017 sparse VAE study
(12x12 greyscale patches, 25 latent dimensions, 500-500 MLPs): every VAE has the same
settings and epoch budget and differs from the others only in its prior and its decoder.
Prints the settings, a Markdown table and the wall time. The table has the ELBO on the first
``--n-test`` training patches (a tenth of which early stopping holds out for validation) and
on the test patches, code sparsity, active units, how localized the decoder filters are,
how many of them a 2-D Gabor fits with R² >= 0.7 (:func:`skvae.diagnostics.gabor_fit`), the
number of epochs run and the fit time.

``--gabor`` runs the comparison of issue 16 instead: linear decoders only, the models of
``--models`` (by default SparseVAE with the Cauchy and the Laplace prior, each with the
thresholded, the spike-and-slab and the normal posterior, and GaussianVAE) against FastICA and
MiniBatchDictionaryLearning with as many components, ranked by their Gabor-like filters.

Usage::

    python benchmarks/bench_image_patches.py              # 20000 train patches, 100 epochs
    python benchmarks/bench_image_patches.py --gabor      # linear VAEs, FastICA, dictionary
    python benchmarks/bench_image_patches.py --no-whiten --epochs 200
    python benchmarks/bench_image_patches.py --images cifar-10-batches-py
    python benchmarks/bench_image_patches.py --images sklearn  # the two photos only
    python benchmarks/bench_image_patches.py --quick      # a fast check that it runs

Patches come from ``--images``: by default the two photographs of
``sklearn.datasets.load_sample_images`` and, when scikit-image is installed
(``pip install -e ".[benchmarks]"``), the eight photographs that ship with it (see
``SKIMAGE_PHOTOGRAPHS``); ``sklearn`` for sklearn's two alone; a ``.npy`` file of an image
stack such as CIFAR-10's training images, an array of shape (50000, 32, 32, 3) of uint8; a
directory of CIFAR-10's python batches (``data_batch_*``, as unpacked from
``cifar-10-python.tar.gz``); or a directory or a file of images (PNG, JPEG, ...) that
Pillow reads, each converted to 8-bit RGB so that all share one intensity scale. Colour
becomes luminance. Run with ``OMP_NUM_THREADS=1`` when other processes share the cores:
torch's threads slow down badly under contention.
"""

import argparse
import pickle
import time
from pathlib import Path

import numpy as np
from _common import (
    add_kl_warmup_argument,
    add_prior_mixture_arguments,
    add_vae_param_argument,
    make_vae,
    non_negative_int,
    parse_model,
    positive_int,
    print_settings,
    print_table,
    prior_mixture_seams,
    timed,
)
from sklearn.datasets import load_sample_images
from sklearn.decomposition import FastICA, MiniBatchDictionaryLearning

from skvae.datasets import load_image_patches
from skvae.diagnostics import active_units, gabor_fit, hoyer_sparsity, latent_activity

PRIOR_NAMES = {
    "normal": "Gaussian",
    "cauchy": "Cauchy",
    "laplace": "Laplace",
    "student-t": "Student-t",
}

# Photographs that scikit-image ships inside its package (no download): people, animals,
# objects, a rocket, and the natural textures of grass, gravel and a brick wall.
SKIMAGE_PHOTOGRAPHS = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "grass",
    "gravel",
    "rocket",
)

# The models of --gabor: "prior/posterior", with an optional ":value" of the posterior's
# hyper-parameter as in bench_sparse_codes.py ("normal/normal" is GaussianVAE), and the
# baselines.
BASELINES = ("fastica", "dictionary-learning")
GABOR_MODELS = (
    "laplace/thresholded",
    "laplace/spike-and-slab",
    "cauchy/normal",
    "laplace/normal",
    "cauchy/thresholded",
    "cauchy/spike-and-slab",
    "normal/normal",
    *BASELINES,
)

# A filter counts as Gabor-like when a 2-D Gabor explains this share of its variance.
GABOR_R2 = 0.7


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=positive_int, default=20000, help="training patches")
    parser.add_argument("--n-test", type=positive_int, default=5000, help="test patches")
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=100,
        help="most epochs of every VAE (the cap of max_iter)",
    )
    parser.add_argument("--patch-size", type=positive_int, default=12, help="side of the patches")
    parser.add_argument("--n-components", type=positive_int, default=25, help="latent dimensions")
    parser.add_argument(
        "--hidden",
        default="500,500",
        help="hidden layer widths of the MLP encoder (the decoder mirrors them)",
    )
    parser.add_argument(
        "--priors",
        default="normal,cauchy,laplace",
        help=f"comma-separated priors, from {', '.join(PRIOR_NAMES)}",
    )
    parser.add_argument(
        "--decoders", default="mlp,linear", help="comma-separated decoders: mlp, linear"
    )
    parser.add_argument(
        "--whiten",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="whiten the images before cutting patches (as the example does)",
    )
    parser.add_argument(
        "--early-stopping",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="stop on the ELBO of a held-out tenth of the training patches (as the example)",
    )
    add_kl_warmup_argument(parser)
    parser.add_argument(
        "--images",
        default=None,
        help="'sklearn', a .npy image stack, a CIFAR-10 batch directory, or a directory or "
        "file of images; default: sklearn's and scikit-image's photographs",
    )
    parser.add_argument(
        "--gabor",
        action="store_true",
        help="linear decoders only: the VAEs of --models against FastICA and "
        "MiniBatchDictionaryLearning",
    )
    parser.add_argument(
        "--models",
        default=",".join(GABOR_MODELS),
        help="with --gabor: comma-separated prior/posterior[:value] models and baselines "
        f"({', '.join(BASELINES)})",
    )
    parser.add_argument(
        "--dictionary-alpha",
        type=float,
        default=1.0,
        help="with --gabor: alpha of MiniBatchDictionaryLearning (its L1 penalty)",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the patches and the VAEs"
    )
    add_vae_param_argument(
        parser, "with --gabor: set a VAE parameter for every model, e.g. n_importance_samples=5"
    )
    add_prior_mixture_arguments(parser)  # with --gabor, as in bench_sparse_codes.py
    parser.add_argument(
        "--quick", action="store_true", help="2000 train and 500 test patches, 3 epochs, 64-64"
    )
    args = parser.parse_args()
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.hidden = 2000, 500, 3, "64,64"
    args.hidden = tuple(int(width) for width in args.hidden.split(","))
    args.priors = args.priors.split(",")
    args.decoders = args.decoders.split(",")
    if not args.gabor and (args.vae_param or args.prior_mixture):
        parser.error("--vae-param and --prior-mixture apply to the --gabor table; add --gabor")
    args.models = args.models.split(",")
    unknown = set(args.priors) - set(PRIOR_NAMES) | set(args.decoders) - {"mlp", "linear"}
    for model in set(args.models) - set(BASELINES):
        try:
            prior, _, _ = parse_model(model)
        except ValueError:
            prior = None
        if prior not in PRIOR_NAMES:
            unknown.add(model)
    if unknown:
        parser.error(f"unknown priors, decoders or models: {sorted(unknown)}")
    return args


def load_images(source):
    """The images to cut patches from, and a line that says which they are.

    See the module's docstring for what ``source`` may be.
    """
    if source in (None, "sklearn"):
        images = list(load_sample_images().images)
        names = ["sklearn's china.jpg and flower.jpg"]
        if source is None:
            try:
                from skimage import data
            except ImportError:
                names.append("(scikit-image is not installed: no more photographs)")
            else:
                images += [getattr(data, name)() for name in SKIMAGE_PHOTOGRAPHS]
                names.append(f"scikit-image's {', '.join(SKIMAGE_PHOTOGRAPHS)}")
        return images, "; ".join(names)
    path = Path(source)
    if path.suffix == ".npy":
        images = np.load(path)
        return ([images] if images.ndim == 2 else images), f"the array in {path}"
    batches = sorted(path.glob("data_batch_*")) if path.is_dir() else []
    if batches:
        return _cifar_images(batches), f"CIFAR-10 batches {', '.join(b.name for b in batches)}"
    from PIL import Image

    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                images.append(np.asarray(image.convert("RGB")))
        except OSError:  # not an image (Pillow's UnidentifiedImageError is an OSError)
            continue
    if not images:
        raise ValueError(f"no image that Pillow reads in {path}")
    return images, f"{path}: {len(images)} image{'s' * (len(images) > 1)} that Pillow reads"


def _cifar_images(batches):
    """CIFAR-10's python batches as one uint8 array of shape (n_images, 32, 32, 3).

    Each batch is a pickled dict whose ``data`` is (10000, 3072) uint8: the red, green and
    blue planes of each image, each 32x32 and row-major. Unpickling runs code from the file:
    read only batches you trust.
    """
    stacks = []
    for batch in batches:
        with open(batch, "rb") as file:
            content = pickle.load(file, encoding="bytes")
        data = content[b"data"] if b"data" in content else content["data"]
        stacks.append(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
    return np.concatenate(stacks).transpose(0, 2, 3, 1)


def patch_vae(
    prior,
    hidden_layer_sizes,
    n_components,
    n_epochs,
    early_stopping,
    seed,
    kl_warmup_epochs,
    *,
    posterior="normal",
    posterior_params=None,
    overrides=None,
    seams=(),
):
    """A VAE with the settings shared by all models, and ``prior`` and ``hidden_layer_sizes``
    (and a posterior family other than the normal, for ``--gabor``).

    With ``early_stopping``, training stops once the ELBO of a held-out tenth of the data has
    not improved for 10 epochs, and keeps the best weights; ``n_epochs`` caps it. Without
    it, ``tol=None`` gives every model exactly ``n_epochs`` epochs.
    """
    settings = dict(
        n_components=n_components,
        hidden_layer_sizes=hidden_layer_sizes,
        activation="tanh",
        likelihood="gaussian",
        posterior=posterior,
        posterior_params=posterior_params,
        beta=1.0,
        batch_size=128,
        learning_rate=1e-3,
        max_iter=n_epochs,
        tol=1e-4 if early_stopping else None,
        n_iter_no_change=10,
        early_stopping=early_stopping,
        validation_fraction=0.1,
        n_mc_samples=10,
        kl_warmup_epochs=kl_warmup_epochs,
        random_state=seed,
    )
    seams = seams if prior != "normal" else ()  # SparseVAE's (--prior-mixture)
    return make_vae(prior, seams=seams, **{**settings, **(overrides or {})})


def decoder_filters(vae, X):
    """The decoder filters of the active latent dimensions, as rows.

    The filter of dimension i is ``inverse_transform(c * e_i) - inverse_transform(0)``, with
    c the 90th percentile of |z_i| on the rows of X where z_i is not exactly 0: for a linear
    decoder, c times the i-th column of its weight matrix. Dimensions whose codes vary by
    less than the threshold of ``active_units`` are left out: the model does not use them.
    """
    codes = vae.transform(X)
    active = latent_activity(vae, X) > 0.01
    strength = [np.quantile(np.abs(z[z != 0]), 0.9) if np.any(z != 0) else 0.0 for z in codes.T]
    filters = vae.inverse_transform(np.diag(strength)) - vae.inverse_transform(
        np.zeros((1, codes.shape[1]))
    )
    return filters[active]


def filter_spread(filters, patch_size):
    """Spread, in pixels, of each filter: the root-mean-square distance of its energy
    (squared values) from its centre of energy. About 4.8 pixels for a filter that covers a
    12x12 patch evenly, less for a localized one."""
    energy = filters.reshape(-1, patch_size, patch_size) ** 2
    energy /= energy.sum(axis=(1, 2), keepdims=True)
    rows, columns = np.mgrid[:patch_size, :patch_size]
    row_centre = (energy * rows).sum(axis=(1, 2), keepdims=True)
    column_centre = (energy * columns).sum(axis=(1, 2), keepdims=True)
    squared_distance = (rows - row_centre) ** 2 + (columns - column_centre) ** 2
    return np.sqrt((energy * squared_distance).sum(axis=(1, 2)))


def filter_cells(filters, n_components, patch_size):
    """The table's cells on filters: median spread, the number and share (of all
    ``n_components``) of Gabor-like filters, and the median Gabor R²; "-" without filters."""
    if not len(filters):
        return ["-", f"0 of {n_components}", "0%", "-"]
    r2 = gabor_fit(filters).r2
    n_gabor = int(np.sum(r2 >= GABOR_R2))
    return [
        f"{np.median(filter_spread(filters, patch_size)):.2f}",
        f"{n_gabor} of {n_components}",
        f"{100 * n_gabor / n_components:.0f}%",
        f"{np.median(r2):.2f}",
    ]


def table_rows(args, X_train, X_test):
    """A row for each decoder and prior, as its fit ends."""
    for decoder in args.decoders:
        hidden_layer_sizes = args.hidden if decoder == "mlp" else ()
        for prior in args.priors:
            vae = patch_vae(
                prior,
                hidden_layer_sizes,
                args.n_components,
                args.epochs,
                args.early_stopping,
                args.seed,
                args.kl_warmup_epochs,
            )
            fit_time, _ = timed(vae.fit, X_train)
            yield [
                PRIOR_NAMES[prior],
                decoder,
                f"{vae.score(X_train[: args.n_test]):.2f}",
                f"{vae.score(X_test):.2f}",
                f"{hoyer_sparsity(vae.transform(X_test)):.3f}",
                active_units(vae, X_test),
                *filter_cells(decoder_filters(vae, X_train), args.n_components, args.patch_size),
                vae.n_iter_,
                f"{fit_time:.1f}",
            ]


def baseline(name, n_components, alpha, seed):
    """FastICA or MiniBatchDictionaryLearning with ``n_components``.

    FastICA whitens the patches by PCA to ``n_components`` dimensions of unit variance, as
    its algorithm needs: the filter that whitened the images flattened their spectrum, but
    it does not decorrelate the pixels of a patch, and the patches' removed mean leaves one
    direction of zero variance. Its filters are the columns of ``mixing_``, the basis of
    the ICA model. The dictionary is learnt with the L1 penalty ``alpha`` (its objective's
    own scale: patches of unit variance per pixel), and codes use the same penalty
    (``lasso_lars``) so that their sparsity is the one it was fitted for; its filters are
    its ``components_``.
    """
    if name == "fastica":
        return FastICA(n_components, max_iter=1000, random_state=seed)
    return MiniBatchDictionaryLearning(
        n_components,
        alpha=alpha,
        transform_algorithm="lasso_lars",
        transform_alpha=alpha,
        random_state=seed,
    )


def model_name(model):
    """The table's name of a model: "SparseVAE cauchy, thresholded" for
    "cauchy/thresholded", "GaussianVAE" for "normal/normal", and the like."""
    if model in BASELINES:
        return {"fastica": "FastICA", "dictionary-learning": "MiniBatchDictionaryLearning"}[model]
    prior, _, posterior = model.partition("/")
    name = "GaussianVAE" if prior == "normal" else f"SparseVAE {prior}"
    return name if posterior == "normal" else f"{name}, {posterior}"


def gabor_rows(args, X_train, X_test):
    """A row for each model of ``--models``, all linear, as its fit ends."""
    for model in args.models:
        if model in BASELINES:
            estimator = baseline(model, args.n_components, args.dictionary_alpha, args.seed)
            fit_time, _ = timed(estimator.fit, X_train)
            filters = estimator.mixing_.T if model == "fastica" else estimator.components_
            scores, active, n_iter = ["-", "-"], "-", estimator.n_iter_
        else:
            prior, posterior, posterior_params = parse_model(model)
            estimator = patch_vae(
                prior,
                (),
                args.n_components,
                args.epochs,
                args.early_stopping,
                args.seed,
                args.kl_warmup_epochs,
                posterior=posterior,
                posterior_params=posterior_params,
                overrides=dict(args.vae_param),
                seams=prior_mixture_seams(args),
            )
            fit_time, _ = timed(estimator.fit, X_train)
            filters = decoder_filters(estimator, X_train)
            scores = [
                f"{estimator.score(X_train[: args.n_test]):.2f}",
                f"{estimator.score(X_test):.2f}",
            ]
            active, n_iter = active_units(estimator, X_test), estimator.n_iter_
        yield [
            model_name(model),
            *scores,
            f"{hoyer_sparsity(estimator.transform(X_test)):.3f}",
            active,
            *filter_cells(filters, args.n_components, args.patch_size),
            n_iter,
            f"{fit_time:.1f}",
        ]


def main():
    args = parse_args()
    start = time.perf_counter()
    print_settings(args)
    print(
        "  VAEs: tanh MLPs or linear maps, Gaussian likelihood with a learned scale per pixel, "
        f"normal posterior, Adam lr=1e-3, batch 128, at most {args.epochs} epochs"
    )
    images, description = load_images(args.images)
    print(f"  images: {description}")
    X = load_image_patches(
        images,
        patch_size=args.patch_size,
        n_patches=args.n_train + args.n_test,
        whiten=args.whiten,
        random_state=args.seed,
    )
    X_train, X_test = X[: args.n_train], X[args.n_train :]
    # An untimed fit, so that torch's one-time start-up cost is not charged to the first model.
    patch_vae("normal", args.hidden, args.n_components, 1, False, args.seed, 0).fit(X_train[:256])

    print()
    headers = [
        "train ELBO (nats)",
        "test ELBO (nats)",
        "Hoyer sparsity",
        f"active units (of {args.n_components})",
        "filter spread (px)",
        f"Gabor R² >= {GABOR_R2}",
        "Gabor share",
        "median Gabor R²",
    ]
    if args.gabor:
        headers = ["model", *headers, "epochs or iterations", "fit time (s)"]
        print_table(headers, gabor_rows(args, X_train, X_test))
    else:
        headers = ["prior", "decoder", *headers, "epochs", "fit time (s)"]
        print_table(headers, table_rows(args, X_train, X_test), align="ll" + "r" * 10)
    print(f"\nWall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
