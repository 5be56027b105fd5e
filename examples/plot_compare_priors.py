"""
Gaussian versus sparse priors on digit codes
============================================

This example fits three variational autoencoders with the same architecture to the 8x8
handwritten digits of scikit-learn: :class:`~skvae.GaussianVAE`, with the standard normal
prior, :class:`~skvae.SparseVAE` with its defaults (a Laplace prior and thresholded
codes), and SparseVAE with the heavy-tailed Cauchy prior of the original proposal. On
held-out digits it compares the evidence lower bound (ELBO), how well a linear classifier
reads the digit class from the codes, how sparse the codes are (the Hoyer measure and the
share of exact zeros), and how long each fit takes; a figure shows reconstructions, digits
decoded from random codes of each model's prior, and the distribution of the codes, with
the sparse models' spike at zero.
"""

# %%
# Data
# ----
# The digits' pixel intensities run from 0 to 16; dividing by 16 puts them in [0, 1], the
# range that the Bernoulli likelihood accepts.
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from skvae import GaussianVAE, SparseVAE
from skvae.diagnostics import hoyer_sparsity

X, y = load_digits(return_X_y=True)
X = X / 16
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

# %%
# Models
# ------
# The models get the same settings and differ only in their prior: SparseVAE's default
# ``posterior='thresholded'`` decodes ``sign(z) max(|z| - 0.5, 0)``, so a code whose posterior
# location lies within 0.5 of zero is exactly zero. Training stops once the
# training loss has not improved for ``n_iter_no_change`` epochs; ``max_iter`` is only a cap.
# ``early_stopping=True`` is left off: it would hold out a tenth of an already small training
# set, and its patience can end the Cauchy model's fit during its slow first epochs.
shared_settings = dict(
    n_components=10,
    hidden_layer_sizes=(256, 128),
    likelihood="bernoulli",
    max_iter=500,
    random_state=0,
)
models = {
    "GaussianVAE": GaussianVAE(**shared_settings),
    "SparseVAE()": SparseVAE(**shared_settings),
    "SparseVAE(prior='cauchy')": SparseVAE(prior="cauchy", **shared_settings),
}
fit_times = {}
for name, vae in models.items():
    start = time.perf_counter()
    vae.fit(X_train)
    fit_times[name] = time.perf_counter() - start


# %%
# Scores on the test set
# ----------------------
# The codes are the posterior modes (``transform``). Each VAE is fitted once, above, so the
# classifier is fitted on codes of the training digits rather than in a pipeline that would
# train the VAE again. :func:`~skvae.diagnostics.hoyer_sparsity` gives the mean Hoyer
# sparsity of the codes, ``(sqrt(k) - ||z||_1 / ||z||_2) / (sqrt(k) - 1)`` for a code z of
# length k: 0 when all entries have the same magnitude, 1 when a single entry is nonzero.
# It divides each latent dimension by its standard deviation first, so that a dimension
# with a wide spread does not look like the one active entry of every code.
test_codes = {}
print(
    "| model | test ELBO (nats) | accuracy on codes | Hoyer sparsity | exact zeros "
    "| fit time (s) |"
)
print("|---|---:|---:|---:|---:|---:|")
for name, vae in models.items():
    test_codes[name] = vae.transform(X_test)
    classifier = LogisticRegression(max_iter=1000).fit(vae.transform(X_train), y_train)
    accuracy = classifier.score(test_codes[name], y_test)
    sparsity = hoyer_sparsity(test_codes[name])
    print(
        f"| {name} | {vae.score(X_test):.2f} | {accuracy:.3f} | {sparsity:.3f} "
        f"| {np.mean(test_codes[name] == 0):.0%} | {fit_times[name]:.1f} |"
    )

# %%
# Figure
# ------
# Rows of test digits, their reconstructions (decoder means of the codes), and decoder means
# of random codes of each model (prior draws, thresholded for the sparse models as their
# decoders read them); ``sample`` would draw binary pixels from those means instead. The
# histograms show every test code value, scaled per dimension as in the sparsity measure.
n_digits = 12
rng = np.random.default_rng(0)
shape = (n_digits, shared_settings["n_components"])


def thresholded(z, threshold=0.5):
    return np.sign(z) * np.maximum(np.abs(z) - threshold, 0)


# The sparse models' priors have the scales they learned (``prior_scale_``).
prior_codes = {
    "GaussianVAE": rng.standard_normal(shape),
    "SparseVAE()": thresholded(rng.laplace(size=shape) * models["SparseVAE()"].prior_scale_),
    "SparseVAE(prior='cauchy')": thresholded(
        rng.standard_cauchy(shape) * models["SparseVAE(prior='cauchy')"].prior_scale_
    ),
}


def digit_row(images):
    """Flattened 8x8 images side by side, separated by blank (NaN) columns."""
    padded = np.pad(images.reshape(-1, 8, 8), ((0, 0), (0, 0), (0, 1)), constant_values=np.nan)
    return np.hstack(padded)[:, :-1]


rows = {"Test digits": X_test[:n_digits]}
for name, vae in models.items():
    rows[f"{name}: reconstructions"] = vae.inverse_transform(test_codes[name][:n_digits])
for name, vae in models.items():
    rows[f"{name}: decoded random prior codes"] = vae.inverse_transform(prior_codes[name])

fig = plt.figure(figsize=(10, 10), layout="constrained")
image_fig, histogram_fig = fig.subfigures(2, 1, height_ratios=[len(rows), 2.2])
for ax, (title, images) in zip(image_fig.subplots(len(rows), 1), rows.items(), strict=True):
    ax.imshow(digit_row(images), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()

# A dimension no test digit uses is all zeros: it stays 0 rather than dividing by 0.
scaled_codes = {
    name: codes / np.where(codes.std(axis=0) > 0, codes.std(axis=0), 1)
    for name, codes in test_codes.items()
}
limit = max(np.abs(codes).max() for codes in scaled_codes.values())
bins = np.linspace(-limit, limit, 81)
histogram_axes = histogram_fig.subplots(1, len(models), sharex=True, sharey=True)
for ax, (name, codes) in zip(histogram_axes, scaled_codes.items(), strict=True):
    ax.hist(codes.ravel(), bins=bins, log=True)
    ax.set_title(f"{name}: test code values")
    ax.set_xlabel("code value / its dimension's std")
histogram_axes[0].set_ylabel("count")

figure_path = Path("skvae-demo.png")
fig.savefig(figure_path, dpi=100)
print(f"Wrote {figure_path} in the current directory")
