"""Greyscale patches of natural images, preprocessed as in the sparse-coding literature."""

from numbers import Integral

import numpy as np
from sklearn.datasets import load_sample_images
from sklearn.utils import check_scalar
from sklearn.utils.random import sample_without_replacement

from .._validation import random_state_or_entropy

# ITU-R BT.601 luma weights, the ones PIL uses to convert RGB to greyscale ("L").
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])

# Cutoff of the whitening filter's low-pass part, in cycles per pixel: Olshausen and Field
# (1997) used 200 cycles per 512-pixel picture, about 0.4, to damp the highest frequencies,
# where noise and aliasing of the sampling grid dominate.
_WHITENING_CUTOFF = 0.4


def _check_images(images):
    """Check the images' shapes and dtypes; return them as arrays, not yet converted.

    Converting only the images that patches are cut from keeps a large stack (CIFAR's 50000
    images, say) from being copied in full.
    """
    if images is None:
        images = load_sample_images().images
    if isinstance(images, np.ndarray) and (
        images.ndim < 3 or (images.ndim == 3 and images.shape[2] == 3)
    ):
        # A (height, width, 3) array is one colour image, not a stack of greyscale images
        # three pixels wide: read by its first axis it would give rows of 3 pixels.
        raise ValueError(
            f"images must be a sequence of images, got an array of shape {images.shape}, "
            "which reads as one image; wrap a single image in a list: [image]."
        )
    checked = []
    for i, image in enumerate(images):
        image = np.asarray(image)
        if not (
            image.dtype == bool  # a binary image, as the diagnostics take it
            or np.issubdtype(image.dtype, np.integer)
            or np.issubdtype(image.dtype, np.floating)
        ):
            raise ValueError(f"images[{i}] must hold numbers, got dtype {image.dtype}.")
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            alpha = image.ndim == 3 and image.shape[2] == 4
            raise ValueError(
                f"images[{i}] must have shape (height, width) or (height, width, 3), got "
                f"{image.shape}"
                + (
                    ": an RGBA image (a PNG, say); drop its alpha channel with image[..., :3]."
                    if alpha
                    else "."
                )
            )
        checked.append(image)
    if not checked:
        raise ValueError("images is empty; pass at least one image.")
    return checked


def _luminance(image, index):
    """The image as a 2D float64 array of luminance."""
    image = image @ _LUMA_WEIGHTS if image.ndim == 3 else image.astype(np.float64)
    if not np.isfinite(image).all():
        raise ValueError(f"images[{index}] contains NaN or infinity.")
    return image


def _whiten(image):
    """Flatten the amplitude spectrum of an image, as Olshausen and Field (1997) did.

    Natural images have an amplitude spectrum falling roughly as 1/f; the filter
    ``f * exp(-(f / f0) ** 4)`` undoes that fall (the factor f) and damps the highest
    frequencies (the exponential). The image is mirrored into a twice larger one first, whose
    periodic extension has no jump at the borders that the filter would turn into edges.
    """
    height, width = image.shape
    image = image - image.mean()
    mirrored = np.block([[image, image[:, ::-1]], [image[::-1], image[::-1, ::-1]]])
    f_rows = np.fft.fftfreq(2 * height)[:, np.newaxis]
    f_cols = np.fft.rfftfreq(2 * width)[np.newaxis, :]
    frequency = np.hypot(f_rows, f_cols)
    response = frequency * np.exp(-((frequency / _WHITENING_CUTOFF) ** 4))
    filtered = np.fft.irfft2(np.fft.rfft2(mirrored) * response, s=mirrored.shape)
    return filtered[:height, :width]


