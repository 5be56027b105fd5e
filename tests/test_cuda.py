"""The GPU path: data held on the device, no host synchronisation per batch, the CUDA graph
of the training step, and models that move between a GPU and the CPU.

Every test here needs CUDA and is skipped without it; CI has no GPU, so they run where a
GPU is lent (``python -m pytest tests/test_cuda.py``).
"""

import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import FAST
from numpy.testing import assert_allclose, assert_array_equal

import skvae
from skvae import GaussianVAE, SparseVAE
from skvae._training import CUDAGraphStep, make_training_step, train_epoch, training_data

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

GPU = {**FAST, "device": "cuda"}


# The estimators' seam for the eager step: full batches replay no captured graph.
class EagerSparseVAE(SparseVAE):
    _cuda_graphs = False


class EagerGaussianVAE(GaussianVAE):
    _cuda_graphs = False


def test_cuda_fit_uses_fused_adam_and_gives_finite_results(small_digits):
    X, _ = small_digits
    vae = SparseVAE(**GPU).fit(X)
    assert next(vae.module_.parameters()).is_cuda
    assert vae._optimizer.param_groups[0]["fused"] is True
    assert vae._optimizer.param_groups[0]["capturable"] is False  # set only for the capture
    assert np.isfinite(vae.transform(X)).all() and np.isfinite(vae.score(X))
    assert vae.sample(3, random_state=0).shape == (3, X.shape[1])


