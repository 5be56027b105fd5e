"""One training function and one inference helper, over device tensors or sparse batches."""

import numpy as np
import scipy.sparse as sp
import torch

from ._distributions import uniform

# Rows per inference batch on the CPU, where a batch's activations then stay in cache
# (divided by the number of Monte Carlo draws per row when scoring).
INFERENCE_BATCH_SIZE = 4096
# On a GPU, where each batch costs kernel launches: 16 times the rows, and at most 2**26
# values (256 MB in float32) in a batch of data or of decoder outputs.
_GPU_ROWS_FACTOR, _GPU_MAX_VALUES = 16, 2**26


def inference_batch_size(device, n_features, draws=1):
    """Rows per batch for inference on ``device`` of data ``n_features`` wide, with ``draws``
    Monte Carlo draws (decoder passes) per row.

    On an H200 scoring 10,000 MNIST rows in the CPU's batches of 409 rows took 4 times the
    raw forward pass (``benchmarks/bench_performance.py --device cuda``).
    """
    rows = INFERENCE_BATCH_SIZE
    if device.type == "cuda":
        rows = min(_GPU_ROWS_FACTOR * rows, _GPU_MAX_VALUES // max(1, n_features))
    return max(1, rows // draws)


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


#: Whether full CUDA batches replay a captured graph of the training step (see
#: ``CUDAGraphStep``); the benchmarks switch it off to time the eager step.
CUDA_GRAPHS = True


def training_step(module, optimizer, *, beta, batch_size):
    """The training step of one fit: ``step(batch, noise)`` takes one Adam step on the
    negative beta-ELBO of a batch and returns its mean loss, a 0-d device tensor. ``beta``
    is a float or a 0-d device tensor, which the fit may change between steps (the KL
    warm-up).

    On the CPU it flushes subnormal optimizer moments every ``FLUSH_INTERVAL`` steps,
    counted by Adam over all calls, so that ``partial_fit`` calls of a few steps each flush
    too. On CUDA, batches of ``batch_size`` rows replay one CUDA graph of the whole step
    (``CUDAGraphStep``).
    """

    def step(batch, noise):
        loss = -module.elbo(batch, noise, beta).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    device = next(module.parameters()).device
    if device.type == "cpu":

        def step_and_flush(batch, noise):
            loss = step(batch, noise)
            if _steps_taken(optimizer) % FLUSH_INTERVAL == 0:
                flush_subnormal_moments(optimizer)
            return loss

        return step_and_flush
    if device.type == "cuda" and CUDA_GRAPHS:
        return CUDAGraphStep(step, optimizer, batch_size)
    return step  # GPUs compute on subnormal numbers at full speed


class CUDAGraphStep:
    """``step`` captured once as a CUDA graph for batches of ``batch_size`` rows, then replayed.

    An eager step launches each of its kernels from Python (forward, backward and Adam's
    update: over a hundred for the default model), and at small batches the GPU waits on
    those launches. A replay launches the whole step at once. The first ``warmup_steps``
    full batches run eagerly on a side stream, as torch requires before a capture; batches
    of another size (an epoch's last one) always run eagerly. The graph holds fixed
    addresses, which stay valid: weights and Adam's moments are updated in place, and the
    gradients live in the graph's own memory. The returned loss is the graph's output
    tensor, overwritten by the next replay.
    """

    warmup_steps = 3

    def __init__(self, step, optimizer, batch_size):
        self._step, self._optimizer, self._batch_size = step, optimizer, batch_size
        self._eager_steps = 0
        self._graph = None

    def __call__(self, batch, noise):
        if batch.shape[0] != self._batch_size:
            return self._step(batch, noise)
        if self._graph is None:
            if self._eager_steps < self.warmup_steps:
                self._eager_steps += 1
                return self._on_side_stream(batch, noise)
            self._capture(batch, noise)
        self._batch.copy_(batch)
        self._noise.copy_(noise)
        self._graph.replay()
        return self._loss

    def _on_side_stream(self, batch, noise):
        current = torch.cuda.current_stream(batch.device)
        side = torch.cuda.Stream(batch.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            loss = self._step(batch, noise)
        current.wait_stream(side)
        return loss

    def _capture(self, batch, noise):
        self._batch, self._noise = batch.clone(), noise.clone()
        self._optimizer.zero_grad(set_to_none=True)  # backward allocates them in the graph
        self._graph = torch.cuda.CUDAGraph()
        groups = self._optimizer.param_groups
        capturable = [group["capturable"] for group in groups]
        for group in groups:  # Adam refuses a capture otherwise (fused, it needs no change)
            group["capturable"] = True
        try:
            # thread_local: fits in other threads may go on allocating while this one captures
            with torch.cuda.graph(self._graph, capture_error_mode="thread_local"):
                self._loss = self._step(self._batch, self._noise)
        finally:
            for group, value in zip(groups, capturable, strict=True):
                group["capturable"] = value


def _rows(X, index, device):
    if torch.is_tensor(X):
        return X[index]
    return as_tensor(X[index.cpu().numpy()], device)


def train_epoch(step, X, *, batch_size, n_components, generator):
    """One pass of minibatch gradient ascent on the ELBO over the rows of ``X``.

    ``step`` is the fit's ``training_step``. ``X`` is a tensor already on the module's
    device, or a CSR matrix whose batches are densified as they are drawn. Batches are
    slices of a random permutation drawn from ``generator``, which lives on the module's
    device, and so does each batch's noise (``n_components`` uniform draws per row). Returns
    the mean training loss (the negative beta-ELBO, in nats per row), with one host
    synchronisation at the end (a sparse X adds one per batch, to gather its rows on the
    host).
    """
    n_samples = X.shape[0]
    device = generator.device
    permutation = torch.randperm(n_samples, generator=generator, device=device)
    total = torch.zeros((), device=device)
    for start in range(0, n_samples, batch_size):
        batch = _rows(X, permutation[start : start + batch_size], device)
        noise = uniform((batch.shape[0], n_components), generator, device=device)
        total.add_(step(batch, noise), alpha=batch.shape[0])
    return total.item() / n_samples


def predict(function, X, device, batch_size):
    """``function`` of row batches of ``X`` (array or tensor), concatenated, as a NumPy array."""
    outputs = []
    with torch.inference_mode():
        for start in range(0, X.shape[0], batch_size):
            outputs.append(function(as_tensor(X[start : start + batch_size], device)))
        return torch.cat(outputs).cpu().numpy()
