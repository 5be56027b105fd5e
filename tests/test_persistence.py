"""Persistence: pickle, joblib and skvae's safe format give back the whole fitted model, map
devices, and the safe format refuses crafted, tampered and incompatible files."""

import copy
import hashlib
import io
import math
import os
import pickle
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from conftest import FAST, same_weights, weights
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skvae
from skvae import GaussianVAE, SparseVAE
from skvae._families import LIKELIHOODS
from skvae._vae import FITTED_STATE


def _assert_equal(restored, original, where):
    """Equal values, of the same types, inside nested containers; tensors and arrays bit for
    bit, with their dtype (and tensors their device)."""
    if torch.is_tensor(original):
        assert torch.is_tensor(restored), where
        assert (restored.dtype, restored.shape) == (original.dtype, original.shape), where
        assert restored.device == original.device, where
        assert torch.equal(restored, original), where
    elif isinstance(original, np.ndarray):
        assert isinstance(restored, np.ndarray) and restored.dtype == original.dtype, where
        np.testing.assert_array_equal(restored, original, err_msg=where)
    elif isinstance(original, dict):
        assert isinstance(restored, dict) and restored.keys() == original.keys(), where
        for key in original:
            _assert_equal(restored[key], original[key], f"{where}[{key!r}]")
    elif isinstance(original, (list, tuple)):
        assert type(restored) is type(original) and len(restored) == len(original), where
        for i, (a, b) in enumerate(zip(restored, original, strict=True)):
            _assert_equal(a, b, f"{where}[{i}]")
    elif isinstance(original, float) and math.isnan(original):
        assert isinstance(restored, float) and math.isnan(restored), where
    else:
        assert type(restored) is type(original) and restored == original, where


def _public(module):
    """A torch module's own attributes (``training``, ``architecture``, the families...)."""
    return {key: value for key, value in vars(module).items() if not key.startswith("_")}


def assert_same_model(restored, original):
    """Every attribute of ``original`` is in ``restored`` and no other, with an equal value:
    the module's weights, buffers and attributes, the optimizer's state (over the module's own
    parameters), the random state, arrays and plain values."""
    assert type(restored) is type(original)
    difference = set(vars(restored)) ^ set(vars(original))
    assert not difference, f"attributes in only one of the models: {sorted(difference)}"
    for name, value in vars(original).items():
        other = vars(restored)[name]
        assert type(other) is type(value), name
        if isinstance(value, torch.nn.Module):
            _assert_equal(other.state_dict(), value.state_dict(), name)
            _assert_equal(_public(other), _public(value), name)
        elif isinstance(value, torch.optim.Optimizer):
            _assert_equal(other.state_dict(), value.state_dict(), name)
        elif isinstance(value, np.random.RandomState):
            _assert_equal(other.get_state(), value.get_state(), name)
        else:
            _assert_equal(other, value, name)
    # The optimizer updates the restored module's parameters, not copies of them.
    (group,) = restored._optimizer.param_groups
    assert all(a is b for a, b in zip(group["params"], restored.module_.parameters(), strict=True))


def _saved_and_loaded(vae, tmp_path):
    skvae.save(vae, tmp_path / "model.skvae")
    return skvae.load(tmp_path / "model.skvae")


def _joblib_round_trip(vae, tmp_path):
    joblib.dump(vae, tmp_path / "vae.joblib")
    return joblib.load(tmp_path / "vae.joblib")


ROUND_TRIPS = {
    "pickle": lambda vae, tmp_path: pickle.loads(pickle.dumps(vae)),
    "joblib": _joblib_round_trip,
    "skvae.save": _saved_and_loaded,
}


@pytest.fixture(scope="module")
def models(small_digits, fitted, fitted_frame_model):
    """Fitted models whose state differs in kind: from an array, from a DataFrame (feature
    names, a prior hyper-parameter), and under early stopping (validation scores)."""
    X, _ = small_digits
    early = GaussianVAE(**{**FAST, "early_stopping": True, "likelihood": "bernoulli"}).fit(X)
    return {"array": fitted, "frame": fitted_frame_model[0], "early-stopping": early}


@pytest.mark.parametrize("model", ["array", "frame", "early-stopping"])
@pytest.mark.parametrize("round_trip", ROUND_TRIPS)
def test_round_trips_restore_every_attribute(models, round_trip, model, tmp_path):
    vae = models[model]
    assert_same_model(ROUND_TRIPS[round_trip](vae, tmp_path), vae)


