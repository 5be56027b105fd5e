import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skvae.datasets import load_image_patches, make_sparse_sources


@pytest.fixture(scope="module")
def cifar_like():
    """Random uint8 images shaped like CIFAR-10's: (n_images, 32, 32, 3)."""
    return np.random.RandomState(0).randint(0, 256, size=(20, 32, 32, 3), dtype=np.uint8)


def neighbour_correlation(X, patch_size):
    """Correlation between horizontally adjacent pixels, over all patches."""
    patches = X.reshape(-1, patch_size, patch_size)
    return np.corrcoef(patches[:, :, :-1].ravel(), patches[:, :, 1:].ravel())[0, 1]


@pytest.mark.parametrize("whiten", [False, True])
def test_shape_and_preprocessing(whiten):
    X = load_image_patches(patch_size=8, n_patches=300, whiten=whiten, random_state=0)
    assert X.shape == (300, 64)
    assert X.dtype == np.float64
    assert_allclose(X.mean(axis=1), 0, atol=1e-12)
    assert X.var() == pytest.approx(1.0)


def test_same_seed_same_patches():
    first = load_image_patches(n_patches=200, random_state=0)
    assert_array_equal(first, load_image_patches(n_patches=200, random_state=0))
    assert_array_equal(
        first, load_image_patches(n_patches=200, random_state=np.random.RandomState(0))
    )
    assert not np.allclose(first, load_image_patches(n_patches=200, random_state=1))


def test_whitening_decorrelates_neighbouring_pixels():
    raw = load_image_patches(n_patches=2000, random_state=0)
    whitened = load_image_patches(n_patches=2000, whiten=True, random_state=0)
    # Natural images are smooth, so adjacent pixels are correlated; whitening removes much of
    # it (not all: its filter also damps the highest frequencies).
    assert neighbour_correlation(raw, 12) > 0.6
    assert neighbour_correlation(whitened, 12) < neighbour_correlation(raw, 12) - 0.1


def test_cifar_shaped_array(cifar_like):
    X = load_image_patches(cifar_like, patch_size=12, n_patches=500, random_state=0)
    assert X.shape == (500, 144)
    assert_allclose(X.mean(axis=1), 0, atol=1e-12)
    whitened = load_image_patches(cifar_like, n_patches=50, whiten=True, random_state=0)
    assert whitened.shape == (50, 144)


def test_list_of_greyscale_images_of_different_sizes():
    rng = np.random.RandomState(0)
    images = [rng.rand(20, 30), rng.rand(15, 15), rng.rand(40, 12)]
    X = load_image_patches(images, patch_size=12, n_patches=100, random_state=0)
    assert X.shape == (100, 144)


def test_whole_image_patch_is_the_standardized_image():
    image = np.random.RandomState(0).rand(5, 5)
    X = load_image_patches([image], patch_size=5, n_patches=1, random_state=0)
    expected = image - image.mean()
    assert_allclose(X[0], (expected / expected.std()).ravel())


def test_every_position_once_when_all_are_asked_for():
    image = np.random.RandomState(0).rand(6, 7)
    n_positions = (6 - 2 + 1) * (7 - 2 + 1)
    X = load_image_patches([image], patch_size=2, n_patches=n_positions, random_state=0)
    assert len(np.unique(X, axis=0)) == n_positions


def test_intensity_scale_and_colour_of_grey_images_do_not_matter(cifar_like):
    grey_uint8 = cifar_like[..., 0]
    expected = load_image_patches(grey_uint8, n_patches=100, random_state=0)
    as_float = load_image_patches(grey_uint8 / 255.0, n_patches=100, random_state=0)
    as_rgb = load_image_patches(
        np.repeat(grey_uint8[..., None], 3, axis=3), n_patches=100, random_state=0
    )
    assert_allclose(as_float, expected)
    # The luminance of an RGB pixel with three equal channels is that value.
    assert_allclose(as_rgb, expected)


@pytest.mark.parametrize("whiten", [True, False])
@pytest.mark.parametrize("scale", [1e155, 1e-165, 1e300, 1e-300])
def test_extreme_intensity_scales_give_the_same_patches(whiten, scale):
    # The squares in X.std() overflowed (all patches 0) or underflowed (infinities) beyond about
    # 1e154 and 1e-160, without an error.
    image = np.random.RandomState(0).rand(20, 20)
    expected = load_image_patches(
        [image], patch_size=4, n_patches=10, whiten=whiten, random_state=0
    )
    scaled = load_image_patches(
        [image * scale], patch_size=4, n_patches=10, whiten=whiten, random_state=0
    )
    assert_allclose(scaled, expected, atol=1e-12)


def test_binary_images_are_taken_as_intensities():
    image = np.random.RandomState(0).rand(20, 20) > 0.5
    assert_allclose(
        load_image_patches([image], patch_size=4, n_patches=10, random_state=0),
        load_image_patches([image.astype(float)], patch_size=4, n_patches=10, random_state=0),
    )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"patch_size": 1}, ValueError, "patch_size"),
        ({"patch_size": 12.0}, TypeError, "patch_size"),
        ({"n_patches": 0}, ValueError, "n_patches"),
        ({"whiten": "yes"}, TypeError, "whiten"),
        ({"patch_size": 33}, ValueError, "larger than the smallest image side"),
        ({"n_patches": 21 * 21 * 20 + 1}, ValueError, "patch positions"),
    ],
)
def test_bad_parameters(cifar_like, kwargs, error, message):
    with pytest.raises(error, match=message):
        load_image_patches(cifar_like, **kwargs)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((32, 32)), "wrap a single image in a list"),
        (np.zeros((32, 40, 3)), "wrap a single image in a list"),  # one RGB image, not 32
        ([], "images is empty"),
        ([np.zeros((32, 32, 4))], r"images\[0\] must have shape.*RGBA.*image\[\.\.\., :3\]"),
        ([np.zeros((32, 32, 2))], r"images\[0\] must have shape .*, got \(32, 32, 2\)\.$"),
        ([np.zeros((32, 32)), np.zeros(32)], r"images\[1\] must have shape"),
        ([np.array([["a"] * 32] * 32)], "must hold numbers"),
        ([np.full((32, 32), np.nan)], "NaN or infinity"),
        ([np.full((32, 32), 0.1), np.zeros((32, 32))], "no contrast"),
    ],
)
def test_bad_images(images, message):
    with pytest.raises(ValueError, match=message):
        load_image_patches(images, n_patches=10, random_state=0)


@pytest.mark.parametrize("value", [0.3, 0.7, 123.456])
def test_a_whitened_constant_image_has_no_contrast_either(value):
    # Whitening leaves rounding noise of about 1e-16 of the luminance, which the final
    # rescaling would have blown up to unit variance.
    with pytest.raises(ValueError, match="no contrast"):
        load_image_patches([np.full((21, 23), value)], patch_size=8, n_patches=10, whiten=True)


def test_the_global_random_state_is_untouched():
    # The global generator is the subject of this test, hence the legacy NumPy calls.
    np.random.seed(0)  # noqa: NPY002
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    load_image_patches(patch_size=8, n_patches=20)
    make_sparse_sources(n_samples=20)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002
