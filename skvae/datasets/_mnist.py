"""MNIST handwritten digits, read from the IDX files of LeCun et al. or fetched from OpenML."""

import gzip
import math
import os
from pathlib import Path

import numpy as np
from sklearn.datasets import fetch_openml

# subset -> (images file, labels file) in the layout of the original distribution.
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_N_TRAIN, _N_TEST = 60000, 10000
_IMAGE_SHAPE = (28, 28)
# An IDX magic number is two zero bytes, a type code (0x08: unsigned byte) and the number of
# dimensions: 0x0803 for a stack of images, 0x0801 for a vector of labels.
_IMAGES_MAGIC, _LABELS_MAGIC = 0x0803, 0x0801


def _read_idx(path, magic):
    """The unsigned-byte array stored in the IDX file ``path`` (gzipped if its name ends
    in ``.gz``), in its stored shape.

    Parameters
    ----------
    path : pathlib.Path
        An IDX file, gzipped or not.
    magic : int
        The magic number the file must start with; its low byte is the number of dimensions.

    Returns
    -------
    array : ndarray of uint8
        Read-only view of the file's data, of the shape given in its header.
    """
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
            content = file.read()
    except FileNotFoundError:
        also = f" (nor {path.with_suffix('')})" if path.suffix == ".gz" else ""
        raise FileNotFoundError(f"MNIST file not found: {path}{also}") from None
    except (NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        raise OSError(f"cannot read the MNIST file {path}: {exc}") from None
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        kind = "gzip file" if path.suffix == ".gz" else "file"
        raise ValueError(f"{path} is not a readable {kind}: {exc}") from None
    # The header is big-endian 32-bit integers: the magic number, then one size per dimension.
    # The magic number is checked first, so that a wrong file is named as such.
    n_dims = magic & 0xFF
    header_size = 4 * (1 + n_dims)
    found_magic = int.from_bytes(content[:4], "big") if len(content) >= 4 else None
    if found_magic is not None and found_magic != magic:
        raise ValueError(
            f"{path} has IDX magic number {found_magic:#06x}, expected {magic:#06x}; "
            "is it the right file?"
        )
    if len(content) < header_size:
        raise ValueError(
            f"{path} is too short for an IDX header: {len(content)} bytes, "
            f"expected at least {header_size}."
        )
    shape = np.frombuffer(content, dtype=">u4", count=n_dims, offset=4).tolist()
    expected_size = header_size + math.prod(shape)
    if len(content) != expected_size:
        raise ValueError(
            f"{path} holds {len(content)} bytes, but its header announces shape "
            f"{tuple(shape)}, i.e. {expected_size} bytes; the file is truncated or corrupt."
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape)


def _idx_path(data_dir, name):
    """The file ``name`` in ``data_dir``, or its uncompressed copy (the name without
    ``.gz``, as many copies of MNIST are stored) where only that is there."""
    path = data_dir / name
    plain = path.with_suffix("")
    return plain if not path.exists() and plain.exists() else path


def _load_idx(data_dir, subset):
    """Images (n, 784) and labels (n,), both uint8, of ``subset`` from the IDX files."""
    images_file, labels_file = (_idx_path(data_dir, name) for name in _FILES[subset])
    images = _read_idx(images_file, _IMAGES_MAGIC)
    labels = _read_idx(labels_file, _LABELS_MAGIC)
    if labels.size and labels.max() > 9:
        raise ValueError(
            f"{labels_file} holds labels up to {labels.max()}, where MNIST's are digits 0 to "
            "9; is it the right file?"
        )
    if images.shape[1:] != _IMAGE_SHAPE:
        raise ValueError(
            f"{images_file} holds images of shape {images.shape[1:]}, expected {_IMAGE_SHAPE}."
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{images_file} holds {len(images)} images but "
            f"{labels_file} holds {len(labels)} labels."
        )
    return images.reshape(len(images), -1), labels


def _load_openml(subset):
    """The standard split of OpenML's ``mnist_784``: first 60000 rows train, last 10000 test."""
    # parser="liac-arff" needs neither pandas nor as_frame; it returns float64 pixel values
    # 0-255 and the labels as strings.
    try:
        images, labels = fetch_openml(
            "mnist_784", version=1, as_frame=False, parser="liac-arff", return_X_y=True
        )
    except OSError as error:  # urllib's URLError too: no network, say
        raise OSError(
            f"MNIST could not be fetched from OpenML ({error}). Without a network, pass the "
            "directory of its IDX files as data_dir, or set the SKVAE_MNIST_DIR environment "
            "variable to it."
        ) from error
    if len(images) != _N_TRAIN + _N_TEST:
        raise ValueError(
            f"OpenML's mnist_784 has {len(images)} rows, expected {_N_TRAIN + _N_TEST}."
        )
    rows = slice(None, _N_TRAIN) if subset == "train" else slice(_N_TRAIN, None)
    return images[rows], labels[rows]


def load_mnist(*, subset="train", data_dir=None):
    """Load the MNIST handwritten digits as intensities in [0, 1].

    The 70000 grey-level 28x28 images of LeCun et al., in the standard split: 60000 for
    training, 10000 for testing. They are read from the four gzipped IDX files of the original
    distribution in ``data_dir``; without one, from the directory named by the environment
    variable ``SKVAE_MNIST_DIR``; without that, they are downloaded from OpenML (``mnist_784``)
    by :func:`sklearn.datasets.fetch_openml`, which caches them.

    Parameters
    ----------
    subset : {'train', 'test'}, default='train'
        Which part of the standard split to return.
    data_dir : str or path-like, default=None
        Directory holding ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
        ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (or the same files
        uncompressed, without ``.gz``). None uses ``SKVAE_MNIST_DIR``, then OpenML.

    Returns
    -------
    X : ndarray of shape (n_samples, 784), dtype float32
        Pixel intensities divided by 255, each row an image read row by row. ``n_samples`` is
        60000 for ``'train'`` and 10000 for ``'test'``.
    y : ndarray of shape (n_samples,), dtype int64
        Digit labels, 0 to 9.

    Raises
    ------
    FileNotFoundError
        If a file is missing from the directory.
    OSError
        If MNIST is to be fetched from OpenML and cannot be (no network, say); the message
        names ``data_dir`` and ``SKVAE_MNIST_DIR``.
    ValueError
        If ``subset`` is unknown, ``data_dir`` is empty, or a file is not gzip or not the
        IDX data expected, labels included (its path is named).

    References
    ----------
    Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning applied to
    document recognition", Proceedings of the IEEE, 1998.

    Examples
    --------
    >>> from skvae.datasets import load_mnist
    >>> X, y = load_mnist(subset="test")  # doctest: +SKIP
    >>> X.shape, X.dtype, y[:5]  # doctest: +SKIP
    ((10000, 784), dtype('float32'), array([7, 2, 1, 0, 4]))
    """
    if not isinstance(subset, str) or subset not in _FILES:
        raise ValueError(f"subset must be 'train' or 'test', got {subset!r}.")
    if data_dir is None:
        # An empty value counts as unset, as it does for most path variables.
        data_dir = os.environ.get("SKVAE_MNIST_DIR") or None
    if data_dir is None:
        images, labels = _load_openml(subset)
    else:
        if not os.fspath(data_dir):  # Path("") would read the working directory
            raise ValueError("data_dir is empty; pass a directory, or None to use OpenML.")
        try:
            directory = Path(data_dir).expanduser()
        except RuntimeError as error:  # "~nobody": a home directory that does not exist
            raise ValueError(f"The MNIST directory {data_dir!s} cannot be read: {error}") from None
        images, labels = _load_idx(directory, subset)
    X = np.asarray(images, dtype=np.float32) / np.float32(255)
    y = np.asarray(labels).astype(np.int64)
    return X, y
