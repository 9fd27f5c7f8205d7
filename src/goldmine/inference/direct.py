"""Posteriors learned directly (npe): draws and densities of q(θ|x) for one observation, nothing to converge.

A surrogate with the "posterior" capability (`goldmine.inference.surrogate`) gives q(θ|x) itself:
`sample(x, n, generator)`, `log_prob(theta, x)` and the prior it was trained under (`prior_`). It is
no likelihood, so it takes no part in `Model`; `goldmine.inference.posterior` hands it here, and
`DirectPosterior` offers the same reading as an MCMC `Posterior` (draws, sample, log_prob, summary).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .. import checks
from ..simulators.base import DTYPE, Simulator
from ..simulators.priors import check_prior, support_bounds
from .model import check_x_obs
from ..checks import warn_outside_training

DRAWS = 10_000  # direct draws kept for the summary of a direct posterior


class KeptDraws:
    """What every posterior holds: its kept draws `draws` (chains, draws, theta_dim), one chain for direct draws."""

    draws: Tensor

    @property
    def samples(self) -> Tensor:
        """All kept draws, the chains one after another: (chains·draws, theta_dim)."""
        return self.draws.reshape(-1, self.draws.shape[-1])


class DirectPosterior(KeptDraws):
    """Draws of q(θ|x_obs) from an estimator that learned the posterior directly.

    Attributes:
        kind: the estimator's method (e.g. "npe").
        estimator: the estimator. x_obs: the one observation (1, x_dim).
        draws: the kept i.i.d. draws as one "chain": (1, draws, theta_dim).
        rhat, ess: None (independent draws need no convergence diagnostics).
        acceptance: the fraction of the estimator's draws inside the prior's support.
        normalised: True: `log_prob` is the estimator's normalised density.
    """

    rhat = ess = None
    normalised = True

    def __init__(self, estimator, x_obs: Tensor, draws: Tensor, acceptance: float):
        self.estimator, self.x_obs, self.draws, self.acceptance = estimator, x_obs, draws, acceptance
        self.kind = getattr(estimator, "method", None) or "direct"

    def __repr__(self) -> str:
        _, n, d = self.draws.shape
        return f"Posterior({self.kind}, theta_dim={d}, {n} direct draws, 1 observation)"

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n fresh draws of the estimator → (n, theta_dim) float64; n may be a sample shape (n,) as in sbi."""
        n = checks.sample_count(n, "n")
        return self.estimator.sample(self.x_obs, n, generator=generator).to("cpu", DTYPE)

    def log_prob(self, theta) -> Tensor:
        """log q(θ|x_obs) at each row of θ (m, theta_dim) → (m,) float64, −inf outside the prior's support."""
        theta = checks.rows(theta, self.draws.shape[-1], "theta")
        return self.estimator.log_prob(theta, self.x_obs).to("cpu", DTYPE)

    def summary(self) -> str:
        """A readable table: mean, std and central 68% / 95% intervals per dimension."""
        _, n, _ = self.draws.shape
        head = f"Posterior ({self.kind}: {n} direct draws, {self.acceptance:.1%} of the flow inside the prior's support)"
        names = checks.theta_names(self.estimator, self.draws.shape[-1])
        return "\n".join([head, *summary_rows(self.samples, names=names)])


def direct_posterior(estimator, x_obs, prior=None, seed: int = 0) -> DirectPosterior:
    """The posterior of one observation from an estimator that learned it directly.

    Arguments:
        estimator: a fitted surrogate with the "posterior" capability (`goldmine.inference.surrogate`).
        x_obs: one observation (1, x_dim).
        prior: None, or the prior the estimator was trained under (a torch distribution or a
            simulator): a learned posterior cannot change prior.
        seed: seeds the kept draws.

    Raises:
        ValueError: several observations, or another prior than the estimator's.
    """
    x = check_x_obs(x_obs, estimator.x_dim_, getattr(estimator, "x_shape_", None))
    if len(x) != 1:
        raise ValueError(f"{getattr(estimator, 'method', 'this estimator')} learns q(θ|x) for one observation, but "
                         f"x_obs has {len(x)} rows: pass one row (1, x_dim), or use a ratio or likelihood estimator "
                         "(posterior by MCMC) for i.i.d. data.")
    warn_outside_training(estimator, x, stacklevel=3)
    if prior is not None:
        prior = check_prior(prior.prior if isinstance(prior, Simulator) else prior)
        given = estimator.prior_
        if given is not None and prior is not given:  # the same object is the same prior; else compare supports
            low, high = support_bounds(prior)
            box_low, box_high = support_bounds(given)
            same = low.shape == box_low.shape and bool(((low == box_low) | torch.isclose(low, box_low)).all()
                                                       and ((high == box_high) | torch.isclose(high, box_high)).all())
            if not same:
                raise ValueError(f"{getattr(estimator, 'method', 'the estimator')} learned the posterior under the "
                                 f"prior it was trained on (support {box_low.tolist()} to {box_high.tolist()}); it "
                                 "cannot change prior: leave prior=None, or use a ratio or likelihood estimator with "
                                 "the new prior.")
    draws = estimator.sample(x, DRAWS, generator=torch.Generator().manual_seed(seed)).to("cpu", DTYPE)
    return DirectPosterior(estimator, x, draws[None], float(estimator.acceptance_))


def summary_rows(samples: Tensor, rhat: Tensor | None = None, ess: Tensor | None = None,
                 names=None) -> list[str]:
    """The columns and one line per θ dimension of a posterior's summary: mean, std, central 68% and 95%
    intervals, R-hat and ESS (— when None), from draws (n, theta_dim); rows named by `names` (θ₀, θ₁, … without)."""
    samples = samples.numpy()
    names = checks.theta_names(names, samples.shape[1])
    q = np.quantile(samples, [0.025, 0.16, 0.5, 0.84, 0.975], axis=0)
    columns = f"{'':>6} {'mean':>11} {'std':>11} {'68% interval':>25} {'95% interval':>25} {'R-hat':>7} {'ESS':>7}"
    lines = [columns]
    for j in range(samples.shape[1]):
        r = "—" if rhat is None else f"{float(rhat[j]):.3f}"
        e = "—" if ess is None else f"{float(ess[j]):.0f}"
        lines.append(f"{names[j]:>6} {samples[:, j].mean():>11.5g} {samples[:, j].std(ddof=1):>11.5g} "
                     f"{f'[{q[1, j]:.5g}, {q[3, j]:.5g}]':>25} {f'[{q[0, j]:.5g}, {q[4, j]:.5g}]':>25} "
                     f"{r:>7} {e:>7}")
    return lines


__all__ = ["DirectPosterior", "KeptDraws", "direct_posterior", "summary_rows"]
