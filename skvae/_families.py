"""The families of the model, each registered once by name: priors p(z), posteriors q(z|x)
and likelihoods p(x|z).

Everything else reads what it needs from these registries: the estimators' parameter options
and checks, the torch module's parts and buffers, persistence and sampling. Adding a family is
one registration here (and its line in the docs); ``docs/contributing.rst`` has a worked
example.

- A **prior** is a :class:`Prior`: a factory of the distribution of each latent coordinate
  from its location, scale and the family's hyper-parameters (``params``, with defaults;
  Student-t's ``df`` is set by SparseVAE's ``df``).
- A **posterior** is a :class:`Posterior`: how the encoder's outputs become q(z|x), the
  deterministic code that ``transform`` returns, a reparameterized draw from uniform
  noise, and the KL term; its hyper-parameters come from ``posterior_params``.
- A **likelihood** is a :class:`Likelihood` head registered with
  :func:`register_likelihood`: it
  turns the decoder's output into p(x|z), and says which data it models (``support``,
  ``integer_valued``, ``check_data``), what the encoder reads of them (``encoder_input``:
  standardized, log1p then standardized, or raw), how to start from the data's mean and spread
  (``reset_parameters``) and how to draw from p(x|z) with an explicit generator (``sample``).

The KL term of the ELBO is found through ``torch.distributions.kl_divergence`` when a closed
form is registered for the (posterior, prior) pair, and is a Monte Carlo estimate (log q - log
p at the sampled z) otherwise. Pairs whose KL is infinite are registered here on skvae's own
subclasses, so that torch's dispatch keeps them inside skvae: ``import skvae`` leaves
``kl_divergence`` on torch's own classes as it was.

Sampling draws uniform noise from an explicit ``torch.Generator`` and pushes it through the
inverse CDF. ``Distribution.rsample`` would use torch's global generator, which an estimator
must neither depend on nor advance.
"""

import math
from collections.abc import Callable, Set
from dataclasses import dataclass, field
from numbers import Real

import numpy as np
import torch
from scipy import special
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn
from torch.distributions import (
    Bernoulli,
    Chi2,
    Distribution,
    Laplace,
    NegativeBinomial,
    Normal,
    Poisson,
    kl_divergence,
    register_kl,
)
from torch.distributions import Cauchy as _Cauchy
from torch.distributions import StudentT as _StudentT
from torch.distributions.utils import broadcast_all, lazy_property
from torch.nn import functional as F


def uniform(shape, generator, device=None, dtype=torch.float32):
    """Uniform noise on the open interval (eps, 1 - eps), safe to push through an icdf."""
    eps = torch.finfo(dtype).eps
    noise = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return noise.clamp_(eps, 1 - eps)


def _inverse_cdf_sample(distribution, sample_shape, generator):
    """Draw by the inverse CDF: reparameterized in the location and scale."""
    shape = torch.Size(sample_shape) + distribution.batch_shape + distribution.event_shape
    loc = distribution.loc
    return distribution.icdf(uniform(shape, generator, device=loc.device, dtype=loc.dtype))


def _registered(kind, name):
    try:
        return _REGISTRIES[kind][name]
    except KeyError:
        raise ValueError(
            f"The {kind} family {name!r} is not registered here; register it (as where the "
            "model was fitted) before loading the model."
        ) from None


_REGISTRIES = {}


class _Family:
    """A registered family pickles as its name: a fitted module refers to it, and the
    factories of some families are lambdas, which pickle cannot store."""

    kind = None

    def __reduce__(self):
        return _registered, (self.kind, self.name)


class _Registry(dict):
    """Families of one kind, by name, in the order they were registered."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        _REGISTRIES[kind] = self

    def register(self, family):
        """Add ``family`` under its ``name``, which must be new; returns the family."""
        if family.name in self:
            raise ValueError(f"A {self.kind} named {family.name!r} is registered already.")
        self[family.name] = family
        return family

    def constraint(self, where=None):
        """scikit-learn's ``StrOptions`` over the registered names (of the families ``where``
        accepts), read when a parameter is validated: a family registered after
        ``import skvae`` is accepted like the others."""
        return StrOptions(_Names(self, where))


class _Names(Set):
    """A live view of the names in a registry, in the order of registration."""

    def __init__(self, registry, where=None):
        self._registry, self._where = registry, where

    def _names(self):
        where = self._where
        return [name for name, family in self._registry.items() if where is None or where(family)]

    def __contains__(self, name):
        return name in self._names()

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        return len(self._names())

    @classmethod
    def _from_iterable(cls, iterable):
        return set(iterable)


# -- distributions torch lacks, or lacks a part of ---------------------------------------------


class Cauchy(_Cauchy):
    """torch's Cauchy, as skvae's own class: the infinite KL pairs below are registered on it,
    so that they do not change ``kl_divergence`` for torch's Cauchy outside skvae."""


