"""The torch module inside the estimators: an MLP encoder and decoder around a latent prior."""

import math

import numpy as np
import torch
from torch import nn
from torch.distributions import Bernoulli, NegativeBinomial, Normal, Poisson, kl_divergence
from torch.nn import functional as F

from ._distributions import POSTERIORS, PRIORS, kl_is_closed_form

ACTIVATIONS = {"identity": nn.Identity, "logistic": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}
# Activations through which the decoder's output grows without bound in z.
UNBOUNDED_ACTIVATIONS = {"identity", "relu"}

# Smallest posterior scale: keeps log q(z|x) finite when the encoder saturates.
_MIN_POSTERIOR_SCALE = 1e-6


def _inverse_softplus(x):
    return x + torch.log(-torch.expm1(-x))


class GaussianLikelihood(nn.Module):
    """p(x|z) = N(decoder(z), diag(scale^2)) with a learned per-feature scale.

    The scale is floored at ``1e-3`` times the data's mean feature standard deviation: a
    feature that the decoder reproduces exactly (a constant pixel, say) would otherwise drive
    its scale, and the ELBO, to infinity. It starts at each feature's standard deviation, or
    at the mean one for near-constant features, which the untrained decoder does not fit.
    """

    #: Interval the data must lie in, and whether it must hold integers (see ``check_data``).
    support = (-math.inf, math.inf)
    integer_valued = False

    def __init__(self, n_features):
        super().__init__()
        self.raw_scale = nn.Parameter(torch.zeros(n_features))
        self.register_buffer("min_scale", torch.ones(()))

    @staticmethod
    def check_data(values):
        pass

    @torch.no_grad()
    def reset_parameters(self, mean, std, output_bias):
        typical = std.mean().item() or 1.0
        self.min_scale.fill_(1e-3 * typical)
        self.raw_scale.copy_(_inverse_softplus(std.clamp_min(typical) - self.min_scale))
        output_bias.copy_(mean)

    def forward(self, output):
        scale = self.min_scale + F.softplus(self.raw_scale)
        return Normal(output, scale, validate_args=False)


class BernoulliLikelihood(nn.Module):
    """p(x|z) = Bernoulli(sigmoid(decoder(z))), for data in [0, 1] (binary or intensities)."""

    support = (0.0, 1.0)
    integer_valued = False

    def __init__(self, n_features):
        super().__init__()

    @staticmethod
    def check_data(values):
        low, high = values.min(initial=0), values.max(initial=0)
        if low < 0 or high > 1:
            raise ValueError(
                "likelihood='bernoulli' needs data in [0, 1], got values in "
                f"[{low:.4g}, {high:.4g}]; rescale it first, e.g. with MinMaxScaler."
            )

    @torch.no_grad()
    def reset_parameters(self, mean, std, output_bias):
        output_bias.copy_(torch.logit(mean.clamp(1e-3, 1 - 1e-3)))

    def forward(self, output):
        return Bernoulli(logits=output, validate_args=False)


def _check_counts(values, name):
    if (values < 0).any() or (values != np.round(values)).any():
        raise ValueError(
            f"likelihood={name!r} needs counts (non-negative integers), got values such as "
            f"{values[(values < 0) | (values != np.round(values))][0]:.4g}."
        )


# Largest log-rate the count likelihoods accept: exp(30) ~ 1e13 counts.
_MAX_LOG_RATE = 30.0


class PoissonLikelihood(nn.Module):
    """p(x|z) = Poisson(exp(decoder(z))), for counts such as bag-of-words."""

    support = (0.0, math.inf)
    integer_valued = True

    def __init__(self, n_features):
        super().__init__()

    @staticmethod
    def check_data(values):
        _check_counts(values, "poisson")

    @torch.no_grad()
    def reset_parameters(self, mean, std, output_bias):
        output_bias.copy_(torch.log(mean.clamp_min(1e-3)))

    def forward(self, output):
        rate = output.clamp(max=_MAX_LOG_RATE).exp()
        return Poisson(rate, validate_args=False)


