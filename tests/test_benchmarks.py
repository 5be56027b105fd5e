"""The benchmark scripts' model builders: a ``--vae-param`` reaches the VAE, also where the
script sets that parameter itself (it failed with a duplicate keyword argument before)."""

import argparse
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def benchmarks(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))


def test_vae_param_overrides_the_image_patch_settings(benchmarks):
    from bench_image_patches import patch_vae

    vae = patch_vae(
        "laplace",
        (),
        25,
        100,
        True,
        0,
        0,
        posterior="thresholded",
        overrides={"beta": 2.0, "activation": "relu"},
    )
    assert (vae.beta, vae.activation, vae.posterior) == (2.0, "relu", "thresholded")
    assert (vae.n_components, vae.max_iter, vae.prior) == (25, 100, "laplace")


def test_vae_param_overrides_the_sparse_code_settings(benchmarks):
    from bench_sparse_codes import make_model

    args = argparse.Namespace(
        n_components=32,
        hidden="256,128",
        epochs=30,
        seed=0,
        vae_param=[("activation", "relu"), ("n_importance_samples", 5)],
    )
    vae = make_model("laplace/thresholded:0.5", args)
    assert (vae.activation, vae.n_importance_samples) == ("relu", 5)
    assert vae.posterior_params == {"threshold": 0.5}
    assert make_model("normal/normal", args).activation == "relu"
    args.vae_param = []
    assert make_model("laplace/thresholded:0.5", args).activation == "tanh"