class StudentT(_StudentT):
    """Student-t distribution with an inverse CDF, built without a host-to-device copy.

    torch's ``StudentT`` has no ``icdf``; it is needed to draw prior samples with an explicit
    generator. It goes through ``scipy.special.stdtrit`` and so carries no gradient, which the
    prior does not need.

    torch's constructor also builds the ``Chi2`` that only ``rsample`` uses, turning a Python
    0.5 into a tensor on the distribution's device: on a GPU that is a host-to-device copy in
    every training step, which a CUDA graph cannot capture. Here it is built on first use.
    """

    def __init__(self, df, loc=0.0, scale=1.0, validate_args=None):
        self.df, self.loc, self.scale = broadcast_all(df, loc, scale)
        Distribution.__init__(self, self.df.size(), validate_args=validate_args)

    @lazy_property
    def _chi2(self):
        return Chi2(self.df)

    def log_prob(self, value):
        # torch's normalizing constant takes lgamma(df / 2) - lgamma((df + 1) / 2) as the
        # difference of two numbers near 1e8 at df = 1e7, which float32 rounds away (0.92 nats
        # of log p(z) at df >= 1e7, and a negative KL); the asymptotic series of the
        # difference is exact to float32 from df / 2 = 50.
        y = (value - self.loc) / self.scale
        half = 0.5 * self.df
        series = 0.5 * half.log() - 1 / (8 * half) + 1 / (192 * half**3)
        exact = torch.lgamma(half + 0.5) - torch.lgamma(half)
        log_gamma_ratio = torch.where(half > 50, series, exact)  # lgamma((df + 1) / 2) - ...
        log_normalizer = (
            self.scale.log() + 0.5 * self.df.log() + 0.5 * math.log(math.pi) - log_gamma_ratio
        )
        return -0.5 * (self.df + 1.0) * torch.log1p(y**2 / self.df) - log_normalizer

    def icdf(self, value):
        quantile = special.stdtrit(self.df.detach().cpu().numpy(), value.detach().cpu().numpy())
        quantile = torch.as_tensor(quantile, dtype=value.dtype, device=value.device)
        return self.loc + self.scale * quantile


@register_kl(Cauchy, Normal)
@register_kl(Cauchy, Laplace)
def _kl_cauchy_light_tailed(p, q):
    # A Cauchy has no finite mean, so E_p[-log q(z)], quadratic (Normal) or linear (Laplace)
    # in |z|, diverges. Registering the infinite value keeps a Monte Carlo fallback from
    # silently reporting a finite number for a divergent KL.
    shape = torch.broadcast_shapes(p.batch_shape, q.batch_shape)
    return torch.full(shape, math.inf, dtype=p.loc.dtype, device=p.loc.device)


def kl_is_closed_form(posterior, prior):
    """Whether torch's KL registry has a closed form for ``KL(posterior || prior)``."""
    try:
        kl_divergence(posterior, prior)
    except NotImplementedError:
        return False
    return True


# -- priors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prior(_Family):
    """A prior family: ``make(loc, scale, **params)`` is the law of each latent coordinate.

    ``params`` maps each hyper-parameter of the family to its default (Student-t:
    ``{"df": 3.0}``), and ``constraints`` any of them to a scikit-learn constraint that its
    value must satisfy; the estimator sets it (SparseVAE's ``df``), and the fitted module
    keeps its value as a buffer named ``prior_<param>``. ``in_sparse_vae`` says whether
    :class:`~skvae.SparseVAE` offers the family.
    """

    kind = "prior"
    name: str
    make: Callable[..., Distribution]
    in_sparse_vae: bool = True
    params: dict = field(default_factory=dict)
    constraints: dict = field(default_factory=dict)

    def __call__(self, loc, scale, **params):
        return self.make(loc, scale, **params)

    def sample(self, distribution, sample_shape, generator):
        return _inverse_cdf_sample(distribution, sample_shape, generator)


