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
from functools import partial
from types import SimpleNamespace

import numpy as np
import torch
from _common import (
    ScoredEachEpoch,
    TargetReached,
    make_vae,
    positive_int,
    print_environment,
    print_table,
    pythae_encoder_decoder,
    set_default_mnist_dir,
    timed,
    warm_up,
)
from sklearn.model_selection import GridSearchCV
from torch import nn
from torch.distributions import Cauchy, Laplace, Normal, StudentT, kl_divergence
from torch.nn import functional as F

from skvae import GaussianVAE
from skvae._families import POSTERIORS
from skvae.datasets import load_mnist

PRIORS = {  # prior name -> the distribution, given zero and one tensors on the device
    "normal": lambda zero, one, validate: Normal(zero, one, validate),
    "cauchy": lambda zero, one, validate: Cauchy(zero, one, validate),
    "laplace": lambda zero, one, validate: Laplace(zero, one, validate),
    "student-t": lambda zero, one, validate: StudentT(3 * one, zero, one, validate),
}
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


class EagerStep:
    """A seam for ``make_vae``: the training step runs eagerly, never as a CUDA graph."""

    _cuda_graphs = False


class HandVAE(nn.Module):
    """The VAE as one would write it by hand."""

    def __init__(self, n_features, n_components, hidden, activation, prior, device, validate):
        super().__init__()
        self.validate = validate  # torch.distributions' argument checks (None: its default)
        sizes, layers = [n_features, *hidden], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
        self.encoder = nn.Sequential(*layers, nn.Linear(sizes[-1], 2 * n_components))
        sizes, layers = [n_components, *hidden[::-1]], []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
        self.decoder = nn.Sequential(*layers, nn.Linear(sizes[-1], n_features))
        self.to(device)
        zero, one = torch.zeros((), device=device), torch.ones((), device=device)
        self.prior = PRIORS[prior](zero, one, validate)

    def loss(self, x):
        mu, raw_scale = self.encoder(x).chunk(2, dim=-1)
        std = F.softplus(raw_scale) + 1e-6
        z = mu + std * torch.randn_like(mu)
        logits = self.decoder(z)
        reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        q = Normal(mu, std, validate_args=self.validate)
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
    or a DataLoader (over host memory, each batch moved to the device). ``tuned`` adds what
    skvae does: fused Adam, distributions without argument checks, and flushing subnormal
    moments every 50 steps on the CPU, or replaying a CUDA graph of the whole step on CUDA
    (torch's "whole-network capture" recipe: three warm-up steps on a side stream, then
    the capture)."""

    def __init__(self, X, prior, params, loader=False, tuned=False, device="cpu"):
        torch.manual_seed(0)
        self.device = torch.device(device)
        self.batch_size, self.loader, self.tuned = params["batch_size"], loader, tuned
        self.X = X if loader else X.to(self.device)
        self.model = HandVAE(
            X.shape[1],
            params["n_components"],
            params["hidden_layer_sizes"],
            params["activation"],
            prior,
            self.device,
            validate=False if tuned else None,  # checks synchronise, and cannot be captured
        )
        self.graphed = tuned and self.device.type == "cuda"
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=params.get("learning_rate", 1e-3),
            fused=tuned or None,
            capturable=self.graphed,
        )
        if loader:
            dataset = torch.utils.data.TensorDataset(X)
            self.data = torch.utils.data.DataLoader(dataset, self.batch_size, shuffle=True)
        if self.graphed:
            self.static_x = self.X[: self.batch_size].clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    self.step(self.static_x)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            self.optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(self.graph):
                self.static_loss = self.step(self.static_x)

    def step(self, x):
        loss = self.model.loss(x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def epoch(self):
        if self.loader:
            batches = (x.to(self.device) for (x,) in self.data)
        else:
            permutation = torch.randperm(len(self.X), device=self.device)
            batches = (
                self.X[permutation[i : i + self.batch_size]]
                for i in range(0, len(self.X), self.batch_size)
            )
        for step, x in enumerate(batches, start=1):
            if self.graphed and len(x) == self.batch_size:
                self.static_x.copy_(x)
                self.graph.replay()
            else:
                self.step(x)
            if self.tuned and self.device.type == "cpu" and step % 50 == 0:
                flush_subnormals(self.optimizer)
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def hand_fit(X, prior, params, epochs, loader=False, tuned=False):
    loop = HandLoop(X, prior, params, loader, tuned, device=params.get("device", "cpu"))
    for _ in range(epochs):
        loop.epoch()
    return loop.model


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
        # The hand loop's model: a normal posterior and the prior at unit scale (SparseVAE's
        # defaults are thresholded codes and a learned scale, timed in --only posteriors).
        skvae_config = (
            config if prior == "normal" else dict(config, posterior="normal", prior_scale=1.0)
        )
        skvae_runs = {"skvae": ()}
        if params.get("device") == "cuda":
            skvae_runs["skvae, eager step (no CUDA graph)"] = (EagerStep,)
        times = {**{name: [] for name in skvae_runs}, **{name: [] for name, _, _ in HAND_LOOPS}}
        for _ in range(repeats):
            for name, seams in skvae_runs.items():
                vae = make_vae(prior, seams=seams, **skvae_config, max_iter=epochs)
                times[name].append(timed(vae.fit, X)[0])
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


def bench_posteriors(X, params, epochs, repeats):
    """Rows: (name, median seconds per epoch, ratio to GaussianVAE): every posterior family
    SparseVAE offers, with the Cauchy prior, SparseVAE's defaults with the prior's scale
    learned (the default) and fixed, and the Laplace prior with the thresholded-laplace
    posterior, against the Gaussian prior's speed."""
    models = {"GaussianVAE": lambda: make_vae("normal", **params, max_iter=epochs)}
    for posterior in POSTERIORS:  # SparseVAE's default activation, tanh, for each
        models[f"SparseVAE, cauchy, posterior={posterior}"] = partial(
            make_vae, "cauchy", **params, activation="tanh", posterior=posterior, max_iter=epochs
        )
    for scale in ("learned", 1.0):
        models[f"SparseVAE(), prior_scale={scale!r}"] = partial(
            make_vae, "laplace", **params, activation="tanh", prior_scale=scale, max_iter=epochs
        )
    models["SparseVAE(posterior='thresholded-laplace')"] = partial(  # closed-form KL
        make_vae,
        "laplace",
        **params,
        activation="tanh",
        posterior="thresholded-laplace",
        max_iter=epochs,
    )
    times = {name: [] for name in models}
    make_vae("normal", **params, max_iter=1).fit(X[:1000])  # the process's first fit is slow
    for _ in range(repeats):
        for name, make in models.items():
            times[name].append(timed(make().fit, X)[0])
    baseline = statistics.median(times["GaussianVAE"])
    return [
        (f"fit, {name}", statistics.median(t) / epochs, statistics.median(t) / baseline)
        for name, t in times.items()
    ]


