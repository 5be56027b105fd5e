"""The KL terms: torch's closed forms against Monte Carlo, and skvae's Monte Carlo fallback
against quadrature values."""

import math

import pytest
import torch
from scipy import stats
from torch.distributions import Cauchy, Laplace, Normal, kl_divergence

from skvae._distributions import StudentT, check_kl_finite, kl_is_closed_form, sample, uniform

SHAPES = [(), (3,), (2, 4)]


def _params(shape, generator):
    loc = torch.randn(shape, generator=generator, dtype=torch.float64)
    scale = 0.3 + torch.rand(shape, generator=generator, dtype=torch.float64)
    return loc, scale


def _monte_carlo_kl(q, p, n_draws, generator):
    z = sample(q, (n_draws,), generator)
    log_ratio = q.log_prob(z) - p.log_prob(z)
    return log_ratio.mean(0), log_ratio.std(0) / math.sqrt(n_draws)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(
    "q_family, p_family",
    [(Normal, Normal), (Normal, Laplace), (Laplace, Laplace), (Cauchy, Cauchy)],
)
def test_registered_closed_forms_match_monte_carlo(q_family, p_family, shape):
    generator = torch.Generator().manual_seed(0)
    q, p = q_family(*_params(shape, generator)), p_family(*_params(shape, generator))
    assert kl_is_closed_form(q, p)
    estimate, stderr = _monte_carlo_kl(q, p, 400_000, generator)
    closed_form = kl_divergence(q, p)
    assert closed_form.shape == torch.Size(shape)
    assert (closed_form - estimate).abs().le(5 * stderr + 1e-3).all()


# KL(q || Cauchy(0, 1)) by quadrature, from the issue.
QUADRATURE = [((0.0, 1.0), 0.25924), ((0.0, 0.1), 2.03823), ((2.0, 0.5), 2.00012)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("params, expected", QUADRATURE)
def test_monte_carlo_fallback_matches_quadrature(params, expected, shape):
    generator = torch.Generator().manual_seed(1)
    q = Normal(torch.full(shape, params[0]), torch.full(shape, params[1]))
    p = Cauchy(torch.zeros(shape), torch.ones(shape))
    assert not kl_is_closed_form(q, p)
    estimate, stderr = _monte_carlo_kl(q, p, 400_000, generator)
    assert (estimate - expected).abs().le(5 * stderr + 1e-3).all()


@pytest.mark.parametrize("prior", [Normal(0.0, 1.0), Laplace(0.0, 1.0)])
def test_cauchy_posterior_has_infinite_kl_to_light_tailed_priors(prior):
    q = Cauchy(torch.zeros(3), torch.ones(3))
    assert torch.isinf(kl_divergence(q, prior)).all()


def test_check_kl_finite_names_the_pair():
    check_kl_finite("normal", "cauchy")
    check_kl_finite("cauchy", "student-t", df=3.0)
    with pytest.raises(ValueError, match="posterior='cauchy' with prior='laplace'"):
        check_kl_finite("cauchy", "laplace")


@pytest.mark.parametrize(
    "distribution, reference",
    [
        (Normal(1.0, 2.0), stats.norm(1.0, 2.0)),
        (Cauchy(-1.0, 0.5), stats.cauchy(-1.0, 0.5)),
        (Laplace(0.0, 3.0), stats.laplace(0.0, 3.0)),
        (StudentT(3.0, 0.5, 2.0), stats.t(3.0, 0.5, 2.0)),
    ],
    ids=["normal", "cauchy", "laplace", "student-t"],
)
def test_generator_sampling_follows_the_distribution(distribution, reference):
    generator = torch.Generator().manual_seed(0)
    draws = sample(distribution, (20_000,), generator).double().numpy()
    assert stats.kstest(draws, reference.cdf).pvalue > 1e-3
    assert torch.equal(
        sample(distribution, (5,), torch.Generator().manual_seed(3)),
        sample(distribution, (5,), torch.Generator().manual_seed(3)),
    )


def test_uniform_noise_is_inside_the_open_interval():
    noise = uniform((100_000,), torch.Generator().manual_seed(0))
    assert noise.min() > 0 and noise.max() < 1
    assert torch.isfinite(Normal(0.0, 1.0).icdf(noise)).all()
    assert torch.isfinite(Cauchy(0.0, 1.0).icdf(noise)).all()
