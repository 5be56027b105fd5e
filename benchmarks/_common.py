"""What the benchmark scripts share: a VAE by prior name, seams to score a fit after each
epoch, a timer, the settings and environment they print, and their Markdown tables.

The scripts run as ``python benchmarks/bench_x.py``, which puts this folder on ``sys.path``,
so they import it as ``from _common import ...``.
"""

import argparse
import ast
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn

from skvae import GaussianVAE, SparseVAE
from skvae._families import POSTERIORS, PRIORS
from skvae._module import VAEModule


def parse_model(model):
    """``(prior, posterior, posterior_params)`` of a model named ``prior/posterior[:value]``,
    as the scripts' ``--models`` take them: ``value`` sets the family's first parameter
    ("cauchy/thresholded:0.5" is the Cauchy prior with ``{"threshold": 0.5}``). A name that
    is not registered, or a value for a family without parameters, raises a ValueError:
    scripts check their ``--models`` before they train (see :func:`model_list`)."""
    prior, _, posterior = model.partition("/")
    posterior, _, value = posterior.partition(":")
    if prior not in PRIORS:
        raise ValueError(f"unknown prior {prior!r} in model {model!r}; known: {', '.join(PRIORS)}")
    if posterior not in POSTERIORS:
        raise ValueError(
            f"unknown posterior {posterior!r} in model {model!r}; known: {', '.join(POSTERIORS)}"
        )
    name = next(iter(POSTERIORS[posterior].params), None)
    if value and name is None:
        raise ValueError(f"the posterior {posterior!r} has no parameter to set in {model!r}")
    try:
        params = {name: float(value)} if value else None
    except ValueError:
        raise ValueError(f"{value!r} in model {model!r} is not a number") from None
    return prior, posterior, params


def model_list(text):
    """The argparse type of ``--models``: comma-separated ``prior/posterior[:value]`` names,
    each checked by :func:`parse_model` (an error before any training, not hours into it)."""
    models = [model.strip() for model in text.split(",") if model.strip()]
    for model in models:
        try:
            parse_model(model)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return models


def positive_int(text):
    """The argparse type of a count (epochs, rows, seeds): an int of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text):
    """The argparse type of a seed or of an optional count (0: none): an int of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def warm_up():
    """Fit a tiny model once, untimed: the first fit of a process pays about a second of
    torch's start-up (its kernels and allocator), which would otherwise land in the first
    timed row."""
    X = torch.rand(64, 8, generator=torch.Generator().manual_seed(0)).numpy()
    GaussianVAE(2, hidden_layer_sizes=(8,), max_iter=1, tol=None, random_state=0).fit(X)
    SparseVAE(2, hidden_layer_sizes=(8,), max_iter=1, tol=None, random_state=0).fit(X)


def vae_param(text):
    """The argparse type of ``--vae-param``: ``NAME=VALUE``, the value a Python literal or a
    string."""
    name, _, value = text.partition("=")
    try:
        value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        pass
    return name, value


def add_vae_param_argument(parser, help):
    """``--vae-param NAME=VALUE`` (repeatable): VAE settings as ``args.vae_param``, a list of
    (name, value) pairs."""
    parser.add_argument(
        "--vae-param", type=vae_param, action="append", default=[], metavar="NAME=VALUE", help=help
    )


def pythae_encoder_decoder(n_features, hidden, n_components, activation):
    """pythae's encoder and decoder for an MLP VAE like skvae's (``hidden`` mirrored, a
    Bernoulli decoder), or None if pythae is not installed."""
    try:
        from pythae.models.base.base_utils import ModelOutput
        from pythae.models.nn import BaseDecoder, BaseEncoder
    except ImportError:
        return None
    from torch import nn

    def mlp(sizes):
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), activation()]
        return nn.Sequential(*layers[:-1])

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.net = mlp([n_features, *hidden, 2 * n_components])

        def forward(self, x):
            mu, log_var = self.net(x.reshape(len(x), -1)).chunk(2, dim=-1)
            return ModelOutput(embedding=mu, log_covariance=log_var)

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.net = mlp([n_components, *hidden[::-1], n_features])

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    return Encoder(), Decoder()