def bench_importance_samples(X, params, epochs, repeats, ks=(1, 5)):
    """Rows: (name, median seconds per epoch, ratio to k = 1): GaussianVAE trained on the
    k-sample importance-weighted bound. The target is at most k times the ELBO's cost,
    since each step makes k decoder passes per row (and one encoder pass)."""
    make_vae("normal", **params, max_iter=1).fit(X[:1000])  # the process's first fit is slow
    times = {k: [] for k in ks}
    for _ in range(repeats):
        for k in ks:
            vae = make_vae("normal", **params, n_importance_samples=k, max_iter=epochs)
            times[k].append(timed(vae.fit, X)[0])
    baseline = statistics.median(times[ks[0]])
    return [
        (
            f"fit, n_importance_samples={k}",
            statistics.median(v) / epochs,
            statistics.median(v) / baseline,
        )
        for k, v in times.items()
    ]


def bench_inference(X, params, repeats):
    vae = GaussianVAE(**params, max_iter=1).fit(X)
    module, noise_shape = vae.module_, (vae.n_mc_samples, 1, vae.n_components)
    device, batch = vae._device(), 4096

    def raw(function, rows):
        with torch.inference_mode():
            outputs = [
                function(torch.from_numpy(rows[i : i + batch]).to(device))
                for i in range(0, len(rows), batch)
            ]
            return torch.cat(outputs).cpu().numpy()

    def raw_transform():
        return raw(lambda x: module.encoder(x).chunk(2, dim=-1)[0], X)

    def raw_elbo():
        def elbo(x):
            mu, raw_scale = module.encoder(x).chunk(2, dim=-1)
            std = F.softplus(raw_scale) + 1e-6
            z = mu + std * torch.randn(noise_shape, device=device)
            logits = module.decoder(z)
            log_likelihood = -F.binary_cross_entropy_with_logits(
                logits, x.expand_as(logits), reduction="none"
            ).sum(-1)
            kl = (0.5 * (mu**2 + std**2 - 1) - std.log()).sum(-1)
            return (log_likelihood - kl).mean(0)

        return raw(elbo, X)

    def raw_sample():
        with torch.inference_mode():
            z = torch.randn(len(X), vae.n_components, device=device)
            return torch.bernoulli(torch.sigmoid(module.decoder(z))).cpu().numpy()

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
    params = dict(n_components=10, likelihood="bernoulli", max_iter=epochs, tol=None)
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


