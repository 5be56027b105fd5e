"""A safe file format for fitted estimators: loading it executes no code from the file.

``pickle`` and ``joblib`` files can run arbitrary code when loaded. A file written by
:func:`save` holds only JSON and tensors: a magic line, the SHA-256 of the payload, and the
payload, read back with ``torch.load(weights_only=True)``, whose unpickler admits tensors and
plain containers and nothing callable.
"""

import hashlib
import io
import json
from numbers import Integral

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from . import __version__
from ._vae import FITTED_STATE, GaussianVAE, SparseVAE, _BaseVAE
from ._validation import available_device, match_device_param, resolve_device


def _plain(value):
    """A NumPy scalar or array as the Python number or list JSON stores (a parameter grid
    built with ``np.arange`` gives ``np.int64`` values, say)."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps(value):
    return json.dumps(value, default=_plain)


MAGIC = b"skvae-model\n"
# 4: the architecture's prior_scale, which may be learned (parameter prior_log_scale).
# 3: the module standardizes what its encoder and Gaussian decoder see (the input submodule,
# which may read a mask of missing values, and loc_shift, loc_scale in the Gaussian head).
# 2: the fitted state under the names of FITTED_STATE, the architecture with the families'
# hyper-parameters (prior_params, posterior_params). 1: skvae 0.1.0. Both still read.
FORMAT_VERSION = 4
ESTIMATORS = {"SparseVAE": SparseVAE, "GaussianVAE": GaussianVAE}


def save(estimator, path):
    """Save a fitted SparseVAE or GaussianVAE to ``path`` in skvae's safe format.

    The file stores the parameters, the container ``set_output`` chose, the fitted state
    (``FITTED_STATE``: the attributes, the weights, the optimizer's state, so that
    ``partial_fit`` and ``warm_start`` continue, and the random state), the architecture the
    weights belong to, and the skvae and torch versions. Loading it with :func:`load`
    executes no code from the file, unlike pickle.

    Parameters
    ----------
    estimator : fitted SparseVAE or GaussianVAE
        A ``random_state`` given as a RandomState instance is stored as None; the fitted
        generator's state is stored in full.
    path : str, path-like or binary file object
        Where to write: a file name, or an object with a ``write`` method (a file opened
        with ``"wb"``, an ``io.BytesIO``), as :func:`torch.save` takes.
    """
    name = type(estimator).__name__
    if name not in ESTIMATORS or type(estimator) is not ESTIMATORS[name]:
        if not isinstance(estimator, _BaseVAE):
            holder = (
                " Save the model inside it: imputer.estimator_ for a VAEImputer, pipe[-1] "
                "for a Pipeline that ends with one (its other steps with pickle or joblib), "
                "search.best_estimator_ for a fitted search."
                if any(hasattr(estimator, a) for a in ("estimator", "steps", "best_estimator_"))
                else " Call it as save(estimator, path)."
            )
            raise TypeError(f"save takes a fitted SparseVAE or GaussianVAE, got {name}.{holder}")
        raise TypeError(
            f"save takes a SparseVAE or GaussianVAE, got {name}: load rebuilds a model from "
            "its class name, and the code of a subclass cannot be stored safely. Pickle it "
            "instead (loading a pickle runs code from it)."
        )
    check_is_fitted(estimator, "module_")
    if isinstance(path, io.TextIOBase):  # before anything is written
        name = getattr(path, "name", None) or "The file object"
        raise TypeError(f"{name} writes text; open it in binary mode, open(path, 'wb').")
    estimator._validate_params()  # a file that load would refuse is never written
    params = estimator.get_params()
    if not isinstance(params["random_state"], (Integral, type(None))):
        params["random_state"] = None
    content = {
        "format_version": FORMAT_VERSION,
        "skvae_version": __version__,
        "torch_version": str(torch.__version__),
        "estimator": name,
        "params": _dumps(params),
        "architecture": _dumps(estimator.module_.architecture),
        # set_output's container (files without it load with sklearn's default, as before)
        "output_config": _dumps(getattr(estimator, "_sklearn_output_config", {})),
        "json": {},
    }
    for fitted in FITTED_STATE:
        if not hasattr(estimator, fitted.name):
            continue  # feature_names_in_ of a model fitted on an array
        value = getattr(estimator, fitted.name)
        if fitted.store == "json":
            content["json"][fitted.name] = value.tolist() if hasattr(value, "tolist") else value
        elif fitted.store == "torch":
            content[fitted.name] = _map_tensors(value.state_dict(), torch.device("cpu"))
        else:  # "random": a NumPy RandomState
            _, keys, position, has_gauss, cached_gaussian = value.get_state()
            content[fitted.name] = {
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "state": [int(position), int(has_gauss), float(cached_gaussian)],
            }
    content["json"] = _dumps(content["json"])
    buffer = io.BytesIO()
    torch.save(content, buffer)
    payload = buffer.getvalue()
    data = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    if hasattr(path, "write"):
        path.write(data)
        return
    with open(path, "wb") as file:
        file.write(data)


# Tensors built under the caller's torch.inference_mode() would be inference tensors, which
# no later training step could update in place.
@torch.inference_mode(False)
def load(path, *, device=None):
    """Load an estimator written by :func:`save`, executing no code from the file.

    Parameters
    ----------
    path : str, path-like or binary file object
        A file name, or an object with a ``read`` method (a file opened with ``"rb"``, an
        ``io.BytesIO``), as :func:`torch.load` takes.
    device : str, default=None
        Device to put the weights on (a ValueError if it is not available); None uses the
        saved ``device`` parameter, or the CPU with a warning when that device is not
        available here.

    Returns
    -------
    estimator : SparseVAE or GaussianVAE
        Fitted, with the saved parameters, weights and optimizer state. Its ``device``
        parameter names where the weights are (``'cpu'`` for a GPU model loaded on the
        CPU), unless it names that device already, so that ``partial_fit`` continues there.

    Raises
    ------
    ValueError
        If the file is not an skvae model, was modified or corrupted after saving, comes from
        a newer format, or does not describe a consistent model.
    """
    target = resolve_device(device) if device else None  # the caller's error, not the file's
    if hasattr(path, "read"):
        name = getattr(path, "name", None) or "The file object"
        data = b"" if isinstance(path, io.TextIOBase) else path.read()
        if not isinstance(data, bytes) or isinstance(path, io.TextIOBase):
            raise TypeError(f"{name} reads text; open it in binary mode, open(path, 'rb').")
        path = name
    else:
        with open(path, "rb") as file:
            data = file.read()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not an skvae model file (it lacks the skvae header).")
    digest, _, payload = data[len(MAGIC) :].partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise ValueError(f"{path} was modified or corrupted after it was saved (checksum).")
    try:
        content = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} holds more than weights and plain data: {error}") from None
    try:
        return _restore(content, target)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{path} does not describe a consistent skvae model: {error}") from None


def _restore(content, target):
    version = content["format_version"]
    if version > FORMAT_VERSION:
        raise ValueError(
            f"format version {version} comes from a newer skvae "
            f"({content['skvae_version']}); this is skvae {__version__}."
        )
    if version == 1:
        content = _from_version_1(content)
    if version <= 2:
        content = _from_version_2(content)
    if version <= 3:
        content = _from_version_3(content)
    estimator = ESTIMATORS[content["estimator"]]()
    params = json.loads(content["params"])
    if not isinstance(params["hidden_layer_sizes"], int):  # a list in JSON; an int stays one
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    estimator.set_params(**params)
    estimator._validate_params()
    output_config = json.loads(content.get("output_config", "{}"))
    if "transform" in output_config:
        estimator.set_output(transform=output_config["transform"])
    architecture = json.loads(content["architecture"])
    architecture["hidden_layer_sizes"] = tuple(architecture["hidden_layer_sizes"])
    stored = json.loads(content["json"])
    if target is None:
        target = available_device(estimator.device, estimator)
    else:
        match_device_param(estimator, target)
    # The module the weights belong to, which set_params after fitting may not describe.
    estimator._initialize(stored["n_features_in_"], target, architecture=architecture)
    for fitted in FITTED_STATE:
        if fitted.store == "json" and fitted.name in stored:
            setattr(estimator, fitted.name, stored[fitted.name])
        elif fitted.store == "torch":  # strict: every tensor, with its shape
            getattr(estimator, fitted.name).load_state_dict(
                _map_tensors(content[fitted.name], target)
            )
        elif fitted.store == "random":
            position, has_gauss, cached_gaussian = content[fitted.name]["state"]
            keys = content[fitted.name]["keys"].numpy().astype(np.uint32)
            state = ("MT19937", keys, position, has_gauss, cached_gaussian)
            random_state = np.random.RandomState()
            random_state.set_state(state)
            setattr(estimator, fitted.name, random_state)
    if "feature_names_in_" in stored:
        estimator.feature_names_in_ = np.asarray(stored["feature_names_in_"], dtype=object)
    estimator.module_.eval()
    return estimator


def _from_version_1(content):
    """A file of skvae 0.1.0 in the current layout: its fitted state had other names, its
    architecture a ``df`` entry, and it stored the derived ``_n_features_out``."""
    architecture = json.loads(content["architecture"])
    df = architecture.pop("df")
    architecture["prior_params"] = {} if df is None else {"df": df}
    architecture["posterior_params"] = {}
    stored = json.loads(content["fitted"])
    stored.pop("_n_features_out", None)
    return {
        **content,
        "architecture": json.dumps(architecture),
        "json": json.dumps(stored),
        "module_": content["module"],
        "_optimizer": content["optimizer"],
        "_random_state": content["random_state"],
    }


def _from_version_2(content):
    """A file of format 1 or 2 in the current layout: a module whose encoder read the data
    raw and whose Gaussian decoder output the mean itself, which the new buffers reproduce
    (shift 0, scale 1). Such a model never saw a missing value, and the file does not hold
    the training means: it reads a hole as 0."""
    architecture = json.loads(content["architecture"])
    architecture.update(encoder_input="raw", missing_indicator=False)
    module = dict(content["module_"])
    n_features = json.loads(content["json"])["n_features_in_"]
    module["input.shift"] = torch.zeros(n_features)
    module["input.scale"] = torch.ones(n_features)
    module["input.fill"] = torch.zeros(n_features)
    if architecture["likelihood"] == "gaussian":
        module["likelihood.loc_shift"] = torch.zeros(n_features)
        module["likelihood.loc_scale"] = torch.ones(n_features)
    return {**content, "architecture": json.dumps(architecture), "module_": module}


def _from_version_3(content):
    """A file of format 3 or older in the current layout: its prior had the fixed scale 1,
    which is now a parameter (``prior_scale``) that SparseVAE learns by default."""
    architecture = json.loads(content["architecture"])
    architecture["prior_scale"] = 1.0
    params = json.loads(content["params"])
    if content["estimator"] == "SparseVAE":
        params["prior_scale"] = 1.0
    return {**content, "architecture": json.dumps(architecture), "params": json.dumps(params)}


def _map_tensors(state, device):
    """``state`` (nested dicts and lists) with every tensor moved to ``device``."""
    if torch.is_tensor(state):
        return state.to(device)
    if isinstance(state, dict):
        return {key: _map_tensors(value, device) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_map_tensors(value, device) for value in state)
    return state
