"""skvae: variational autoencoders as scikit-learn estimators.

:class:`SparseVAE` puts a heavy-tailed sparse prior (Cauchy, Laplace, Student-t) on the
latent code, :class:`GaussianVAE` the standard normal one. Both are transformers with
``fit``, ``transform``, ``inverse_transform``, ``sample``, ``score`` and ``score_samples``
around a PyTorch module; both take missing values (NaN). :class:`VAEImputer` fills missing
values with a fitted VAE's importance-weighted conditional means (MIWAE).
"""

__version__ = "0.2.0.dev0"

from ._impute import VAEImputer  # noqa: E402
from ._persistence import load, save  # noqa: E402  (reads __version__)
from ._vae import GaussianVAE, SparseVAE  # noqa: E402
from ._validation import OutOfSupportWarning  # noqa: E402

__all__ = [
    "GaussianVAE",
    "OutOfSupportWarning",
    "SparseVAE",
    "VAEImputer",
    "load",
    "save",
    "__version__",
]