def bench_cuda_memory(X, params):
    """Peak GPU memory of a fit (torch's allocator), against data + model + Adam state."""
    GaussianVAE(**params, max_iter=1).fit(X[:256])  # CUDA context and kernels first
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    vae = GaussianVAE(**params, max_iter=1).fit(X)
    peak = torch.cuda.max_memory_allocated() - before
    n_parameters = sum(p.numel() for p in vae.module_.parameters())
    budget = 4 * X.size + 3 * 4 * n_parameters  # float32 data, weights, Adam's two moments
    return [
        ("fit peak GPU memory (MB), vs data + model + Adam state", peak / 2**20, peak / budget),
        ("  budget: data + model + Adam state (MB)", budget / 2**20, 1.0),
    ]


def bench_batch_sizes(X, params, epochs, repeats, sizes=(128, 512, 2048, 8192)):
    """Seconds per epoch of GaussianVAE's fit at each batch size, against batch 128."""
    times = {size: [] for size in sizes}
    for _ in range(repeats):
        for size in sizes:
            vae = GaussianVAE(**dict(params, batch_size=size), max_iter=epochs)
            times[size].append(timed(vae.fit, X)[0] / epochs)
    first = statistics.median(times[sizes[0]])
    rows = []
    for size, values in times.items():
        median = statistics.median(values)
        rows.append((f"fit, prior=normal, skvae, batch {size}", median, median / first))
    return rows


