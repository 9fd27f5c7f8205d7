"""Calibration of posteriors: simulation-based calibration and the expected coverage of credible regions.

Draw problems θ* ~ π and x ~ p(x|θ*) (n_obs i.i.d. runs), and S posterior draws θ_1..θ_S given x.
If the posterior is right on average over the prior, then for every problem

    rank_j = #{s : θ_s,j < θ*_j}  ~  Uniform{0, …, S}        (per dimension; SBC)
    c* = P_post(log p(θ|x) > log p(θ*|x))  ~  Uniform(0, 1)

The second holds because θ* lies in the highest-posterior-density (HPD) region of credibility α
exactly when c* < α; so the expected coverage, the fraction of problems whose HPD region at level α
holds θ*, equals α at every level. Below α the posterior is overconfident, above α conservative.
c* is estimated from the draws as the share with a higher density than θ* (ties count one half),
which needs only the posterior's density up to a constant.

Both need nearly independent draws: keep `samples` well below the posterior's ESS (MCMC draws
are autocorrelated; `Posterior.sample` picks them at random from the chains).

References:
    Talts, Betancourt, Simpson, Vehtari, Gelman, "Validating Bayesian inference algorithms with
    simulation-based calibration", https://arxiv.org/abs/1804.06788
    Hermans, Delaunoy, Rozet, Wehenkel, Begy, Louppe, "A trust crisis in simulation-based
    inference? Your posterior approximations can be unfaithful", TMLR 2022,
    https://arxiv.org/abs/2110.06581
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats
from torch import Tensor
from tqdm.auto import tqdm

from .. import checks
from ..simulators.base import DTYPE, Simulator, draw_prior
from .mcmc import posterior

#: the default credibility levels: a coverage curve from 5% to 95% in steps of 5%, and 99%
LEVELS = tuple(round(0.05 * k, 2) for k in range(1, 20)) + (0.99,)

__all__ = ["LEVELS", "Calibration", "expected_coverage"]


@dataclass
class Calibration:
    """The outcome of `expected_coverage`: a coverage curve and the SBC ranks.

    Attributes:
        levels: the credibility levels α (L,).
        coverage: the fraction of problems whose HPD region at level α holds θ* (L,).
        stderr: the binomial standard error √(α(1 − α)/problems) (L,): a calibrated posterior's
            coverage lands within ±2·stderr of α in 95% of studies (the band of a coverage plot).
        credibility: c* per problem (problems,): the posterior mass of the HPD region whose edge
            passes through θ* (uniform on [0, 1] when calibrated).
        ranks: the rank of θ* among the draws per dimension (problems, theta_dim), in 0..samples.
        samples: the posterior draws per problem.
        theta: the true θ* of each problem (problems, theta_dim).
        warned: how many of the posteriors issued warnings (for MCMC: R-hat or ESS).
    """

    levels: Tensor
    coverage: Tensor
    stderr: Tensor
    credibility: Tensor = field(repr=False)
    ranks: Tensor = field(repr=False)
    samples: int
    theta: Tensor = field(repr=False)
    warned: int = 0

    @property
    def problems(self) -> int:
        return len(self.credibility)

    @property
    def covered(self) -> Tensor:
        """Whether each problem's HPD region at each level holds θ*: (problems, L) bool."""
        return self.credibility[:, None] < self.levels

    def rank_histogram(self, bins: int = 10) -> tuple[Tensor, Tensor]:
        """Counts of the SBC ranks in `bins` near-equal groups of the values 0..samples.

        Returns:
            counts (bins, theta_dim) and the counts a calibrated posterior expects (bins,).
        """
        bins = checks.int_between(bins, "bins", 1, self.samples + 1, f"samples + 1 = {self.samples + 1}")
        groups = np.array_split(np.arange(self.samples + 1), bins)
        edges = torch.tensor([g[0] for g in groups[1:]], dtype=torch.long)
        which = torch.bucketize(self.ranks, edges, right=True)  # (problems, d) → bin index
        counts = torch.stack([(which == b).sum(0) for b in range(bins)])
        expected = torch.tensor([len(g) for g in groups], dtype=DTYPE) * self.problems / (self.samples + 1)
        return counts, expected

    def rank_pvalue(self, bins: int = 10) -> Tensor:
        """The χ² test p-value of uniform SBC ranks per dimension (theta_dim,): small when miscalibrated.
        Keep problems / bins ≳ 5 for the χ² approximation."""
        counts, expected = self.rank_histogram(bins)
        return torch.as_tensor([stats.chisquare(counts[:, j].numpy(), expected.numpy()).pvalue
                                for j in range(counts.shape[1])], dtype=DTYPE)


