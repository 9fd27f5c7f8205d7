"""Posterior checks in one report: posterior predictive checks of the observed data and the expected
coverage of credible regions (`goldmine.inference.calibration`).

**Posterior predictive check** (Gelman, Meng, Stern 1996). Draw θ_s ~ p(θ|x_obs), s = 1..S, and for
each a replicated data set x_rep,s of as many runs as x_obs (n) from the simulator. For each test
statistic T — the mean over observations of each x dimension, and for n > 1 their standard
deviation — the posterior predictive p-value

    p_T = P(T(x_rep) ≥ T(x_obs) | x_obs),   estimated by the share of the S replicates (ties count ½),

is near 0 or 1 when the model (surrogate + posterior) cannot reproduce that feature of the data. The
report gives the two-sided value 2·min(p_T, 1 − p_T) per statistic and flags those below `alpha`.
A predictive check probes the posterior at the observed data; the expected coverage probes its
calibration averaged over the prior; the two answer different questions, which is why the report
holds both.

References:
    Gelman, Meng, Stern, "Posterior predictive assessment of model fitness via realized
    discrepancies", Statistica Sinica 6 (1996) 733
    Talts et al., "Validating Bayesian inference algorithms with simulation-based calibration",
    https://arxiv.org/abs/1804.06788
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from .. import checks
from ..simulators.base import DTYPE, Simulator
from .calibration import Calibration, expected_coverage

__all__ = ["PosteriorChecks", "PredictiveCheck", "posterior_checks", "predictive_check"]


@dataclass
class PredictiveCheck:
    """A posterior predictive check.

    Attributes:
        names: the statistics, e.g. "mean x[0]", "std x[1]" (k,).
        observed: T(x_obs) per statistic (k,).
        replicated: T(x_rep,s) per replicate and statistic (S, k).
        p_value: the one-sided p_T = P(T(x_rep) ≥ T(x_obs)) (k,).
        two_sided: 2·min(p_T, 1 − p_T) (k,).
        alpha: the level below which a statistic is flagged.
    """

    names: list[str]
    observed: Tensor
    replicated: Tensor = field(repr=False)
    p_value: Tensor
    two_sided: Tensor
    alpha: float

    @property
    def flagged(self) -> list[str]:
        """The statistics whose two-sided p-value is below alpha."""
        return [n for n, p in zip(self.names, self.two_sided.tolist()) if p < self.alpha]


@dataclass
class PosteriorChecks:
    """The report of `posterior_checks`: a predictive check and (optionally) the expected coverage."""

    predictive: PredictiveCheck
    calibration: Calibration | None = None

    def numbers(self) -> dict:
        """The report as plain JSON values."""
        out = {"predictive": {"statistics": self.predictive.names, "observed": self.predictive.observed.tolist(),
                              "p_value": self.predictive.p_value.tolist(),
                              "two_sided": self.predictive.two_sided.tolist(), "flagged": self.predictive.flagged}}
        if self.calibration is not None:
            c = self.calibration
            out["coverage"] = {"levels": c.levels.tolist(), "coverage": c.coverage.tolist(),
                               "stderr": c.stderr.tolist(), "problems": c.problems,
                               "rank_pvalue": c.rank_pvalue(bins=min(10, c.samples + 1)).tolist()}
        return out

    def summary(self) -> str:
        """A readable account: each statistic with its p-value, and the coverage at 50%, 90% and 95%."""
        p = self.predictive
        lines = [f"posterior predictive check ({len(p.replicated)} replicated data sets)",
                 f"{'statistic':>14} {'observed':>11} {'replicated (5–95%)':>24} {'p (2-sided)':>11}"]
        q = torch.quantile(p.replicated, torch.tensor([0.05, 0.95], dtype=DTYPE), dim=0)
        for j, name in enumerate(p.names):
            flag = "  ← unlike the data" if p.two_sided[j] < p.alpha else ""
            lines.append(f"{name:>14} {float(p.observed[j]):>11.4g} {f'[{float(q[0, j]):.4g}, {float(q[1, j]):.4g}]':>24} "
                         f"{float(p.two_sided[j]):>11.3f}{flag}")
        c = self.calibration
        if c is not None:
            lines.append(f"expected coverage of HPD regions ({c.problems} problems from the prior)")
            for level in (0.5, 0.9, 0.95):
                hit = (c.levels - level).abs() < 1e-9
                if hit.any():
                    j = int(hit.nonzero()[0, 0])
                    lines.append(f"  {level:.0%}: {float(c.coverage[j]):.3f} ± {float(c.stderr[j]):.3f}")
        return "\n".join(lines)


def predictive_check(post, simulator: Simulator, x_obs=None, replicates: int = 200, alpha: float = 0.05,
                     seed: int = 0) -> PredictiveCheck:
    """The posterior predictive check of a posterior against its observations.

    Arguments:
        post: a posterior with `sample(n, generator=)` → (n, theta_dim) and, unless x_obs is given,
            `x_obs` (n, x_dim) (every posterior of `goldmine.inference.posterior`).
        simulator: draws the replicated data.
        x_obs: the observations (n, x_dim); the posterior's own by default.
        replicates: S, the replicated data sets.
        alpha: the two-sided level below which a statistic is flagged.
        seed: seeds the posterior draws and the replicates.

    Raises:
        ValueError: bad replicates or alpha, or observations of the wrong dimension.
    """
    if not isinstance(simulator, Simulator):
        raise TypeError(f"simulator must be a goldmine Simulator, got {type(simulator).__name__}.")
    replicates = checks.int_at_least(replicates, "replicates", 2)
    alpha = checks.fraction(alpha, "alpha")
    x_obs = getattr(post, "x_obs", None) if x_obs is None else x_obs
    if x_obs is None:
        raise ValueError("the posterior holds no observations: pass x_obs (n, x_dim).")
    x_obs = checks.rows(x_obs, simulator.x_dim, "x_obs")
    n = len(x_obs)
    generator = torch.Generator().manual_seed(seed)
    theta = torch.as_tensor(post.sample(replicates, generator=generator), dtype=DTYPE)
    x_rep = simulator.sample(theta.repeat_interleave(n, 0), generator=generator).x.reshape(replicates, n, -1)
    names, observed, replicated = _statistics(x_obs, x_rep)
    above = (replicated > observed).to(DTYPE).mean(0) + 0.5 * (replicated == observed).to(DTYPE).mean(0)
    two_sided = (2 * torch.minimum(above, 1 - above)).clamp(max=1.0)
    return PredictiveCheck(names, observed, replicated, above, two_sided, alpha)


def posterior_checks(post, simulator: Simulator, model=None, problems: int = 0, replicates: int = 200,
                     alpha: float = 0.05, seed: int = 0, progress: bool = False, **coverage_settings) -> PosteriorChecks:
    """Posterior predictive checks and the expected coverage, in one report.

    Arguments:
        post: the posterior of the observed data (see `predictive_check`).
        simulator: draws replicated data and the coverage problems.
        model: what `expected_coverage` builds a posterior from for each problem (a `Model`, a fitted
            surrogate, a simulator with an exact likelihood, or a function x → posterior); needed
            when problems > 0.
        problems: coverage problems drawn from the prior (0: no coverage, which is the slow part:
            one posterior per problem).
        replicates, alpha, seed: of the predictive check (`predictive_check`).
        progress: a progress bar over the coverage problems.
        coverage_settings: passed to `expected_coverage` (n_obs, levels, samples, and posterior settings).

    Returns:
        A `PosteriorChecks`: `numbers()` for JSON, `summary()` for reading, and
        `goldmine.plots.posterior_checks(report, path=...)` for the figure.
    """
    predictive = predictive_check(post, simulator, replicates=replicates, alpha=alpha, seed=seed)
    calibration = None
    if problems:
        if model is None:
            raise ValueError("problems > 0 needs model=: what to build each problem's posterior from.")
        calibration = expected_coverage(model, simulator, problems=problems, seed=seed, progress=progress,
                                        **coverage_settings)
    return PosteriorChecks(predictive, calibration)


def _statistics(x_obs: Tensor, x_rep: Tensor) -> tuple[list[str], Tensor, Tensor]:
    """Means per x dimension, and standard deviations when there are several observations."""
    d = x_obs.shape[1]
    names = [f"mean x[{j}]" for j in range(d)]
    observed, replicated = [x_obs.mean(0)], [x_rep.mean(1)]
    if len(x_obs) > 1:
        names += [f"std x[{j}]" for j in range(d)]
        observed.append(x_obs.std(0))
        replicated.append(x_rep.std(1))
    return names, torch.cat(observed), torch.cat(replicated, 1)
