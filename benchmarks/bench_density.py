"""Density estimation on MNIST, side by side with pythae: test log p(x) and seconds per epoch.

The IWAE paper's model (Burda, Grosse and Salakhutdinov, 2016): 784-200-200-50 with tanh
units, one stochastic layer, a Bernoulli likelihood, trained on dynamically binarized MNIST
(fresh Bernoulli draws of the intensities at every epoch) with Adam. Every model gets the
same data, epochs, batch size and learning rate:

- skvae's ``GaussianVAE`` trained on the ELBO (k = 1) and on the 5-sample importance-weighted
  bound (``n_importance_samples=5``), and ``SparseVAE()`` with its defaults (Laplace prior,
  thresholded codes) on both, all through the dynamic-binarization recipe of the user guide:
  one ``partial_fit`` per epoch on a fresh binarization;
- pythae's ``VAE`` and ``IWAE`` (``number_samples=5``) with the same encoder and decoder,
  trained by its ``BaseTrainer`` on a dataset that binarizes each digit afresh when it is
  drawn (skipped with a message if pythae is not installed; install it with
  ``pip install --no-deps pythae==0.1.2 && pip install cloudpickle imageio pydantic tqdm
  typing-extensions``, which leaves torch as it is).

Test log p(x) is the importance-weighted estimate with K draws (``--importance-samples``,
5000 as in the paper) on the first ``--n-test`` test digits, binarized once with a fixed
seed, computed the same way for every model. The last column projects the hours the paper's
3,280 epochs would take at the measured speed.

Run: ``python benchmarks/bench_density.py --epochs 10`` (MNIST from ``SKVAE_MNIST_DIR`` or
OpenML; about 20 minutes on two CPU cores; ``--quick`` for a smoke run).
"""

import argparse
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import torch
from _common import (
    non_negative_int,
    positive_int,
    print_settings,
    print_table,
    pythae_encoder_decoder,
    set_default_mnist_dir,
)
from torch import nn

from skvae import GaussianVAE, SparseVAE
from skvae.datasets import load_mnist
from skvae.diagnostics import log_likelihood

PAPER_EPOCHS = 3280
PAPER = {"VAE, k=1": 86.76, "IWAE, k=5": 85.54}  # Burda et al., Table 1, test NLL in nats


def binarize(X, rng):
    return (rng.random(X.shape, dtype=np.float32) < X).astype(np.float32)


def fit_skvae(estimator, X, epochs, seed):
    """The dynamic-binarization recipe: one partial_fit per epoch on fresh draws. Returns the
    fitted estimator and the seconds of each epoch (binarization included)."""
    rng = np.random.default_rng(seed)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        estimator.partial_fit(binarize(X, rng))
        seconds.append(time.perf_counter() - start)
    return estimator, seconds


def pythae_model(kind, n_features, hidden, n_components, k, seed=0):
    """pythae's VAE or IWAE with the skvae models' encoder and decoder, its initial weights
    from torch's global generator seeded with ``seed``, or None."""
    torch.manual_seed(seed)
    parts = pythae_encoder_decoder(n_features, hidden, n_components, nn.Tanh)
    if parts is None:
        return None
    from pythae.models import IWAE, VAE, IWAEConfig, VAEConfig

    encoder, decoder = parts
    if kind == "VAE":
        config = VAEConfig(
            input_dim=(n_features,), latent_dim=n_components, reconstruction_loss="bce"
        )
        return VAE(config, encoder=encoder, decoder=decoder)
    config = IWAEConfig(
        input_dim=(n_features,),
        latent_dim=n_components,
        reconstruction_loss="bce",
        number_samples=k,
    )
    return IWAE(config, encoder=encoder, decoder=decoder)


def fit_pythae(model, X, epochs, batch_size, learning_rate, seed):
    from pythae.data.datasets import BaseDataset, DatasetOutput
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    class Binarized(BaseDataset):
        """Each digit binarized afresh whenever the trainer draws it."""

        def __getitem__(self, index):
            x = torch.bernoulli(self.data[index])
            return DatasetOutput(data=x, labels=self.labels[index])

    for name in list(logging.root.manager.loggerDict):  # pythae's loggers log at INFO
        if name.startswith("pythae"):
            logging.getLogger(name).setLevel(logging.WARNING)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as output_dir:
        config = BaseTrainerConfig(
            output_dir=output_dir,
            num_epochs=epochs,
            learning_rate=learning_rate,
            per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=batch_size,
            optimizer_cls="Adam",
            steps_saving=None,
            no_cuda=True,
        )
        dataset = Binarized(torch.from_numpy(X), torch.zeros(len(X)))
        with open(os.devnull, "w") as quiet, redirect_stdout(quiet), redirect_stderr(quiet):
            trainer = BaseTrainer(model, dataset, training_config=config)  # it prints a lot
            start = time.perf_counter()
            trainer.train()
            seconds = time.perf_counter() - start
    return model.eval(), [seconds / epochs]


