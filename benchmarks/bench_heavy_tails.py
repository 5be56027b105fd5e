"""What heavy-tailed priors and posteriors do to training, pair by pair.

For every (posterior, prior) pair skvae offers, with ReLU and tanh layers and both
likelihoods, fit the digits for a fixed number of epochs and report, as medians over seeds:
the held-out ELBO, the code sparsity (Hoyer) and active units, the loss of the first epoch
and how far the last epoch's loss sits above the best one (spikes), the time per epoch as a
ratio to the Gaussian VAE of the same likelihood and activation, and the share of subnormal
floats among activations and gradients of one training step at the end (subnormals make
CPU arithmetic many times slower). Pairs that skvae refuses are listed with the reason.

Run ``python benchmarks/bench_heavy_tails.py`` (3 seeds, 40 epochs), or ``--quick``.
"""

import argparse

import numpy as np
import torch
from _common import (
    add_kl_warmup_argument,
    make_vae,
    positive_int,
    print_environment,
    print_table,
    timed,
)
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skvae import GaussianVAE
from skvae._training import as_tensor
from skvae.diagnostics import active_units, hoyer_sparsity

PAIRS = [
    ("normal", "normal"),
    ("normal", "cauchy"),
    ("normal", "laplace"),
    ("normal", "student-t"),
    ("cauchy", "cauchy"),
    ("cauchy", "student-t"),
]
COLUMNS = ["test ELBO", "Hoyer", "active", "loss ep1", "last-best", "time ratio", "subnormal"]


def subnormal_share(vae, X):
    """Share of subnormal values among the activations and gradients of one training step."""
    tiny = torch.finfo(torch.float32).tiny
    counts = np.zeros(2)

    def count(tensor):
        if not torch.is_tensor(tensor):  # the likelihood head returns a distribution
            return
        magnitude = tensor.detach().abs()
        counts[0] += ((magnitude > 0) & (magnitude < tiny)).sum().item()
        counts[1] += magnitude.numel()

    module = vae.module_
    hooks = [m.register_forward_hook(lambda m, i, out: count(out)) for m in module.modules()]
    x = as_tensor(X[:128], "cpu")
    noise = torch.rand(x.shape[0], vae.n_components, generator=torch.Generator().manual_seed(0))
    module.zero_grad()
    (-module.elbo(x, noise.clamp(1e-6, 1 - 1e-6)).mean()).backward()
    for hook in hooks:
        hook.remove()
    for parameter in module.parameters():
        count(parameter.grad)
    return counts[0] / counts[1]


def measure(
    likelihood, activation, posterior, prior, seed, epochs, X_train, X_test, kl_warmup_epochs=0
):
    vae = make_vae(
        prior,
        n_components=10,
        hidden_layer_sizes=(256, 128),
        activation=activation,
        likelihood=likelihood,
        posterior=posterior,
        max_iter=epochs,
        tol=None,
        kl_warmup_epochs=kl_warmup_epochs,
        random_state=seed,
    )
    try:
        seconds, _ = timed(vae.fit, X_train)
    except ValueError as error:
        # The pairs skvae refuses (a Cauchy posterior: infinite KL, or an unbounded
        # decoder); any other error is the script's or its arguments', and is raised.
        if not str(error).startswith(("posterior='cauchy'", "KL(")) and "infinite" not in str(
            error
        ):
            raise
        return {"refused": str(error).split(":")[0]}
    codes = vae.transform(X_test)
    return {
        "s/epoch": seconds / vae.n_iter_,
        "test ELBO": vae.score(X_test),
        "Hoyer": hoyer_sparsity(codes),
        "active": active_units(vae, X_test),
        "loss ep1": vae.loss_curve_[0],
        "last-best": vae.loss_curve_[-1] - min(vae.loss_curve_),
        "subnormal": subnormal_share(vae, X_train),
    }


def table_rows(seeds, epochs, X_train, X_test, kl_warmup_epochs):
    """The table's rows, as each pair's fits end: medians over the seeds, the time per
    epoch as a ratio to the first pair's (the Gaussian VAE) of the same likelihood and
    activation."""
    for likelihood in ["gaussian", "bernoulli"]:
        for activation in ["relu", "tanh"]:
            baseline = None
            for posterior, prior in PAIRS:
                runs = [
                    measure(
                        likelihood,
                        activation,
                        posterior,
                        prior,
                        seed,
                        epochs,
                        X_train,
                        X_test,
                        kl_warmup_epochs,
                    )
                    for seed in range(seeds)
                ]
                head = [likelihood, activation, posterior, prior]
                if "refused" in runs[0]:
                    yield head + [f"refused: {runs[0]['refused']}"] + [""] * (len(COLUMNS) - 1)
                    continue
                row = {key: np.median([run[key] for run in runs]) for key in runs[0]}
                baseline = baseline or row["s/epoch"]
                yield head + [
                    f"{row['test ELBO']:.2f}",
                    f"{row['Hoyer']:.3f}",
                    f"{row['active']:.0f}",
                    f"{row['loss ep1']:.1f}",
                    f"{row['last-best']:.2f}",
                    f"{row['s/epoch'] / baseline:.2f}",
                    f"{row['subnormal']:.1e}",
                ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 10 epochs")
    parser.add_argument("--seeds", type=positive_int, default=3)
    parser.add_argument("--epochs", type=positive_int, default=40)
    add_kl_warmup_argument(parser)
    args = parser.parse_args()
    seeds, epochs = (1, 10) if args.quick else (args.seeds, args.epochs)
    X, _ = load_digits(return_X_y=True)
    X_train, X_test = train_test_split((X / 16).astype(np.float32), random_state=0)
    # Warm up torch's kernels so that the first timed fit is not charged for it.
    GaussianVAE(max_iter=2, tol=None, random_state=0).fit(X_train)
    print(
        f"digits ({len(X_train)} train / {len(X_test)} test rows), n_components=10, "
        f"hidden (256, 128), {epochs} epochs, kl_warmup_epochs={args.kl_warmup_epochs}, "
        f"seeds 0..{seeds - 1}; medians over seeds"
    )
    print_environment()
    print()
    headers = ["likelihood", "activation", "posterior", "prior", *COLUMNS]
    rows = table_rows(seeds, epochs, X_train, X_test, args.kl_warmup_epochs)
    print_table(headers, rows, align="l" * len(headers))


if __name__ == "__main__":
    main()