def test_the_fitted_state_is_the_listed_one(models):
    # Pickling, skvae.save and the docs read FITTED_STATE: a fitted attribute it does not list
    # would be lost by the safe format. Values derived from it are properties, not state.
    listed = {fitted.name for fitted in FITTED_STATE}
    for name, vae in models.items():
        state = set(vars(vae)) - set(vae.get_params())
        expected = listed if name == "frame" else listed - {"feature_names_in_"}
        assert state == expected, name
        assert "_n_features_out" not in vars(vae) and vae._n_features_out == 4


def test_pickle_and_joblib_round_trips(fitted, small_digits, tmp_path):
    X, _ = small_digits
    restored = [pickle.loads(pickle.dumps(fitted))]
    joblib.dump(fitted, tmp_path / "vae.joblib")
    restored.append(joblib.load(tmp_path / "vae.joblib"))
    original = pickle.loads(pickle.dumps(fitted))  # continued below; the fixture stays as it is
    original.partial_fit(X)
    for vae in restored:
        assert_same_model(vae, fitted)
        np.testing.assert_array_equal(vae.transform(X), fitted.transform(X))
        assert vae.score(X) == fitted.score(X)
        vae.partial_fit(X)  # the optimizer state travels with the model
        assert same_weights(weights(vae), weights(original))


def test_safe_format_round_trip(fitted_frame_model, tmp_path):
    vae, frame = fitted_frame_model
    skvae.save(vae, tmp_path / "model.skvae")
    loaded = skvae.load(tmp_path / "model.skvae")
    assert_same_model(loaded, vae)
    assert type(loaded) is SparseVAE and loaded.get_params() == vae.get_params()
    assert list(loaded.feature_names_in_) == list(vae.feature_names_in_)
    assert loaded.loss_curve_ == vae.loss_curve_ and loaded.n_iter_ == vae.n_iter_
    np.testing.assert_array_equal(loaded.transform(frame), vae.transform(frame))
    assert loaded.score(frame) == vae.score(frame)
    # Optimizer and random state travel too: continued training is bit-identical.
    original = pickle.loads(pickle.dumps(vae))
    loaded.partial_fit(frame)
    original.partial_fit(frame)
    assert same_weights(weights(loaded), weights(original))


# -- devices ----------------------------------------------------------------------------------


def test_pickle_maps_a_cuda_model_to_the_cpu(fitted_frame_model):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    vae, frame = fitted_frame_model
    state = vae.__getstate__()
    assert state["_torch_device"] == "cpu" and "module_" in vars(vae)
    state["_torch_device"] = "cuda:0"  # as written on a GPU machine
    restored = SparseVAE.__new__(SparseVAE)
    with pytest.warns(UserWarning, match="fitted on cuda:0, which is not available") as caught:
        restored.__setstate__(state)  # what pickle.loads calls
    assert caught[0].filename == __file__
    np.testing.assert_array_equal(restored.transform(frame), vae.transform(frame))
    # The device parameter names where the weights are: 'cuda' made partial_fit fail here.
    state = vae.__getstate__()
    state["_torch_device"] = "cuda:0"
    restored = SparseVAE.__new__(SparseVAE)
    with pytest.warns(UserWarning, match="its device parameter set to 'cpu'"):
        restored.__setstate__({**state, "device": "cuda"})
    assert restored.device == "cpu"
    restored.partial_fit(frame)
    # 'auto' stays, and the warning does not say it changed.
    restored = SparseVAE.__new__(SparseVAE)
    with pytest.warns(UserWarning, match=r"loaded on the CPU\.$"):
        restored.__setstate__({**state, "device": "auto"})
    assert restored.device == "auto"
    # Weights that did not move keep the parameter as set: 'cuda' set after a CPU fit (for
    # the next partial_fit to move to the GPU) became 'cpu' through copy.deepcopy.
    assert copy.deepcopy(vae.set_params(device="cuda")).device == "cuda"
    vae.set_params(device="cpu")