class JointMixture:
    """``sum_k pi_k prod_d p_k(z_d)`` for ``parts``, a distribution of batch shape
    ``(K, n_components)``. ``log_prob`` spreads the joint log-density evenly over the
    dimensions, so that its sum over the last axis, all that the ELBO and the importance
    weights read, is the joint one; per dimension it means nothing, nor does
    ``kl_per_dimension``'s split of the KL. It draws no samples: ``sample`` and
    ``--aggregate-mmd`` are not available with it."""

    def __init__(self, logits, parts):
        self.log_weights, self.parts = torch.log_softmax(logits, -1), parts

    def log_prob(self, z):
        joint = self.parts.log_prob(z.unsqueeze(-2)).sum(-1) + self.log_weights
        joint = torch.logsumexp(joint, -1)
        return (joint / z.shape[-1]).unsqueeze(-1).expand(z.shape)


class PriorMixtureModule(VAEModule):
    """The module with a mixture prior of ``n_parts`` products of its prior family, each
    with its own learned weight, location and scale in every dimension (scales start at
    ``exp(N(0, 0.5^2))`` draws from the module's generator, which breaks the parts'
    symmetry). The estimator's ``prior_scale`` is not used."""

    n_parts = 20
    learn_locations = True

    def __init__(self, *args, generator, **kwargs):
        super().__init__(*args, generator=generator, **kwargs)
        d = self.architecture["n_components"]
        self.mixture_logits = nn.Parameter(torch.zeros(self.n_parts))
        if self.learn_locations:
            self.mixture_loc = nn.Parameter(torch.zeros(self.n_parts, d))
        else:  # parts that differ in their scales only, all centred at 0
            self.register_buffer("mixture_loc", torch.zeros(self.n_parts, d))
        spread = 0.5 * torch.randn(self.n_parts, d, generator=generator)
        self.mixture_log_scale = nn.Parameter(spread)
        self.analytic_kl = False  # no closed form against a mixture

    def prior(self):
        if not hasattr(self, "mixture_logits"):  # VAEModule.__init__ asks for the plain one
            return super().prior()
        params = self._params("prior", self.prior_family)
        parts = self.prior_family(self.mixture_loc, self.mixture_log_scale.exp(), **params)
        return JointMixture(self.mixture_logits, parts)


def prior_mixture_seam(n_parts, learn_locations=True):
    """A seam for ``make_vae`` whose fits build :class:`PriorMixtureModule` of ``n_parts``."""
    attributes = {"n_parts": n_parts, "learn_locations": learn_locations}
    module = type("PriorMixtureModule", (PriorMixtureModule,), attributes)
    return type("PriorMixture", (), {"_module_class": module})


def add_prior_mixture_arguments(parser):
    """``--prior-mixture K`` and ``--prior-mixture-scales-only``, read by
    :func:`prior_mixture_seams`."""
    parser.add_argument(
        "--prior-mixture",
        type=non_negative_int,
        default=0,
        metavar="K",
        help="give every SparseVAE a learned mixture of K products of its prior (0: none)",
    )
    parser.add_argument(
        "--prior-mixture-scales-only",
        action="store_true",
        help="the mixture's parts all centred at 0, differing in their scales only",
    )


def prior_mixture_seams(args):
    """The seams that ``args`` (of :func:`add_prior_mixture_arguments`) ask a SparseVAE for."""
    if not getattr(args, "prior_mixture", 0):
        return ()
    return (prior_mixture_seam(args.prior_mixture, not args.prior_mixture_scales_only),)


