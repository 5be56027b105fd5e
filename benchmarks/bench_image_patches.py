"""Natural-image patches: Gaussian versus sparse priors, with MLP and linear decoders.

The experiment of ``examples/plot_image_patches.py`` at the size of the 2017 sparse VAE study
(12x12 greyscale patches, 25 latent dimensions, 500-500 MLPs): every VAE has the same
settings and epoch budget and differs from the others only in its prior and its decoder.
Prints the settings, a Markdown table and the wall time. The table has the ELBO on the first
``--n-test`` training patches (a tenth of which early stopping holds out for validation) and
on the test patches, code sparsity, active units, how localized the decoder filters are, the
number of epochs run and the fit time.

Usage::

    python benchmarks/bench_image_patches.py              # 20000 train patches, 100 epochs
    python benchmarks/bench_image_patches.py --no-whiten --epochs 200
    python benchmarks/bench_image_patches.py --images cifar_train.npy
    python benchmarks/bench_image_patches.py --quick      # a fast check that it runs

Patches come from the photographs of ``sklearn.datasets.load_sample_images``, or from
``--images``, a ``.npy`` file of an image stack such as CIFAR-10's training images, an array
of shape (50000, 32, 32, 3) of uint8. Run with ``OMP_NUM_THREADS=1`` when other processes
share the cores: torch's threads slow down badly under contention.
"""

import argparse
import time

import numpy as np
from _common import add_kl_warmup_argument, make_vae, print_settings, print_table, timed

from skvae.datasets import load_image_patches
from skvae.diagnostics import active_units, hoyer_sparsity, latent_activity

PRIOR_NAMES = {"normal": "Gaussian", "cauchy": "Cauchy", "laplace": "Laplace"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=20000, help="training patches")
    parser.add_argument("--n-test", type=int, default=5000, help="test patches")
    parser.add_argument(
        "--epochs", type=int, default=100, help="most epochs of every VAE (the cap of max_iter)"
    )
    parser.add_argument("--patch-size", type=int, default=12, help="side of the patches")
    parser.add_argument("--n-components", type=int, default=25, help="latent dimensions")
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
    parser.add_argument("--images", default=None, help=".npy file of images; default: sklearn's")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patches and the VAEs")
    parser.add_argument(
        "--quick", action="store_true", help="2000 train and 500 test patches, 3 epochs, 64-64"
    )
    args = parser.parse_args()
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.hidden = 2000, 500, 3, "64,64"
    args.hidden = tuple(int(width) for width in args.hidden.split(","))
    args.priors = args.priors.split(",")
    args.decoders = args.decoders.split(",")
    unknown = set(args.priors) - set(PRIOR_NAMES) | set(args.decoders) - {"mlp", "linear"}
    if unknown:
        parser.error(f"unknown priors or decoders: {sorted(unknown)}")
    return args


def patch_vae(
    prior, hidden_layer_sizes, n_components, n_epochs, early_stopping, seed, kl_warmup_epochs
):
    """A VAE with the settings shared by all models, and ``prior`` and ``hidden_layer_sizes``.

    With ``early_stopping``, training stops once the ELBO of a held-out tenth of the data has
    not improved for 10 epochs, and keeps the best weights; ``n_epochs`` caps it. Without
    it, ``tol=None`` gives every model exactly ``n_epochs`` epochs.
    """
    return make_vae(
        prior,
        n_components=n_components,
        hidden_layer_sizes=hidden_layer_sizes,
        activation="tanh",
        likelihood="gaussian",
        posterior="normal",
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


def filter_spread(vae, X, patch_size):
    """Median spread, in pixels, of the decoder filters of the active latent dimensions.

    The filter of dimension i is ``inverse_transform(c * e_i) - inverse_transform(0)``, with
    c the 90th percentile of |z_i| on X; its spread is the root-mean-square distance of its
    energy (squared values) from its centre of energy: about 4.8 pixels for a filter that
    covers a 12x12 patch evenly, less for a localized one. Dimensions whose codes vary by
    less than the threshold of ``active_units`` are left out; NaN if none is left.
    """
    codes = vae.transform(X)
    active = latent_activity(vae, X) > 0.01
    if not active.any():
        return np.nan
    strength = np.quantile(np.abs(codes), 0.9, axis=0)
    filters = vae.inverse_transform(np.diag(strength)) - vae.inverse_transform(
        np.zeros((1, codes.shape[1]))
    )
    energy = filters[active].reshape(-1, patch_size, patch_size) ** 2
    energy /= energy.sum(axis=(1, 2), keepdims=True)
    rows, columns = np.mgrid[:patch_size, :patch_size]
    row_centre = (energy * rows).sum(axis=(1, 2), keepdims=True)
    column_centre = (energy * columns).sum(axis=(1, 2), keepdims=True)
    squared_distance = (rows - row_centre) ** 2 + (columns - column_centre) ** 2
    return float(np.median(np.sqrt((energy * squared_distance).sum(axis=(1, 2)))))


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
                f"{filter_spread(vae, X_train, args.patch_size):.2f}",
                vae.n_iter_,
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
    images = None if args.images is None else np.load(args.images)
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
        "prior",
        "decoder",
        "train ELBO (nats)",
        "test ELBO (nats)",
        "Hoyer sparsity",
        f"active units (of {args.n_components})",
        "filter spread (px)",
        "epochs",
        "fit time (s)",
    ]
    print_table(headers, table_rows(args, X_train, X_test), align="ll" + "r" * 7)
    print(f"\nWall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