def load_image_patches(
    images=None, *, patch_size=12, n_patches=10000, whiten=False, random_state=None
):
    """Random greyscale patches of natural images, with their mean removed, as rows.

    The patches that sparse coding (Olshausen and Field, 1996), ICA and the sparse VAE study
    of 2017 (12x12 crops of CIFAR-10) learn from. Colour images are turned into luminance.
    Patch positions are drawn uniformly without replacement from all the positions in all
    the images, so that large images give more patches than small ones. Then each patch's
    mean (its DC component, the local brightness) is subtracted, and all patches are divided
    by one common factor so that the entries of X have unit variance overall: the relative
    contrast of patches, flat ones against edges, is kept, and with it the heavy-tailed
    statistics that sparse priors model.

    Parameters
    ----------
    images : sequence of array-like, default=None
        Images of shape (height, width) (greyscale) or (height, width, 3) (RGB), indexed by
        the first axis: a list of images, or an array of shape (n_images, height, width, 3)
        such as CIFAR-10's uint8 training images, or binary (bool) images. Intensities may
        be on any scale (0-255, [0, 1], 1e-300 to 1e300, ...) as long as it is the same for
        all images, since the patches are rescaled at the end. None uses the two photographs of
        :func:`sklearn.datasets.load_sample_images`.

    patch_size : int, default=12
        Side of the square patches, in pixels; at most the height and width of the smallest
        image.

    n_patches : int, default=10000
        Number of patches (rows of X); at most the number of patch positions in all images.

    whiten : bool, default=False
        Whiten each image before cutting patches, with the filter of Olshausen and Field
        (1997) that flattens the 1/f amplitude spectrum of natural images. Without it,
        the low frequencies dominate the variance, so that a model with few latent
        dimensions spends them on smooth ramps and blobs; with it, all spatial frequencies
        up to the cutoff weigh about the same. The filter acts on whole images, unlike a
        PCA or ZCA whitening fitted to the sampled patches, so it does not depend on which
        patches were drawn. The final rescaling does: each call divides by the spread of its
        own patches, so draw a training and a test set in one call and split the rows, as
        ``benchmarks/bench_image_patches.py`` does. The default keeps the raw luminance, as
        in the 2017 study.

    random_state : int, RandomState instance or None, default=None
        Seed of the patch positions. Pass an int for the same patches at every call; None
        draws fresh entropy (NumPy's global random state is never used).

    Returns
    -------
    X : ndarray of shape (n_patches, patch_size ** 2)
        Flattened patches (row-major), in random order, float64, each with mean 0, and
        ``X.var() == 1``.

    See Also
    --------
    sklearn.feature_extraction.image.extract_patches_2d : Patches of one image.
    sklearn.decomposition.MiniBatchDictionaryLearning : Sparse coding of such patches.

    References
    ----------
    B. A. Olshausen and D. J. Field, "Emergence of simple-cell receptive field properties by
    learning a sparse code for natural images", Nature 381, 1996.

    B. A. Olshausen and D. J. Field, "Sparse coding with an overcomplete basis set: a
    strategy employed by V1?", Vision Research 37, 1997.

    Examples
    --------
    >>> import numpy as np
    >>> from skvae.datasets import load_image_patches
    >>> X = load_image_patches(patch_size=8, n_patches=500, random_state=0)
    >>> X.shape
    (500, 64)
    >>> bool(np.allclose(X.mean(axis=1), 0)), round(float(X.var()), 6)
    (True, 1.0)

    Any stack of images works, e.g. CIFAR-shaped uint8 arrays:

    >>> cifar_like = np.random.RandomState(0).randint(0, 256, size=(100, 32, 32, 3))
    >>> load_image_patches(cifar_like.astype(np.uint8), n_patches=50, random_state=0).shape
    (50, 144)
    """
    check_scalar(patch_size, "patch_size", Integral, min_val=2)
    check_scalar(n_patches, "n_patches", Integral, min_val=1)
    patch_size, n_patches = int(patch_size), int(n_patches)  # True is 1, as check_scalar says
    if not isinstance(whiten, bool | np.bool_):
        raise TypeError(f"whiten must be a bool, got {whiten!r}.")
    random_state = random_state_or_entropy(random_state)
    images = _check_images(images)

    smallest = min(min(image.shape[:2]) for image in images)
    if patch_size > smallest:
        raise ValueError(
            f"patch_size={patch_size} is larger than the smallest image side, {smallest}."
        )
    positions_per_image = np.array(
        [(h - patch_size + 1) * (w - patch_size + 1) for h, w, *_ in (im.shape for im in images)]
    )
    n_positions = int(positions_per_image.sum())
    if n_patches > n_positions:
        raise ValueError(
            f"n_patches={n_patches} is more than the {n_positions} patch positions in the "
            "images; ask for fewer patches or pass more images."
        )

    # One draw over the positions of all images: uniform, without replacement, and without
    # a loop over the images that contribute no patch (most of CIFAR's 50000, say).
    flat_positions = np.sort(
        sample_without_replacement(n_positions, n_patches, random_state=random_state)
    )
    first_position = np.concatenate([[0], np.cumsum(positions_per_image)])
    image_of_patch = np.searchsorted(first_position, flat_positions, side="right") - 1
    patches = np.empty((n_patches, patch_size, patch_size))
    brightest = 0.0  # the largest luminance of the images cut, for the flatness test below
    # The positions are sorted, so each image's patches are one block of rows.
    indices, starts, counts = np.unique(image_of_patch, return_index=True, return_counts=True)
    for index, start, count in zip(indices, starts, counts, strict=True):
        rows = slice(start, start + count)
        image = _luminance(images[index], index)
        brightest = max(brightest, float(np.abs(image).max()))
        if whiten:
            image = _whiten(image)
        windows = np.lib.stride_tricks.sliding_window_view(image, (patch_size, patch_size))
        top, left = np.divmod(flat_positions[rows] - first_position[index], windows.shape[1])
        patches[rows] = windows[top, left]

    # Relative to the images' own scale: whitening a constant image leaves rounding noise
    # (about 1e-16 of its luminance), which the rescaling below would blow up to unit variance.
    if np.ptp(patches, axis=(1, 2)).max() <= 1e-10 * brightest:
        raise ValueError("All patches are flat (constant); the images have no contrast.")
    X = patches.reshape(n_patches, -1)
    # Sorting grouped the patches by image; shuffle so that any slice is a random sample.
    X = X[random_state.permutation(n_patches)]
    X -= X.mean(axis=1, keepdims=True)
    # By the peak first, so that the squares of the standard deviation neither overflow
    # (intensities near 1e155) nor underflow (near 1e-160).
    X /= np.abs(X).max()
    X /= X.std()
    return X
