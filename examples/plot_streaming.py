"""
Training on data larger than memory
===================================

:meth:`~skvae.SparseVAE.partial_fit` makes one pass (epoch) over the rows it is given and
continues from the model's current weights and optimizer state. Data that does not fit in
memory can therefore be streamed: read a chunk of rows, pass it to ``partial_fit``, read the
next. This example writes the training digits to a file on disk, memory-maps it, and trains
on its chunks for several passes, in a new random order of chunks each pass. It compares the
held-out evidence lower bound (ELBO) after each pass with that of :meth:`~skvae.SparseVAE.fit`
on the same data held in memory, and runs the same loop over the blocks of a Dask array when
Dask is installed.

The digits fit in memory, of course: here they stand in for a file that does not, and keep
the example fast.
"""

# %%
# The data, on disk
# -----------------
# The digits' grey levels run from 0 to 16; dividing by 16 puts them in [0, 1], the range
# that the Bernoulli likelihood accepts. The training rows go to a ``.npy`` file in a
# temporary directory, written chunk by chunk as data too large for memory would be. They
# are stored as float32, the precision skvae computes in, which halves the file. The rows
# are written in random order (``train_test_split`` shuffles them): shuffling the order of
# the chunks does not mix rows across chunks, so each chunk should be a fair sample of the
# data, not, say, the rows of a single class.
import math
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skvae import SparseVAE

X, _ = load_digits(return_X_y=True)
X_train, X_test = train_test_split(X / 16, random_state=0)

chunk_rows = 256
temporary_directory = tempfile.TemporaryDirectory()
path = Path(temporary_directory.name) / "digits_train.npy"
X_file = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=X_train.shape)
for start in range(0, len(X_train), chunk_rows):
    X_file[start : start + chunk_rows] = X_train[start : start + chunk_rows]
X_file.flush()

# Reopened read-only: slicing it reads only those rows from disk.
X_file = np.load(path, mmap_mode="r")
n_chunks = math.ceil(len(X_file) / chunk_rows)
print(
    f"{X_file.shape[0]} rows of {X_file.shape[1]} features, {path.stat().st_size} bytes on "
    f"disk, read in {n_chunks} chunks of up to {chunk_rows} rows"
)

# %%
# Streaming with partial_fit
# --------------------------
# Each call to ``partial_fit`` is one pass over the rows of its chunk, in minibatches of
# ``batch_size`` rows (128 by default, so that a chunk of 256 rows makes two). One pass over
# the data is one call per chunk.
settings = dict(hidden_layer_sizes=(128,), likelihood="bernoulli", random_state=0)
n_passes = 30


def train_in_chunks(read_chunk, n_chunks):
    """Train a new SparseVAE with ``partial_fit``, one chunk at a time.

    Parameters
    ----------
    read_chunk : callable
        ``read_chunk(i)`` returns the rows of chunk ``i`` as an array.
    n_chunks : int
        Number of chunks.

    Returns
    -------
    vae : SparseVAE
        The trained model.
    test_elbo : list of float
        Mean ELBO of the test digits after each pass over all chunks, in nats.
    """
    vae = SparseVAE(**settings)
    chunk_order = np.random.default_rng(0)  # a fixed seed: the same order on every call
    test_elbo = []
    for _ in range(n_passes):
        for i in chunk_order.permutation(n_chunks):
            vae.partial_fit(read_chunk(i))
        test_elbo.append(vae.score(X_test))
    return vae, test_elbo


streamed, streamed_elbo = train_in_chunks(
    lambda i: X_file[i * chunk_rows : (i + 1) * chunk_rows], n_chunks
)

# %%
# fit on the data in memory
# -------------------------
# The reference: ``fit`` with the same settings, for the same number of passes over the same
# rows, all in memory. ``warm_start=True`` with ``max_iter=1`` makes each call to ``fit`` one
# more pass, so that the model can be scored after each; ``tol=None`` says that one pass is
# the whole budget, with no stopping rule and no warning that the ELBO has not converged.
in_memory = SparseVAE(warm_start=True, max_iter=1, tol=None, **settings)
in_memory_elbo = []
for _ in range(n_passes):
    in_memory.fit(X_train)
    in_memory_elbo.append(in_memory.score(X_test))

# %%
# The same loop over a Dask array
# -------------------------------
# A Dask array splits a large array into blocks and reads a block only when it is computed.
# Here it wraps the memory map, with blocks of ``chunk_rows`` rows; it could as well come
# from Zarr, HDF5 or many ``.npy`` files. ``X_dask.blocks[i].compute()`` reads block ``i``
# into a NumPy array, which ``partial_fit`` takes. With the same chunk order and
# ``random_state``, it trains exactly the model of the memmap stream.
try:
    import dask.array as da
except ImportError:
    dask_elbo = None
    print("Dask is not installed (pip install 'dask[array]'): the Dask variant is skipped.")
else:
    X_dask = da.from_array(X_file, chunks=(chunk_rows, -1))
    _, dask_elbo = train_in_chunks(lambda i: X_dask.blocks[i].compute(), X_dask.numblocks[0])
    print("Dask blocks give the same ELBO, pass for pass:", dask_elbo == streamed_elbo)
    del X_dask  # it refers to the memory map, which is closed below

# %%
# Results
# -------
# Held-out ELBO in nats (higher is better) after the last pass. The curves differ by the
# noise of training (the minibatches and the Monte Carlo draws differ), not in trend: the
# chunks reach the quality of ``fit``.
print(f"| after {n_passes} passes | test ELBO (nats) |")
print("|---|---:|")
print(f"| fit, in memory | {in_memory_elbo[-1]:.3f} |")
print(f"| partial_fit over memmap chunks | {streamed_elbo[-1]:.3f} |")
if dask_elbo is not None:
    print(f"| partial_fit over Dask blocks | {dask_elbo[-1]:.3f} |")

passes = np.arange(1, n_passes + 1)
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
ax.plot(passes, in_memory_elbo, label="fit, in memory")
ax.plot(passes, streamed_elbo, label="partial_fit over memmap chunks")
if dask_elbo is not None:
    ax.plot(passes, dask_elbo, "x", label="partial_fit over Dask blocks")
ax.set_xlabel("pass over the training data")
ax.set_ylabel("mean test ELBO (nats)")
ax.set_title("SparseVAE on the digits: streamed vs in memory")
ax.legend()
plt.show()

# %%
# Clean up
# --------
# Dropping the last reference to the memory map closes it. Doing so before deleting its file
# lets this work on Windows too, which cannot delete a file that is mapped.
X_file = None
temporary_directory.cleanup()
