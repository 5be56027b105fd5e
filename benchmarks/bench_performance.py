"""skvae against a hand-written PyTorch loop on MNIST: fit, inference, memory, grid search.

Everything runs in one process with the runs interleaved (skvae, hand-written loops, then
again), and the table gives medians and ratios to two hand-written loops. The hand-written
model is the same network as skvae's: the same layers and activation, Bernoulli likelihood
on intensities, a normal posterior, the prior's KL in closed form where torch registers it
and by Monte Carlo otherwise, Adam, batch 128, a preloaded tensor and randperm slicing. The
plain loop uses torch's default Adam, as most people write it; the tuned one adds what
skvae does (fused Adam, and zeroing subnormal Adam moments every 50 steps). A third loop
draws its batches from a torch DataLoader.

Run ``python benchmarks/bench_performance.py`` (reads MNIST from ``SKVAE_MNIST_DIR``, or
``../shared/data/mnist`` next to the repository), or ``--quick`` for a smoke run.
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import GridSearchCV
from torch import nn
from torch.distributions import Cauchy, Laplace, Normal, StudentT, kl_divergence
from torch.nn import functional as F

from skvae import GaussianVAE, SparseVAE
from skvae.datasets import load_mnist

PRIORS = {
    "normal": lambda: Normal(0.0, 1.0),
    "cauchy": lambda: Cauchy(0.0, 1.0),
    "laplace": lambda: Laplace(0.0, 1.0),
    "student-t": lambda: StudentT(3.0, 0.0, 1.0),
}
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def estimator(prior, **params):
    if prior == "normal":
        return GaussianVAE(**params)
    return SparseVAE(prior=prior, **params)


class HandVAE(nn.Module):
    """The VAE as one would write it by hand."""

    def __init__(self, n_features, n_components, hidden, activation, prior):
        super().__init__()
        sizes, layers = [n_features, *hidden], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
        self.encoder = nn.Sequential(*layers, nn.Linear(sizes[-1], 2 * n_components))
        sizes, layers = [n_components, *hidden[::-1]], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
        self.decoder = nn.Sequential(*layers, nn.Linear(sizes[-1], n_features))
        self.prior = PRIORS[prior]()

    def loss(self, x):
        mu, raw_scale = self.encoder(x).chunk(2, dim=-1)
        std = F.softplus(raw_scale) + 1e-6
        z = mu + std * torch.randn_like(mu)
        logits = self.decoder(z)
        reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        q = Normal(mu, std)
        try:
            kl = kl_divergence(q, self.prior).sum(-1)
        except NotImplementedError:
            kl = (q.log_prob(z) - self.prior.log_prob(z)).sum(-1)
        return (reconstruction + kl).mean()


def flush_subnormals(optimizer):
    """Zero Adam's subnormal moments: what skvae does every 50 steps on the CPU, by hand."""
    for state in optimizer.state.values():
        for name in ("exp_avg", "exp_avg_sq"):
            state[name].masked_fill_(state[name].abs() < torch.finfo(torch.float32).tiny, 0)


class HandLoop:
    """The training loop as one writes it by hand: a preloaded tensor and randperm slicing,
    or a DataLoader. ``tuned`` adds what skvae does: fused Adam, and flushing subnormal
    moments every 50 steps."""

    def __init__(self, X, prior, params, loader=False, tuned=False):
        torch.manual_seed(0)
        self.X, self.batch_size, self.loader, self.tuned = X, params["batch_size"], loader, tuned
        self.model = HandVAE(
            X.shape[1],
            params["n_components"],
            params["hidden_layer_sizes"],
            params["activation"],
            prior,
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=tuned or None)
        if loader:
            dataset = torch.utils.data.TensorDataset(X)
            self.data = torch.utils.data.DataLoader(dataset, self.batch_size, shuffle=True)

    def epoch(self):
        if self.loader:
            batches = (x for (x,) in self.data)
        else:
            permutation = torch.randperm(len(self.X))
            batches = (
                self.X[permutation[i : i + self.batch_size]]
                for i in range(0, len(self.X), self.batch_size)
            )
        for step, x in enumerate(batches, start=1):
            loss = self.model.loss(x)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.tuned and step % 50 == 0:
                flush_subnormals(self.optimizer)


def hand_fit(X, prior, params, epochs, loader=False, tuned=False):
    loop = HandLoop(X, prior, params, loader, tuned)
    for _ in range(epochs):
        loop.epoch()
    return loop.model


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


# The loops skvae's fit is timed against: (name, DataLoader?, tuned?).
HAND_LOOPS = [
    ("hand-written", False, False),
    ("hand-written, tuned", False, True),
    ("DataLoader", True, False),
]