@pytest.mark.parametrize("graphs", [True, False], ids=["graph", "eager"])
def test_cuda_epoch_holds_the_data_on_the_device_and_syncs_once(small_digits, graphs):
    # The data moves to the GPU once; an epoch then synchronises with the host once (its
    # loss), however many batches it has.
    X, _ = small_digits
    data = training_data(X, torch.device("cuda"))
    assert data.is_cuda

    def synchronisations(batch_size):
        vae = (SparseVAE if graphs else EagerSparseVAE)(**GPU).fit(X)
        step = make_training_step(
            vae.module_, vae._optimizer, beta=1.0, batch_size=batch_size, cuda_graphs=graphs
        )
        assert isinstance(step, CUDAGraphStep) == graphs
        generator = torch.Generator(device="cuda").manual_seed(0)
        epoch = dict(
            batch_size=batch_size, noise_width=vae.module_.noise_width, generator=generator
        )
        train_epoch(step, data, **epoch)  # warms up and captures the graph
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                train_epoch(step, data, **epoch)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        # torch's own notice that the debug mode is a prototype is not a synchronisation
        return [
            f"{w.filename}:{w.lineno}" for w in caught if "synchronizing CUDA" in str(w.message)
        ]

    few_batches, many_batches = synchronisations(len(X) // 4), synchronisations(16)
    assert len(few_batches) == len(many_batches) == 1, (few_batches, many_batches)


@pytest.mark.parametrize("kl_warmup_epochs", [0, 3])
def test_cuda_graph_trains_as_the_eager_step_does(small_digits, kl_warmup_epochs):
    # The graph replays the same kernels on the same values: the same fit, up to float32
    # rounding in the kernels cuBLAS picks when capturing. With a KL warm-up the graph,
    # captured in the first epoch, must read each later epoch's weight as the eager step does.
    X, _ = small_digits
    params = dict(GPU, batch_size=32, max_iter=5, kl_warmup_epochs=kl_warmup_epochs)
    graphed = GaussianVAE(**params).fit(X)
    eager = EagerGaussianVAE(**params).fit(X)
    assert_allclose(graphed.loss_curve_, eager.loss_curve_, rtol=1e-4)
    assert_allclose(graphed.transform(X), eager.transform(X), atol=1e-3)


@pytest.mark.parametrize(
    "params",
    [
        dict(prior="cauchy"),
        dict(prior="laplace"),
        dict(prior="student-t"),
        dict(prior="cauchy", posterior="cauchy"),
        dict(prior="cauchy", likelihood="bernoulli"),
        dict(prior="cauchy", likelihood="poisson"),
        dict(prior="cauchy", likelihood="negative-binomial"),
    ],
    ids=lambda params: "-".join(params.values()),
)
def test_cuda_graph_captures_every_family_and_runs_the_last_batch_eagerly(small_digits, params):
    # 600 rows in batches of 128: four replayed (after three eager warm-up batches in the
    # first epoch) and a last batch of 88, run eagerly, in every epoch.
    X, _ = small_digits
    X = X * 16  # the digits' own counts, 0 to 16, for the count likelihoods
    if params.get("likelihood") == "bernoulli":
        X = X / 16
    vae = SparseVAE(**dict(GPU, batch_size=128, max_iter=4), **params).fit(X)
    assert np.isfinite(vae.loss_curve_).all()
    assert vae.loss_curve_[-1] < vae.loss_curve_[0]


def test_cuda_fit_is_reproducible(small_digits):
    X, _ = small_digits
    first, second = GaussianVAE(**GPU).fit(X), GaussianVAE(**GPU).fit(X)
    assert_array_equal(first.transform(X), second.transform(X))
    assert first.loss_curve_ == second.loss_curve_


def test_cuda_model_pickles_and_saves_on_the_gpu(small_digits, tmp_path):
    X, _ = small_digits
    vae = SparseVAE(**GPU).fit(X)
    for copy in [pickle.loads(pickle.dumps(vae)), skvae.load(_saved(vae, tmp_path))]:
        assert next(copy.module_.parameters()).is_cuda
        assert_array_equal(copy.transform(X), vae.transform(X))
        copy.partial_fit(X)  # the optimizer state came back on the device too
        assert np.isfinite(copy.loss_curve_[-1])


def test_a_model_scores_the_same_on_the_gpu_and_on_the_cpu(small_digits):
    # The fixed noise of score_samples and the diagnostics came from a generator on the
    # model's device, and CUDA's is another algorithm: other draws, other ELBOs (by up to a
    # nat a row), where the docs promise the same numbers for the same model and data.
    from skvae.diagnostics import kl_per_dimension, log_likelihood

    X, _ = small_digits
    vae = SparseVAE(**{**GPU, "n_mc_samples": 4}).fit(X)
    on_cpu = pickle.loads(pickle.dumps(vae))
    on_cpu.module_.to("cpu")
    assert_allclose(vae.score_samples(X), on_cpu.score_samples(X), rtol=1e-4, atol=1e-3)
    assert_allclose(kl_per_dimension(vae, X), kl_per_dimension(on_cpu, X), rtol=1e-4, atol=1e-5)
    assert_allclose(log_likelihood(vae, X[:50]), log_likelihood(on_cpu, X[:50]), rtol=1e-4)


def test_cuda_names_its_index_so_a_warm_start_does_not_move_the_model(small_digits, monkeypatch):
    # device='cuda' resolved to cuda, which torch does not equate with the model's cuda:0:
    # every partial_fit moved the model and reloaded its optimizer.
    X, _ = small_digits
    vae = GaussianVAE(**GPU).fit(X)
    moves, to = [], vae.module_.to
    monkeypatch.setattr(vae.module_, "to", lambda *args: moves.append(args) or to(*args))
    vae.partial_fit(X)
    assert moves == []
    assert skvae._validation.resolve_device("cuda") == vae._device()


def test_cuda_poisson_draws_pass_2_to_the_32(small_digits):
    # CUDA's Poisson sampler returns a 32-bit unsigned count; the rates counts model reach
    # 1.1e13.
    from skvae._families import poisson_draws

    rate = torch.full((20000,), 1e12, device="cuda")
    draws = poisson_draws(rate, torch.Generator(device="cuda").manual_seed(0)).double()
    assert abs(draws.mean().item() - 1e12) < 1e5 and abs(draws.std().item() - 1e6) < 2e4


def _saved(vae, tmp_path):
    path = tmp_path / "model.skvae"
    skvae.save(vae, path)
    return path


def test_cuda_model_loads_on_a_machine_without_cuda(small_digits, tmp_path):
    # A pickle written on the GPU, read in a process that sees no GPU: the weights map to
    # the CPU with a warning, and the codes match the GPU's to float32 rounding.
    X, _ = small_digits
    vae = SparseVAE(**GPU).fit(X)
    np.save(tmp_path / "X.npy", X)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(vae))
    script = """
import pickle, sys, warnings
import numpy as np
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    vae = pickle.loads(open(sys.argv[1] + "/model.pkl", "rb").read())
assert any("not available here" in str(w.message) for w in caught)
assert str(next(vae.module_.parameters()).device) == "cpu"
np.save(sys.argv[1] + "/codes.npy", vae.transform(np.load(sys.argv[1] + "/X.npy")))
"""
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=environment, check=True)
    assert_allclose(np.load(tmp_path / "codes.npy"), vae.transform(X), atol=1e-5)
