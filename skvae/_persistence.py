"""A safe file format for fitted estimators: loading it executes no code from the file.

``pickle`` and ``joblib`` files can run arbitrary code when loaded. A file written by
:func:`save` holds only JSON and tensors: a magic line, the SHA-256 of the payload, and the
payload, read back with ``torch.load(weights_only=True)``, whose unpickler admits tensors and
plain containers and nothing callable.
"""

import hashlib
import io
import json

import numpy as np
import torch

from . import __version__
from ._vae import FITTED_STATE, GaussianVAE, SparseVAE
from ._validation import available_device, resolve_device

MAGIC = b"skvae-model\n"
FORMAT_VERSION = 1
ESTIMATORS = {"SparseVAE": SparseVAE, "GaussianVAE": GaussianVAE}

# The fitted state stored as JSON (files of skvae 0.1.0 also hold a derived
# ``_n_features_out``, which loading ignores); the rest is tensors.
_JSON = [fitted.name for fitted in FITTED_STATE if fitted.store == "json"]


def save(estimator, path):
    """Save a fitted SparseVAE or GaussianVAE to ``path`` in skvae's safe format.

    The file stores the parameters, the fitted attributes, the weights and the optimizer's
    state (so that ``partial_fit`` and ``warm_start`` continue), and the skvae and torch
    versions. Loading it with :func:`load` executes no code from the file, unlike pickle.

    Parameters
    ----------
    estimator : fitted SparseVAE or GaussianVAE
        A ``random_state`` given as a RandomState instance is stored as None; the fitted
        generator's state is stored in full.
    path : str or path-like
    """
    name = type(estimator).__name__
    if name not in ESTIMATORS:
        raise TypeError(f"save takes a SparseVAE or GaussianVAE, got {name}.")
    if not hasattr(estimator, "module_"):
        raise ValueError(f"This {name} is not fitted yet; fit it before saving.")
    params = estimator.get_params()
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None
    fitted = {key: getattr(estimator, key) for key in _JSON if hasattr(estimator, key)}
    if "feature_names_in_" in fitted:
        fitted["feature_names_in_"] = list(fitted["feature_names_in_"])
    _, keys, position, has_gauss, cached_gaussian = estimator._random_state.get_state()
    content = {
        "format_version": FORMAT_VERSION,
        "skvae_version": __version__,
        "torch_version": str(torch.__version__),
        "estimator": name,
        "params": json.dumps(params),
        "fitted": json.dumps(fitted),
        "module": {k: v.cpu() for k, v in estimator.module_.state_dict().items()},
        "optimizer": _map_tensors(estimator._optimizer.state_dict(), torch.device("cpu")),
        "random_state": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "state": [int(position), int(has_gauss), float(cached_gaussian)],
        },
    }
    buffer = io.BytesIO()
    torch.save(content, buffer)
    payload = buffer.getvalue()
    with open(path, "wb") as file:
        file.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)


def load(path, *, device=None):
    """Load an estimator written by :func:`save`, executing no code from the file.

    Parameters
    ----------
    path : str or path-like
    device : str, default=None
        Device to put the weights on (a ValueError if it is not available); None uses the
        saved ``device`` parameter, or the CPU with a warning when that device is not
        available here.

    Returns
    -------
    estimator : SparseVAE or GaussianVAE
        Fitted, with the saved parameters, weights and optimizer state.

    Raises
    ------
    ValueError
        If the file is not an skvae model, was modified or corrupted after saving, comes from
        a newer format, or does not describe a consistent model.
    """
    target = resolve_device(device) if device else None  # the caller's error, not the file's
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
    if content["format_version"] > FORMAT_VERSION:
        raise ValueError(
            f"format version {content['format_version']} comes from a newer skvae "
            f"({content['skvae_version']}); this is skvae {__version__}."
        )
    estimator = ESTIMATORS[content["estimator"]]()
    params = json.loads(content["params"])
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    estimator.set_params(**params)
    estimator._validate_params()
    fitted = json.loads(content["fitted"])
    target = target or available_device(estimator.device)
    estimator._initialize(fitted["n_features_in_"], target)  # the parameters' architecture
    estimator.module_.load_state_dict(content["module"])  # strict: every tensor, its shape
    estimator.module_.eval()
    estimator._optimizer.load_state_dict(_map_tensors(content["optimizer"], target))
    for key in _JSON:
        if key in fitted:
            setattr(estimator, key, fitted[key])
    if "feature_names_in_" in fitted:
        estimator.feature_names_in_ = np.asarray(fitted["feature_names_in_"], dtype=object)
    position, has_gauss, cached_gaussian = content["random_state"]["state"]
    keys = content["random_state"]["keys"].numpy().astype(np.uint32)
    estimator._random_state = np.random.RandomState()
    estimator._random_state.set_state(("MT19937", keys, position, has_gauss, cached_gaussian))
    return estimator


def _map_tensors(state, device):
    """``state`` (nested dicts and lists) with every tensor moved to ``device``."""
    if torch.is_tensor(state):
        return state.to(device)
    if isinstance(state, dict):
        return {key: _map_tensors(value, device) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_map_tensors(value, device) for value in state)
    return state