def expected_coverage(make_posterior, simulator: Simulator, prior=None, n_obs: int = 1, problems: int = 100,
                      levels=LEVELS, samples: int = 100, seed: int = 0, progress: bool = True,
                      **posterior_settings) -> Calibration:
    """The expected coverage of HPD credible regions, and the SBC ranks, over problems drawn from the prior.

    Arguments:
        make_posterior: x (n_obs, x_dim) → a posterior with `sample(n, generator=)` (n, theta_dim) and
            `log_prob(theta)` (m,) (e.g. `lambda x: posterior(model, x, progress=False)`); or a model
            (`Model`, fitted surrogate, simulator with an exact likelihood), whose MCMC or npe
            posterior is then built with `posterior(model, x, prior=prior, progress=False,
            **posterior_settings)`.
        simulator: draws the observations of each problem.
        prior: the prior θ* is drawn from (a torch distribution); the simulator's by default.
        n_obs: i.i.d. observations per problem.
        problems: the number of problems; the coverage's standard error is √(α(1 − α)/problems).
        levels: credibility levels α in (0, 1).
        samples: posterior draws per problem (keep them well below the posterior's ESS).
        seed: seeds θ*, the observations and the picks of posterior draws.
        progress: show a progress bar over the problems.

    Returns:
        A `Calibration`. Warnings of the posteriors are counted (`warned`) and summarised in one.

    Example:
        >>> import goldmine as gm
        >>> sim = gm.simulators.Poisson()
        >>> result = expected_coverage(sim, sim, n_obs=5, problems=3, levels=(0.5, 0.9), samples=50, progress=False,
        ...                            chains=16, warmup=100, steps=200)
        >>> result.coverage.shape, result.ranks.shape
        (torch.Size([2]), torch.Size([3, 1]))
    """
    if not isinstance(simulator, Simulator):
        raise TypeError(f"simulator must be a goldmine Simulator, got {type(simulator).__name__}.")
    given_prior, prior = prior, simulator.prior if prior is None else prior
    if getattr(prior, "event_shape", None) != (simulator.theta_dim,):
        raise ValueError(f"prior must be a torch distribution over θ of shape ({simulator.theta_dim},) like "
                         f"{simulator.name}'s; got {prior!r}.")
    n_obs, problems, samples = (checks.positive_int(v, name) for v, name in
                                ((n_obs, "n_obs"), (problems, "problems"), (samples, "samples")))
    levels = torch.as_tensor(levels, dtype=DTYPE).reshape(-1)
    if len(levels) == 0 or not ((levels > 0) & (levels < 1)).all():
        raise ValueError(f"levels must be credibility levels strictly between 0 and 1; got {levels.tolist()}.")
    if not callable(make_posterior):
        model = make_posterior
        # the posterior must use the prior that θ* is drawn from, or it cannot be calibrated
        settings = {"progress": False, "prior": given_prior, **posterior_settings}

        def make_posterior(x):
            return posterior(model, x, **settings)
    elif posterior_settings:
        raise TypeError(f"posterior settings {sorted(posterior_settings)} only apply when make_posterior is a model; "
                        "put them in your make_posterior function instead.")

    generator = torch.Generator().manual_seed(seed)
    theta = draw_prior(prior, problems, generator)
    x = simulator.sample(theta.repeat_interleave(n_obs, 0), generator=generator).x
    x = x.reshape(problems, n_obs, simulator.x_dim)
    credibility = torch.empty(problems, dtype=DTYPE)
    ranks = torch.empty(problems, simulator.theta_dim, dtype=torch.long)
    messages: list[str] = []
    for k in tqdm(range(problems), desc="calibration", disable=not progress, dynamic_ncols=True):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            post = make_posterior(x[k])
        if caught:
            messages.append(str(caught[0].message))
        credibility[k], ranks[k] = _credibility_and_rank(post, theta[k], samples, generator)
    if messages:
        warnings.warn(f"{len(messages)} of {problems} posteriors issued warnings, e.g.: {messages[0]}",
                      RuntimeWarning, stacklevel=2)
    # θ* is in the HPD region of credibility α when the region through θ* holds less mass than α
    coverage = (credibility[:, None] < levels).to(DTYPE).mean(0)
    stderr = (levels * (1 - levels) / problems).sqrt()
    return Calibration(levels, coverage, stderr, credibility, ranks, samples, theta, len(messages))


def _credibility_and_rank(post, theta: Tensor, samples: int, generator: torch.Generator) -> tuple[float, Tensor]:
    """c* and the per-dimension rank of θ* (theta_dim,) among `samples` draws of `post`."""
    draws = torch.as_tensor(post.sample(samples, generator=generator), dtype=DTYPE)
    if draws.shape != (samples, len(theta)):
        raise ValueError(f"the posterior's sample({samples}) returned shape {tuple(draws.shape)}; expected "
                         f"({samples}, {len(theta)}).")
    log_p = torch.as_tensor(post.log_prob(torch.cat([theta[None], draws])), dtype=DTYPE).reshape(-1)
    log_p = torch.nan_to_num(log_p, nan=-math.inf, neginf=-math.inf)
    higher = (log_p[1:] > log_p[0]).sum() + 0.5 * (log_p[1:] == log_p[0]).sum()
    return float(higher) / samples, (draws < theta).sum(0)