@torch.inference_mode()
def pythae_log_likelihood(model, X, n_samples, seed, chunk=500):
    """The importance-weighted estimate of log p(x) for a pythae Gaussian-encoder model with a
    Bernoulli decoder, with the same K and a fixed seed, as skvae's diagnostics compute it."""
    generator = torch.Generator().manual_seed(seed)
    results = []
    for x in torch.from_numpy(X).split(50):
        out = model.encoder(x)
        mu, std = out.embedding, torch.exp(0.5 * out.log_covariance)
        total = torch.full((len(x),), -math.inf)
        for start in range(0, n_samples, chunk):
            k = min(chunk, n_samples - start)
            eps = torch.randn((k, *mu.shape), generator=generator)
            z = mu + std * eps
            probs = model.decoder(z.reshape(-1, z.shape[-1])).reconstruction.reshape(k, len(x), -1)
            logits = torch.logit(probs.clamp(1e-7, 1 - 1e-7))
            log_px = -nn.functional.binary_cross_entropy_with_logits(
                logits, x.expand_as(logits), reduction="none"
            ).sum(-1)
            normal = torch.distributions.Normal(0.0, 1.0)
            log_pz = normal.log_prob(z).sum(-1)
            log_qz = torch.distributions.Normal(mu, std).log_prob(z).sum(-1)
            total = torch.logaddexp(total, torch.logsumexp(log_px + log_pz - log_qz, dim=0))
        results.append(total - math.log(n_samples))
    return torch.cat(results).numpy().astype(np.float64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=positive_int, default=10)
    parser.add_argument("--n-train", type=positive_int, default=60000)
    parser.add_argument("--n-test", type=positive_int, default=500)
    parser.add_argument("--importance-samples", type=positive_int, default=5000)
    parser.add_argument("--k", type=positive_int, default=5, help="samples of the IWAE bound")
    parser.add_argument("--batch-size", type=positive_int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--no-pythae", action="store_true")
    parser.add_argument("--quick", action="store_true", help="2000 digits, 1 epoch, K=100")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.n_train, args.n_test, args.importance_samples = 1, 2000, 200, 100
    set_default_mnist_dir()
    print_settings(args)  # with the environment
    X_train, _ = load_mnist(subset="train")
    X_test, _ = load_mnist(subset="test")
    X_train = np.ascontiguousarray(X_train[: args.n_train], dtype=np.float32)
    X_test = binarize(X_test[: args.n_test], np.random.default_rng(12345))
    hidden, n_components = (200, 200), 50
    shared = dict(
        n_components=n_components,
        hidden_layer_sizes=hidden,
        activation="tanh",
        likelihood="bernoulli",
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        random_state=args.seed,
    )
    models = {
        "skvae GaussianVAE, k=1": lambda: GaussianVAE(**shared),
        f"skvae GaussianVAE, k={args.k}": lambda: GaussianVAE(
            **shared, n_importance_samples=args.k
        ),
        "skvae SparseVAE(), k=1": lambda: SparseVAE(**shared),
        f"skvae SparseVAE(), k={args.k}": lambda: SparseVAE(**shared, n_importance_samples=args.k),
    }
    have_pythae = not args.no_pythae and pythae_model("VAE", 784, hidden, 50, 1) is not None
    if have_pythae:
        for kind in ("VAE", "IWAE"):
            models[f"pythae {kind}" + (f", k={args.k}" if kind == "IWAE" else ", k=1")] = (
                lambda kind=kind: pythae_model(kind, 784, hidden, n_components, args.k, args.seed)
            )
    elif not args.no_pythae:
        print(
            "pythae is not installed, so it is skipped; to include it: pip install --no-deps "
            "pythae==0.1.2 && pip install cloudpickle imageio pydantic tqdm typing-extensions",
            file=sys.stderr,
        )

    GaussianVAE(**shared, max_iter=1, tol=None).fit(X_train[:500])  # a process's first fit is slow

    def rows():
        for name, make in models.items():
            model = make()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if name.startswith("skvae"):
                    model, seconds = fit_skvae(model, X_train, args.epochs, args.seed)
                    ll = log_likelihood(model, X_test, n_samples=args.importance_samples)
                    elbo = f"{model.score(X_test):.2f}"
                else:
                    model, seconds = fit_pythae(
                        model, X_train, args.epochs, args.batch_size, args.learning_rate, args.seed
                    )
                    ll = pythae_log_likelihood(model, X_test, args.importance_samples, args.seed)
                    elbo = ""
            per_epoch = statistics.median(seconds)
            yield [
                name,
                f"{-ll.mean():.2f} ± {ll.std() / np.sqrt(len(ll)):.2f}",
                elbo,
                f"{per_epoch:.2f}",
                f"{per_epoch * PAPER_EPOCHS / 3600:.1f}",
            ]

    print(
        f"\nMNIST, dynamically binarized, {len(X_train)} training digits, {args.epochs} "
        f"epochs, batch {args.batch_size}, Adam {args.learning_rate}; test NLL = -log p(x) "
        f"with K = {args.importance_samples} on {len(X_test)} test digits (± standard error); "
        f"the paper: VAE {PAPER['VAE, k=1']}, IWAE k=5 {PAPER['IWAE, k=5']} after "
        f"{PAPER_EPOCHS} epochs\n"
    )
    headers = ["model", "test NLL", "test ELBO", "s / epoch", f"hours for {PAPER_EPOCHS} epochs"]
    print_table(headers, rows())


if __name__ == "__main__":
    main()
