"""The parts of training and inference, each with one job: the training step and the epoch
over device tensors or sparse batches, the stopping rule, the progress reporter, and the
batched map that inference uses."""

import sys
import threading
from functools import partial

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.sparsefuncs import mean_variance_axis

from ._families import uniform

# Rows per inference batch on the CPU, where a batch's activations then stay in cache
# (divided by the number of Monte Carlo draws per row when scoring), and at most 2**22
# values (16 MB in float32) in a batch of data or of decoder outputs: 4096 rows of a
# 100,000-word vocabulary took 6 GB.
INFERENCE_BATCH_SIZE, _CPU_MAX_VALUES = 4096, 2**22
# On a GPU, where each batch costs kernel launches: 16 times the rows, and at most 2**26
# values (256 MB in float32).
_GPU_ROWS_FACTOR, _GPU_MAX_VALUES = 16, 2**26


def inference_batch_size(device, n_features, draws=1):
    """Rows per batch for inference on ``device`` of data ``n_features`` wide, with ``draws``
    Monte Carlo draws (decoder passes) per row.

    On an H200 scoring 10,000 MNIST rows in the CPU's batches of 409 rows took 4 times the
    raw forward pass (``benchmarks/bench_performance.py --device cuda``).
    """
    rows, max_values = INFERENCE_BATCH_SIZE, _CPU_MAX_VALUES
    if device.type == "cuda":
        rows, max_values = _GPU_ROWS_FACTOR * rows, _GPU_MAX_VALUES
    rows = min(rows, max_values // max(1, n_features))
    return max(1, rows // draws)


def torch_can_wrap(values):
    """Whether ``torch.from_numpy`` can share the array's memory: not for read-only memory
    (a read-only memmap), another byte order, a negative stride (``X[::-1]``) or a stride
    that is not a whole number of elements (a field of a structured array)."""
    return (
        values.flags.writeable
        and values.dtype.isnative
        and all(stride >= 0 and stride % values.itemsize == 0 for stride in values.strides)
    )


def as_tensor(X, device):
    """float32 tensor of ``X`` (array, sparse matrix or tensor) on ``device``.

    Shares memory with a writable float32 array; a sparse matrix is densified, so callers
    pass it one batch of rows at a time.
    """
    if torch.is_tensor(X):
        return X.to(device)
    if sp.issparse(X):
        X = X.astype(np.float32).toarray()  # no float64 copy of the dense batch
    X = np.asarray(X, dtype=np.float32)
    if not torch_can_wrap(X):
        X = X.copy()
    return torch.from_numpy(X).to(device)


def training_data(X, device):
    """The training rows as held during fit: a tensor on the device, or a CSR matrix kept
    sparse (and densified one batch at a time)."""
    return X.tocsr() if sp.issparse(X) else as_tensor(X, device)


def column_mean_std(X, device, *, log1p=False):
    """Per-feature mean and standard deviation of the training data (a tensor on the device,
    or a sparse matrix) over its observed values (NaN are holes), as float32 tensors on
    ``device``; of ``log1p(X)`` with ``log1p``."""
    if torch.is_tensor(X):
        # Sums of values and squares over chunks of rows, about a shift (the first chunk's
        # mean) so that a column of large mean and small spread keeps its variance (1e6 +
        # N(0, 1): std 1.006, where float32 sums of squares of the values themselves gave
        # 233), in float64 as for sparse X. No full-size temporary, as NumPy's var makes.
        total = torch.zeros(X.shape[1], dtype=torch.float64, device=device)
        total_of_squares, count = torch.zeros_like(total), torch.zeros_like(total)
        for i, chunk in enumerate(X.split(8192)):
            chunk = chunk.double()  # as a sparse X's statistics are computed
            chunk = torch.log1p(chunk) if log1p else chunk
            observed = ~torch.isnan(chunk)
            if i == 0:
                shift = torch.nanmean(chunk, 0).nan_to_num()
            chunk = torch.where(observed, chunk - shift, 0.0)
            total += chunk.sum(0)
            total_of_squares += chunk.square().sum(0)
            count += observed.sum(0)
        mean = total / count
        variance = (total_of_squares / count - mean.square()).clamp_min(0)
        return (mean + shift).float(), variance.sqrt().float()
    mean, variance = mean_variance_axis(X.log1p() if log1p else X, axis=0)  # NaN ignored
    as_float32 = partial(torch.as_tensor, dtype=torch.float32, device=device)
    return as_float32(mean), as_float32(np.sqrt(variance))


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


def make_training_step(
    module, optimizer, *, beta, batch_size, n_importance_samples=1, cuda_graphs=True
):
    """The training step of one fit: ``step(batch, noise)`` takes one Adam step on the
    negative beta-ELBO of a batch, or with ``n_importance_samples`` k > 1 on the negative
    k-sample importance-weighted bound (its noise then has a leading axis of k draws), and
    returns its mean loss, a 0-d device tensor. ``beta`` is a float or a 0-d device tensor,
    which the fit may change between steps (the KL warm-up).

    On the CPU it flushes subnormal optimizer moments every ``FLUSH_INTERVAL`` steps,
    counted by Adam over all calls, so that ``partial_fit`` calls of a few steps each flush
    too. On CUDA, batches of ``batch_size`` rows replay one CUDA graph of the whole step
    (``CUDAGraphStep``) unless ``cuda_graphs`` is False.
    """

    objective = module.elbo if n_importance_samples == 1 else module.importance_weighted_bound

    def step(batch, noise):
        loss = -objective(batch, noise, beta).mean()
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
    if device.type == "cuda" and cuda_graphs:
        return CUDAGraphStep(step, optimizer, batch_size)
    return step  # GPUs compute on subnormal numbers at full speed


_CAPTURE_LOCK = threading.Lock()


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
            # On the batch's device (torch captures on the current device's stream, and a
            # model on cuda:1 would leave the graph empty), on a stream of its own rather
            # than torch's one shared capture stream, and one capture at a time in the
            # process; thread_local: fits in other threads may go on allocating meanwhile.
            with (
                _CAPTURE_LOCK,
                torch.cuda.device(batch.device),
                torch.cuda.graph(
                    self._graph,
                    stream=torch.cuda.Stream(batch.device),
                    capture_error_mode="thread_local",
                ),
            ):
                self._loss = self._step(self._batch, self._noise)
        finally:
            for group, value in zip(groups, capturable, strict=True):
                group["capturable"] = value


def _rows(X, index, device):
    if torch.is_tensor(X):
        return X[index]
    return as_tensor(X[index.cpu().numpy()], device)


# Backends with float64 arithmetic, where the epoch's loss is summed in it (MPS, HPU and
# some XPUs have none).
_FLOAT64_DEVICES = {"cpu", "cuda"}


def train_epoch(step, X, *, batch_size, noise_width, generator, n_importance_samples=1):
    """One pass of minibatch gradient ascent on the ELBO over the rows of ``X``, or on the
    importance-weighted bound with ``n_importance_samples`` draws per row.

    ``step`` is the fit's training step (``make_training_step``). ``X`` is a tensor already
    on the module's device, or a CSR matrix whose batches are densified as they are drawn.
    Batches are slices of a random permutation drawn from ``generator``, which lives on the
    module's device, and so does each batch's noise (``noise_width`` uniform draws per
    row). Returns the mean training loss (the negative beta-ELBO, in nats per row), with one
    host synchronisation at the end (a sparse X adds one per batch, to gather its rows on the
    host).
    """
    n_samples = X.shape[0]
    device = generator.device
    permutation = torch.randperm(n_samples, generator=generator, device=device)
    # Summed in float64, as MLPClassifier's loss is, so that the epoch loss that the
    # stopping rule compares to ``tol`` holds its digits over millions of rows.
    dtype = torch.float64 if device.type in _FLOAT64_DEVICES else torch.float32
    total = torch.zeros((), dtype=dtype, device=device)
    for start in range(0, n_samples, batch_size):
        batch = _rows(X, permutation[start : start + batch_size], device)
        shape = (batch.shape[0], noise_width)
        if n_importance_samples > 1:
            shape = (n_importance_samples, *shape)
        noise = uniform(shape, generator, device=device)
        total.add_(step(batch, noise).to(total.dtype), alpha=batch.shape[0])
    return total.item() / n_samples


def clone_state(module):
    """Copies of the tensors of ``module``'s state dict, to return to."""
    return {name: tensor.clone() for name, tensor in module.state_dict().items()}


def fixed_noise(n_draws, noise_width, device, seed=0):
    """``n_draws`` uniform draws of a code, shaped to be shared by every row of a batch: the
    fixed Monte Carlo noise of the ELBO that ``score_samples`` reports and of diagnostics.
    Drawn by a CPU generator and moved to ``device``, so that a model scores the same on
    every device (CUDA's generator is another algorithm, and gave other numbers)."""
    generator = torch.Generator().manual_seed(seed)
    return uniform((n_draws, 1, noise_width), generator, device="cpu").to(device)


def map_batches(function, X, device, batch_size):
    """``function`` of row batches of ``X`` (array or tensor), concatenated, as a NumPy array.
    Each batch's output goes to the host as it is made: the device holds one at a time."""
    outputs = []
    with torch.inference_mode():
        for start in range(0, X.shape[0], batch_size):
            outputs.append(function(as_tensor(X[start : start + batch_size], device)).cpu())
        return torch.cat(outputs).numpy()


class StoppingRule:
    """When training stops, and the best weights it ends with: MLPClassifier's rule.

    Training stops after more than ``n_iter_no_change`` consecutive epochs whose training
    loss did not fall by ``tol`` below the best so far, or, with ``validation``, whose
    validation ELBO did not rise by ``tol`` above the best so far; then the weights of the
    best-scoring epoch are kept (:meth:`restore_best`). ``tol=None`` never stops. Epochs of
    the KL warm-up do not count: their loss weighs the KL less, so it is not comparable.

    Parameters
    ----------
    tol : float or None
    n_iter_no_change : int
    validation : bool
        Monitor the validation ELBO instead of the training loss.
    best_loss : float
        Best training loss of earlier fits of the same model (``warm_start``).
    """

    def __init__(self, tol, n_iter_no_change, *, validation=False, best_loss=np.inf):
        self.tol, self.n_iter_no_change, self.validation = tol, n_iter_no_change, validation
        self.best_loss = None if validation else best_loss
        self.validation_scores = [] if validation else None
        self.best_validation_score = -np.inf if validation else None
        self._best_state = None
        self._no_improvement_count = 0

    @property
    def monitored(self):
        return "Validation ELBO" if self.validation else "Training loss"

    def update(self, module, loss, score=None, *, warmup=False):
        """Record an epoch's training loss (and validation ELBO); whether to stop now."""
        tol, improved = self.tol or 0.0, warmup
        if self.validation:
            self.validation_scores.append(score)
            improved |= score > self.best_validation_score + tol
            if score > self.best_validation_score:
                self.best_validation_score = score
                self._best_state = clone_state(module)
        elif not warmup:
            improved = loss < self.best_loss - tol
            self.best_loss = min(self.best_loss, loss)
        self._no_improvement_count = 0 if improved else self._no_improvement_count + 1
        return self.tol is not None and self._no_improvement_count > self.n_iter_no_change

    def marks(self):
        """What :meth:`update` changes, to return to with :meth:`restore_marks` (the best
        state is replaced, never changed in place, so its reference is enough)."""
        marks = dict(vars(self))
        if self.validation_scores is not None:
            marks["validation_scores"] = list(self.validation_scores)
        return marks

    def restore_marks(self, marks):
        vars(self).update(marks)

    def restore_best(self, module):
        """Load the weights of the best-scoring epoch into ``module`` (under ``validation``)."""
        if self._best_state is not None:
            module.load_state_dict(self._best_state)


class ProgressReporter:
    """Reports the epochs under ``verbose``: a tqdm bar over epochs on a terminal when tqdm is
    installed, else one line per epoch in scikit-learn's format (also when the output goes to
    a file or a notebook's stream). A context manager, which closes the bar."""

    def __init__(self, verbose, n_epochs, name):
        self.verbose, self.n_epochs, self.name = verbose, n_epochs, name
        self._bar = None

    def __enter__(self):
        # A stream without isatty (a logging redirector; None under pythonw) is no terminal.
        isatty = getattr(sys.stdout, "isatty", None)
        if self.verbose and isatty is not None and isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                return self
            self._bar = tqdm(total=self.n_epochs, desc=self.name, unit="epoch", file=sys.stdout)
        return self

    def __exit__(self, *exc_info):
        if self._bar is not None:
            self._bar.close()

    def epoch(self, n_iter, loss, seconds, *, score=None, kl_weight=None):
        """Report a completed epoch."""
        # As MLPClassifier prints it (%.8f): a change of tol=1e-4 shows.
        message = f"Iteration {n_iter}, loss = {loss:.8f}"
        if score is not None:
            message += f", validation ELBO = {score:.8f}"
        if kl_weight is not None:
            message += f", KL weight = {kl_weight:.3g}"
        if self._bar is not None:
            self._bar.set_postfix_str(message.split(", ", 1)[1], refresh=False)
            self._bar.update()
        elif self.verbose:
            print(f"[{self.name}] {message}, time = {seconds:.2f}s")

    def write(self, message):
        """Report a message under ``verbose``, below the bar if there is one."""
        if self.verbose:
            (self._bar.write if self._bar is not None else print)(message)
