"""Reliability: divergence, interruption, reproducibility, persistence, threads, bad input."""

import hashlib
import io
import os
import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

import skvae
from skvae import GaussianVAE, SparseVAE
from skvae import _vae as vae_module

FAST = dict(n_components=4, hidden_layer_sizes=(32,), max_iter=3, random_state=0)


def _weights(vae):
    return {k: v.clone() for k, v in vae.module_.state_dict().items()}


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- divergence ---------------------------------------------------------------------------------


def test_divergence_restores_the_last_finite_state_and_warns(small_digits):
    X, _ = small_digits
    vae = SparseVAE(**{**FAST, "warm_start": True}).fit(X)
    before = _weights(vae)
    vae.set_params(learning_rate=1e20)  # absurd: the weights overflow to inf, the loss to nan
    with pytest.warns(ConvergenceWarning, match=r"diverged in epoch 4 with a nan loss"):
        vae.fit(X)
    assert vae.n_iter_ == 3 and len(vae.loss_curve_) == 3
    assert _same_weights(_weights(vae), before)
    assert all(torch.isfinite(w).all() for w in _weights(vae).values())
    assert np.isfinite(vae.transform(X)).all()


def test_a_fit_without_a_single_finite_step_raises_and_keeps_the_old_model(small_digits):
    X, _ = small_digits
    vae = SparseVAE(**FAST).fit(X)
    module, before = vae.module_, _weights(vae)
    vae.set_params(learning_rate=1e20)
    with pytest.raises(ValueError, match="could not make a single finite training step"):
        vae.fit(X)
    assert vae.module_ is module and _same_weights(_weights(vae), before)
    assert vae.n_iter_ == 3


# -- early stopping and interruption --------------------------------------------------------


def test_early_stopping_restores_the_best_weights(small_digits, monkeypatch):
    X, _ = small_digits
    splits = []

    def recording_split(*args, **kwargs):
        splits.append(vae_module.train_test_split.__wrapped__(*args, **kwargs))
        return splits[-1]

    recording_split.__wrapped__ = vae_module.train_test_split
    monkeypatch.setattr(vae_module, "train_test_split", recording_split)
    params = dict(FAST, max_iter=200, early_stopping=True, tol=0.0, n_iter_no_change=1)
    vae = SparseVAE(**params).fit(X)
    _, X_val = splits[0]
    assert vae.n_iter_ < 200  # stopped early, after epochs that did not improve
    assert vae.validation_scores_[-1] < vae.best_validation_score_
    assert vae.score(X_val) == pytest.approx(vae.best_validation_score_, rel=1e-6)


def test_interrupted_fit_keeps_the_last_completed_epoch(small_digits, monkeypatch):
    X, _ = small_digits
    reference = SparseVAE(**{**FAST, "max_iter": 2}).fit(X)
    calls = []
    train_epoch = vae_module.train_epoch

    def interrupted_on_third_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return train_epoch(*args, **kwargs)

    monkeypatch.setattr(vae_module, "train_epoch", interrupted_on_third_epoch)
    vae = SparseVAE(**{**FAST, "max_iter": 5})
    with pytest.warns(UserWarning, match=r"interrupted during epoch 3.*epoch \(2\)"):
        vae.fit(X)
    assert vae.n_iter_ == 2 and len(vae.loss_curve_) == 2
    assert _same_weights(_weights(vae), _weights(reference))
    vae.partial_fit(X)  # training goes on from there
    assert vae.n_iter_ == 3


# -- reproducibility ------------------------------------------------------------------------


def test_same_random_state_is_bit_identical(small_digits):
    X, _ = small_digits
    a, b = SparseVAE(**FAST).fit(X), SparseVAE(**FAST).fit(X)
    assert _same_weights(_weights(a), _weights(b))
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.sample(10, random_state=0), b.sample(10, random_state=0))
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))


def test_grid_search_is_reproducible_across_processes(small_digits):
    X, _ = small_digits
    grid = {"n_components": [2, 4]}
    results = [
        GridSearchCV(SparseVAE(**FAST), grid, cv=2, n_jobs=n_jobs).fit(X) for n_jobs in (1, 2)
    ]
    # Scores computed in two worker processes (one torch thread each) equal, bit for bit,
    # those computed here.
    sequential, parallel = (r.cv_results_["split0_test_score"] for r in results)
    np.testing.assert_array_equal(parallel, sequential)
    assert results[0].best_params_ == results[1].best_params_


