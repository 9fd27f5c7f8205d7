"""The calibration check of a Wilks region: does the χ² threshold cover where the truth may lie?

A Wilks region R = {θ : q(θ) ≤ t}, t the χ²_d quantile at the level, is trusted when, at the true θ*,

    c(θ*) = P_θ*( q(θ*) ≤ t ) ≥ level,

the probability over data sets of n i.i.d. runs drawn at θ* (q from the surrogate, the runs from the simulator).
θ* is unknown; the data say where it may be. The check therefore measures c at m points around θ̂:

    θ_0 = θ̂,    and for each axis j the grid points of the lowest and the highest θ_j among those with
                q(θ) ≤ χ²_d quantile at the level 1 − (1 − level)/REACH (0.99 for a 95% region; of several such
                points the one with the smallest q: the ends of the profile interval of θ_j at that level),

m = 2d + 1 points at most (fewer when they coincide), so that a surrogate that is right at θ̂ and wrong where the
truth may lie (too steep, or biased, away from θ̂) shows at one of them. The points reach beyond the region itself
because that is where the truth lies when the region misses it: a surrogate wrong only beyond its own region's ends
gives a region that looks consistent from inside (a calibrated threshold covers at every θ, inside the region or
not, so the rule below holds wherever the points are). On the prior's edge a calibrated Wilks threshold
over-covers (θ̂ cannot cross the edge), so such points do not raise false alarms.

Each point gets T toy data sets of n runs drawn at θ_i with the simulator (the cost is m·T·n runs and m·T·n·g
likelihood terms, at most 2d + 1 times that of a check at θ̂ alone), and k_i of them cover: q_k(θ_i) ≤ t. The check
reports the lowest coverage k_i/T and where it was measured. (Splitting T toys over the points instead keeps the cost
but loses the power to see a moderate under-coverage: where a threshold covers 0.90 at every point, 200 toys at each of
3 points warn with probability 0.98 by the rule below, 67 at each with 0.53, and 200 at θ̂ alone with the earlier
rule of 1.5 binomial standard errors 0.91, by the binomial law.)

**The rule (multiple testing).** Point i tests H_i: c(θ_i) ≥ level by the exact binomial p-value

    p_i = P( Binomial(T, level) ≤ k_i ),

which is at most α when H_i holds (P(p_i ≤ α) ≤ α; smaller than α for discrete counts). Given the region, the toys
of different points are independent (their own generator streams), so when every H_i holds

    P(any p_i < α_m) = 1 − Π_i (1 − P(p_i < α_m)) ≤ 1 − (1 − α_m)^m.

With Šidák's α_m = 1 − (1 − FALSE_ALARM)^(1/m) the check warns when min_i p_i < α_m, equivalently when the
adjusted p-value p = 1 − (1 − min_i p_i)^m is below FALSE_ALARM: a calibrated region (c ≥ level at every point)
warns with probability at most FALSE_ALARM, whatever m. The points are chosen from the observed data and the toys are
drawn afresh, so the bound holds conditionally on the region, hence also on average. The price of more points is
a stricter bound per point: with T = 200 the check warns at 184 covering toys of 200 or fewer (0.92) at m = 1,
at 182 (0.91) at m = 3 and at 181 (0.905) at m = 5.

The check's own error is binomial: the stderr of a coverage c by T toys is √(c (1 − c) / T).

**Curtailment (the same verdicts for fewer toys).** Each point's T toys are drawn at once from its stream and
evaluated in batches of CHECK_BATCH. After b toys with k covering, the point's final count lies in k..k + (T − b),
and the rule is monotone in the count (p_i grows with k_i), so the point's verdict is certain as soon as

    k + (T − b) covering toys would still warn (it warns whatever the rest give), or
    k covering toys would not warn (it passes whatever the rest give),

and its remaining toys are not evaluated (`certain_verdict`). Discrete x (runs repeating, `toys.repeats`) is
evaluated once per distinct value on the grid whatever the number of toys, so such a point takes all its toys in
one batch. The check warns when any point warns, so it stops at the first point whose warning is certain and
leaves the others unmeasured (or part-measured): what it reports is certain, and the verdict is the full check's. To find an under-covering point early, every point gets one batch
first, then the undecided point whose toys so far are the most surprising (the lowest p-value of k of b) gets the
next. A point that passes needs at least the warning count + 1 covering toys (182 of 200 at m = 5), so a
calibrated region saves little; a region that under-covers stops after about the toys that show it. A coverage
reported from b < T toys says so (its stderr is that of b toys).

References:
    Wilks, "The large-sample distribution of the likelihood ratio for testing composite hypotheses",
    Ann. Math. Statist. 9 (1938) 60.
    Šidák, "Rectangular confidence regions for the means of multivariate normal distributions",
    J. Amer. Statist. Assoc. 62 (1967) 626.
    Clopper, Pearson, "The use of confidence or fiducial limits illustrated in the case of the binomial",
    Biometrika 26 (1934) 404.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy.stats import binom, chi2
from torch import Tensor
from tqdm.auto import tqdm

from ..executor import seeded_generator
from ..simulators.base import DTYPE, Simulator
from .grid import Mesh
from .toys import distinct, draw_toys, repeats, toy_statistic

__all__ = ["CHECK_BATCH", "FALSE_ALARM", "REACH", "certain_verdict", "check_points", "check_region", "p_value",
           "reach_level", "under_covers", "warning_count"]

#: the probability with which the check warns for a calibrated region (at most; the rule in the module's docstring)
FALSE_ALARM = 0.05
#: the check measures at the ends of the region of level 1 − (1 − level)/REACH (the module's docstring)
REACH = 5.0
#: toys per batch of a point's check: the point stops after a batch once its verdict is certain (curtailment)
CHECK_BATCH = 20


def reach_level(level: float) -> float:
    """The level of the wider region whose ends the check measures at: 1 − (1 − level)/REACH (0.99 at 0.95)."""
    return 1 - (1 - float(level)) / REACH


def check_points(region, reach: float | None = None) -> Tensor:
    """The points of a Wilks region the check measures its coverage at: θ̂, then per axis the grid points of the
    lowest and the highest θ_j with q(θ) ≤ the χ²_d quantile at `reach` (by default `reach_level(region.level)`; the
    region's own level gives its own ends), of ties the one of smallest q, duplicates left out → (m, d), m ≤ 2d + 1."""
    theta = region.mle.theta.reshape(1, -1).to(DTYPE)
    points = [theta[0]]
    reach = reach_level(region.level) if reach is None else float(reach)
    inside = (region.q <= float(chi2.ppf(reach, region.grid.shape[1]))).nonzero().flatten()
    if len(inside):
        grid, q = region.grid[inside], region.q[inside]
        for j in range(grid.shape[1]):
            for end in (grid[:, j].min(), grid[:, j].max()):
                at = (grid[:, j] == end).nonzero().flatten()
                points.append(grid[at[q[at].argmin()]])
    out: list[Tensor] = []
    for p in points:
        if not any(bool((p == o).all()) for o in out):
            out.append(p)
    return torch.stack(out)


def p_value(covered: int, toys: int, level: float) -> float:
    """P(Binomial(toys, level) ≤ covered): how surprising so few covering toys are for a calibrated threshold."""
    return float(binom.cdf(int(covered), int(toys), float(level)))


def under_covers(coverage: float, level: float, toys: int, points: int = 1) -> bool:
    """The check's rule for one point's coverage measured by `toys` toys, when `points` points were measured: its
    binomial p-value is below Šidák's 1 − (1 − FALSE_ALARM)^(1/points) (the module's docstring)."""
    covered = round(coverage * toys)
    return bool(p_value(covered, toys, level) < 1 - (1 - FALSE_ALARM) ** (1 / points))


def certain_verdict(covered: int, done: int, toys: int, level: float, points: int = 1) -> str | None:
    """The verdict of a point's check by `under_covers` once `covered` of its first `done` of `toys` toys cover, if
    the remaining toys cannot change it: "under-covers" (it warns even if all the rest cover), "covers" (it passes
    even if none of them does), else None (the module's docstring, curtailment)."""
    warn = warning_count(toys, level, points)
    if covered + toys - done <= warn:
        return "under-covers"
    if covered > warn:
        return "covers"
    return None


@functools.lru_cache(maxsize=256)
def warning_count(toys: int, level: float, points: int = 1) -> int:
    """The most covering toys of `toys` at which `under_covers` warns (−1 when none does): the rule is monotone in
    the count, so it warns exactly at counts up to this one."""
    counts = np.arange(int(toys) + 1)
    bound = 1 - (1 - FALSE_ALARM) ** (1 / points)
    warned = counts[binom.cdf(counts, int(toys), float(level)) < bound]
    return int(warned.max()) if len(warned) else -1


def check_region(region, simulator: Simulator, toys: int, seed: int = 0, progress: bool = False,
                 curtail: bool = True) -> dict:
    """Measure the coverage of a Wilks region's χ² threshold at `check_points(region)`, `toys` toy data sets at each.

    Arguments:
        region: a Wilks `Region` (its model, grid, q, inside and MLE are used).
        simulator: draws the toys (n = the region's number of observations, unweighted).
        toys: toy data sets at each point.
        seed: the toys of point i come from the generator stream (seed, i); point 0 is θ̂.
        progress: a progress bar over the toys.
        curtail: stop a point's toys once its verdict is certain, and the check at the first certain warning (the
            module's docstring: the same verdicts); False evaluates every toy at every point.

    Returns:
        {"toys" (asked per point), "coverage" and "stderr" (the lowest coverage measured, its binomial error),
        "coverage_toys" (the toys it was measured by), "theta" (where), "level", "under_covers" (the rule),
        "p_value" (Šidák-adjusted, of the lowest point's toys evaluated), "false_alarm" (FALSE_ALARM),
        "evaluated" (toys evaluated at all points), "points": [{"theta", "toys" (evaluated), "covered",
        "coverage" (None when unmeasured), "stderr", "p_value", "verdict" ("under-covers", "covers" or None)},
        ...] (θ̂ first)}.
    """
    level, n = region.level, region.mle.n_obs
    model, grid = region.model, region.grid
    points = check_points(region)
    m = len(points)
    toys = int(toys)
    threshold = float(chi2.ppf(level, model.theta_dim))
    mesh = Mesh(grid)
    x: list[Tensor | None] = [None] * m
    done, covered, verdict, whole = [0] * m, [0] * m, [None] * m, [False] * m
    bar = tqdm(total=m * toys, desc="check", unit="toy", disable=not progress, dynamic_ncols=True)
    with bar:
        while True:
            open_ = [i for i in range(m) if verdict[i] is None]
            if not open_ or (curtail and "under-covers" in verdict):
                break
            # one batch at every point first, then the undecided point whose toys so far surprise most
            i = min(open_, key=lambda i: (done[i] > 0, p_value(covered[i], done[i], level) if done[i] else 0.0, i))
            if x[i] is None:  # all its toys at once: the same toys whatever is evaluated of them
                x[i] = draw_toys(simulator, points[i], toys, int(n), seeded_generator(seed, i))
                flat = x[i].reshape(-1, x[i].shape[-1])
                whole[i] = not curtail or repeats(distinct(flat)[0], flat)  # discrete x: all toys cost as few
            batch = toys - done[i] if whole[i] else min(CHECK_BATCH, toys - done[i])
            q = toy_statistic(model, x[i][done[i]:done[i] + batch], grid, points[i][None], mesh)
            covered[i] += int((q <= threshold).sum())
            done[i] += batch
            verdict[i] = certain_verdict(covered[i], done[i], toys, level, m) if curtail or done[i] == toys else None
            bar.update(batch)
    measured = []
    for i in range(m):
        c = covered[i] / done[i] if done[i] else None
        measured.append(dict(theta=points[i].tolist(), toys=done[i], covered=covered[i], coverage=c,
                             stderr=None if c is None else math.sqrt(c * (1 - c) / done[i]),
                             p_value=p_value(covered[i], done[i], level), verdict=verdict[i]))
    warned = [p for p in measured if p["verdict"] == "under-covers"]
    lowest = min(warned or [p for p in measured if p["toys"]], key=lambda p: (p["p_value"], p["coverage"]))
    adjusted = 1 - (1 - lowest["p_value"]) ** m
    return {"toys": toys, "coverage": lowest["coverage"], "stderr": lowest["stderr"],
            "coverage_toys": lowest["toys"], "theta": lowest["theta"], "level": float(level),
            "under_covers": bool(warned), "p_value": adjusted, "false_alarm": FALSE_ALARM,
            "evaluated": sum(done), "points": measured}