# The constraint of a scale or a degrees-of-freedom parameter.
POSITIVE = Interval(Real, 0, None, closed="neither")

PRIORS = _Registry("prior")
PRIORS.register(
    Prior(
        "normal", lambda loc, scale: Normal(loc, scale, validate_args=False), in_sparse_vae=False
    )
)
PRIORS.register(Prior("cauchy", lambda loc, scale: Cauchy(loc, scale, validate_args=False)))
PRIORS.register(Prior("laplace", lambda loc, scale: Laplace(loc, scale, validate_args=False)))
PRIORS.register(
    Prior(
        "student-t",
        lambda loc, scale, df: StudentT(df, loc, scale, validate_args=False),
        params={"df": 3.0},
        constraints={"df": POSITIVE},
    )
)


# -- posteriors ---------------------------------------------------------------------------------

# Smallest posterior scale: keeps log q(z|x) finite when the encoder saturates.
MIN_POSTERIOR_SCALE = 1e-6


@dataclass(frozen=True)
class Posterior(_Family):
    """A posterior family q(z|x), built from the encoder's output for x.

    The base class is a location-scale family: ``n_outputs=2`` encoder outputs per latent
    dimension (a location and a raw scale, in two blocks), one uniform draw per dimension
    (``n_noise``) for a reparameterized z, and the location (the mode) as the code that
    ``transform`` returns. A family of another form overrides ``__call__``, ``code``,
    ``rsample`` and, where its KL is not torch's closed form or ``log q - log p`` at z,
    ``kl``; each receives the family's hyper-parameters (``params``: name -> default, set by
    the estimators' ``posterior_params``, each satisfying its entry of ``constraints``) as
    keyword arguments.

    ``has_mean`` is False for a family without a mean (Cauchy): its codes, pushed through a
    decoder that grows without bound, have an expected log-likelihood of -inf, so the
    estimators ask for a bounded decoder.
    """

    kind = "posterior"
    name: str
    distribution: type
    has_mean: bool = True
    n_outputs: int = 2
    n_noise: int = 1
    params: dict = field(default_factory=dict)
    constraints: dict = field(default_factory=dict)

    def __call__(self, output, **params):
        """q(z|x) from the encoder's output for x."""
        loc, raw_scale = output.chunk(2, dim=-1)
        scale = F.softplus(raw_scale) + MIN_POSTERIOR_SCALE
        return self.distribution(loc, scale, validate_args=False)

    def code(self, output, **params):
        """The code ``transform`` returns, from the encoder's output: the posterior's location
        (its mode), without computing the scale that the mode does not need."""
        return output.chunk(2, dim=-1)[0]

    def rsample(self, distribution, noise, **params):
        """The z that uniform ``noise`` gives, differentiable in the posterior's parameters."""
        return distribution.icdf(noise)

    def decoder_input(self, z, **params):
        """What the decoder reads of a latent z: z itself, for a family that changes nothing in
        the generative model (a thresholded family decodes a map of z; see
        :class:`ThresholdedPosterior`)."""
        return z

    def kl_is_closed_form(self, distribution, prior):
        """Whether ``kl`` is exact (no sample axis) for this family against ``prior``: where
        torch's KL registry has a closed form for the pair. Decided once per model."""
        return kl_is_closed_form(distribution, prior)

    def kl(self, distribution, prior, z, *, closed_form, **params):
        """KL(q(z|x) || p(z)) per latent dimension: torch's closed form where it registers
        one (``closed_form``), else the Monte Carlo estimate log q(z|x) - log p(z) at ``z``."""
        if closed_form:
            return kl_divergence(distribution, prior)
        return distribution.log_prob(z) - prior.log_prob(z)

    def log_densities(self, distribution, prior, z, **params):
        """``log p(z)`` and ``log q(z|x)``, each summed over the latent dimensions: with
        ``log p(x|z)``, the importance weight of ``z`` in the estimate of log p(x)."""
        return prior.log_prob(z).sum(-1), distribution.log_prob(z).sum(-1)

    def prior_codes(self, prior_family, prior, n_samples, generator, **params):
        """The codes the decoder reads for ``n_samples`` draws of the generative model."""
        z = prior_family.sample(prior, (n_samples,), generator)
        return self.decoder_input(z, **params)