class NegativeBinomialLikelihood(nn.Module):
    """p(x|z) = NB(mean=exp(decoder(z)), inverse dispersion theta) with a learned theta.

    scvi-tools' parametrisation: variance ``mean + mean^2 / theta``, so overdispersed counts
    are fitted without inflating the mean; theta is learned per feature, starting at 1.
    """

    support = (0.0, math.inf)
    integer_valued = True

    def __init__(self, n_features):
        super().__init__()
        self.raw_theta = nn.Parameter(torch.full((n_features,), _inverse_softplus(torch.ones(()))))

    @staticmethod
    def check_data(values):
        _check_counts(values, "negative-binomial")

    @torch.no_grad()
    def reset_parameters(self, mean, std, output_bias):
        output_bias.copy_(torch.log(mean.clamp_min(1e-3)))

    def forward(self, output):
        theta = F.softplus(self.raw_theta) + 1e-4
        log_mean = output.clamp(max=_MAX_LOG_RATE)
        return NegativeBinomial(theta, logits=log_mean - theta.log(), validate_args=False)


LIKELIHOODS = {
    "gaussian": GaussianLikelihood,
    "bernoulli": BernoulliLikelihood,
    "poisson": PoissonLikelihood,
    "negative-binomial": NegativeBinomialLikelihood,
}


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
        Names in ``ACTIVATIONS``, ``PRIORS``, ``POSTERIORS`` and ``LIKELIHOODS``.
    df : float or None
        Degrees of freedom of a Student-t prior; None for the other priors.
    generator : torch.Generator
        Source of the initial weights.
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
        df,
        generator,
    ):
        super().__init__()
        hidden = list(hidden_layer_sizes)
        self.encoder = _mlp([n_features, *hidden, 2 * n_components], activation, generator)
        self.decoder = _mlp([n_components, *hidden[::-1], n_features], activation, generator)
        self.likelihood = LIKELIHOODS[likelihood](n_features)
        self.register_buffer("prior_loc", torch.zeros(n_components))
        self.register_buffer("prior_scale", torch.ones(n_components))
        self.register_buffer(
            "prior_df", None if df is None else torch.full((n_components,), float(df))
        )
        self._prior_family = PRIORS[prior]
        self._posterior_family = POSTERIORS[posterior]
        dummy_posterior = self.posterior(torch.zeros(1, n_features))
        self.analytic_kl = kl_is_closed_form(dummy_posterior, self.prior())

    def reset_output(self, mean, std):
        """Start the decoder at the data's per-feature mean, the likelihood at its spread."""
        self.likelihood.reset_parameters(mean, std, self.decoder[-1].bias)

    def prior(self):
        return self._prior_family(self.prior_loc, self.prior_scale, self.prior_df)

    def posterior(self, x):
        loc, raw_scale = self.encoder(x).chunk(2, dim=-1)
        scale = F.softplus(raw_scale) + _MIN_POSTERIOR_SCALE
        return self._posterior_family(loc, scale, validate_args=False)

    def posterior_mode(self, x):
        """The mode of q(z|x): its location, for every family in ``POSTERIORS``.

        Equal to ``self.posterior(x).mode``, without computing the scale that the mode does
        not need (``transform`` is a forward pass and nothing more).
        """
        return self.encoder(x).chunk(2, dim=-1)[0]

    def decode(self, z):
        """p(x|z) as a distribution over each feature."""
        return self.likelihood(self.decoder(z))

    def elbo(self, x, noise, beta=1.0):
        """ELBO of each row of ``x``, ``E_q[log p(x|z)] - beta * KL(q(z|x) || p(z))``.

        ``noise`` holds uniform draws of shape ``(..., n_rows or 1, n_components)``; each draw
        is turned into one reparameterized z per row, and the result has the leading shape of
        ``noise`` without its last axis. The KL is the closed form when torch's registry has
        one for the (posterior, prior) pair, else log q(z|x) - log p(z) at the same z.
        """
        posterior = self.posterior(x)
        z = posterior.icdf(noise)
        log_likelihood = self.decode(z).log_prob(x).sum(-1)
        return log_likelihood - beta * self.kl(posterior, z).sum(-1)

    def kl(self, posterior, z):
        """KL(q(z|x) || p(z)) per latent dimension: closed form, or log q - log p at ``z``."""
        prior = self.prior()
        if self.analytic_kl:
            return kl_divergence(posterior, prior)
        return posterior.log_prob(z) - prior.log_prob(z)

    def log_importance_weights(self, x, noise):
        """``log p(x|z) + log p(z) - log q(z|x)`` at the z that ``noise`` gives for each row."""
        posterior = self.posterior(x)
        z = posterior.icdf(noise)
        log_joint = self.decode(z).log_prob(x).sum(-1) + self.prior().log_prob(z).sum(-1)
        return log_joint - posterior.log_prob(z).sum(-1)