def bench_fit(X, params, epochs, repeats):
    """Rows: (name, median seconds per epoch, ratio to the hand-written loop, ratio to the
    tuned hand-written loop)."""
    X_tensor = torch.from_numpy(X)
    rows = []
    for prior in PRIORS:
        activation = "relu" if prior == "normal" else "tanh"  # each estimator's default
        config = dict(params, activation=activation)
        times = {"skvae": [], **{name: [] for name, _, _ in HAND_LOOPS}}
        for _ in range(repeats):
            vae = estimator(prior, **config, max_iter=epochs, n_iter_no_change=epochs)
            times["skvae"].append(timed(lambda vae=vae: vae.fit(X))[0])
            for name, loader, tuned in HAND_LOOPS:
                run = partial(hand_fit, X_tensor, prior, config, epochs, loader, tuned)
                times[name].append(timed(run)[0])
        hand = statistics.median(times["hand-written"])
        tuned = statistics.median(times["hand-written, tuned"])
        for name, values in times.items():
            median = statistics.median(values)
            rows.append(
                (f"fit, prior={prior}, {name}", median / epochs, median / hand, median / tuned)
            )
    return rows


def bench_inference(X, params, repeats):
    vae = GaussianVAE(**params, max_iter=1).fit(X)
    module, noise_shape = vae.module_, (vae.n_mc_samples, 1, vae.n_components)
    batch = 4096

    def raw(function, rows):
        with torch.inference_mode():
            outputs = [
                function(torch.from_numpy(rows[i : i + batch])) for i in range(0, len(rows), batch)
            ]
            return torch.cat(outputs).numpy()

    def raw_transform():
        return raw(lambda x: module.encoder(x).chunk(2, dim=-1)[0], X)

    def raw_elbo():
        def elbo(x):
            mu, raw_scale = module.encoder(x).chunk(2, dim=-1)
            std = F.softplus(raw_scale) + 1e-6
            z = mu + std * torch.randn(noise_shape)
            logits = module.decoder(z)
            log_likelihood = -F.binary_cross_entropy_with_logits(
                logits, x.expand_as(logits), reduction="none"
            ).sum(-1)
            kl = (0.5 * (mu**2 + std**2 - 1) - std.log()).sum(-1)
            return (log_likelihood - kl).mean(0)

        return raw(elbo, X)

    def raw_sample():
        with torch.inference_mode():
            z = torch.randn(len(X), vae.n_components)
            return torch.bernoulli(torch.sigmoid(module.decoder(z))).numpy()

    pairs = {
        "transform": (lambda: vae.transform(X), raw_transform),
        "score_samples": (lambda: vae.score_samples(X), raw_elbo),
        "sample": (lambda: vae.sample(len(X), random_state=0), raw_sample),
    }
    rows = []
    for name, (ours, theirs) in pairs.items():
        times = {"skvae": [], "raw": []}
        for _ in range(5 * repeats):  # each call takes milliseconds: more repeats
            times["skvae"].append(timed(ours)[0])
            times["raw"].append(timed(theirs)[0])
        raw_median = statistics.median(times["raw"])
        for who, values in times.items():
            median = statistics.median(values)
            rows.append((f"{name} ({len(X)} rows), {who}", median, median / raw_median))
    return rows


def _resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_memory(n_rows, epochs):
    """Run in a subprocess: peak resident memory of a fit above the data already loaded."""
    X, _ = load_mnist(subset="train")
    X = np.ascontiguousarray(X[:n_rows], dtype=np.float32)
    params = dict(
        n_components=10, likelihood="bernoulli", max_iter=epochs, n_iter_no_change=epochs
    )
    # A first fit on a few rows loads the libraries' code and kernels, which are not the
    # fit's memory; the second fit is the one measured.
    GaussianVAE(**params).fit(X[:256])
    vae = GaussianVAE(**params)
    before, peak, done = _resident_bytes(), [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], _resident_bytes())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    vae.fit(X)
    done.set()
    watcher.join()
    n_parameters = sum(p.numel() for p in vae.module_.parameters())
    budget = X.nbytes + 3 * 4 * n_parameters  # data + weights + Adam's two moments, float32
    print(f"{peak[0] - before} {X.nbytes} {budget}")


def bench_memory(n_rows, epochs, repeats=5):
    """Peak memory of a fit, median of ``repeats`` fresh processes.

    It varies from run to run (22 to 72 MB above the data, in runs of one commit) with how
    the allocator's arenas happen to grow, so the table gives the median and the largest.
    """
    command = [sys.executable, __file__, "--memory-child", str(n_rows), str(epochs)]
    totals = []
    for _ in range(repeats):
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        added, data, budget = map(int, output.split()[-3:])
        totals.append(data + added)  # the data itself is part of what the fit holds
    return [
        (
            f"fit peak memory, {n_rows} rows: data + fit's additions (MB), median of {repeats}",
            statistics.median(totals) / 2**20,
            statistics.median(totals) / budget,
        ),
        (f"  the same, largest of {repeats}", max(totals) / 2**20, max(totals) / budget),
        ("  budget: data + model + Adam state (MB)", budget / 2**20, 1.0),
    ]