def make_vae(prior, *, seams=(), **params):
    """A GaussianVAE for the "normal" prior, else a SparseVAE with ``prior``.

    ``seams`` are mixin classes put in front of the estimator's class, so that their methods
    override the estimator's seams (``_run_epoch``, ``_start_output``, ``_cuda_graphs``,
    ``_module_class``).
    """
    estimator = GaussianVAE if prior == "normal" else SparseVAE
    if prior != "normal":
        params["prior"] = prior
    if seams:
        name = "".join(seam.__name__ for seam in seams) + estimator.__name__
        estimator = type(name, (*seams, estimator), {})
    return estimator(**params)


class TargetReached(Exception):
    """Raised from inside a fit by :class:`ScoredEachEpoch` once the target is reached."""


class ScoredEachEpoch:
    """A seam for :func:`make_vae`: score held-out rows after every epoch of a fit.

    Call :meth:`score_each_epoch` before ``fit``. Each epoch then appends the mean ELBO of
    ``X_test`` to ``test_scores`` and the seconds the scoring took to ``scoring_seconds``;
    with ``stop_above``, the first epoch that scores above it ends the fit by raising
    :class:`TargetReached`. Both are lists, which keep their entries when the fit, raising,
    restores the estimator's attributes.
    """

    def score_each_epoch(self, X_test, *, stop_above=None):
        self.X_test, self.stop_above = X_test, stop_above
        self.test_scores, self.scoring_seconds = [], []
        return self

    def _run_epoch(self, step, X, generator):
        loss = super()._run_epoch(step, X, generator)
        seconds, score = timed(self.score, self.X_test)
        self.test_scores.append(score)
        self.scoring_seconds.append(seconds)
        if self.stop_above is not None and score > self.stop_above:
            raise TargetReached
        return loss


def timed(function, *args):
    """Seconds that ``function(*args)`` takes, with the work it queued on a GPU done, and
    its result. The scripts interleave their repeats and take the median of these seconds."""
    start = time.perf_counter()
    result = function(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def environment():
    """One line: torch, its threads, the variables that set them, the CPUs and any GPU."""
    variables = ", ".join(
        f"{name}={os.environ.get(name, 'unset')}"
        for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")
    )
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} torch threads ({variables}), "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, {gpu}"
    )


def print_environment(indent=""):
    print(indent + environment())


def print_settings(args):
    """The parsed command line, one option a line, then the environment."""
    print("Settings:")
    for name, value in vars(args).items():
        print(f"  {name} = {value}")
    print_environment(indent="  ")


def print_table(headers, rows, *, align=None):
    """Print a Markdown table, each row as soon as ``rows`` yields it.

    Parameters
    ----------
    headers : list of str
    rows : iterable of lists of cells
        Cells are printed with ``str``; a generator streams a long benchmark's rows.
    align : str, default=None
        "l" or "r" for each column; by default the first column is left-aligned and the
        others, numbers, right-aligned.
    """
    align = align or "l" + "r" * (len(headers) - 1)
    print("| " + " | ".join(headers) + " |")
    print("|" + "".join("---:|" if side == "r" else "---|" for side in align))
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |", flush=True)


def add_kl_warmup_argument(parser, *, several=False):
    """``--kl-warmup-epochs``, the VAEs' ``kl_warmup_epochs``; with ``several``, a list of
    them, one row of the table for each."""
    default = GaussianVAE().kl_warmup_epochs
    if several:
        parser.add_argument(
            "--kl-warmup-epochs",
            type=non_negative_int,
            nargs="+",
            default=[default],
            help="one row for each",
        )
    else:
        parser.add_argument(
            "--kl-warmup-epochs",
            type=non_negative_int,
            default=default,
            help="the VAEs' kl_warmup_epochs (default: the estimators' default)",
        )


def set_default_mnist_dir():
    """Have ``load_mnist`` read ``shared/data/mnist`` beside the repository's folder, unless
    ``SKVAE_MNIST_DIR`` names another."""
    if "SKVAE_MNIST_DIR" not in os.environ:
        default = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
        os.environ["SKVAE_MNIST_DIR"] = str(default)