def test_load_maps_a_missing_device_to_the_cpu_or_refuses_it(fitted, small_digits, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    X, _ = small_digits
    vae = pickle.loads(pickle.dumps(fitted)).set_params(device="cuda")  # as fitted on a GPU
    skvae.save(vae, tmp_path / "model.skvae")
    with pytest.warns(UserWarning, match="fitted on cuda, which is not available") as caught:
        loaded = skvae.load(tmp_path / "model.skvae")
    assert caught[0].filename == __file__  # the warning points at the user's call
    assert next(loaded.module_.parameters()).device == torch.device("cpu")
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
    # Its device parameter says where the weights are, so partial_fit goes on here; it
    # failed with "device='cuda' was requested but CUDA is not available".
    assert loaded.device == "cpu"
    loaded.partial_fit(X)
    on_cpu = skvae.load(tmp_path / "model.skvae", device="cpu")
    assert on_cpu.score(X) == fitted.score(X) and on_cpu.device == "cpu"
    # 'auto' names the CPU here already, and stays.
    skvae.save(vae.set_params(device="auto"), tmp_path / "auto.skvae")
    assert skvae.load(tmp_path / "auto.skvae", device="cpu").device == "auto"
    # The caller's device is at fault, not the file: the error says so and no more.
    with pytest.raises(ValueError, match=r"^device='cuda' was requested but CUDA is not"):
        skvae.load(tmp_path / "model.skvae", device="cuda")


# -- the safe format refuses what it cannot trust ---------------------------------------------


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
        content, module_={k: v[:1] if v.dim() else v for k, v in content["module_"].items()}
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


def test_save_refuses_what_it_cannot_store(fitted, tmp_path):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        skvae.save(SparseVAE(), tmp_path / "x")
    with pytest.raises(TypeError, match="takes a fitted SparseVAE or GaussianVAE, got object"):
        skvae.save(object(), tmp_path / "x")
    # What holds a model: the message names where the model is.
    for holder, where in [
        (skvae.VAEImputer(), r"imputer\.estimator_"),
        (make_pipeline(StandardScaler(), fitted), r"pipe\[-1\]"),
    ]:
        with pytest.raises(TypeError, match=rf"got {type(holder).__name__}\. .*{where}"):
            skvae.save(holder, tmp_path / "x")
    with pytest.raises(TypeError, match=r"got str\. Call it as save\(estimator, path\)\.$"):
        skvae.save(str(tmp_path / "x"), fitted)  # the arguments swapped
    # A file opened in text mode: said before anything is written (torch said "write()
    # argument must be str, not bytes").
    with open(tmp_path / "text", "w") as text:
        with pytest.raises(
            TypeError, match=r"writes text; open it in binary mode, open\(path, 'wb'\)"
        ):
            skvae.save(fitted, text)
    assert (tmp_path / "text").read_bytes() == b""

    # Named as skvae's class, which load would build instead.
    subclass = type("SparseVAE", (skvae.SparseVAE,), {})
    subclassed = subclass(**FAST).fit(np.random.RandomState(0).rand(30, 4))
    with pytest.raises(TypeError, match="got SparseVAE: load rebuilds.*Pickle it instead"):
        skvae.save(subclassed, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_save_and_load_take_file_objects(fitted, small_digits, tmp_path):
    X, _ = small_digits
    buffer = io.BytesIO()
    skvae.save(fitted, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(skvae.load(buffer).transform(X), fitted.transform(X))
    with open(tmp_path / "model.skvae", "wb") as file:
        skvae.save(fitted, file)
    with open(tmp_path / "model.skvae", "rb") as file:
        assert skvae.load(file).score(X) == fitted.score(X)
    with pytest.raises(ValueError, match="The file object is not an skvae model file"):
        skvae.load(io.BytesIO(b"not a model"))
    with open(tmp_path / "model.skvae") as text, pytest.raises(TypeError, match="'rb'"):
        skvae.load(text)


def test_save_refuses_parameters_that_load_would_refuse(fitted, tmp_path):
    vae = pickle.loads(pickle.dumps(fitted)).set_params(likelihood="Gaussian")
    with pytest.raises(ValueError, match="'likelihood' parameter of SparseVAE"):
        skvae.save(vae, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_save_keeps_the_set_output_container(fitted_frame_model, tmp_path):
    pd = pytest.importorskip("pandas")
    vae, frame = fitted_frame_model
    vae = pickle.loads(pickle.dumps(vae)).set_output(transform="pandas")
    skvae.save(vae, tmp_path / "model.skvae")
    codes = skvae.load(tmp_path / "model.skvae").transform(frame)
    assert isinstance(codes, pd.DataFrame)
    pd.testing.assert_frame_equal(codes, vae.transform(frame))


# -- files and pickles of other versions --------------------------------------------------------

DATA = Path(__file__).with_name("data")


def test_save_takes_numpy_typed_parameters_as_a_grid_search_sets_them(small_digits, tmp_path):
    # GridSearchCV over np.arange or np.linspace sets NumPy scalars; a random_state of
    # np.int64 is a seed, not a RandomState, and is kept.
    X, _ = small_digits
    numpy_typed = dict(
        n_components=np.int64(3),
        hidden_layer_sizes=np.array([16]),
        learning_rate=np.float32(2e-3),
        random_state=np.int64(3),
    )
    vae = SparseVAE(**{**FAST, "max_iter": 2, **numpy_typed}).fit(X)
    skvae.save(vae, tmp_path / "model.skvae")
    loaded = skvae.load(tmp_path / "model.skvae")
    params = loaded.get_params()
    assert (params["n_components"], params["hidden_layer_sizes"]) == (3, (16,))
    assert (params["learning_rate"], params["random_state"]) == (np.float32(2e-3), 3)
    np.testing.assert_array_equal(loaded.transform(X), vae.transform(X))


def test_an_int_hidden_layer_size_round_trips(small_digits, tmp_path):
    X, _ = small_digits
    vae = GaussianVAE(**{**FAST, "max_iter": 2, "hidden_layer_sizes": 16}).fit(X)
    skvae.save(vae, tmp_path / "model.skvae")
    loaded = skvae.load(tmp_path / "model.skvae")
    assert loaded.hidden_layer_sizes == 16
    np.testing.assert_array_equal(loaded.transform(X), vae.transform(X))


def test_load_reads_the_files_of_skvae_0_1_0(digits):
    # Written by skvae 0.1.0 (format 1): a Student-t SparseVAE, df=4, and its outputs.
    X = digits[0][:10]
    loaded = skvae.load(DATA / "skvae-0.1.0-student-t.skvae")
    recorded = np.load(DATA / "skvae-0.1.0-student-t-outputs.npz")
    # To float32 rounding: another CPU's kernels (an AMD's AVX512 against the recording
    # machine's) round the same weights' outputs a unit in the last place apart.
    np.testing.assert_allclose(loaded.transform(X), recorded["transform"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.score_samples(X), recorded["score_samples"], rtol=1e-6)
    assert loaded.module_.architecture["prior_params"] == {"df": 4.0}
    # Its prior had the fixed unit scale, which the loaded model keeps (and says it does).
    assert loaded.prior_scale == 1.0 and loaded.module_.architecture["prior_scale"] == 1.0
    np.testing.assert_array_equal(loaded.prior_scale_, np.ones(2))
    assert not hasattr(loaded, "_n_features_out") or loaded._n_features_out == 2
    assert "_n_features_out" not in vars(loaded)
    loaded.partial_fit(X)  # training goes on
    assert loaded.n_iter_ == 3


def test_a_pickle_of_another_version_is_refused_with_the_way_out():
    with pytest.raises(ValueError, match="pickled by another version.*skvae.save and skvae.load"):
        with open(DATA / "skvae-0.1.0-student-t.pkl", "rb") as file:
            pickle.load(file)


def test_a_pickle_whose_likelihood_head_is_not_registered_says_so(
    small_digits, tmp_path, monkeypatch
):
    # A head registered from user code pickles by class: where its module is missing, the
    # error once blamed another version of skvae.
    (tmp_path / "user_heads.py").write_text(
        "from skvae._families import GaussianLikelihood\n"
        "class Wide(GaussianLikelihood):\n"
        "    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_heads

    monkeypatch.setitem(LIKELIHOODS, "wide", user_heads.Wide)
    X, _ = small_digits
    data = pickle.dumps(SparseVAE(**FAST, likelihood="wide").fit(X))
    monkeypatch.delitem(sys.modules, "user_heads")
    sys.path.remove(str(tmp_path))
    with pytest.raises(ValueError, match="registered from user code.*run that registration"):
        pickle.loads(data)


def test_a_pickle_of_a_module_built_with_other_arguments_is_refused(fitted):
    # As pickled before the prior's scale existed: the module has no prior_scale in its
    # architecture. Unpickled, it would transform but fail in score, sample and partial_fit.
    old = pickle.loads(pickle.dumps(fitted))
    del old.module_.architecture["prior_scale"]
    with pytest.raises(ValueError, match="pickled by another version.*skvae.save and skvae.load"):
        pickle.loads(pickle.dumps(old))


def test_load_rebuilds_the_fitted_architecture_not_later_parameters(
    fitted, small_digits, tmp_path
):
    # Parameters changed after fitting describe a model not yet fitted; the file holds the
    # weights of the fitted one, and load rebuilds that.
    X, _ = small_digits
    vae = pickle.loads(pickle.dumps(fitted))
    vae.set_params(activation="relu", hidden_layer_sizes=(64, 64))
    skvae.save(vae, tmp_path / "model.skvae")
    loaded = skvae.load(tmp_path / "model.skvae")
    assert loaded.activation == "relu"  # the parameters as saved
    assert loaded.module_.architecture == fitted.module_.architecture
    np.testing.assert_array_equal(loaded.transform(X), fitted.transform(X))
