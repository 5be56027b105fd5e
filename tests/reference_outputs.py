"""Reference outputs of small fits, one per prior/posterior/likelihood pair and training mode.

Recorded once on a base commit (``python tests/reference_outputs.py --record``) and compared by
``tests/test_reference_outputs.py``, so that a change meant to keep behaviour (a refactor) is
checked to give the same ``loss_curve_``, ``transform``, ``score_samples``, ``sample`` and
diagnostics for a fixed ``random_state``: bit for bit on the machine and torch build that
recorded them, and to float32 rounding elsewhere. ``python tests/reference_outputs.py`` (no
flag) compares and prints the largest difference of each case.
"""

import argparse
import platform
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skvae import GaussianVAE, SparseVAE, diagnostics

PATH = Path(__file__).with_name("data") / "reference_outputs.npz"

# Pairs a fit accepts: every prior with a normal posterior, and the heavy-tailed priors whose KL
# to a Cauchy posterior is finite.
PAIRS = [
    ("normal", "normal"),
    ("cauchy", "normal"),
    ("laplace", "normal"),
    ("student-t", "normal"),
    ("cauchy", "cauchy"),
    ("student-t", "cauchy"),
]
LIKELIHOODS = ["gaussian", "bernoulli", "poisson", "negative-binomial"]
SMALL = dict(n_components=3, hidden_layer_sizes=(16,), max_iter=3, batch_size=64, device="cpu")


def _data(likelihood):
    X = load_digits().data[:300]
    return X if likelihood in ("poisson", "negative-binomial") else X / 16.0


def _estimator(prior, posterior, likelihood, **params):
    params = {**SMALL, "posterior": posterior, "likelihood": likelihood, **params}
    if posterior == "cauchy":
        params["activation"] = "tanh"
    if prior == "normal":
        return GaussianVAE(random_state=0, **params)
    # The fixed unit scale the outputs were recorded with (SparseVAE learns it by default).
    return SparseVAE(prior=prior, df=4.0, prior_scale=1.0, random_state=0, **params)


def _outputs(vae, X):
    Z = vae.transform(X)
    return {
        "loss_curve": np.asarray(vae.loss_curve_),
        "validation_scores": np.asarray(vae.validation_scores_ or [], dtype=np.float64),
        "transform": Z,
        "inverse_transform": vae.inverse_transform(Z[:20]),
        "score_samples": vae.score_samples(X),
        "sample": vae.sample(5, random_state=0),
        "kl_per_dimension": diagnostics.kl_per_dimension(vae, X[:50]),
        "log_likelihood": diagnostics.log_likelihood(vae, X[:20], n_samples=7),
    }


def _cases():
    """(name, fitted estimator, data) for every case."""
    for prior, posterior in PAIRS:
        for likelihood in LIKELIHOODS:
            X = _data(likelihood)
            vae = _estimator(prior, posterior, likelihood).fit(X)
            yield f"{prior}/{posterior}/{likelihood}", vae, X
    X = _data("gaussian")
    variants = {
        "early_stopping": dict(early_stopping=True, max_iter=4),
        "kl_warmup": dict(kl_warmup_epochs=2, beta=0.5),
        "relu_cauchy_prior": dict(activation="relu"),
    }
    for name, params in variants.items():
        yield name, _estimator("cauchy", "normal", "gaussian", **params).fit(X), X
    vae = _estimator("laplace", "normal", "bernoulli")
    for _ in range(3):
        vae.partial_fit(X)
    yield "partial_fit", vae, X
    counts = sp.csr_matrix(_data("poisson"))
    yield "sparse_input", _estimator("cauchy", "normal", "poisson").fit(counts), counts
    vae = _estimator("normal", "normal", "gaussian", warm_start=True).fit(X)
    yield "warm_start", vae.fit(X), X


def compute():
    """Every case's outputs, as a flat dict of arrays named ``case:output``."""
    outputs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, vae, X in _cases():
            for key, value in _outputs(vae, X).items():
                outputs[f"{name}:{key}"] = np.asarray(value)
    return outputs


def _cpu_model():
    """The CPU's model name (Linux), else what ``platform`` knows: two CPUs of the same vector
    capability (AVX512 on an Intel and on an AMD) can round float32 kernels differently."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def fingerprint():
    """What bit-identity depends on besides the code: the torch build, the CPU's kernels and
    the number of threads (a parallel sum adds in another order)."""
    capability = torch.backends.cpu.get_cpu_capability()
    return (
        f"torch {torch.__version__}, {capability}, {platform.machine()}, {_cpu_model()}, "
        f"{torch.get_num_threads()} threads"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help=f"write {PATH.name}")
    args = parser.parse_args()
    outputs = compute()
    if args.record:
        PATH.parent.mkdir(exist_ok=True)
        np.savez_compressed(PATH, __fingerprint__=np.asarray(fingerprint()), **outputs)
        print(f"recorded {len(outputs)} arrays ({fingerprint()}) in {PATH}")
        return
    reference = np.load(PATH)
    print(f"recorded on: {reference['__fingerprint__']}; here: {fingerprint()}")
    n_identical = 0
    for key, value in outputs.items():
        expected = reference[key]
        identical = expected.shape == value.shape and np.array_equal(expected, value)
        n_identical += identical
        if not identical:
            difference = (
                np.max(np.abs(expected - value)) if expected.shape == value.shape else "shape"
            )
            print(f"DIFFERS {key}: {difference}")
    print(f"{n_identical} of {len(outputs)} arrays bit-identical")


if __name__ == "__main__":
    main()
