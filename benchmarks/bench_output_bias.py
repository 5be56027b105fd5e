"""MNIST: does starting the decoder's output bias at the data's mean help or hurt?

skvae starts the Bernoulli decoder's output bias at the logit of each pixel's mean intensity,
clamped to [0.001, 0.999], as Burda et al.'s IWAE code does. This script trains the same
model with that start, with the mean clamped to [0.05, 0.95] instead, and with no start
(torch's default bias), for each prior and activation asked for, with and without a KL
warm-up (``kl_warmup_epochs``) as asked, and prints the test ELBO after chosen epochs and
the number of active latent dimensions at the end (Burda et al.'s measure).

    OMP_NUM_THREADS=1 python benchmarks/bench_output_bias.py --prior normal   # about 20 min
    OMP_NUM_THREADS=1 python benchmarks/bench_output_bias.py --prior cauchy   # in parallel
    python benchmarks/bench_output_bias.py --quick                            # a fast check
    ... --start 0.001 --kl-warmup-epochs 0 3   # skvae's start, without and with a warm-up

Model: 784-512-256-32 (mirrored), Bernoulli on intensities, batch 128, Adam 1e-3 (other
batch sizes and learning rates on request), 60,000 training digits, scored on the 10,000 test
digits after every epoch.
"""

import argparse
import itertools

import numpy as np
import torch
from _common import (
    ScoredEachEpoch,
    add_kl_warmup_argument,
    make_vae,
    non_negative_int,
    positive_int,
    print_environment,
    print_table,
    set_default_mnist_dir,
)

from skvae._training import column_mean_std
from skvae.datasets import load_mnist
from skvae.diagnostics import active_units

# --start -> (row label, the clamp of the mean before its logit, or None for torch's default)
STARTS = {
    "0.001": ("clamped to [0.001, 0.999] (skvae)", 1e-3),
    "0.05": ("clamped to [0.05, 0.95]", 0.05),
    "none": ("none", None),
}


class OutputBiasStart:
    """A seam for ``make_vae``: start the decoder's output bias at the logit of the training
    data's mean clamped to [clamp, 1 - clamp], or leave torch's initial bias where ``clamp``
    is None. Set ``clamp`` before ``fit``."""

    clamp = None

    @torch.no_grad()
    def _start_output(self, X):
        if self.clamp is not None:
            mean, _ = column_mean_std(X, self._device())
            self.module_.decoder[-1].bias.copy_(
                torch.logit(mean.clamp(self.clamp, 1 - self.clamp))
            )


def test_elbo_per_epoch(X, X_test, prior, activation, clamp, epochs, seed, **training):
    """The test ELBO after each epoch of one fit, with the output bias started as asked, and
    the number of active latent dimensions on the test digits at the end."""
    vae = make_vae(
        prior,
        seams=(OutputBiasStart, ScoredEachEpoch),
        n_components=32,
        hidden_layer_sizes=(512, 256),
        activation=activation,
        likelihood="bernoulli",
        max_iter=epochs,
        tol=None,
        random_state=seed,
        device="cpu",
        **training,
    )
    vae.clamp = clamp
    vae.score_each_epoch(X_test).fit(X)
    return vae.test_scores, active_units(vae, X_test)


def _first_epoch_above(scores, target):
    return next((str(epoch) for epoch, score in enumerate(scores, 1) if score > target), "-")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=positive_int, default=20)
    parser.add_argument("--seeds", type=positive_int, default=1, help="how many seeds")
    parser.add_argument(
        "--first-seed",
        type=non_negative_int,
        default=0,
        help="seeds first-seed, first-seed + 1, ...",
    )
    parser.add_argument(
        "--prior", choices=["normal", "cauchy"], help="only this prior (two runs in parallel)"
    )
    parser.add_argument("--activation", choices=["relu", "tanh"], help="only this activation")
    parser.add_argument(
        "--start", choices=list(STARTS), help="only this start of the bias (its clamp)"
    )
    add_kl_warmup_argument(parser, several=True)
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--target", type=float, default=100.0, help="negative ELBO (nats)")
    parser.add_argument("--quick", action="store_true", help="2,000 digits, 2 epochs")
    args = parser.parse_args()
    set_default_mnist_dir()
    X, _ = load_mnist(subset="train")
    X_test, _ = load_mnist(subset="test")
    if args.quick:
        X, X_test, args.epochs = X[:2000], X_test[:500], 2
    shown = sorted({1, args.epochs // 4, args.epochs // 2, args.epochs} - {0})
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    training = dict(batch_size=args.batch_size, learning_rate=args.learning_rate)
    print(f"MNIST {len(X)} digits, batch {args.batch_size}, learning rate {args.learning_rate}")
    print(f"test ELBO (nats) after epochs {shown}, mean over seeds {list(seeds)}")
    print_environment()
    print()
    headers = [
        "prior",
        "activation",
        "output-bias start",
        "KL warm-up",
        *(f"ep {e}" for e in shown),
        f"ep {shown[-1]}, each seed",
        f"first epoch above -{args.target:g}, each seed",
        "active units, each seed",
    ]
    align = "lllr" + "r" * len(shown) + "lll"
    print_table(headers, table_rows(args, X, X_test, shown, seeds, training), align=align)


def table_rows(args, X, X_test, shown, seeds, training):
    """A row for each prior, activation, start and warm-up asked for, as its fits end."""
    for prior, activation in [
        ("normal", "relu"),
        ("normal", "tanh"),
        ("cauchy", "tanh"),
        ("cauchy", "relu"),
    ]:
        if args.prior not in (None, prior) or args.activation not in (None, activation):
            continue
        for (start, (name, clamp)), warmup in itertools.product(
            STARTS.items(), args.kl_warmup_epochs
        ):
            if args.start not in (None, start):
                continue
            fits = [
                test_elbo_per_epoch(
                    X,
                    X_test,
                    prior,
                    activation,
                    clamp,
                    args.epochs,
                    seed,
                    kl_warmup_epochs=warmup,
                    **training,
                )
                for seed in seeds
            ]
            runs, active = [scores for scores, _ in fits], [n for _, n in fits]
            means = np.mean(runs, axis=0)
            yield [
                prior,
                activation,
                name,
                warmup,
                *(f"{means[e - 1]:.2f}" for e in shown),
                ", ".join(f"{run[-1]:.2f}" for run in runs),
                ", ".join(_first_epoch_above(run, -args.target) for run in runs),
                ", ".join(map(str, active)),
            ]


if __name__ == "__main__":
    main()
