"""The torch module inside the estimators: an MLP encoder and decoder around a latent prior.

Its parts come from the family registries (``_families``) by name; nothing here depends on
which prior, posterior or likelihood a model uses.
"""

import math

import torch
from torch import nn

from ._families import LIKELIHOODS, POSTERIORS, PRIORS, standard_units, uniform

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


class EncoderInput(nn.Module):
    """What the encoder reads of rows x: each feature (after log1p for
    ``'log1p-standardized'``) minus ``shift`` and divided by ``scale``, or x itself for
    ``'raw'``, with each missing value (NaN) read as its feature's mean (``fill``); with
    ``missing_indicator``, followed by the row's mask of missing values (1 where missing).

    The mask is what lets the encoder learn from the holes: with the fill alone, on
    scikit-learn's tables with values hidden at random, imputation errors were 2 to 6% higher
    (``docs/user_guide.rst``, "Real tables"); a learned fill did no better than the mean.
    """

    def __init__(self, n_features, kind, missing_indicator=False):
        super().__init__()
        self.kind, self.log1p = kind, kind == "log1p-standardized"
        self.missing_indicator = missing_indicator
        self.n_outputs = 2 * n_features if missing_indicator else n_features
        self.register_buffer("shift", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.register_buffer("fill", torch.zeros(n_features))

    @torch.no_grad()
    def reset_parameters(self, mean, std):
        if self.kind != "raw":
            self.shift.copy_(mean)
            self.scale.copy_(standard_units(mean, std))
        self.fill.copy_((mean - self.shift) / self.scale)

    def forward(self, x):
        missing = torch.isnan(x)
        if self.log1p:  # counts: a value below 0 (transform reads any) reads as 0
            x = torch.log1p(x.clamp_min(0))
        x = torch.where(missing, self.fill, (x - self.shift) / self.scale)
        return torch.cat([x, missing.to(x.dtype)], dim=-1) if self.missing_indicator else x


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
    encoder_input : {'standardized', 'log1p-standardized', 'raw'}
        What the encoder reads of the data (the likelihood's ``encoder_input``; see
        :class:`EncoderInput`, the ``input`` submodule): standardized features, after log1p
        for ``'log1p-standardized'``, or the data as they are. A missing value (NaN) reads
        as its feature's mean.
    missing_indicator : bool
        Whether the encoder also reads each row's mask of missing values: set when the
        training data have missing values.
    prior_params, posterior_params : dict
        Values of the prior's and the posterior's hyper-parameters (their families'
        ``params``), kept as buffers named ``prior_<name>`` and ``posterior_<name>``.
    prior_scale : float or 'learned'
        The scale of the prior of every latent coordinate (a buffer ``prior_scale``), or
        ``'learned'``: one scale per coordinate, a parameter of the model (its log, the
        parameter ``prior_log_scale``, starts at 0) trained with the rest on the ELBO.
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
        encoder_input="raw",
        missing_indicator=False,
        prior_scale=1.0,
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
            "encoder_input": encoder_input,
            "missing_indicator": missing_indicator,
            "prior_scale": prior_scale,
        }
        self.posterior_family = POSTERIORS[posterior]
        self.prior_family = PRIORS[prior]
        n_encoder_outputs = self.posterior_family.n_outputs * n_components
        self.input = EncoderInput(n_features, encoder_input, missing_indicator)
        self.encoder = _mlp(
            [self.input.n_outputs, *hidden, n_encoder_outputs], activation, generator
        )
        self.decoder = _mlp([n_components, *hidden[::-1], n_features], activation, generator)
        self.likelihood = LIKELIHOODS[likelihood](n_features)
        self.register_buffer("prior_loc", torch.zeros(n_components))
        if prior_scale == "learned":
            self.prior_log_scale = nn.Parameter(torch.zeros(n_components))
        else:
            self.register_buffer("prior_scale", torch.full((n_components,), float(prior_scale)))
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

    def reset_input(self, mean, std):
        """Standardize what the encoder reads with the training data's per-feature ``mean``
        and ``std`` (of log1p of the data for ``'log1p-standardized'``)."""
        self.input.reset_parameters(mean, std)

    @property
    def encoder_log1p(self):
        return self.input.log1p

    def encode(self, x):
        """The encoder's output for rows ``x``, which may hold NaN for missing values."""
        return self.encoder(self.input(x))

    def prior_scales(self):
        """The scale of the prior of each latent coordinate, fixed or learned."""
        if self.architecture["prior_scale"] == "learned":
            return self.prior_log_scale.exp()
        return self.prior_scale

    def prior(self):
        params = self._params("prior", self.prior_family)
        return self.prior_family(self.prior_loc, self.prior_scales(), **params)

    def posterior(self, x):
        return self.posterior_family(
            self.encode(x), **self._params("posterior", self.posterior_family)
        )

    def code(self, x):
        """The deterministic code of each row: what ``transform`` returns (for a
        location-scale posterior, its location, which is its mode)."""
        params = self._params("posterior", self.posterior_family)
        return self.posterior_family.code(self.encode(x), **params)

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
        posterior, z, p_x, log_likelihood = self._reconstruct(x, noise)
        return log_likelihood - beta * self.kl(posterior, z).sum(-1)

    def importance_weighted_bound(self, x, noise, beta=1.0):
        """The k-sample importance-weighted bound of each row of ``x`` (Burda et al., 2016),
        ``log (1/k) sum_k p(x|z_k) (p(z_k) / q(z_k|x))^beta``, with the k draws z_k that
        ``noise`` (shape ``(k, n_rows, noise_width)``) gives. At ``beta=1`` it is the IWAE
        bound, which tightens towards log p(x) as k grows; with ``beta`` the prior-to-
        posterior ratio is weighted as the KL term is in the beta-ELBO. No closed-form KL
        enters: the bound needs the densities at each draw."""
        log_w = self._importance_weighted(x, noise, beta)[0]
        return torch.logsumexp(log_w, dim=0) - math.log(noise.shape[0])

    def posterior_sample(self, x, noise):
        """q(z|x) and the reparameterized z that ``noise`` gives for each row."""
        posterior = self.posterior(x)
        params = self._params("posterior", self.posterior_family)
        return posterior, self.posterior_family.rsample(posterior, noise, **params)

    def _reconstruct(self, x, noise):
        """q(z|x), the z that ``noise`` gives for each row, p(x|z), and ``log p(x_o|z)``: the
        log-likelihood of the observed entries of x (NaN marks a missing one), as in MIWAE
        (Mattei and Frellsen, 2019)."""
        posterior, z = self.posterior_sample(x, noise)
        h = self.posterior_family.decoder_input(
            z, **self._params("posterior", self.posterior_family)
        )
        p_x = self.decode(h)
        observed = ~torch.isnan(x)
        # A hole is scored at the decoder's mean, a value inside any likelihood's support,
        # so that its masked-out term has a finite gradient (0 * inf would be NaN).
        log_p = p_x.log_prob(torch.where(observed, x, p_x.mean.detach()))
        return posterior, z, p_x, torch.where(observed, log_p, 0.0).sum(-1)

    def kl(self, posterior, z):
        """KL(q(z|x) || p(z)) per latent dimension: closed form, or log q - log p at ``z``."""
        params = self._params("posterior", self.posterior_family)
        return self.posterior_family.kl(
            posterior, self.prior(), z, closed_form=self.analytic_kl, **params
        )

    def log_importance_weights(self, x, noise):
        """``log p(x_o|z) + log p(z) - log q(z|x_o)`` at the z that ``noise`` gives for each
        row (``x_o``: its observed entries)."""
        return self._importance_weighted(x, noise)[0]

    def _importance_weighted(self, x, noise, beta=1.0):
        """The log-weights ``log p(x_o|z) + beta (log p(z) - log q(z|x_o))``, the draws z and
        p(x|z) of the importance sample of each row."""
        posterior, z, p_x, log_likelihood = self._reconstruct(x, noise)
        params = self._params("posterior", self.posterior_family)
        log_prior, log_posterior = self.posterior_family.log_densities(
            posterior, self.prior(), z, **params
        )
        return log_likelihood + beta * log_prior - beta * log_posterior, z, p_x

    def impute(self, x, noise, generator=None):
        """Each row of ``x`` with its NaN replaced, from the draws of z that ``noise`` gives.

        Without ``generator``, MIWAE's estimate of E[x_m | x_o]: the means of p(x_m|z_k)
        averaged with self-normalized importance weights. With it, one draw of x_m from the
        same importance sample (sampling importance resampling): a z_k drawn by weight, then
        x_m from p(x_m|z_k).
        """
        log_w, z, p_x = self._importance_weighted(x, noise)
        if generator is None:
            weights = torch.softmax(log_w, dim=0).unsqueeze(-1)
            filled = (weights * p_x.mean).sum(0)
        else:
            u = uniform((x.shape[0], 1), generator, device=x.device, dtype=x.dtype)
            cumulative = torch.softmax(log_w, dim=0).T.cumsum(-1)  # (rows, draws)
            k = torch.searchsorted(cumulative, u * cumulative[:, -1:]).clamp(
                max=log_w.shape[0] - 1
            )
            chosen = z[k.squeeze(-1), torch.arange(x.shape[0], device=x.device)]  # a z a row
            params = self._params("posterior", self.posterior_family)
            h = self.posterior_family.decoder_input(chosen, **params)
            filled = self.likelihood.sample(self.decode(h), generator)
        return torch.where(torch.isnan(x), filled, x)

    def sample(self, n_samples, generator):
        """``n_samples`` rows of the generative model: codes from the prior, then x from
        p(x|h)."""
        params = self._params("posterior", self.posterior_family)
        h = self.posterior_family.prior_codes(
            self.prior_family, self.prior(), n_samples, generator, **params
        )
        return self.likelihood.sample(self.decode(h), generator)