def soft_threshold(z, threshold):
    """``sign(z) * max(|z| - threshold, 0)``: exactly 0 where ``|z| <= threshold``."""
    return torch.sign(z) * F.relu(z.abs() - threshold)


@dataclass(frozen=True)
class ThresholdedPosterior(Posterior):
    """A location-scale posterior whose model decodes soft-thresholded codes.

    Registered twice: ``'thresholded'`` with a normal posterior over z and
    ``'thresholded-laplace'`` with a Laplace one; both decode the same model.

    The generative model is z ~ p(z), h = S(z) = sign(z) max(|z| - threshold, 0), x ~
    p(x | decoder(h)): the threshold is part of the decoder, so the ELBO over z, with the KL
    of q(z|x) to the prior as for any posterior, bounds the log-likelihood of this model, and
    ``sample`` decodes S(z) of prior draws. The prior puts mass P(|z| <= threshold) on h = 0.
    ``transform`` returns S(location), the median of q(h|x), which is exactly 0 wherever the
    location lies within the threshold.

    In training the threshold passes gradients straight through (Fallah and Rozell, 2022):
    the forward pass, and so the training loss, is that of the model above, but the
    gradient with respect to z is the identity, so that codes inside the dead zone still
    learn. Scoring computes the same forward pass, without gradients.
    """

    params: dict = field(default_factory=lambda: {"threshold": 0.5})
    constraints: dict = field(
        default_factory=lambda: {"threshold": Interval(Real, 0, None, closed="left")}
    )

    def code(self, output, threshold):
        # + 0.0 turns the -0.0 of negative locations inside the dead zone into 0.0, which is
        # what a printed code or a DataFrame should show.
        return soft_threshold(super().code(output), threshold) + 0.0

    def decoder_input(self, z, threshold):
        h = soft_threshold(z, threshold)
        if torch.is_grad_enabled():
            return h.detach() + (z - z.detach())  # exactly the value of h, the gradient of z
        return h


class _GatedSlab:
    """q(s, y | x) of a spike-and-slab posterior: a gate s ~ Bernoulli(sigmoid(gate_logit))
    and a slab y ~ ``slab`` for each latent dimension."""

    def __init__(self, slab, gate_logit):
        self.slab, self.gate_logit = slab, gate_logit

    @property
    def loc(self):
        return self.slab.loc


