"""
Bag-of-words counts: Poisson and negative-binomial likelihoods on sparse input
==============================================================================

Word counts are non-negative integers and mostly zeros, so they are best stored as a
scipy sparse matrix and modelled with a count likelihood. skvae accepts CSR/CSC input in
``fit``, ``transform`` and ``score``, densifying one batch of rows at a time, and offers
``likelihood='poisson'`` and ``likelihood='negative-binomial'`` (a mean from the decoder and
a learned per-word inverse dispersion, as in scvi-tools).

The documents come from scikit-learn's topic-model generator,
:func:`~sklearn.datasets.make_multilabel_classification`: each document mixes one or more
of five topics, and its words are drawn from them. We compare the two count likelihoods
by their held-out ELBO (both are log-probabilities of the same counts, so the numbers are
comparable) and use the codes to predict the topics.
"""

# %%
# Data
# ----
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_multilabel_classification
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.multiclass import OneVsRestClassifier

from skvae import SparseVAE

X, topics = make_multilabel_classification(
    n_samples=3000,
    n_features=300,
    n_classes=5,
    n_labels=2,
    length=60,
    sparse=True,
    random_state=0,
)
X_train, X_test, topics_train, topics_test = train_test_split(X, topics, random_state=0)
print(f"{X.shape[0]} documents, {X.shape[1]} words, {X.nnz / np.prod(X.shape):.1%} nonzero")

# %%
# Models
# ------
# The same network for both likelihoods; only p(x|z) differs. Training stops when the ELBO
# of a held-out tenth of the training documents stops improving.
settings = dict(
    n_components=5, hidden_layer_sizes=(128,), max_iter=300, early_stopping=True, random_state=0
)
models = {
    likelihood: SparseVAE(prior="cauchy", likelihood=likelihood, **settings)
    for likelihood in ["poisson", "negative-binomial"]
}
print("| likelihood | test ELBO (nats per document) | topic accuracy | fit time (s) |")
print("|---|---:|---:|---:|")
for likelihood, vae in models.items():
    start = time.perf_counter()
    vae.fit(X_train)
    seconds = time.perf_counter() - start
    classifier = OneVsRestClassifier(LogisticRegression(max_iter=1000))
    classifier.fit(vae.transform(X_train), topics_train)
    # Share of (document, topic) pairs predicted right.
    accuracy = (classifier.predict(vae.transform(X_test)) == topics_test).mean()
    print(f"| {likelihood} | {vae.score(X_test):.1f} | {accuracy:.3f} | {seconds:.1f} |")

# A linear baseline with codes of the same size.
svd = TruncatedSVD(n_components=5, random_state=0).fit(X_train)
baseline = OneVsRestClassifier(LogisticRegression(max_iter=1000))
baseline.fit(svd.transform(X_train), topics_train)
accuracy = (baseline.predict(svd.transform(X_test)) == topics_test).mean()
print(f"| TruncatedSVD codes (no likelihood) | | {accuracy:.3f} | |")

# %%
# What each latent dimension writes
# ---------------------------------
# The decoder's expected counts for a code with one large coordinate, minus those of the
# zero code: the words each dimension turns on. With a sparse prior, a document's code has
# few large coordinates, so each dimension tends to stand for a group of co-occurring words.
vae = models["negative-binomial"]
codes = 3 * np.eye(vae.n_components)
effect = vae.inverse_transform(codes) - vae.inverse_transform(np.zeros((1, vae.n_components)))
fig, ax = plt.subplots(figsize=(9, 3), layout="constrained")
image = ax.imshow(
    effect, aspect="auto", cmap="RdBu_r", vmin=-np.abs(effect).max(), vmax=np.abs(effect).max()
)
ax.set_xlabel("word")
ax.set_ylabel("latent dimension")
ax.set_title("Change in expected counts when one latent coordinate is 3 (negative binomial)")
fig.colorbar(image, ax=ax, label="expected count change")