def bench_grid_search(X, params, repeats):
    grid = {"n_components": [5, 10, 20, 30]}
    times = {1: [], 2: []}
    for _ in range(repeats):
        for n_jobs in times:
            search = GridSearchCV(GaussianVAE(**params), grid, cv=2, n_jobs=n_jobs)
            times[n_jobs].append(timed(lambda search=search: search.fit(X))[0])
    one = statistics.median(times[1])
    return [
        (
            f"GridSearchCV 4 candidates x 2 folds, n_jobs={n}",
            statistics.median(v),
            one / statistics.median(v),
        )
        for n, v in times.items()
    ]


def bench_quality(X_train, X_test, params, target, max_epochs):
    """Wall time (training only) until the test negative ELBO falls below ``target``.

    skvae against the hand-written loop, plain and tuned; the hand-written loop scores the
    test set with 10 draws of its loss after each epoch.
    """
    vae = GaussianVAE(**params, max_iter=1, warm_start=True)
    elapsed, reached = 0.0, False
    for _ in range(max_epochs):
        elapsed += timed(lambda: vae.fit(X_train))[0]
        reached = -vae.score(X_test) < target
        if reached:
            break
    times = {"skvae": (elapsed, vae.n_iter_, reached)}

    X_tensor, X_test_tensor = torch.from_numpy(X_train), torch.from_numpy(X_test)
    for name, tuned in [("hand-written", False), ("hand-written, tuned", True)]:
        loop = HandLoop(X_tensor, "normal", dict(params, activation="relu"), tuned=tuned)
        elapsed = 0.0
        for epoch in range(1, max_epochs + 1):  # noqa: B007  (reported after the loop)
            elapsed += timed(loop.epoch)[0]
            with torch.inference_mode():
                losses = [loop.model.loss(X_test_tensor).item() for _ in range(10)]
            reached = statistics.mean(losses) < target
            if reached:
                break
        times[name] = (elapsed, epoch, reached)
    hand, tuned = times["hand-written"], times["hand-written, tuned"]
    rows = []
    for name, (seconds, epochs, reached) in times.items():
        when = f"at epoch {epochs}" if reached else f"NOT reached in {epochs} epochs"
        label = f"time to test -ELBO < {target} nats, {name} ({when})"
        rows.append((label, seconds, seconds / hand[0], seconds / tuned[0]))
    for name, (seconds, epochs, _) in times.items():
        per_epoch = seconds / epochs
        rows.append(
            (
                f"  seconds per epoch, {name}",
                per_epoch,
                per_epoch / (hand[0] / hand[1]),
                per_epoch / (tuned[0] / tuned[1]),
            )
        )
    return rows


PYTHAE_INSTALL = (
    "pip install --no-deps pythae && pip install cloudpickle imageio pydantic tqdm "
    "typing-extensions (pythae pins nothing that needs another torch)"
)


def pythae_trainer(X, params, epochs, output_dir):
    """pythae's VAE and BaseTrainer on the same architecture, or None if not installed."""
    try:
        from pythae.data.datasets import BaseDataset
        from pythae.models import VAE, VAEConfig
        from pythae.models.base.base_utils import ModelOutput
        from pythae.models.nn import BaseDecoder, BaseEncoder
        from pythae.trainers import BaseTrainer, BaseTrainerConfig
    except ImportError:
        return None
    hidden, n_components = list(params["hidden_layer_sizes"]), params["n_components"]

    def mlp(sizes):
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
        return nn.Sequential(*layers[:-1])

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = mlp([X.shape[1], *hidden, 2 * n_components])

        def forward(self, x):
            mu, log_var = self.net(x.reshape(len(x), -1)).chunk(2, dim=-1)
            return ModelOutput(embedding=mu, log_covariance=log_var)

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = mlp([n_components, *hidden[::-1], X.shape[1]])

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    config = VAEConfig(input_dim=(X.shape[1],), latent_dim=n_components, reconstruction_loss="bce")
    model = VAE(config, encoder=Encoder(), decoder=Decoder())
    training_config = BaseTrainerConfig(
        output_dir=output_dir,
        num_epochs=epochs,
        learning_rate=1e-3,
        per_device_train_batch_size=params["batch_size"],
        per_device_eval_batch_size=params["batch_size"],
        optimizer_cls="Adam",
        steps_saving=None,
        no_cuda=True,
    )
    dataset = BaseDataset(torch.from_numpy(X), torch.zeros(len(X)))
    return BaseTrainer(model, dataset, training_config=training_config)