@dataclass(frozen=True)
class SpikeAndSlabPosterior(Posterior):
    """Spike-and-slab codes h = s y: a gate s (on with prior probability ``sparsity``) and a
    slab value y from the prior (Tonolini, Jensen and Murray-Smith, UAI 2019).

    The generative model is y ~ p(y) (the estimator's prior), s ~ Bernoulli(sparsity),
    x ~ p(x | decoder(s y)), so that the prior of a code has an atom of mass 1 - sparsity at
    0. The posterior is q(s = 1 | x) = gamma(x) with y ~ N(mu(x), sigma(x)) when on, and y
    from the prior when off (where x does not depend on it). Its KL to the model's prior is
    KL(Bernoulli(gamma) || Bernoulli(sparsity)) + gamma KL(N(mu, sigma) || p(y)) per
    dimension, torch's closed form for the slab where it has one, else Monte Carlo. The
    encoder gives mu, a raw sigma and the gate's logit (three outputs per dimension); a z
    takes two uniform draws per dimension, one for y and one for s, and is returned as
    ``[y, s]``. Scoring and sampling use hard gates, so ``score`` is an unbiased estimate of
    this model's ELBO; training passes the gate's gradient straight through a logistic
    relaxation at temperature 0.5 (its forward value is the hard gate). ``transform``
    returns mu where gamma > 1/2 and exactly 0 elsewhere (the mode of the gate).
    """

    n_outputs: int = 3
    n_noise: int = 2
    params: dict = field(default_factory=lambda: {"sparsity": 0.5})
    constraints: dict = field(
        default_factory=lambda: {"sparsity": Interval(Real, 0, 1, closed="neither")}
    )
    temperature: float = 0.5

    def __call__(self, output, sparsity):
        loc, raw_scale, gate_logit = output.chunk(3, dim=-1)
        scale = F.softplus(raw_scale) + MIN_POSTERIOR_SCALE
        return _GatedSlab(Normal(loc, scale, validate_args=False), gate_logit)

    def code(self, output, sparsity):
        loc, _, gate_logit = output.chunk(3, dim=-1)
        return torch.where(gate_logit > 0, loc, torch.zeros_like(loc))

    def rsample(self, distribution, noise, sparsity):
        slab_noise, gate_noise = noise.chunk(2, dim=-1)
        y = distribution.slab.icdf(slab_noise)
        margin = distribution.gate_logit - torch.logit(gate_noise)  # > 0: the gate is on
        s = (margin > 0).to(y.dtype)
        if torch.is_grad_enabled():
            relaxed = torch.sigmoid(margin / self.temperature)
            s = s + (relaxed - relaxed.detach())  # exactly the hard gate, the relaxed gradient
        return torch.cat([y, s], dim=-1)

    def decoder_input(self, z, sparsity):
        y, s = z.chunk(2, dim=-1)
        return y * s

    def kl(self, distribution, prior, z, *, closed_form, sparsity):
        gate = torch.sigmoid(distribution.gate_logit)
        log_on, log_off = (
            F.logsigmoid(distribution.gate_logit),
            F.logsigmoid(-distribution.gate_logit),
        )
        gate_kl = gate * (log_on - torch.log(sparsity)) + (1 - gate) * (
            log_off - torch.log1p(-sparsity)
        )
        if closed_form:
            slab_kl = kl_divergence(distribution.slab, prior)
        else:
            y = z.chunk(2, dim=-1)[0]
            slab_kl = distribution.slab.log_prob(y) - prior.log_prob(y)
        return gate_kl + gate * slab_kl

    def kl_is_closed_form(self, distribution, prior):
        return kl_is_closed_form(distribution.slab, prior)  # the gates' KL always is

    def log_densities(self, distribution, prior, z, sparsity):
        # Densities of (s, y) with respect to the same measure for both: where the gate is
        # off, y is the prior's under p and q alike, and its density cancels from the ratio.
        y, s = z.chunk(2, dim=-1)
        on = s > 0
        log_prior = torch.where(
            on, torch.log(sparsity) + prior.log_prob(y), torch.log1p(-sparsity)
        )
        log_posterior = torch.where(
            on,
            F.logsigmoid(distribution.gate_logit) + distribution.slab.log_prob(y),
            F.logsigmoid(-distribution.gate_logit),
        )
        return log_prior.sum(-1), log_posterior.sum(-1)

    def prior_codes(self, prior_family, prior, n_samples, generator, sparsity):
        y = prior_family.sample(prior, (n_samples,), generator)
        on = uniform(y.shape, generator, device=y.device, dtype=y.dtype) < sparsity
        return y * on


POSTERIORS = _Registry("posterior")
POSTERIORS.register(Posterior("normal", Normal))
POSTERIORS.register(Posterior("cauchy", Cauchy, has_mean=False))
POSTERIORS.register(ThresholdedPosterior("thresholded", Normal))
# The same model with a Laplace posterior over z: against the Laplace prior it can equal the
# prior exactly (an unused dimension costs no KL), and a dimension in use costs more than
# with a normal posterior, so a model keeps fewer of them (docs/experiments.rst).
POSTERIORS.register(ThresholdedPosterior("thresholded-laplace", Laplace))
POSTERIORS.register(SpikeAndSlabPosterior("spike-and-slab", Normal))


def check_kl_finite(posterior, prior, prior_params, posterior_params):
    """Raise ValueError if ``KL(posterior || prior)`` is known to be infinite."""
    one = torch.ones(1)
    family = POSTERIORS[posterior]
    q = family(torch.zeros(1, family.n_outputs), **_as_tensors(posterior_params, one))
    p = PRIORS[prior](torch.zeros(1), one, **_as_tensors(prior_params, one))
    if kl_is_closed_form(q, p) and not torch.isfinite(kl_divergence(q, p)).all():
        heavier = (  # GaussianVAE's prior is the normal one; SparseVAE offers the others
            "SparseVAE(prior='cauchy'), whose heavy-tailed prior has a finite KL from it"
            if prior == "normal"
            else "a heavy-tailed prior such as 'cauchy'"
        )
        raise ValueError(
            f"posterior={posterior!r} with prior={prior!r} has an infinite KL divergence "
            f"(a {posterior} posterior has heavier tails than the {prior} prior), so the ELBO "
            f"is -inf; use posterior='normal', or {heavier}."
        )