# -- persistence ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted_frame_model(small_digits):
    pd = pytest.importorskip("pandas")
    X, _ = small_digits
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    return SparseVAE(**{**FAST, "prior": "student-t", "df": 4.0}).fit(frame), frame


def test_safe_format_round_trip(fitted_frame_model, tmp_path):
    vae, frame = fitted_frame_model
    skvae.save(vae, tmp_path / "model.skvae")
    loaded = skvae.load(tmp_path / "model.skvae")
    assert type(loaded) is SparseVAE and loaded.get_params() == vae.get_params()
    assert list(loaded.feature_names_in_) == list(vae.feature_names_in_)
    assert loaded.loss_curve_ == vae.loss_curve_ and loaded.n_iter_ == vae.n_iter_
    np.testing.assert_array_equal(loaded.transform(frame), vae.transform(frame))
    assert loaded.score(frame) == vae.score(frame)
    # Optimizer and random state travel too: continued training is bit-identical.
    original = pickle.loads(pickle.dumps(vae))
    loaded.partial_fit(frame)
    original.partial_fit(frame)
    assert _same_weights(_weights(loaded), _weights(original))


def test_pickle_maps_a_cuda_model_to_the_cpu(fitted_frame_model):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    vae, frame = fitted_frame_model
    state = vae.__getstate__()
    assert state["_torch_device"] == "cpu" and "module_" in vars(vae)
    state["_torch_device"] = "cuda:0"  # as written on a GPU machine
    restored = SparseVAE.__new__(SparseVAE)
    with pytest.warns(UserWarning, match="fitted on cuda:0, which is not available"):
        restored.__setstate__(state)
    np.testing.assert_array_equal(restored.transform(frame), vae.transform(frame))


def _write(path, payload):
    path.write_bytes(
        skvae._persistence.MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    )


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_load_executes_no_code_from_a_crafted_file(tmp_path):
    marker = tmp_path / "code-ran"
    plain_pickle = tmp_path / "plain.pkl"
    plain_pickle.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(ValueError, match="not an skvae model file"):
        skvae.load(plain_pickle)
    # A file with a valid header and checksum around a code-running pickle.
    buffer = io.BytesIO()
    torch.save({"format_version": 1, "module": _RunsCode(marker)}, buffer)
    crafted = tmp_path / "crafted.skvae"
    _write(crafted, buffer.getvalue())
    with pytest.raises(ValueError, match="holds more than weights and plain data"):
        skvae.load(crafted)
    assert not marker.exists()


def test_load_refuses_tampered_and_incompatible_files(fitted_frame_model, tmp_path):
    vae, _ = fitted_frame_model
    path = tmp_path / "model.skvae"
    skvae.save(vae, path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    tampered = tmp_path / "tampered.skvae"
    tampered.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="modified or corrupted"):
        skvae.load(tampered)

    content = torch.load(io.BytesIO(path.read_bytes().split(b"\n", 2)[2]), weights_only=True)
    newer = dict(content, format_version=99)
    mismatched = dict(
        content, module={k: v[:1] if v.dim() else v for k, v in content["module"].items()}
    )
    for name, bad, message in [
        ("newer", newer, "comes from a newer skvae"),
        ("mismatched", mismatched, "does not describe a consistent skvae model"),
    ]:
        buffer = io.BytesIO()
        torch.save(bad, buffer)
        _write(tmp_path / name, buffer.getvalue())
        with pytest.raises(ValueError, match=message):
            skvae.load(tmp_path / name)


def test_save_refuses_what_it_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="not fitted yet"):
        skvae.save(SparseVAE(), tmp_path / "x")
    with pytest.raises(TypeError, match="takes a SparseVAE or GaussianVAE"):
        skvae.save(object(), tmp_path / "x")


# -- threads --------------------------------------------------------------------------------


def test_concurrent_transform_and_score_match_sequential_calls(small_digits):
    X, _ = small_digits
    vae = GaussianVAE(**FAST).fit(X)
    expected_codes, expected_elbo = vae.transform(X), vae.score_samples(X)
    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(lambda _: vae.transform(X), range(8)))
        elbos = list(pool.map(lambda _: vae.score_samples(X), range(8)))
    for Z, elbo in zip(codes, elbos, strict=True):
        np.testing.assert_array_equal(Z, expected_codes)
        np.testing.assert_array_equal(elbo, expected_elbo)


# -- more bad input -------------------------------------------------------------------------


