"""Checks a user can run on their own simulator's gold: the identities it must satisfy, in standard errors.

The joint likelihood ratio and the joint score of runs (x, z) are unbiased labels of the intractable
targets only if the simulator's `joint_log_prob` is log p(x, z|θ) of what it samples. Three kinds of
identity test that, each as the mean of a quantity over runs that must vanish:

- data-set level, for any simulator with gold (the latent z integrated out with x):

      E_{x,z~p(·|θ_ref)}[r(x, z|θ, θ_ref)] = 1,        E_{x,z~p(·|θ)}[t(x, z|θ)] = 0.

  The mean of r over runs at θ_ref is heavy-tailed when θ lies far from θ_ref (a few runs with huge r carry
  it, and a sample that misses them has a mean far below 1 and a standard error far too small), so it is
  tested in the equivalent form with its tail taken from the runs at θ, where it is a probability:
  E_{θ_ref}[r·1{r ≤ c}] = P_θ(r ≤ c), hence

      E_{x,z~p(·|θ_ref)}[r·1{r ≤ c}] + P_{x,z~p(·|θ)}(r > c) = 1   (c = `CUT`; the plain identity as c → ∞);

- conditional on x, where the simulator has an exact `log_prob` (r(x|θ, θ_ref) and t(x|θ) = ∇_θ log p(x|θ)
  by autograd):

      E[(r(x, z|θ, θ_ref) − r(x|θ, θ_ref)) / (1 + r(x|θ, θ_ref))] = 0  (runs at θ_ref),
      E[(t(x, z|θ) − t(x|θ))·h(x)] = 0  (runs at θ) for h = 1 and h = t(x|θ), the second also catching a
      score of the wrong scale, whose mean still vanishes;

- where the simulator has a hand-written `joint_score`, its agreement with autograd through
  `joint_log_prob` on the same runs (relative difference, not a statistical test).

Runs are drawn as in a data set (half at θ_i from the prior, half at θ_ref, each evaluated at θ_i), or read
from a data set, and grouped into bins of θ: quantile bins of each component of θ. In each bin the mean m of
a quantity over its n runs (or the difference of two means), its standard error s = sd/√n and the miss
z = m/s are reported; a test fails when |z| exceeds the two-sided Bonferroni threshold of family-wise level
`alpha` over every test made.

References:
    Brehmer, Louppe, Pavez, Cranmer, "Mining gold from implicit models to improve likelihood-free
    inference", PNAS 117 (2020) 5242, https://arxiv.org/abs/1805.12244
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from statistics import NormalDist

import torch
from torch import Tensor

from . import checks
from .evaluate import _log_prob, log_prob_and_score
from .mining import augment, reference_of
from .simulators.base import DTYPE, Simulator, draw_prior, has_exact

#: relative difference |t_hand − t_autograd| / max(1, |t_autograd|) above which a hand-written score disagrees
SCORE_TOLERANCE = 1e-6
#: the ratio c above which E[r] = 1 takes its part from the runs at θ: E_θref[r·1{r ≤ c}] = P_θ(r ≤ c)
CUT = 10.0
#: runs drawn afresh for the comparison of a hand-written score with autograd
AUTOGRAD_RUNS = 256


@dataclass(frozen=True)
class Identity:
    """One identity tested in one θ bin.

    Attributes:
        name: the identity, e.g. "E[r(x,z|θ,θ_ref)] = 1 (runs at θ_ref)".
        where: the θ bin ("E ∈ [40, 42.5)") or "all runs".
        mean: the mean of the quantity that must vanish (for the ratio identity: r − 1).
        se: its standard error (None for the autograd comparison, which is not statistical).
        z: the miss in standard errors, mean / se (for the autograd comparison: the relative difference).
        runs: the number of runs in the bin.
        passed: whether |z| is below the threshold (the difference below `SCORE_TOLERANCE`).
        note: e.g. why a test is not counted.
        counted: whether the test counts towards the verdict (not when a bin has too few runs).
    """

    name: str
    where: str
    mean: float
    se: float | None
    z: float
    runs: int
    passed: bool
    note: str = ""
    counted: bool = True


@dataclass
class GoldCheck:
    """The report of `check_gold`: every identity in every θ bin, and whether they hold.

    Attributes:
        simulator: the simulator's name.
        identities: the tests made, in order.
        threshold: |z| above which a statistical test fails (Bonferroni over all of them at `alpha`).
        alpha: the family-wise false-alarm probability of the statistical tests.
        skipped: what was not tested, and why.
    """

    simulator: str
    identities: list[Identity]
    threshold: float
    alpha: float
    skipped: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether every identity holds."""
        return all(i.passed for i in self.identities)

    @property
    def failures(self) -> list[Identity]:
        """The identities that do not hold, worst first."""
        return sorted((i for i in self.identities if not i.passed), key=lambda i: -abs(i.z))

    def worst(self, name: str | None = None) -> Identity:
        """The test with the largest |z| (among those whose name contains `name`)."""
        chosen = [i for i in self.identities if name is None or name in i.name]
        return max(chosen, key=lambda i: abs(i.z))

    def summary(self) -> str:
        """One line: how many identities hold, and the worst miss."""
        counted = [i for i in self.identities if i.counted]
        stats = [i for i in counted if i.se is not None]
        worst = max(stats, key=lambda i: abs(i.z)) if stats else None
        tail = "" if worst is None else f"; largest miss {worst.z:+.2f} se ({worst.name}, {worst.where})"
        if self.passed:
            return f"gold of {self.simulator}: all {len(counted)} identities hold (|miss| < {self.threshold:.2f} se){tail}"
        bad = self.failures[0]
        size = f"{bad.z:+.1f} se" if bad.se is not None else f"relative difference {bad.z:.1e}"
        return (f"gold of {self.simulator}: {len(self.failures)} of {len(counted)} identities FAIL; worst: {bad.name} "
                f"at {bad.where}, {size}")

    def table(self) -> str:
        """A plain-text table: identity, θ bin, mean ± standard error, the miss in standard errors, verdict."""
        head = f"{'identity':<52} {'θ bin':<26} {'runs':>6} {'mean ± se':>22} {'miss':>9}  verdict"
        lines = [f"gold of {self.simulator}: |miss| < {self.threshold:.2f} standard errors expected "
                 f"(family-wise level {self.alpha:g})", head]
        for i in self.identities:
            if i.se is None:
                value, miss = f"{i.mean:.3g}", f"rel {i.z:.1e}"
            else:
                value, miss = f"{i.mean:+.4g} ± {i.se:.2g}", f"{i.z:+.2f} se"
            verdict = "—" if not i.counted else "ok" if i.passed else "FAILED"
            lines.append(f"{i.name:<52} {i.where:<26} {i.runs:>6} {value:>22} {miss:>9}  {verdict}"
                         + (f"  ({i.note})" if i.note else ""))
        lines += [f"skipped: {s}" for s in self.skipped]
        if self.passed:
            lines.append(f"all {sum(i.counted for i in self.identities)} identities tested hold.")
        else:
            worst = self.failures[0]
            size = f"{worst.z:+.1f} standard errors" if worst.se is not None else f"relative difference {worst.z:.1e}"
            lines.append(f"{len(self.failures)} of {sum(i.counted for i in self.identities)} identities FAIL; worst: {worst.name} "
                         f"at {worst.where}, {size}.")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def check_gold(sim: Simulator, runs: int = 20_000, *, data=None, bins: int = 4, seed: int = 0, reference=None,
               alpha: float = 1e-3, verbose: bool = True) -> GoldCheck:
    """Tests the gold of a simulator against the identities of the module docstring.

    Arguments:
        sim: a simulator with `joint_log_prob` (not a black box).
        runs: simulator runs to draw (even): half at θ ~ prior, half at θ_ref. Ignored when `data` is given.
        data: a data set of `sim` (`goldmine.Dataset`, or anything with `tensors(fields)`) whose rows to test
            instead of fresh runs; its θ_ref is `data.reference`.
        bins: quantile bins per component of θ.
        seed: the seed of the fresh runs.
        reference: θ_ref; the simulator's own by default (the data set's with `data`).
        alpha: the family-wise probability that a correct simulator fails some test.
        verbose: print the table.

    Returns:
        A `GoldCheck`: `.passed`, `.failures` (each names its identity, θ bin and miss in standard
        errors) and `.table()`.

    Example:
        >>> import goldmine as gm
        >>> report = gm.check_gold(gm.simulators.Poisson(), runs=2000, verbose=False)
        >>> report.passed
        True
    """
    if not isinstance(sim, Simulator):
        raise TypeError(f"sim must be a goldmine Simulator, got {type(sim).__name__}.")
    sim.require_gold()
    bins = checks.positive_int(bins, "bins")
    alpha = checks.real_between(alpha, "alpha", 0.0, 1.0)
    generator = torch.Generator().manual_seed(checks.seed(seed))
    if data is not None:
        ref = reference_of(sim, getattr(data, "reference", None) if reference is None else reference)
        t = data.tensors(["theta", "x", "label", "log_r", "score"], dtype=DTYPE)
        at_theta, at_ref = t["label"] == 0, t["label"] == 1
        rows = {"theta": t["theta"], "x": t["x"], "log_r": t["log_r"], "score": t["score"]}
        theta_rows = {k: v[at_theta] for k, v in rows.items()}
        ref_rows = {k: v[at_ref] for k, v in rows.items()}
    else:
        runs = checks.positive_int(runs, "runs")
        if runs % 2 or runs < 4 * bins:
            raise ValueError(f"runs must be even and at least 4·bins = {4 * bins} (half at θ, half at θ_ref); "
                             f"got {runs}.")
        ref = reference_of(sim, reference)
        theta_rows, ref_rows = _draw(sim, runs // 2, ref, generator)
    names = checks.theta_names(sim, sim.theta_dim)
    has_log_prob = has_exact(sim)
    found: list[tuple] = []  # (name, where, values (n,), values whose mean is subtracted (m,) or None)
    for where, in_theta, in_ref in _bins(names, theta_rows["theta"], ref_rows["theta"], bins):
        r = ref_rows["log_r"][in_ref].exp()
        r_theta = theta_rows["log_r"][in_theta].exp()
        found.append((f"E[r(x,z|θ,θ_ref)] = 1 (r > {CUT:g}: runs at θ)", where, torch.where(r <= CUT, r, 0.0) - 1,
                      -(r_theta > CUT).to(DTYPE)))
        for j, name in enumerate(names):
            found.append((f"E[t_{name}(x,z|θ)] = 0 (runs at θ)", where, theta_rows["score"][in_theta, j], None))
        if has_log_prob:
            xr, thr = ref_rows["x"][in_ref], ref_rows["theta"][in_ref]
            exact_r = (_log_prob(sim, xr, thr) - _log_prob(sim, xr, ref.expand_as(thr))).exp()
            found.append(("E[(r(x,z) − r(x))/(1 + r(x))] = 0 (at θ_ref)", where, (r - exact_r) / (1 + exact_r),
                          None))
            xt, tht = theta_rows["x"][in_theta], theta_rows["theta"][in_theta]
            log_p, exact_t = log_prob_and_score(sim, xt, tht)
            keep = log_p > -math.inf
            for j, name in enumerate(names):
                diff = (theta_rows["score"][in_theta, j] - exact_t[:, j])[keep]
                found.append((f"E[t_{name}(x,z|θ) − t_{name}(x|θ)] = 0 (at θ)", where, diff, None))
                found.append((f"E[(t_{name}(x,z|θ) − t_{name}(x|θ))·t_{name}(x|θ)] = 0", where,
                              diff * exact_t[keep, j], None))
    made = [_identity(*f) for f in found]
    counted = [i for i in made if i.counted]
    threshold = NormalDist().inv_cdf(1 - alpha / (2 * max(1, len(counted))))
    identities = [i if not i.counted else replace(i, passed=abs(i.z) < threshold) for i in made]
    skipped = []
    if not has_log_prob:
        skipped.append(f"the conditional identities: {sim.name} has no exact log_prob(x, theta).")
    if type(sim).joint_score is not Simulator.joint_score:
        identities.append(_autograd_agreement(sim, ref, generator))
    else:
        skipped.append("hand-written score against autograd: the score is autograd's (no joint_score of its own).")
    report = GoldCheck(sim.name, identities, threshold, alpha, skipped)
    if verbose:
        print(report.table())
    return report


# -- the pieces ---------------------------------------------------------------------------------


def _draw(sim: Simulator, pairs: int, ref: Tensor, generator: torch.Generator) -> tuple[dict, dict]:
    """Pairs of runs as in a data set: at θ_i ~ prior and at θ_ref, each evaluated at θ_i."""
    theta = draw_prior(sim.prior, pairs, generator)
    out = []
    for at in (theta, ref.expand(pairs, -1)):
        draws = sim.sample(at, generator=generator)
        gold = augment(sim, draws, theta, ref)
        out.append({"theta": theta, "x": draws.x.detach().to(DTYPE), "log_r": gold["log_r"].to(DTYPE),
                    "score": gold["score"].to(DTYPE)})
    return out[0], out[1]


def _bins(names, theta_at_theta: Tensor, theta_at_ref: Tensor, bins: int):
    """(label, rows at θ in the bin, rows at θ_ref in the bin) for quantile bins of each component of θ."""
    if bins == 1:
        yield "all runs", torch.ones(len(theta_at_theta), dtype=torch.bool), \
            torch.ones(len(theta_at_ref), dtype=torch.bool)
        return
    both = torch.cat([theta_at_theta, theta_at_ref])
    for j, name in enumerate(names):
        edges = torch.quantile(both[:, j], torch.linspace(0, 1, bins + 1, dtype=DTYPE))
        for b in range(bins):
            lo, hi = edges[b], edges[b + 1]
            last = b == bins - 1

            def inside(t, lo=lo, hi=hi, last=last):
                return (t[:, j] >= lo) & ((t[:, j] <= hi) if last else (t[:, j] < hi))

            label = f"{name} ∈ [{float(lo):.4g}, {float(hi):.4g}{']' if last else ')'}"
            yield label, inside(theta_at_theta), inside(theta_at_ref)


def _identity(name, where, values: Tensor, minus: Tensor | None) -> Identity:
    """The mean of `values` (minus the mean of `minus`, an independent sample), its standard error and miss."""
    values = values[torch.isfinite(values)]
    n = len(values)
    if n < 2 or (minus is not None and len(minus[torch.isfinite(minus)]) < 2):
        return Identity(name, where, math.nan, None, 0.0, n, True, "not tested: fewer than 2 runs", counted=False)
    mean, var = float(values.mean()), float(values.var()) / n
    if minus is not None:
        minus = minus[torch.isfinite(minus)]
        mean, var = mean - float(minus.mean()), var + float(minus.var()) / len(minus)
    se = math.sqrt(var)
    z = mean / se if se > 0 else (0.0 if abs(mean) < 1e-12 else math.copysign(math.inf, mean))
    return Identity(name, where, mean, se, z, n, True)


def _autograd_agreement(sim: Simulator, ref: Tensor, generator: torch.Generator) -> Identity:
    """The hand-written joint score against autograd through joint_log_prob, on fresh runs at θ ~ prior."""
    theta = draw_prior(sim.prior, AUTOGRAD_RUNS, generator)
    draws = sim.sample(theta, generator=generator)
    hand = sim.joint_score(draws, theta).detach().to(DTYPE)
    auto = Simulator.joint_score(sim, draws, theta).detach().to(DTYPE)
    keep = torch.isfinite(auto).all(1) & torch.isfinite(hand).all(1)
    scale = auto[keep].abs().clamp(min=1.0)
    rel = float(((hand[keep] - auto[keep]).abs() / scale).max()) if keep.any() else 0.0
    worst = float((hand[keep] - auto[keep]).abs().max()) if keep.any() else 0.0
    return Identity("hand-written joint_score = autograd of joint_log_prob", "θ ~ prior", worst, None, rel,
                    int(keep.sum()), rel < SCORE_TOLERANCE, "mean ± se column: the largest absolute difference")


__all__ = ["check_gold", "GoldCheck", "Identity"]