def _as_tensors(params, like):
    return {name: float(value) * like for name, value in params.items()}


# -- likelihoods --------------------------------------------------------------------------------

LIKELIHOODS = _Registry("likelihood")


def register_likelihood(name):
    """Class decorator: register an ``nn.Module`` likelihood head under ``name``."""

    def register(head):
        if name in LIKELIHOODS:
            raise ValueError(f"A likelihood named {name!r} is registered already.")
        head.name = name
        return LIKELIHOODS.register(head)

    return register


class Likelihood(nn.Module):
    """Base of the likelihood heads: p(x|z) over ``n_features`` features from the decoder's
    output. A head declares the data it models (``support``, ``integer_valued``,
    ``check_data``) and what the encoder reads of it (``encoder_input``), starts from the
    data (``reset_parameters``), maps the decoder's output to p(x|z) (``forward``) and draws
    from it with an explicit generator (``sample``)."""

    #: Interval the data must lie in, and whether it must hold integers (see ``check_data``).
    support = (-math.inf, math.inf)
    integer_valued = False
    #: What the encoder reads of the data: ``'standardized'`` (each feature centred and
    #: divided by its standard deviation, as StandardScaler does), ``'log1p-standardized'``
    #: (the same after log1p, as scvi-tools does for counts) or ``'raw'``.
    encoder_input = "standardized"

    def __init__(self, n_features):
        super().__init__()

    @staticmethod
    def check_data(values):
        """Raise a ValueError that names the fix if ``values`` (the observed ones: NaN are
        holes) are not data of this family."""


def shown(value):
    """A float as the shortest text that reads back as it: ``1.0000001`` stays itself where
    ``.4g`` would show 1, and 0 shows as 0."""
    return np.format_float_positional(float(value), trim="-")


def _inverse_softplus(x):
    return x + torch.log(-torch.expm1(-x))


@register_likelihood("gaussian")
class GaussianLikelihood(Likelihood):
    """p(x|z) = N(mean + std * decoder(z), diag(scale^2)) with a learned per-feature scale.

    The decoder works in standardized units: ``loc_shift`` and ``loc_scale`` hold each
    feature's training mean and standard deviation (1 for a constant feature, as in
    StandardScaler), so that a column of incomes around 1e6 trains as well as one in [0, 1]
    while p(x|z), ``inverse_transform`` and ``sample`` stay on the data's own scale. The noise
    scale starts at each feature's standard deviation and is floored at ``min_scale`` (1e-3)
    times it: a feature that the decoder reproduces exactly (a constant pixel, say) would
    otherwise drive its scale, and the ELBO, to infinity.
    """

    def __init__(self, n_features):
        super().__init__(n_features)
        self.raw_scale = nn.Parameter(torch.zeros(n_features))
        self.register_buffer("min_scale", torch.ones(()))
        self.register_buffer("loc_shift", torch.zeros(n_features))
        self.register_buffer("loc_scale", torch.ones(n_features))

    @torch.no_grad()
    def reset_parameters(self, mean, std, output_bias):
        self.loc_shift.copy_(mean)
        self.loc_scale.copy_(standard_units(mean, std))
        self.min_scale.fill_(1e-3)
        self.raw_scale.fill_(_inverse_softplus(torch.tensor(1 - 1e-3)).item())
        output_bias.zero_()

    def forward(self, output):
        scale = self.min_scale + F.softplus(self.raw_scale)
        return _StandardizedNormal(self.loc_shift, self.loc_scale, output, scale)

    @staticmethod
    def sample(distribution, generator):
        return _inverse_cdf_sample(distribution, (), generator)


class _StandardizedNormal(Normal):
    """N(shift + unit * loc, (unit * scale)^2), whose log-density is computed on the
    standardized value (x - shift) / unit: torch's Normal squares x - loc and the scale in
    the data's units, which overflows float32 for a feature whose spread is above about 1e19
    and underflows for one below about 1e-19. The law, its mean and its draws are those of
    torch's Normal in the data's units."""

    def __init__(self, shift, unit, loc, scale):
        super().__init__(shift + unit * loc, unit * scale, validate_args=False)
        self.shift, self.unit = shift, unit
        self.standardized = Normal(loc, scale, validate_args=False)

    def log_prob(self, value):
        return self.standardized.log_prob((value - self.shift) / self.unit) - torch.log(self.unit)


