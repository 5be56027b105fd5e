"""The torch module inside the estimators: an MLP encoder and decoder around a latent prior.

Its parts come from the family registries (``_families``) by name; nothing here depends on
which prior, posterior or likelihood a model uses.
"""

import math

import torch
from torch import nn

from ._families import LIKELIHOODS, POSTERIORS, PRIORS

ACTIVATIONS = {"identity": nn.Identity, "logistic": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
# Activations through which the decoder's output grows without bound in z.
UNBOUNDED_ACTIVATIONS = {"identity", "relu"}


def _mlp(sizes, activation, generator):
    """Linear layers of ``sizes`` with ``activation`` between them (none after the last).

    Layers are built uninitialised and then given torch's default initialisation from
    ``generator``, so that building a module never touches torch's global random state.
    """
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear = nn.utils.skip_init(nn.Linear, n_in, n_out)
        nn.init.kaiming_uniform_(linear.weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(n_in) if n_in > 0 else 0
        nn.init.uniform_(linear.bias, -bound, bound, generator=generator)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class VAEModule(nn.Module):
    """A variational autoencoder: q(z|x) from an MLP encoder, p(x|z) from a mirrored decoder.

    Parameters
    ----------
    n_features, n_components : int
        Data and latent dimensions.
    hidden_layer_sizes : sequence of int
        Encoder hidden layers; the decoder uses them in reverse order.
    activation, prior, posterior, likelihood : str
        Names in ``ACTIVATIONS`` and the registries ``PRIORS``, ``POSTERIORS`` and
        ``LIKELIHOODS``.
    prior_params, posterior_params : dict
        Values of the prior's and the posterior's hyper-parameters (their families'
        ``params``), kept as buffers named ``prior_<name>`` and ``posterior_<name>``.
    generator : torch.Generator
        Source of the initial weights.

    Attributes
    ----------
    architecture : dict
        The keyword arguments it was built with, but ``n_features`` and ``generator``: what a
        model continued by ``warm_start`` or loaded from a file must match.
    """

    def __init__(
        self,
        n_features,
        n_components,
        hidden_layer_sizes,
        activation,
        prior,
        posterior,
        likelihood,
        prior_params,
        posterior_params,
        generator,
    ):
        super().__init__()
        hidden = list(hidden_layer_sizes)
        self.architecture = {
            "n_components": n_components,
            "hidden_layer_sizes": tuple(hidden),
            "activation": activation,
            "prior": prior,
            "posterior": posterior,
            "likelihood": likelihood,
            "prior_params": dict(prior_params),
            "posterior_params": dict(posterior_params),
        }
        self.posterior_family = POSTERIORS[posterior]
        self.prior_family = PRIORS[prior]
        n_encoder_outputs = self.posterior_family.n_outputs * n_components
        self.encoder = _mlp([n_features, *hidden, n_encoder_outputs], activation, generator)
        self.decoder = _mlp([n_components, *hidden[::-1], n_features], activation, generator)
        self.likelihood = LIKELIHOODS[likelihood](n_features)
        self.register_buffer("prior_loc", torch.zeros(n_components))
        self.register_buffer("prior_scale", torch.ones(n_components))
        for kind, params in [("prior", prior_params), ("posterior", posterior_params)]:
            for name, value in params.items():
                self.register_buffer(f"{kind}_{name}", torch.full((n_components,), float(value)))
        dummy_posterior = self.posterior(torch.zeros(1, n_features))
        self.analytic_kl = self.posterior_family.kl_is_closed_form(dummy_posterior, self.prior())

    def _params(self, kind, family):
        return {name: getattr(self, f"{kind}_{name}") for name in family.params}

    @property
    def noise_width(self):
        """Uniform draws per row that one reparameterized z takes."""
        return self.posterior_family.n_noise * self.architecture["n_components"]

    def reset_output(self, mean, std):
        """Start the decoder at the data's per-feature mean, the likelihood at its spread."""
        self.likelihood.reset_parameters(mean, std, self.decoder[-1].bias)

    def prior(self):
        params = self._params("prior", self.prior_family)
        return self.prior_family(self.prior_loc, self.prior_scale, **params)

    def posterior(self, x):
        return self.posterior_family(
            self.encoder(x), **self._params("posterior", self.posterior_family)
        )

    def code(self, x):
        """The deterministic code of each row: what ``transform`` returns (for a
        location-scale posterior, its location, which is its mode)."""
        params = self._params("posterior", self.posterior_family)
        return self.posterior_family.code(self.encoder(x), **params)

    def decode(self, h):
        """p(x|h) as a distribution over each feature, for codes h (what the decoder reads of
        a latent z: z itself, or its thresholded value; see ``Posterior.decoder_input``)."""
        return self.likelihood(self.decoder(h))

    def elbo(self, x, noise, beta=1.0):
        """ELBO of each row of ``x``, ``E_q[log p(x|z)] - beta * KL(q(z|x) || p(z))``.

        ``noise`` holds uniform draws of shape ``(..., n_rows or 1, n_components)``; each draw
        is turned into one reparameterized z per row, and the result has the leading shape of
        ``noise`` without its last axis. The KL is the closed form when torch's registry has
        one for the (posterior, prior) pair, else log q(z|x) - log p(z) at the same z.
        """
        posterior, z, log_likelihood = self._reconstruct(x, noise)
        return log_likelihood - beta * self.kl(posterior, z).sum(-1)

    def posterior_sample(self, x, noise):
        """q(z|x) and the reparameterized z that ``noise`` gives for each row."""
        posterior = self.posterior(x)
        params = self._params("posterior", self.posterior_family)
        return posterior, self.posterior_family.rsample(posterior, noise, **params)

    def _reconstruct(self, x, noise):
        """q(z|x), the z that ``noise`` gives for each row, and ``log p(x|z)``."""
        posterior, z = self.posterior_sample(x, noise)
        h = self.posterior_family.decoder_input(
            z, **self._params("posterior", self.posterior_family)
        )
        return posterior, z, self.decode(h).log_prob(x).sum(-1)

    def kl(self, posterior, z):
        """KL(q(z|x) || p(z)) per latent dimension: closed form, or log q - log p at ``z``."""
        params = self._params("posterior", self.posterior_family)
        return self.posterior_family.kl(
            posterior, self.prior(), z, closed_form=self.analytic_kl, **params
        )

    def log_importance_weights(self, x, noise):
        """``log p(x|z) + log p(z) - log q(z|x)`` at the z that ``noise`` gives for each row."""
        posterior, z, log_likelihood = self._reconstruct(x, noise)
        params = self._params("posterior", self.posterior_family)
        log_prior, log_posterior = self.posterior_family.log_densities(
            posterior, self.prior(), z, **params
        )
        return log_likelihood + log_prior - log_posterior

    def sample(self, n_samples, generator):
        """``n_samples`` rows of the generative model: codes from the prior, then x from
        p(x|h)."""
        params = self._params("posterior", self.posterior_family)
        h = self.posterior_family.prior_codes(
            self.prior_family, self.prior(), n_samples, generator, **params
        )
        return self.likelihood.sample(self.decode(h), generator)
