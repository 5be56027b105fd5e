"""The benchmark scripts' model builders: a ``--vae-param`` reaches the VAE, also where the
script sets that parameter itself (it failed with a duplicate keyword argument before); and
the aggregate-posterior regulariser that ``bench_sparse_codes.py --aggregate-mmd`` trains
with, and the mixture prior of its ``--prior-mixture``."""

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from skvae._families import PRIORS

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def benchmarks(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))


def _sparse_code_args(**settings):
    """``bench_sparse_codes.py``'s parsed arguments: a small model, no extra mechanism, and
    ``settings`` over them."""
    defaults = dict(
        n_components=4,
        hidden="16",
        epochs=2,
        seed=0,
        vae_param=[],
        aggregate_mmd=0.0,
        prior_mixture=0,
        prior_mixture_scales_only=False,
    )
    return argparse.Namespace(**{**defaults, **settings})


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

    args = _sparse_code_args(
        n_components=32,
        hidden="256,128",
        epochs=30,
        vae_param=[("activation", "relu"), ("n_importance_samples", 5)],
    )
    vae = make_model("laplace/thresholded:0.5", args)
    assert (vae.activation, vae.n_importance_samples) == ("relu", 5)
    assert vae.posterior_params == {"threshold": 0.5}
    assert make_model("normal/normal", args).activation == "relu"
    args.vae_param = []
    assert make_model("laplace/thresholded:0.5", args).activation == "tanh"


def test_dimensionwise_mmd_is_the_mmd_of_each_column(benchmarks):
    from bench_sparse_codes import dimensionwise_mmd

    rng = np.random.default_rng(0)
    X, Y = rng.laplace(size=(7, 3)), rng.normal(size=(7, 3))

    def kernel(a, b, c):
        return c / (c + (a - b) ** 2)

    expected, n = 0.0, len(X)
    for column in range(3):
        x, y = X[:, column], Y[:, column]
        for c in (0.2, 0.4, 1.0, 2.0, 4.0, 10.0):
            within = sum(
                kernel(x[i], x[j], c) + kernel(y[i], y[j], c)
                for i in range(n)
                for j in range(n)
                if i != j
            )
            between = sum(kernel(x[i], y[j], c) for i in range(n) for j in range(n))
            expected += within / (n * (n - 1)) - 2 * between / n**2
    got = dimensionwise_mmd(torch.tensor(X), torch.tensor(Y))
    assert_allclose(got.item(), expected)
    same = torch.tensor(rng.laplace(size=(400, 2)))
    other = torch.tensor(rng.laplace(size=(400, 2)))
    assert abs(dimensionwise_mmd(same, other).item()) < dimensionwise_mmd(same, 3 * other).item()


def test_aggregate_mmd_trains_with_the_regularised_loss(benchmarks, small_digits, monkeypatch):
    from bench_sparse_codes import MixturePrior, make_model, sparse_mixture

    monkeypatch.setitem(PRIORS, "sparse-mixture", MixturePrior("sparse-mixture", sparse_mixture))
    X, _ = small_digits
    args = _sparse_code_args(epochs=2, vae_param=[("prior_scale", 1.0)])
    plain = make_model("laplace/thresholded:0.5", args).fit(X)
    args.aggregate_mmd = 10.0
    regularised = make_model("laplace/thresholded:0.5", args).fit(X)
    assert type(regularised).__name__ == "AggregateMMDSparseVAE"
    # The same start and data: the loss is the negative ELBO plus a positive penalty.
    assert regularised.loss_curve_[0] > plain.loss_curve_[0]
    assert np.isfinite(regularised.score(X))
    mixture = make_model("sparse-mixture/normal", args).fit(X)
    assert np.isfinite(mixture.score(X)) and np.isfinite(mixture.sample(5, random_state=0)).all()


def test_the_mixture_prior_is_the_joint_mixture_density(benchmarks):
    from _common import JointMixture
    from torch.distributions import Categorical, Independent, Laplace, MixtureSameFamily

    generator = torch.Generator().manual_seed(0)
    logits, loc = torch.randn(3, generator=generator), torch.randn(3, 4, generator=generator)
    scale = torch.rand(3, 4, generator=generator) + 0.5
    z = torch.randn(6, 4, generator=generator)
    got = JointMixture(logits, Laplace(loc, scale)).log_prob(z)
    expected = MixtureSameFamily(Categorical(logits=logits), Independent(Laplace(loc, scale), 1))
    assert got.shape == z.shape  # spread over the dimensions, which the ELBO sums
    assert_allclose(got.sum(-1).numpy(), expected.log_prob(z).numpy(), rtol=1e-5)


