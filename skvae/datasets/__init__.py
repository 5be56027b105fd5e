"""Data for skvae's experiments: synthetic sparse sources, MNIST, natural-image patches."""

from ._mnist import load_mnist
from ._patches import load_image_patches
from ._synthetic import make_sparse_sources

__all__ = ["load_image_patches", "load_mnist", "make_sparse_sources"]