def test_renamed_columns_are_refused(fitted_frame_model):
    vae, frame = fitted_frame_model
    renamed = frame.rename(columns={"pixel0": "intensity0"})
    with pytest.raises(ValueError, match="feature names should match"):
        vae.transform(renamed)


@pytest.mark.parametrize("method", ["fit", "transform", "score"])
def test_values_beyond_float32_are_refused(small_digits, method):
    X, _ = small_digits
    vae = SparseVAE(**FAST).fit(X)
    huge = X.copy()
    huge[0, 0] = 1e300
    with pytest.raises(ValueError, match="beyond float32's range"):
        getattr(vae, method)(huge)


CONTAINERS = {
    "float32": lambda X: X.astype(np.float32),
    "fortran": np.asfortranarray,
    "read-only": lambda X: np.lib.stride_tricks.as_strided(X, writeable=False),
    "csr": lambda X: sp.csr_matrix(X),
}
PROBLEMS = [
    (np.nan, "Input X contains NaN"),
    (np.inf, "Input X contains infinity"),
    (-np.inf, "Input X contains infinity"),
    (1.5, r"needs data in \[0, 1\], got values in \[0, 1.5\]"),
]


@pytest.mark.parametrize("value, message", PROBLEMS, ids=["nan", "inf", "-inf", "range"])
@pytest.mark.parametrize("container", CONTAINERS)
def test_the_one_pass_check_names_each_problem(small_digits, container, value, message):
    # Valid data costs one min/max pass; bad data then gets scikit-learn's own messages, in
    # every memory layout the pass handles differently.
    X, _ = small_digits
    vae = GaussianVAE(**{**FAST, "likelihood": "bernoulli"}).fit(X)
    bad = X.copy()
    bad[3, 5] = value
    for method in ("transform", "score_samples"):
        with pytest.raises(ValueError, match=message):
            getattr(vae, method)(CONTAINERS[container](bad))
    assert np.isfinite(vae.score_samples(CONTAINERS[container](X))).all()


def test_assume_finite_skips_only_the_finiteness_check(small_digits):
    X, _ = small_digits
    vae = GaussianVAE(**{**FAST, "likelihood": "bernoulli"}).fit(X)
    bad = X.copy()
    bad[0, 0] = np.nan
    with sklearn.config_context(assume_finite=True):
        assert np.isnan(vae.transform(bad)[0]).all()  # scikit-learn's contract: no check
        with pytest.raises(ValueError, match="needs data in"):
            vae.transform(X * 2)  # the likelihood's range is still checked


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.uint8, bool])
def test_other_numeric_dtypes_are_converted(small_digits, dtype):
    X, _ = small_digits
    data = (X > 0.5) if dtype is bool else (X * 16).astype(dtype)
    vae = SparseVAE(**FAST).fit(data)
    assert vae.transform(data).dtype == np.float64
    assert np.isfinite(vae.score(data))


def test_read_only_memmap_input_works_without_warnings(small_digits, tmp_path):
    X, _ = small_digits
    path = tmp_path / "X.npy"
    np.save(path, X.astype(np.float32))
    memmap = np.load(path, mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vae = SparseVAE(**{**FAST, "max_iter": 50, "tol": 1e3}).fit(memmap)
        vae.transform(memmap)
        vae.score(memmap)
    assert not memmap.flags.writeable


# -- properties -----------------------------------------------------------------------------

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
ARRAYS = hnp.arrays(
    np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=6), elements=FLOATS
)
PARAMS = st.fixed_dictionaries(
    {
        "n_components": st.integers(1, 3),
        "prior": st.sampled_from(["cauchy", "laplace", "student-t"]),
        "likelihood": st.sampled_from(["gaussian", "bernoulli"]),
        "beta": st.floats(0, 4),
        "kl_warmup_epochs": st.integers(0, 3),
        "batch_size": st.integers(1, 8),
        "learning_rate": st.floats(1e-4, 1.0),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=ARRAYS, params=PARAMS)
def test_any_input_gives_a_clean_error_or_finite_results(X, params):
    vae = SparseVAE(hidden_layer_sizes=(4,), max_iter=2, random_state=0, **params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            vae.fit(X)
    except (ValueError, TypeError) as error:
        assert str(error)
        return
    assert np.isfinite(vae.transform(X)).all()
    assert np.isfinite(vae.score_samples(X)).all()
    assert np.isfinite(vae.inverse_transform(vae.transform(X))).all()
    assert np.isfinite(vae.sample(3, random_state=0)).all()