def _training_steps(threads, steps=1500):
    """Seconds for ``steps`` forward and backward passes of a 784-256-128 MLP at batch 128
    on ``threads`` torch threads: plain torch work, shaped like the fits of the search."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128))
    x = torch.rand(128, 784)
    start = time.perf_counter()
    for _ in range(steps):
        model(x).square().mean().backward()
    return time.perf_counter() - start


def parallel_ceiling(repeats):
    """How much faster two 1-thread worker processes do two units of plain torch work than
    one process on 2 threads: what ``n_jobs=2`` can gain over ``n_jobs=1`` on this machine,
    whatever the library."""
    from joblib import Parallel, delayed

    threads = torch.get_num_threads()
    with Parallel(n_jobs=2) as parallel:
        parallel(delayed(_training_steps)(1, 10) for _ in range(2))  # start the workers
        one_process, two_workers = [], []
        for _ in range(repeats):
            one_process.append(_training_steps(2) + _training_steps(2))
            two_workers.append(
                timed(lambda: parallel(delayed(_training_steps)(1) for _ in range(2)))[0]
            )
    torch.set_num_threads(threads)
    return statistics.median(two_workers), statistics.median(one_process) / statistics.median(
        two_workers
    )


def bench_grid_search(X, params, repeats):
    seconds, ceiling = parallel_ceiling(repeats)
    grid, folds = {"n_components": [5, 10, 20, 30]}, 2
    n_fits = len(grid["n_components"]) * folds
    times = {1: [], 2: []}
    for _ in range(repeats):
        for n_jobs in times:
            search = GridSearchCV(GaussianVAE(**params), grid, cv=folds, n_jobs=n_jobs)
            times[n_jobs].append(timed(search.fit, X)[0])
    one = statistics.median(times[1])
    rows = [
        (
            f"GridSearchCV {len(grid['n_components'])} candidates x {folds} folds, n_jobs={n}",
            statistics.median(v),
            one / statistics.median(v),
        )
        for n, v in times.items()
    ]
    # The refit on the whole data runs after the search, in this process, on 2 threads.
    with_refit = (n_fits + 1) / (n_fits / ceiling + 1)
    rows.append(
        ("ceiling: 2 one-thread workers over one 2-thread process, plain torch", seconds, ceiling)
    )
    rows.append(
        (f"ceiling of this search ({n_fits} fits in parallel, then the refit)", None, with_refit)
    )
    return rows


def skvae_time_to(target, X_train, X_test, params, max_epochs):
    """(seconds, epochs, reached): one skvae fit, scored on the test set after each epoch.

    The scoring runs in the ``_run_epoch`` seam (:class:`ScoredEachEpoch`) and its time is
    left out; the seam stops the fit at the first epoch that reaches ``target``. So this is
    the time of one ordinary ``fit`` call that trains that many epochs: validation, the
    data's move to the device and the set-up included.
    """
    vae = make_vae("normal", seams=(ScoredEachEpoch,), **params, max_iter=max_epochs)
    vae.score_each_epoch(X_test, stop_above=-target)
    start, reached = time.perf_counter(), False
    try:
        vae.fit(X_train)
    except TargetReached:
        reached = True
    seconds = time.perf_counter() - start - sum(vae.scoring_seconds)
    return seconds, len(vae.test_scores), reached


def hand_time_to(target, X_train, X_test, params, max_epochs, tuned):
    """(seconds, epochs, reached) of the hand-written loop, scored on the test set with 10
    draws of its loss after each epoch, that time left out; the set-up is included."""
    start, scoring = time.perf_counter(), 0.0
    device = params.get("device", "cpu")
    loop = HandLoop(torch.from_numpy(X_train), "normal", params, tuned=tuned, device=device)
    X_test = torch.from_numpy(X_test).to(device)
    for epoch in range(1, max_epochs + 1):  # noqa: B007  (returned after the loop)
        loop.epoch()
        scored = time.perf_counter()
        with torch.inference_mode():
            reached = statistics.mean(loop.model.loss(X_test).item() for _ in range(10)) < target
        scoring += time.perf_counter() - scored
        if reached:
            break
    return time.perf_counter() - start - scoring, epoch, reached


def bench_quality(X_train, X_test, params, target, max_epochs, kl_warmup_epochs=3):
    """Wall time (training only) until the test negative ELBO falls below ``target``:
    GaussianVAE, with its defaults and with a KL warm-up, against the hand-written loop,
    plain and tuned (which have no warm-up)."""
    config = dict(params, activation="relu")
    warmed = dict(config, kl_warmup_epochs=kl_warmup_epochs)
    times = {
        "skvae": skvae_time_to(target, X_train, X_test, config, max_epochs),
        f"skvae, kl_warmup_epochs={kl_warmup_epochs}": skvae_time_to(
            target, X_train, X_test, warmed, max_epochs
        ),
    }
    for name, tuned in [("hand-written", False), ("hand-written, tuned", True)]:
        times[name] = hand_time_to(target, X_train, X_test, config, max_epochs, tuned)
    hand, tuned = times["hand-written"], times["hand-written, tuned"]
    setting = f"batch {params['batch_size']}, learning rate {params.get('learning_rate', 1e-3)}"
    rows = []
    for name, (seconds, epochs, reached) in times.items():
        when = f"at epoch {epochs}" if reached else f"NOT reached in {epochs} epochs"
        label = f"time to test -ELBO < {target} nats, {setting}, {name} ({when})"
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
    hidden, n_components = list(params["hidden_layer_sizes"]), params["n_components"]
    parts = pythae_encoder_decoder(X.shape[1], hidden, n_components, nn.ReLU)
    if parts is None:
        return None
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    config = VAEConfig(input_dim=(X.shape[1],), latent_dim=n_components, reconstruction_loss="bce")
    model = VAE(config, encoder=parts[0], decoder=parts[1])
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


# (batch size, learning rate, most epochs): the learning rate scaled by about the square root
# of the batch ratio.
LARGE_BATCHES = [(512, 2e-3, 150), (1024, 3e-3, 200), (4096, 6e-3, 400)]


def bench_large_batches(X, X_test, quality, epoch_cap):
    """Time to quality with each of ``LARGE_BATCHES``, each at most ``epoch_cap`` epochs
    (1 with --quick)."""
    for batch_size, learning_rate, max_epochs in LARGE_BATCHES:
        large = dict(quality, batch_size=batch_size, learning_rate=learning_rate)
        epochs = min(max_epochs, epoch_cap)
        yield from bench_quality(X, X_test, large, target=100.0, max_epochs=epochs)


# The sections of the table, in the order of a full run: name -> (the kinds of device whose
# full run has it, its rows for the run ``r`` that ``main`` sets up). ``--only`` runs one.
SECTIONS = {
    "fit": (("cpu", "cuda"), lambda r: bench_fit(r.X, r.params, r.epochs, r.repeats)),
    "batch-sizes": (
        ("cuda",),
        lambda r: bench_batch_sizes(r.X, r.params, r.epochs, r.repeats),
    ),
    "posteriors": (
        ("cpu", "cuda"),
        lambda r: bench_posteriors(r.X, r.params, r.epochs, r.repeats),
    ),
    "importance-samples": (
        ("cpu", "cuda"),
        lambda r: bench_importance_samples(r.X, r.params, r.epochs, r.repeats),
    ),
    "pythae": (("cpu",), lambda r: bench_pythae(r.X, r.params, r.epochs, r.repeats)),
    "inference": (
        ("cpu", "cuda"),
        lambda r: bench_inference(r.X_test, r.params, max(r.repeats, 3)),
    ),
    "cuda-memory": (("cuda",), lambda r: bench_cuda_memory(r.X, r.params)),
    "memory": (("cpu",), lambda r: bench_memory(r.n_rows, 1)),
    "grid-search": (
        ("cpu",),
        lambda r: bench_grid_search(r.X[:10000], dict(r.params, max_iter=10), r.repeats),
    ),
    "quality": (
        ("cpu", "cuda"),
        lambda r: bench_quality(r.X, r.X_test, r.quality, target=100.0, max_epochs=r.max_epochs),
    ),
    "large-batch": (
        ("cuda",),
        lambda r: bench_large_batches(r.X, r.X_test, r.quality, r.large_batch_epochs),
    ),
    "compile": ((), lambda r: bench_compile(r.X, r.params)),
}


def table_row(name, seconds, *ratios):
    """A table row from a section's (name, seconds or None, one or two ratios)."""
    ratios = [f"{r:.2f}" for r in ratios] + [""] * (2 - len(ratios))
    return [name, "" if seconds is None else f"{seconds:.3f}", *ratios]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="6000 rows, 1 epoch, one repeat: a smoke run"
    )
    parser.add_argument(
        "--n-rows",
        type=positive_int,
        help="MNIST training rows (default 60000, or 6000 with --quick)",
    )
    parser.add_argument("--epochs", type=positive_int, default=2, help="epochs per timed fit")
    parser.add_argument("--repeats", type=positive_int, default=3, help="interleaved repeats")
    parser.add_argument(
        "--only",
        choices=list(SECTIONS),
        help="run only this section, on --device (compile, torch.compile against eager, "
        "runs only so, on the CPU; cuda-memory needs a CUDA device; pythae, memory and "
        "grid-search measure the CPU)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="torch device for every model, e.g. cuda: adds the eager-step, batch-size and "
        "large-batch rows, and leaves out what measures the CPU (process memory, grid "
        "search, pythae)",
    )
    parser.add_argument("--memory-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only == "cuda-memory" and not args.device.startswith("cuda"):
        parser.error("--only cuda-memory measures a GPU's memory: pass --device cuda")
    set_default_mnist_dir()
    if args.memory_child:
        measure_memory(*args.memory_child)
        return
    if args.quick:
        args.epochs, args.repeats = 1, 1
    args.n_rows = args.n_rows or (6000 if args.quick else 60000)
    X_train, _ = load_mnist(subset="train")
    X_test, _ = load_mnist(subset="test")
    # tol=None: every skvae fit runs exactly its max_iter epochs.
    params = dict(
        n_components=10,
        hidden_layer_sizes=(256, 128),
        likelihood="bernoulli",
        batch_size=128,
        tol=None,
        random_state=0,
        device=args.device,
    )
    run = SimpleNamespace(
        X=np.ascontiguousarray(X_train[: args.n_rows]),
        X_test=np.ascontiguousarray(X_test),
        n_rows=args.n_rows,
        epochs=args.epochs,
        repeats=args.repeats,
        params=params,
        # A larger model than above, which reaches 100 nats on intensities in about 40
        # epochs (the 10-latent model had not after 30).
        quality=dict(params, n_components=32, hidden_layer_sizes=(512, 256)),
        max_epochs=1 if args.quick else 60,
        large_batch_epochs=1 if args.quick else max(epochs for _, _, epochs in LARGE_BATCHES),
    )
    print(
        f"MNIST {len(run.X)} rows, 784-256-128-10 (mirrored), Bernoulli, batch 128, Adam 1e-3; "
        f"{args.epochs} epochs per fit, {args.repeats} interleaved repeats"
    )
    print_environment()
    print()
    warm_up()
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    names = (
        [args.only] if args.only else [n for n, (kinds, _) in SECTIONS.items() if kind in kinds]
    )
    rows = (table_row(*row) for name in names for row in SECTIONS[name][1](run))
    print_table(
        ["what", "median (s, or MB where it says)", "ratio", "ratio to tuned hand loop"], rows
    )


if __name__ == "__main__":
    main()
