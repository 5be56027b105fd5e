"""Distributions picked by name: the prior p(z), the posterior q(z|x), the likelihood p(x|z).

Everything here is plain ``torch.distributions``. The KL term of the ELBO is found through
``kl_divergence`` when a closed form is registered for the (posterior, prior) pair, and is a
Monte Carlo estimate (log q - log p at the sampled z) otherwise; see :func:`kl_is_closed_form`.

Sampling goes through :func:`sample`, which draws uniform noise from an explicit
``torch.Generator`` and pushes it through the inverse CDF. ``Distribution.rsample`` would use
torch's global generator, which an estimator must neither depend on nor advance.
"""

import math

import numpy as np
import torch
from scipy import special
from torch.distributions import (
    Bernoulli,
    Cauchy,
    Chi2,
    Distribution,
    Laplace,
    NegativeBinomial,
    Normal,
    Poisson,
    kl_divergence,
    register_kl,
)
from torch.distributions import StudentT as _StudentT
from torch.distributions.utils import broadcast_all, lazy_property


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


def _normal_prior(loc, scale, df):
    return Normal(loc, scale, validate_args=False)


def _cauchy_prior(loc, scale, df):
    return Cauchy(loc, scale, validate_args=False)


def _laplace_prior(loc, scale, df):
    return Laplace(loc, scale, validate_args=False)


def _student_t_prior(loc, scale, df):
    return StudentT(df, loc, scale, validate_args=False)


#: prior name -> factory(loc, scale, df) of the distribution of each latent coordinate.
PRIORS = {
    "normal": _normal_prior,
    "cauchy": _cauchy_prior,
    "laplace": _laplace_prior,
    "student-t": _student_t_prior,
}

#: posterior name -> location-scale family of q(z|x).
POSTERIORS = {"normal": Normal, "cauchy": Cauchy}


def kl_is_closed_form(posterior, prior):
    """Whether torch's KL registry has a closed form for ``KL(posterior || prior)``."""
    try:
        kl_divergence(posterior, prior)
    except NotImplementedError:
        return False
    return True


def uniform(shape, generator, device=None, dtype=torch.float32):
    """Uniform noise on the open interval (eps, 1 - eps), safe to push through an icdf."""
    eps = torch.finfo(dtype).eps
    noise = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return noise.clamp_(eps, 1 - eps)


def sample(distribution, sample_shape, generator):
    """Draw ``sample_shape`` samples of ``distribution`` using ``generator``.

    The inverse-CDF transform keeps the draw differentiable in the distribution's
    parameters (a reparameterized sample) for the location-scale families used here.
    """
    shape = torch.Size(sample_shape) + distribution.batch_shape + distribution.event_shape
    if isinstance(distribution, NegativeBinomial):
        # A Gamma-Poisson mixture. torch's gamma sampler takes no generator, so the gamma
        # draw is NumPy's, seeded from ``generator``.
        mean, theta = distribution.mean, distribution.total_count.expand(distribution.batch_shape)
        seed = int(torch.randint(2**31 - 1, (), generator=generator, device=mean.device))
        rate = np.random.default_rng(seed).gamma(
            theta.cpu().numpy(), (mean / theta).cpu().numpy(), size=shape
        )
        rate = torch.as_tensor(rate, dtype=mean.dtype, device=mean.device)
        return torch.poisson(rate, generator=generator)
    if isinstance(distribution, Poisson):
        return torch.poisson(distribution.rate.expand(shape), generator=generator)
    if isinstance(distribution, Bernoulli):
        probs = distribution.probs
        noise = uniform(shape, generator, device=probs.device, dtype=probs.dtype)
        return (noise < probs).to(probs.dtype)
    loc = distribution.loc
    return distribution.icdf(uniform(shape, generator, device=loc.device, dtype=loc.dtype))


def check_kl_finite(posterior, prior, df=None):
    """Raise ValueError if ``KL(posterior || prior)`` is known to be infinite."""
    one = torch.ones(1)
    q = POSTERIORS[posterior](torch.zeros(1), one, validate_args=False)
    p = PRIORS[prior](torch.zeros(1), one, None if df is None else float(df) * one)
    if kl_is_closed_form(q, p) and not torch.isfinite(kl_divergence(q, p)).all():
        raise ValueError(
            f"posterior={posterior!r} with prior={prior!r} has an infinite KL divergence "
            f"(a {posterior} posterior has heavier tails than the {prior} prior), so the ELBO "
            "is -inf; use posterior='normal', or a heavy-tailed prior such as 'cauchy'."
        )