def test_prior_mixture_trains_the_mixture_on_the_elbo(benchmarks, small_digits):
    from bench_sparse_codes import make_model

    X, _ = small_digits
    args = _sparse_code_args(epochs=3, prior_mixture=5)
    vae = make_model("laplace/thresholded:0.5", args)
    assert type(vae).__name__ == "PriorMixtureSparseVAE"
    assert type(make_model("normal/normal", args)).__name__ == "GaussianVAE"
    vae.fit(X)
    module = vae.module_
    assert module.mixture_loc.shape == (5, 4) and not module.analytic_kl
    assert module.mixture_loc.abs().sum() > 0  # moved from its start at 0
    # score is the ELBO against the mixture: log p(x|h) minus log q(z|x) - log p(z).
    x = torch.as_tensor(X[:20], dtype=torch.float32, device=vae._device())
    noise = vae._fixed_noise(vae.n_mc_samples)
    with torch.no_grad():
        posterior, z, _, log_px = module._reconstruct(x, noise)
        kl = posterior.log_prob(z).sum(-1) - module.prior().log_prob(z).sum(-1)
        expected = (log_px - kl).mean(0).cpu().numpy()
    assert_allclose(vae.score_samples(X[:20]), expected, rtol=1e-5)
    assert (vae.transform(X) == 0).any()
    args.prior_mixture_scales_only = True  # parts centred at 0: a buffer, not trained
    centred = make_model("laplace/thresholded:0.5", args).fit(X).module_
    assert "mixture_loc" in dict(centred.named_buffers()) and not centred.mixture_loc.any()


def test_prior_mixture_reaches_the_sources_and_patches_benchmarks(benchmarks):
    from _common import prior_mixture_seam
    from bench_image_patches import patch_vae
    from bench_synthetic_sources import make_models

    from skvae._module import VAEModule

    seam = prior_mixture_seam(3, learn_locations=False)
    models = make_models(
        "linear", 0, sparse_posteriors=True, architecture="default", sparse_seams=(seam,)
    )
    assert models["SparseVAE (laplace, thresholded)"]._module_class.n_parts == 3
    assert models["GaussianVAE"]._module_class is VAEModule
    vae = patch_vae("laplace", (), 4, 1, False, 0, 0, posterior="thresholded", seams=(seam,))
    assert vae._module_class.learn_locations is False
    assert patch_vae("normal", (), 4, 1, False, 0, 0, seams=(seam,))._module_class is VAEModule


def test_the_small_tables_benchmark_runs(benchmarks, capsys, monkeypatch):
    import bench_small_tables

    monkeypatch.setattr("sys.argv", ["bench_small_tables.py", "--quick"])
    # --quick shortens the budgets in place: give it a copy to shorten.
    budgets = {name: dict(budget) for name, budget in bench_small_tables.BUDGETS.items()}
    monkeypatch.setattr(bench_small_tables, "BUDGETS", budgets)
    bench_small_tables.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| wine")]
    cells = {row.split("|")[3].strip(): row.strip("|").split("|") for row in rows}
    assert list(cells) == list(bench_small_tables.MODELS)
    for row in cells.values():
        for cell in row[3:6]:  # "ELBO (epochs)" under each budget, all of 20 epochs here
            score, epochs = cell.split()
            assert np.isfinite(float(score)) and 1 <= int(epochs.strip("()")) <= 20
    assert float(cells["GaussianVAE()"][-1]) == 0.0 < float(cells["SparseVAE()"][-1])


def test_the_benchmarks_check_their_arguments_before_they_train(benchmarks, monkeypatch, capsys):
    # A misspelt model failed hours into a full-size run, 0 epochs or seeds ended in an
    # IndexError or NotFittedError, and a counted option of 0 meant "use the default".
    import bench_heavy_tails
    import bench_performance
    import bench_sparse_codes
    from _common import model_list, parse_model, positive_int

    assert parse_model("laplace/thresholded:0.5") == ("laplace", "thresholded", {"threshold": 0.5})
    for model, message in [
        ("laplace/threshold", "unknown posterior 'threshold'"),
        ("lapalce/normal", "unknown prior 'lapalce'"),
        ("laplace/normal:0.5", "has no parameter to set"),
        ("laplace/thresholded:half", "is not a number"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_model(model)
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            model_list(f"normal/normal,{model}")
    with pytest.raises(argparse.ArgumentTypeError, match="at least 1, got 0"):
        positive_int("0")
    for script, argv, message in [
        (
            bench_sparse_codes.parse_args,
            ["--models", "normal/normal,laplace/threshold"],
            "unknown",
        ),
        (bench_heavy_tails.main, ["--epochs", "0"], "at least 1"),
        (bench_heavy_tails.main, ["--seeds", "0"], "at least 1"),
        (bench_performance.main, ["--n-rows", "0"], "at least 1"),
        (bench_performance.main, ["--only", "cuda-memory"], "pass --device cuda"),
    ]:
        monkeypatch.setattr("sys.argv", ["bench.py", *argv])
        with pytest.raises(SystemExit):
            script()
        assert message in capsys.readouterr().err
