"""Data for skvae's experiments: synthetic sparse sources, MNIST, natural-image patches."""

__all__ = []