def standard_units(mean, std):
    """Each feature's standard deviation as the unit to divide it by, and 1 for a constant
    feature, as StandardScaler does: one whose deviation is within float32 rounding of its
    mean (skvae computes in float32)."""
    tiny = torch.finfo(torch.float32).eps * mean.abs()
    return torch.where(std > tiny.clamp_min(torch.finfo(torch.float32).tiny), std, 1.0)


@register_likelihood("bernoulli")
class BernoulliLikelihood(Likelihood):
    """p(x|z) = Bernoulli(sigmoid(decoder(z))), for data in [0, 1] (binary or intensities)."""

    support = (0.0, 1.0)
    # Data in [0, 1] already suits the encoder; standardizing would multiply a pixel that is
    # almost always 0 by the inverse of its tiny spread.
    encoder_input = "raw"

    @staticmethod
    def check_data(values):
        low, high = np.nanmin(values, initial=np.inf), np.nanmax(values, initial=-np.inf)
        # As skvae computes, in float32: MinMaxScaler's 1 + 2.2e-16 is 1 there.
        if np.float32(low) < 0 or np.float32(high) > 1:
            raise ValueError(
                "likelihood='bernoulli' needs data in [0, 1], got values in "
                f"[{shown(low)}, {shown(high)}]; rescale it first, e.g. with "
                "MinMaxScaler(clip=True), which also keeps new data in range."
            )

    @torch.no_grad()
    def reset_parameters(self, mean, std, output_bias):
        output_bias.copy_(torch.logit(mean.clamp(1e-3, 1 - 1e-3)))

    def forward(self, output):
        return Bernoulli(logits=output, validate_args=False)

    @staticmethod
    def sample(distribution, generator):
        probs = distribution.probs
        noise = uniform(probs.shape, generator, device=probs.device, dtype=probs.dtype)
        return (noise < probs).to(probs.dtype)


# Largest log-rate the count likelihoods model: exp(30) ~ 1e13 counts (fit refuses larger
# counts). Beyond it the rate is held at the cap, its gradient passed straight through, so
# that a decoder output above the cap is still pulled back down.
_MAX_LOG_RATE = 30.0
MAX_RATE = math.exp(_MAX_LOG_RATE)


# Above this rate a Poisson law is a normal one to within its skewness, rate^-1/2 (2e-5), and
# torch's CUDA sampler returns a 32-bit unsigned count (4,294,967,295 at most).
_NORMAL_POISSON_RATE = 2.0**31


def poisson_draws(rate, generator):
    """Poisson draws of ``rate`` on its device, those above ``_NORMAL_POISSON_RATE`` from the
    normal approximation (rounded, in float64), which CUDA's sampler would cap at 2**32 - 1:
    counts model means up to ``MAX_RATE`` (1.1e13). Sampling only, outside any graph."""
    draws = torch.poisson(rate.clamp(max=_NORMAL_POISSON_RATE), generator=generator)
    large = rate > _NORMAL_POISSON_RATE
    if large.any():  # a sync on every call (sampling and imputing, never a captured step)
        rate64 = rate.double()
        normal = torch.randn(rate.shape, generator=generator, device=rate.device)
        approximate = (rate64 + rate64.sqrt() * normal.double()).round().clamp_min(0)
        draws = torch.where(large, approximate.to(draws.dtype), draws)
    return draws


def _capped_log_rate(output):
    """``output`` held at ``_MAX_LOG_RATE`` in value, with the gradient of ``output``. (Not
    ``output - (output - cap).detach()``, which float32 rounds to 0 for an output of 1e9.)"""
    return output.clamp(max=_MAX_LOG_RATE).detach() + (output - output.detach())


class _CountLikelihood(Likelihood):
    """A likelihood of counts (non-negative integers), its log-mean the decoder's output."""

    support = (0.0, math.inf)
    integer_valued = True
    encoder_input = "log1p-standardized"

    @classmethod
    def check_data(cls, values):
        bad = (values < 0) | (values != np.round(values))
        bad &= ~np.isnan(values)
        if not bad.any():
            return
        # As skvae computes, in float32: expm1(log1p(3)) = 2.9999999999999996 is 3 there.
        suspects = values[bad].astype(np.float32)
        suspects = values[bad][(suspects < 0) | (suspects != np.round(suspects))]
        if suspects.size:
            raise ValueError(
                f"likelihood={cls.name!r} needs counts (non-negative integers), got values "
                f"such as {shown(suspects[0])}. Model other data with another likelihood "
                "('gaussian' for real values), or round counts that were rescaled."
            )

    @torch.no_grad()
    def reset_parameters(self, mean, std, output_bias):
        output_bias.copy_(torch.log(mean.clamp_min(1e-3)))


