"""load_mnist: the IDX parser on small files written here, the OpenML fallback, the real data.

No test uses the network: the OpenML fallback is replaced by a stand-in.
"""

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from skvae.datasets import _mnist, load_mnist

IMAGES_MAGIC, LABELS_MAGIC = 0x0803, 0x0801
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def write_idx(path, array, magic):
    """Write ``array`` (uint8) as a gzipped IDX file: magic number, sizes, then the bytes."""
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    with gzip.open(path, "wb") as file:
        file.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(directory, subset, n_images, seed=0):
    """Write a small, valid image and label file pair for ``subset``; return their arrays."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_images, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_images, dtype=np.uint8)
    images_file, labels_file = FILES[subset]
    write_idx(directory / images_file, images, IMAGES_MAGIC)
    write_idx(directory / labels_file, labels, LABELS_MAGIC)
    return images, labels


@pytest.fixture(autouse=True)
def no_mnist_environment(monkeypatch):
    """Tests start without SKVAE_MNIST_DIR, and fail rather than download from OpenML."""
    monkeypatch.delenv("SKVAE_MNIST_DIR", raising=False)

    def no_download(*args, **kwargs):
        raise AssertionError("a test tried to download MNIST from OpenML")

    monkeypatch.setattr(_mnist, "fetch_openml", no_download)


@pytest.mark.parametrize("subset", ["train", "test"])
def test_reads_the_subsets_idx_files(tmp_path, subset):
    images, labels = write_mnist(tmp_path, subset, n_images=5)
    X, y = load_mnist(subset=subset, data_dir=tmp_path)
    assert X.shape == (5, 784) and X.dtype == np.float32
    assert y.shape == (5,) and y.dtype == np.int64
    # Each row is an image read row by row, its intensities divided by 255.
    np.testing.assert_array_equal(X.reshape(5, 28, 28), images.astype(np.float32) / 255)
    np.testing.assert_array_equal(y, labels)
    assert X.min() >= 0 and X.max() <= 1


def test_data_dir_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    from_environment, other = tmp_path / "environment", tmp_path / "argument"
    from_environment.mkdir()
    other.mkdir()
    _, labels = write_mnist(from_environment, "test", n_images=3, seed=1)
    _, other_labels = write_mnist(other, "test", n_images=4, seed=2)
    monkeypatch.setenv("SKVAE_MNIST_DIR", str(from_environment))
    np.testing.assert_array_equal(load_mnist(subset="test")[1], labels)
    # An explicit directory wins over the environment.
    np.testing.assert_array_equal(load_mnist(subset="test", data_dir=other)[1], other_labels)


@pytest.mark.parametrize(
    "subset, rows", [("train", slice(0, 60000)), ("test", slice(60000, None))]
)
def test_openml_fallback_splits_first_60000_and_last_10000_rows(monkeypatch, subset, rows):
    n_rows = 70000
    # Each image is filled with its row number (mod 256), so the split can be read back. A
    # broadcast view stands in for 70000 images without allocating them.
    row_values = (np.arange(n_rows) % 256).astype(np.float64)
    images = np.broadcast_to(row_values[:, np.newaxis], (n_rows, 784))
    labels = np.array([str(i % 10) for i in range(n_rows)], dtype=object)
    calls = []

    def fake_fetch_openml(*args, **kwargs):
        calls.append((args, kwargs))
        return images, labels

    monkeypatch.setattr(_mnist, "fetch_openml", fake_fetch_openml)
    X, y = load_mnist(subset=subset)
    assert calls == [
        (("mnist_784",), dict(version=1, as_frame=False, parser="liac-arff", return_X_y=True))
    ]
    assert X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X[:, 0], row_values[rows].astype(np.float32) / 255)
    np.testing.assert_array_equal(y, np.arange(n_rows)[rows] % 10)


def test_openml_fallback_checks_the_number_of_rows(monkeypatch):
    monkeypatch.setattr(
        _mnist, "fetch_openml", lambda *a, **k: (np.zeros((100, 784)), np.zeros(100, dtype=str))
    )
    with pytest.raises(ValueError, match="mnist_784 has 100 rows, expected 70000"):
        load_mnist(subset="test")


def test_unknown_subset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="subset must be 'train' or 'test', got 'valid'"):
        load_mnist(subset="valid", data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"got \['test'\]"):
        load_mnist(subset=["test"], data_dir=tmp_path)


def test_a_home_relative_directory_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "mnist").mkdir()
    _, labels = write_mnist(tmp_path / "mnist", "test", n_images=3)
    np.testing.assert_array_equal(load_mnist(subset="test", data_dir="~/mnist")[1], labels)
    monkeypatch.setenv("SKVAE_MNIST_DIR", "~/mnist")
    np.testing.assert_array_equal(load_mnist(subset="test")[1], labels)


def test_a_directory_in_place_of_a_file_is_not_called_a_bad_gzip(tmp_path):
    (tmp_path / FILES["test"][0]).mkdir()
    with pytest.raises(OSError, match="cannot read the MNIST file") as caught:
        load_mnist(subset="test", data_dir=tmp_path)
    assert "gzip" not in str(caught.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz"):
        load_mnist(subset="test", data_dir=tmp_path)
    images_file, labels_file = FILES["test"]
    write_idx(tmp_path / images_file, np.zeros((2, 28, 28), np.uint8), IMAGES_MAGIC)
    with pytest.raises(FileNotFoundError, match=labels_file):
        load_mnist(subset="test", data_dir=tmp_path)


def test_a_file_that_is_not_gzip_is_named(tmp_path):
    write_mnist(tmp_path, "test", n_images=2)
    images_file = tmp_path / FILES["test"][0]
    images_file.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=f"{images_file.name} is not a readable gzip file"):
        load_mnist(subset="test", data_dir=tmp_path)


def test_a_truncated_gzip_stream_is_named(tmp_path):
    write_mnist(tmp_path, "test", n_images=2)
    labels_file = tmp_path / FILES["test"][1]
    labels_file.write_bytes(labels_file.read_bytes()[:-12])
    with pytest.raises(ValueError, match=f"{labels_file.name} is not a readable gzip file"):
        load_mnist(subset="test", data_dir=tmp_path)


def test_swapped_files_fail_on_the_magic_number(tmp_path):
    images_file, labels_file = FILES["test"]
    write_idx(tmp_path / images_file, np.zeros(2, np.uint8), LABELS_MAGIC)
    write_idx(tmp_path / labels_file, np.zeros((2, 28, 28), np.uint8), IMAGES_MAGIC)
    with pytest.raises(ValueError, match=f"{images_file} has IDX magic number 0x0801"):
        load_mnist(subset="test", data_dir=tmp_path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x00\x00\x08", "too short for an IDX header: 3 bytes"),
        # The header promises 2 images of 28x28 but only 100 pixel bytes follow.
        (np.array([IMAGES_MAGIC, 2, 28, 28], ">u4").tobytes() + bytes(100), "truncated"),
        (np.array([IMAGES_MAGIC, 1, 28, 28], ">u4").tobytes() + bytes(785), "truncated"),
    ],
    ids=["short header", "short payload", "long payload"],
)
def test_a_size_mismatch_is_named(tmp_path, content, message):
    write_mnist(tmp_path, "train", n_images=2)
    images_file = FILES["train"][0]
    with gzip.open(tmp_path / images_file, "wb") as file:
        file.write(content)
    with pytest.raises(ValueError, match=f"{images_file}.*{message}"):
        load_mnist(subset="train", data_dir=tmp_path)


def test_image_shape_and_label_count_are_checked(tmp_path):
    images_file, labels_file = FILES["train"]
    write_idx(tmp_path / images_file, np.zeros((2, 14, 14), np.uint8), IMAGES_MAGIC)
    write_idx(tmp_path / labels_file, np.zeros(2, np.uint8), LABELS_MAGIC)
    with pytest.raises(ValueError, match=r"images of shape \(14, 14\), expected \(28, 28\)"):
        load_mnist(subset="train", data_dir=tmp_path)
    write_idx(tmp_path / images_file, np.zeros((2, 28, 28), np.uint8), IMAGES_MAGIC)
    write_idx(tmp_path / labels_file, np.zeros(3, np.uint8), LABELS_MAGIC)
    with pytest.raises(ValueError, match=f"holds 2 images but .*{labels_file} holds 3 labels"):
        load_mnist(subset="train", data_dir=tmp_path)


def real_mnist_dir():
    """SKVAE_MNIST_DIR, else the shared data beside the checkout (as on CI), else None."""
    if os.environ.get("SKVAE_MNIST_DIR"):
        return Path(os.environ["SKVAE_MNIST_DIR"])
    shared = Path(__file__).resolve().parents[2] / "shared/data/mnist"
    return shared if shared.is_dir() else None


# Read at import, before the autouse fixture above removes the variable for each test.
REAL_MNIST_DIR = real_mnist_dir()


@pytest.mark.skipif(REAL_MNIST_DIR is None, reason="MNIST IDX files not found")
def test_real_mnist():
    # Digit counts of the standard split (LeCun et al.), 0 to 9.
    expected_counts = {
        "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    }
    for subset, n_images in [("train", 60000), ("test", 10000)]:
        X, y = load_mnist(subset=subset, data_dir=REAL_MNIST_DIR)
        assert X.shape == (n_images, 784) and X.dtype == np.float32
        assert X.min() == 0 and X.max() == 1
        np.testing.assert_array_equal(np.bincount(y, minlength=10), expected_counts[subset])


def test_uncompressed_idx_files_are_read_too(tmp_path):
    # Many copies of MNIST are stored gunzipped; they got "MNIST file not found: ....gz".
    images, labels = write_mnist(tmp_path, "test", n_images=4)
    for name in FILES["test"]:
        with gzip.open(tmp_path / name, "rb") as file:
            (tmp_path / name.removesuffix(".gz")).write_bytes(file.read())
        (tmp_path / name).unlink()
    X, y = load_mnist(subset="test", data_dir=tmp_path)
    np.testing.assert_array_equal(X.reshape(4, 28, 28), images.astype(np.float32) / 255)
    np.testing.assert_array_equal(y, labels)


def test_labels_that_are_not_digits_are_refused(tmp_path):
    write_mnist(tmp_path, "test", n_images=3)
    write_idx(tmp_path / FILES["test"][1], np.full(3, 200, np.uint8), LABELS_MAGIC)
    with pytest.raises(ValueError, match="labels up to 200, where MNIST's are digits 0 to 9"):
        load_mnist(subset="test", data_dir=tmp_path)


def test_an_empty_or_unreadable_directory_name_is_refused(tmp_path, monkeypatch):
    # Path("") is the working directory, which was read without a word.
    with pytest.raises(ValueError, match="data_dir is empty"):
        load_mnist(subset="test", data_dir="")
    # expanduser's bare RuntimeError named neither the variable nor the path.
    with pytest.raises(ValueError, match="~no-such-user-skvae/mnist cannot be read"):
        load_mnist(subset="test", data_dir="~no-such-user-skvae/mnist")


def test_a_failed_download_says_how_to_read_local_files(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -2] Name or service not known>")

    monkeypatch.setattr(_mnist, "fetch_openml", offline)
    with pytest.raises(OSError, match="pass the directory of its IDX files as data_dir.*"):
        load_mnist(subset="test")
