"""One training function and one inference helper, over device tensors or sparse batches."""

import numpy as np
import scipy.sparse as sp
import torch

from ._distributions import uniform

# Rows per inference batch (divided by the number of Monte Carlo samples when scoring).
INFERENCE_BATCH_SIZE = 4096


def as_tensor(X, device):
    """float32 tensor of ``X`` (array, sparse matrix or tensor) on ``device``.

    Shares memory with a writable float32 array; a sparse matrix is densified, so callers
    pass it one batch of rows at a time.
    """
    if torch.is_tensor(X):
        return X.to(device)
    if sp.issparse(X):
        X = X.toarray()
    X = np.asarray(X, dtype=np.float32)
    if not X.flags.writeable:  # torch cannot wrap read-only memory (e.g. a read-only memmap)
        X = X.copy()
    return torch.from_numpy(X).to(device)


def training_data(X, device):
    """The training rows as held during fit: a tensor on the device, or a CSR matrix kept
    sparse (and densified one batch at a time)."""
    return X.tocsr() if sp.issparse(X) else as_tensor(X, device)


# Devices with a fused Adam kernel (torch >= 2.4). Elsewhere torch's default implementation.
_FUSED_ADAM_DEVICES = {"cpu", "cuda"}


def make_optimizer(parameters):
    """Adam over ``parameters``, fused into one kernel per step where torch has one.

    On the CPU the default, one-parameter-at-a-time Adam took a third of each step of a
    784-256-128-10 model at batch 128; fused it makes the step about 20% faster
    (``benchmarks/bench_performance.py``).
    """
    parameters = list(parameters)
    fused = all(p.device.type in _FUSED_ADAM_DEVICES for p in parameters)
    return torch.optim.Adam(parameters, fused=fused or None)


# Training steps between two flushes of subnormal optimizer moments on the CPU.
FLUSH_INTERVAL = 50


def flush_subnormal_moments(optimizer):
    """Set the subnormal entries of Adam's moments to zero, as a flush-to-zero CPU would.

    A weight whose gradient is exactly zero batch after batch (one reading a pixel that is
    almost always 0, or feeding a dead ReLU unit) has moments that decay geometrically into
    the subnormal range, below 1.2e-38, where x86 CPUs compute many times slower. After 3
    MNIST epochs of a 784-512-256-32 model, 245,000 such entries made a fused Adam step 5x
    slower (3.2 ms against 0.63 ms once they were zeroed). ``torch.set_flush_denormal`` sets
    the flag for the calling thread only, not for torch's OpenMP workers, so it does not
    help. A subnormal moment moves a weight by less than 1e-30, so zeroing it changes
    nothing that float32 weights can show.
    """
    for state in optimizer.state.values():
        for name in ("exp_avg", "exp_avg_sq"):
            moment = state.get(name)
            if moment is not None and moment.is_floating_point():
                moment.masked_fill_(moment.abs() < torch.finfo(moment.dtype).tiny, 0.0)


def _steps_taken(optimizer):
    """The number of steps Adam has taken, which it counts in each parameter's state."""
    for state in optimizer.state.values():
        return int(state["step"])
    return 0


def _rows(X, index, device):
    if torch.is_tensor(X):
        return X[index]
    return as_tensor(X[index.cpu().numpy()], device)


def train_epoch(module, optimizer, X, *, batch_size, beta, generator):
    """One pass of minibatch gradient ascent on the ELBO over the rows of ``X``.

    ``X`` is a tensor already on the module's device, or a CSR matrix whose batches are
    densified as they are drawn. Batches are slices of a random permutation drawn from
    ``generator``, which lives on the module's device. Returns the mean training loss (the
    negative beta-ELBO, in nats per row), with one host synchronisation at the end (a
    sparse X adds one per batch, to gather its rows on the host). On the CPU, subnormal
    optimizer moments are flushed to zero every ``FLUSH_INTERVAL`` steps, counted over all
    calls.
    """
    n_samples = X.shape[0]
    n_components = module.prior_loc.shape[0]
    device = generator.device
    flush = device.type == "cpu"  # GPUs compute on subnormal numbers at full speed
    steps_taken = _steps_taken(optimizer) if flush else 0  # partial_fit may take few a call
    permutation = torch.randperm(n_samples, generator=generator, device=device)
    total = torch.zeros((), device=device)
    for step, start in enumerate(range(0, n_samples, batch_size), start=steps_taken + 1):
        batch = _rows(X, permutation[start : start + batch_size], device)
        noise = uniform((batch.shape[0], n_components), generator, device=device)
        loss = -module.elbo(batch, noise, beta).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if flush and step % FLUSH_INTERVAL == 0:
            flush_subnormal_moments(optimizer)
        total += loss.detach() * batch.shape[0]
    return total.item() / n_samples


def predict(function, X, device, batch_size=INFERENCE_BATCH_SIZE):
    """``function`` of row batches of ``X`` (array or tensor), concatenated, as a NumPy array."""
    outputs = []
    with torch.inference_mode():
        for start in range(0, X.shape[0], batch_size):
            outputs.append(function(as_tensor(X[start : start + batch_size], device)))
        return torch.cat(outputs).cpu().numpy()