def run_pythae(X, params, epochs, output_dir):
    pythae_trainer(X, params, epochs, output_dir).train()


def bench_pythae(X, params, epochs, repeats):
    """pythae's trainer (trainer set-up included) against the plain hand-written loop."""
    import logging
    import tempfile

    # pythae's trainer module sets its own logger to INFO; its tqdm bar is left on (its default).
    logging.getLogger("pythae.trainers.base_trainer").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as output_dir:
        if pythae_trainer(X[:256], params, 1, output_dir) is None:
            message = f"pythae is not installed, so it is skipped; to include it: {PYTHAE_INSTALL}"
            print(message, file=sys.stderr)
            return []
        config = dict(params, activation="relu")
        times = {"pythae": [], "hand-written": []}
        for _ in range(repeats):
            torch.manual_seed(0)
            times["pythae"].append(timed(partial(run_pythae, X, params, epochs, output_dir))[0])
            run = partial(hand_fit, torch.from_numpy(X), "normal", config, epochs)
            times["hand-written"].append(timed(run)[0])
    hand = statistics.median(times["hand-written"])
    return [
        (f"fit, prior=normal, {name}", statistics.median(v) / epochs, statistics.median(v) / hand)
        for name, v in times.items()
    ]


def bench_compile(X, params, epochs=3):
    """Seconds per epoch of the tuned hand-written loop, eager and with its loss under
    ``torch.compile``: the first epoch (which compiles) and the median of the others."""
    X_tensor, config = torch.from_numpy(X), dict(params, activation="relu")
    rows = []
    for name, compiled in [("eager", False), ("torch.compile", True)]:
        loop = HandLoop(X_tensor, "normal", config, tuned=True)
        if compiled:
            loop.model.loss = torch.compile(loop.model.loss)
        times = [timed(loop.epoch)[0] for _ in range(epochs)]
        label = f"tuned hand-written loop, {name}"
        rows.append((f"{label}: first epoch", times[0]))
        rows.append((f"{label}: later epochs", statistics.median(times[1:])))
    eager = rows[1][1]
    return [(name, seconds, seconds / eager) for name, seconds in rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, one repeat")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per timed fit")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats")
    parser.add_argument(
        "--only",
        choices=["compile", "pythae"],
        help="time only torch.compile against eager, or only pythae's trainer",
    )
    parser.add_argument("--memory-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if "SKVAE_MNIST_DIR" not in os.environ:
        default = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
        os.environ["SKVAE_MNIST_DIR"] = str(default)
    warnings.simplefilter("ignore")  # fixed epoch budgets end in ConvergenceWarnings
    if args.memory_child:
        measure_memory(*args.memory_child)
        return
    X_train, _ = load_mnist(subset="train")
    X_test, _ = load_mnist(subset="test")
    n_rows, epochs, repeats = (6000, 1, 1) if args.quick else (60000, args.epochs, args.repeats)
    X = np.ascontiguousarray(X_train[:n_rows])
    params = dict(
        n_components=10,
        hidden_layer_sizes=(256, 128),
        likelihood="bernoulli",
        batch_size=128,
        random_state=0,
    )
    print(
        f"MNIST {n_rows} rows, 784-256-128-10 (mirrored), Bernoulli, batch 128, Adam 1e-3; "
        f"{epochs} epochs per fit, {repeats} interleaved repeats; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}\n"
    )
    print("| what | median (s) | ratio | ratio to tuned hand loop |")
    print("|---|---:|---:|---:|")

    def show(rows):
        for name, seconds, *ratios in rows:
            ratios = [f"{r:.2f}" for r in ratios] + [""] * (2 - len(ratios))
            print(f"| {name} | {seconds:.3f} | {' | '.join(ratios)} |", flush=True)

    if args.only == "compile":
        show(bench_compile(X, params))
        return
    if args.only == "pythae":
        show(bench_pythae(X, params, epochs, repeats))
        return
    show(bench_fit(X, params, epochs, repeats))
    show(bench_pythae(X, params, epochs, repeats))
    show(bench_inference(np.ascontiguousarray(X_test), params, max(repeats, 3)))
    show(bench_memory(n_rows, 1))
    show(bench_grid_search(X[:10000], dict(params, max_iter=10, n_iter_no_change=10), repeats))
    if not args.quick:
        # A larger model than above, which reaches 100 nats on intensities in about 40 epochs
        # (the 10-latent model had not after 30).
        quality = dict(params, n_components=32, hidden_layer_sizes=(512, 256))
        show(bench_quality(X, X_test, quality, target=100.0, max_epochs=60))


if __name__ == "__main__":
    main()