class _Poisson(Poisson):
    """torch's Poisson, parametrized by its log-rate, its log-density computed in float64.

    In float32, ``x log(rate) - rate - lgamma(x + 1)`` subtracts numbers near 2e10 at a
    count of 1e9 (and near 1e8 at 1e7), which float32 holds to within thousands: the
    log-likelihood of such counts was off by 9 to 11 nats each. The terms are exact in
    float64 for the float32 log-rate, the decoder's output; the result, and its gradient,
    return in float32. (From the float32 rate instead, a rate below e^-103, 0 in float32,
    scored a count x > 0 as impossible: x log(0) = -inf.)
    """

    def __init__(self, log_rate):
        super().__init__(log_rate.exp(), validate_args=False)
        self.log_rate = log_rate

    def log_prob(self, value):
        log_rate, value64 = self.log_rate.double(), value.double()
        log_term = torch.where(value64 == 0, 0.0, value64 * log_rate)  # 0 log 0 = 0
        log_p = log_term - log_rate.exp() - torch.lgamma(value64 + 1)
        return log_p.to(self.rate.dtype)


class _NegativeBinomial(NegativeBinomial):
    """torch's negative binomial, its log-density computed in float64.

    ``lgamma(x + theta) - lgamma(x + 1)`` in float32 rounds ``x + theta`` to ``x`` above a
    count of 2**24 and takes the difference of two numbers near 2e10 at 1e9: the
    log-likelihood was off by about 0.07 nats a count at 1e5, 2 to 8 at 1e7 and 9 to 364 at
    1e9 (theta from 0.5 to 1e4), by an amount that grows with theta, so that a training
    loss seemed to rise as theta was learned. Computed in float64 from the float32
    parameters, returned in float32.
    """

    def log_prob(self, value):
        theta, logits, value64 = self.total_count.double(), self.logits.double(), value.double()
        log_p = (
            theta * F.logsigmoid(-logits)
            + value64 * F.logsigmoid(logits)
            + torch.lgamma(theta + value64)
            - torch.lgamma(value64 + 1)
            - torch.lgamma(theta)
        )
        return log_p.to(self.logits.dtype)


@register_likelihood("poisson")
class PoissonLikelihood(_CountLikelihood):
    """p(x|z) = Poisson(exp(decoder(z))), for counts such as bag-of-words."""

    def forward(self, output):
        return _Poisson(_capped_log_rate(output))

    @staticmethod
    def sample(distribution, generator):
        return poisson_draws(distribution.rate, generator)


@register_likelihood("negative-binomial")
class NegativeBinomialLikelihood(_CountLikelihood):
    """p(x|z) = NB(mean=exp(decoder(z)), inverse dispersion theta) with a learned theta.

    scvi-tools' parametrisation: variance ``mean + mean^2 / theta``, so overdispersed counts
    are fitted without inflating the mean; theta is learned per feature, starting at 1.
    """

    def __init__(self, n_features):
        super().__init__(n_features)
        self.raw_theta = nn.Parameter(torch.full((n_features,), _inverse_softplus(torch.ones(()))))

    def forward(self, output):
        theta = F.softplus(self.raw_theta) + 1e-4
        log_mean = _capped_log_rate(output)
        return _NegativeBinomial(theta, logits=log_mean - theta.log(), validate_args=False)

    @staticmethod
    def sample(distribution, generator):
        # A Gamma-Poisson mixture. torch's gamma sampler takes no generator, so the gamma
        # draw is NumPy's, seeded from ``generator``.
        mean, theta = distribution.mean, distribution.total_count.expand(distribution.batch_shape)
        seed = int(torch.randint(2**31 - 1, (), generator=generator, device=mean.device))
        rate = np.random.default_rng(seed).gamma(theta.cpu().numpy(), (mean / theta).cpu().numpy())
        rate = torch.as_tensor(rate, dtype=mean.dtype, device=mean.device)
        return poisson_draws(rate, generator)
