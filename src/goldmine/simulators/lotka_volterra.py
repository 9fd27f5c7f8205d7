"""The stochastic Lotka–Volterra predator–prey model, simulated exactly with Gillespie's algorithm.

A Markov jump process on predators X and prey Y with four reactions, rates c = exp(θ):

    j = 0  predator born   propensity c₀·X·Y   X += 1
    j = 1  predator dies   propensity c₁·X     X −= 1
    j = 2  prey born       propensity c₂·Y     Y += 1
    j = 3  prey eaten      propensity c₃·X·Y   Y −= 1

It starts at X = 50, Y = 100 and runs for T = 30 time units. With total propensity
a(s) = Σ_j c_j h_j(s) the waiting time to the next event is Exp(a(s)) and the event is j with
probability c_j h_j(s)/a(s). The latent z is the whole event path (times t_k, types j_k, k = 1..N):

    log p(z|θ) = Σ_k [log c_{j_k} + log h_{j_k}(s_{k−1}) − a(s_{k−1})·(t_k − t_{k−1})]
                 − a(s_N)·(T − t_N)

(the last term: no event between t_N and T). It is an exponential family in θ,

    log p(z|θ) = Σ_j [n_j θ_j − exp(θ_j) H_j] + const,   n_j = #events of type j,
                                                          H_j = ∫₀ᵀ h_j(s(t)) dt,

so the joint score is t_j = n_j − exp(θ_j) H_j. With H₀ = H₃ = ∫XY dt, the eight numbers
T = (n₀, n₁, n₂, n₃, ∫XY dt, ∫X dt, ∫Y dt, log h(z)), log h(z) = Σ_k log h_{j_k}(s_{k−1}), are
sufficient: log p(z|θ) = η(θ)·T with η(θ) = (θ₀, θ₁, θ₂, θ₃, −c₀ − c₃, −c₁, −c₂, 1)
(`goldmine.simulators.ExponentialFamily`). The simulator accumulates T while it runs, so mining
needs neither the stored path nor its replay. The populations are recorded every 0.2 time units
(151 points) and reduced to the 9 summary statistics of the paper (`summarize`), the means and
variances on the log scale, not normalized by a pilot run as there; x is a deterministic function
of z, so p(x, z|θ) = p(z|θ).

Runs are capped at `max_events` events. A run that reaches the cap stops there ("overflow"): its x is
NaN and its density is that of the recorded prefix, log p = Σ_{k ≤ cap} [...] without the survival
term, the exact density of "the first max_events events were these". Complete runs with fewer events
and capped prefixes partition the outcomes, so the gold identities hold exactly.

Two engines draw the same process. "numba" (`pip install 'goldmine[fast]'`) runs each run's
Gillespie steps in a compiled loop, from its own counter-based random stream (SplitMix64 seeded
per run from the generator); "torch" advances the runs of a batch together, one vectorised step per
event. Each is reproducible from a seed on any number of workers; their streams differ, not their
law.

References:
    Papamakarios, Murray, "Fast ε-free inference of simulation models with Bayesian conditional
    density estimation", NeurIPS 2016, appendix F, https://arxiv.org/abs/1605.06376
    Gillespie, "Exact stochastic simulation of coupled chemical reactions", J. Phys. Chem. 81
    (1977) 2340
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .. import checks
from .base import DTYPE, Draws, ExponentialFamily, box_prior

INITIAL = (50.0, 100.0)  # (predators X, prey Y)
DURATION = 30.0
STEPS = 150  # observation intervals of 0.2 time units → 151 recorded points
CHANGE = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))  # (ΔX, ΔY) of each event type
X_NAMES = (
    "log(mean X + 1)", "log(mean Y + 1)", "log(var X + 1)", "log(var Y + 1)",
    "autocorr X lag 0.2", "autocorr X lag 0.4", "autocorr Y lag 0.2", "autocorr Y lag 0.4",
    "crosscorr X Y",
)  # fmt: skip
BLOCK = 32  # event steps between refills of random numbers and removal of finished runs
GRAIN = 32768  # event slots replayed at once: torch's grain size, below which ops run on one thread
STATS = ("n0", "n1", "n2", "n3", "int XY dt", "int X dt", "int Y dt", "log h")  # T, the sufficient statistics
ENGINES = ("numba", "torch")


def _keep(mask: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
    """The rows of each tensor where mask is True."""
    idx = mask.nonzero()[:, 0]
    return tuple(t.index_select(0, idx) for t in tensors)


def summarize(series: Tensor) -> Tensor:
    """The 9 summary statistics of recorded populations: (n, m, 2) → (n, 9), in the order X_NAMES.

    With u = s − mean(s) and v = mean(u²) (the variance with divisor m) of each series s:
    log(mean(s) + 1) and log(v + 1), the +1 keeping an extinct series finite; the autocorrelation
    at lag l = 1, 2 grid steps, Σ_{i<m−l} u_i u_{i+l} / Σ_i u_i²; and the cross-correlation
    Σ_i u_i u′_i / √(Σ_i u_i² Σ_i u′_i²) of X and Y. A (co)rrelation with a constant series is 0.

    The means enter on the log scale like the variances: under the prior they span orders of
    magnitude (below 1 where the prey dies out at once, thousands where the predators boom), and on
    the linear scale an input standardisation by their spread over the prior squeezes most of them
    into a small part of the input's range that a network hardly resolves (benchmarks/README.md,
    "lotka_volterra"). The log is one-to-one: x keeps its information, only its scale changes.
    """
    m = series.shape[1]
    mean = series.mean(dim=1)  # (n, 2)
    u = series - mean[:, None]
    var = (u * u).mean(dim=1)
    safe = torch.where(var > 0, var, torch.ones_like(var))  # constant series: numerators are 0 too
    ac1 = (u[:, 1:] * u[:, :-1]).sum(dim=1) / m / safe
    ac2 = (u[:, 2:] * u[:, :-2]).sum(dim=1) / m / safe
    cc = (u[..., 0] * u[..., 1]).mean(dim=1) / (safe[:, 0] * safe[:, 1]).sqrt()
    logvar, logmean = torch.log1p(var), torch.log1p(mean)
    return torch.stack(
        [logmean[:, 0], logmean[:, 1], logvar[:, 0], logvar[:, 1], ac1[:, 0], ac2[:, 0], ac1[:, 1], ac2[:, 1], cc],
        dim=1,
    )


# -- the compiled engine -------------------------------------------------------------------------


def _gillespie_runs(rates, seeds, cap, log_int, series, stats, n_events, times, events, record):  # pragma: no cover (compiled)
    """Gillespie's direct method, one run after the other; compiled by numba (`_kernel`).

    rates (n, 4), seeds (n,) uint64, log_int the table of log k for k = 0..100 + cap (the populations);
    writes series (n, 151, 2), stats (n, 8) in the order STATS,
    n_events (n,) and, when `record`, times and events (n, cap). Run i draws from SplitMix64 with
    state seeds[i]: two uniforms per step, U₁ for the wait −log(1 − U₁)/a(s), U₂ for the event.
    """
    golden = np.uint64(0x9E3779B97F4A7C15)
    m1, m2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
    s30, s27, s31, s11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
    unit = 1.0 / 9007199254740992.0  # 2⁻⁵³
    per_time = STEPS / DURATION
    for i in range(rates.shape[0]):
        c0, c1, c2, c3 = rates[i, 0], rates[i, 1], rates[i, 2], rates[i, 3]
        state = seeds[i]
        x, y, clock = INITIAL[0], INITIAL[1], 0.0
        n0 = n1 = n2 = n3 = 0
        hxy = hx = hy = log_h = 0.0
        k, g = 0, 0  # events so far, next grid point to record
        while k < cap:
            xy = x * y
            a0 = c0 * xy
            a01 = a0 + c1 * x
            a012 = a01 + c2 * y
            total = a012 + c3 * xy
            if total <= 0.0:  # extinct: no event any more
                break
            state += golden
            z = state
            z = (z ^ (z >> s30)) * m1
            z = (z ^ (z >> s27)) * m2
            z = z ^ (z >> s31)
            new = clock + -math.log(1.0 - float(z >> s11) * unit) / total
            if not new <= DURATION:
                break
            state += golden
            z = state
            z = (z ^ (z >> s30)) * m1
            z = (z ^ (z >> s27)) * m2
            z = z ^ (z >> s31)
            u = float(z >> s11) * unit * total
            scaled = new * per_time  # the event is seen from grid point ⌈5t⌉ on
            first = int(scaled)
            if first < scaled:
                first += 1
            while g < first and g <= STEPS:
                series[i, g, 0] = x
                series[i, g, 1] = y
                g += 1
            wait = new - clock
            hxy += xy * wait
            hx += x * wait
            hy += y * wait
            if u < a01:
                if u < a0:
                    log_h += log_int[int(x)] + log_int[int(y)]
                    n0 += 1
                    x += 1.0
                    j = 0
                else:
                    log_h += log_int[int(x)]
                    n1 += 1
                    x -= 1.0
                    j = 1
            elif u < a012:
                log_h += log_int[int(y)]
                n2 += 1
                y += 1.0
                j = 2
            else:
                log_h += log_int[int(x)] + log_int[int(y)]
                n3 += 1
                y -= 1.0
                j = 3
            if record:
                times[i, k] = new
                events[i, k] = j
            clock = new
            k += 1
        if k < cap:  # a complete run: no event between its last one and T
            rest = DURATION - clock
            hxy += x * y * rest
            hx += x * rest
            hy += y * rest
        while g <= STEPS:
            series[i, g, 0] = x
            series[i, g, 1] = y
            g += 1
        n_events[i] = k
        stats[i, 0], stats[i, 1], stats[i, 2], stats[i, 3] = n0, n1, n2, n3
        stats[i, 4], stats[i, 5], stats[i, 6], stats[i, 7] = hxy, hx, hy, log_h


_KERNEL = []  # the compiled kernel, once


def _kernel():
    """The numba-compiled `_gillespie_runs` (cached on disk by numba), or None without numba."""
    if not _KERNEL:
        try:
            import numba
        except ImportError:
            _KERNEL.append(None)
        else:
            _KERNEL.append(numba.njit(cache=True, error_model="numpy", nogil=True)(_gillespie_runs))
    return _KERNEL[0]


def default_engine() -> str:
    """"numba" when numba is importable, else "torch"."""
    return "numba" if _kernel() is not None else "torch"


class LotkaVolterra(ExponentialFamily):
    """Lotka–Volterra of Papamakarios & Murray (2016): θ = 4 log-rates, x = 9 summary statistics.

    Prior uniform on [−5, 2]⁴, θ_ref = log(0.01, 0.5, 1, 0.01). A run that went extinct (X = Y = 0,
    no propensity left) stops and its populations stay constant. At θ_ref about half of the runs see
    the prey die out before T (and then the predators); in the others both populations oscillate
    around (c₂/c₃, c₁/c₀) = (100, 50) with period ≈ 2π/√(c₁c₂) ≈ 9.

    θ_ref reaches little of what the prior produces: for most θ of the prior the prey is eaten
    before the first recorded point (t = 0.2), or the predators boom to thousands, and θ_ref does
    neither. Where p(x|θ_ref) = 0 the ratio r(x|θ, θ_ref) of the anchored methods (carl, rolr,
    alice, cascal, rascal, alices) is infinite for every θ that can produce x: classification and
    regression against runs at θ_ref tell nothing about how p(x|θ) changes with θ there (only the
    score term does, near the θ that produced such x). A denominator that covers the prior
    predictive avoids this: nre (p(x|θ)/p(x)), nres (nre with the gold's score term) or a likelihood
    (nle, scandal), on a data set with every run at θ ~ prior (`gm.simulate(..., layout="prior")`);
    benchmarks/README.md, "lotka_volterra", compares them.

    Overflow: a run that reaches `max_events` events stops there, its x is NaN in every component
    (training code drops such rows) and `z["overflow"]` is True. At θ_ref the runs that keep their
    predators take 6100 ± 600 events (at most 8300 in 4400 such runs), those that lose their prey
    fewer: far below the default cap of 20 000. About 0.8% of the runs at θ_ref lose their
    predators while prey remain; the prey then grows like Y·e^(c₂t), and unless that happens close
    to T no cap holds it: those runs overflow.

    Mining reads the sufficient statistics ``draws.stats`` (n, 8), in the order STATS (module
    docstring). The latent z is a dict with ``n_events`` (n,) int64 and ``overflow`` (n,) bool and,
    with ``record_path=True``, the event path: ``times`` (n, max_events) float64, event times padded
    with T, and ``events`` (n, max_events) int8, event types 0..3 padded with −1. The path costs 9
    bytes per event slot (180 kB per run at the default cap); `path_log_prob` and `path_score`
    replay it, and `sufficient_statistics` recomputes T from it when ``draws.stats`` is absent.

    Arguments:
        max_events: the cap on the number of events of a run.
        record_path: keep the event path in z (for replays and `series`); not needed for mining.
        engine: "numba" (compiled, `pip install 'goldmine[fast]'`) or "torch" (runs advance together,
            one vectorised step per event); by default numba when it is installed. The two draw
            different streams of the same law, so a seed reproduces its data with the same engine.

    Example:
        >>> sim = LotkaVolterra(max_events=100, record_path=True)
        >>> draws = sim.sample(sim.reference[None], generator=torch.Generator().manual_seed(0))
        >>> draws.x.shape, draws.stats.shape, draws.z["times"].shape, bool(draws.z["overflow"][0])
        (torch.Size([1, 9]), torch.Size([1, 8]), torch.Size([1, 100]), True)
    """

    name = "lotka-volterra"
    theta_dim = 4
    theta_names = ("log_c0", "log_c1", "log_c2", "log_c3")  # predator born, predator dies, prey born, prey eaten
    x_dim = 9
    block_size = 1000  # rows per seed: a recorded path takes 9·max_events bytes per row

    def __init__(self, max_events: int = 20_000, record_path: bool = False, engine: str | None = None):
        self.max_events = checks.positive_int(max_events, "max_events")
        if not isinstance(record_path, bool):
            raise ValueError(f"record_path must be True or False; got {record_path!r}.")
        self.record_path = record_path
        if engine is not None and engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES} or None (numba when installed); got {engine!r}.")
        if engine == "numba" and _kernel() is None:
            raise ImportError("engine='numba' needs numba: pip install 'goldmine[fast]' (or engine='torch').")
        self.engine = engine
        self.prior = box_prior([-5.0] * 4, [2.0] * 4)
        self.reference = torch.tensor([0.01, 0.5, 1.0, 0.01], dtype=DTYPE).log()

    def config(self) -> dict:
        # the engine is left out: it changes the stream of a seed, not the law of the data
        return {"max_events": self.max_events, **({"record_path": True} if self.record_path else {})}

    # -- simulation ------------------------------------------------------------------------------

    def sample(self, theta, generator: torch.Generator | None = None) -> Draws:
        theta = self.check_theta(theta).detach()
        engine = self.engine or default_engine()
        if engine == "numba":
            return self._sample_numba(theta, generator)
        z = self._sample_torch(theta, generator)
        x = summarize(self._observe(z))
        x[z["overflow"]] = math.nan
        stats = self._path_statistics(z)
        if not self.record_path:
            z = {k: z[k] for k in ("n_events", "overflow")}
        return Draws(x, z, stats)

    def _sample_numba(self, theta: Tensor, generator) -> Draws:
        n, cap = theta.shape[0], self.max_events
        seeds = torch.randint(-(2**63), 2**63 - 1, (n,), dtype=torch.int64, generator=generator)
        series = np.empty((n, STEPS + 1, 2))
        stats = np.empty((n, len(STATS)))
        n_events = np.empty(n, dtype=np.int64)
        width = cap if self.record_path else 0
        times = np.full((n, width), DURATION)
        events = np.full((n, width), -1, dtype=np.int8)
        log_int = np.log(np.arange(1.0, int(INITIAL[1]) + cap + 1))  # log k at k − 1
        log_int = np.concatenate([[-math.inf], log_int])
        _kernel()(theta.exp().numpy(), seeds.numpy().view(np.uint64), cap, log_int, series, stats, n_events, times, events,
                  self.record_path)
        z = {"n_events": torch.from_numpy(n_events)}
        z["overflow"] = z["n_events"] == cap
        if self.record_path:
            z["times"], z["events"] = torch.from_numpy(times), torch.from_numpy(events)
        x = summarize(torch.from_numpy(series))
        x[z["overflow"]] = math.nan
        return Draws(x, z, torch.from_numpy(stats))

    def _sample_torch(self, theta: Tensor, generator) -> dict:
        """The event paths of runs that advance together, one vectorised step per event (and the
        pure-birth tail of runs without predators at once): z with times, events, n_events, overflow."""
        n, cap = theta.shape[0], self.max_events
        rates = theta.exp()
        change = torch.tensor(CHANGE + ((0.0, 0.0),), dtype=DTYPE)  # type 4: no event (run over)
        z = {
            "times": torch.full((n, cap), DURATION, dtype=DTYPE),
            "events": torch.full((n, cap), -1, dtype=torch.int8),
            "n_events": torch.zeros(n, dtype=torch.long),
        }
        # the runs still going: their rows in the batch, state (X, Y) and clock
        rows = torch.arange(n)
        state = torch.tensor(INITIAL, dtype=DTYPE).repeat(n, 1)
        clock = torch.zeros(n, dtype=DTYPE)
        k = 0
        while k < cap and rows.numel() > 0:
            rows, state, clock = self._fill_prey_births(rows, state, clock, rates, k, z, generator)
            if rows.numel() == 0:
                break
            m, steps = rows.numel(), min(BLOCK, cap - k)
            c0, c1, c2, c3 = rates.index_select(0, rows).unbind(dim=1)
            expo = torch.empty(steps, m, dtype=DTYPE).exponential_(generator=generator)
            unif = torch.rand(steps, m, dtype=DTYPE, generator=generator)
            block_t = torch.empty(steps, m, dtype=DTYPE)
            block_j = torch.empty(steps, m, dtype=torch.long)
            live = torch.ones(m, dtype=torch.bool)
            for b in range(steps):
                # elementwise ops only: searchsorted over rows and small reductions cost more per
                # step and multithread badly on small tensors
                x, y = state[:, 0], state[:, 1]
                xy = x * y
                a0 = c0 * xy
                a01 = a0 + c1 * x
                a012 = a01 + c2 * y
                total = a012 + c3 * xy
                clock = clock + expo[b] / total  # total = 0 (extinct): infinite wait, the run ends
                live &= clock <= DURATION
                u = unif[b] * total
                j = torch.where(u < a01, torch.where(u < a0, 0, 1), torch.where(u < a012, 2, 3))
                j = torch.where(live, j, 4)
                state = state + change.index_select(0, j)
                block_t[b] = clock
                block_j[b] = j
            happened = block_j < 4
            # index_copy_ rather than indexed assignment, which is slow on a busy machine
            block_t = torch.where(happened, block_t, DURATION)
            block_j = torch.where(happened, block_j, -1).to(torch.int8)
            z["times"][:, k : k + steps].index_copy_(0, rows, block_t.T)
            z["events"][:, k : k + steps].index_copy_(0, rows, block_j.T)
            z["n_events"].index_add_(0, rows, happened.sum(dim=0))
            k += steps
            rows, state, clock = _keep(live, rows, state, clock)
        z["overflow"] = z["n_events"] == cap
        return z

    def _fill_prey_births(self, rows, state, clock, rates, k, z, generator):
        """Runs without predators but with prey only see prey births, at rate c₂·Y: their whole
        remaining path (up to T or the cap, from event k on) is drawn at once. Returns the others."""
        pure = (state[:, 0] == 0) & (state[:, 1] > 0)
        if not bool(pure.any()):
            return rows, state, clock
        filled, prey, start = _keep(pure, rows, state[:, 1:2], clock[:, None])
        prey = prey + torch.arange(self.max_events - k, dtype=DTYPE)  # (r, slots): Y before each birth
        waits = torch.empty_like(prey).exponential_(generator=generator)
        t = start + (waits / (rates.index_select(0, filled)[:, 2:3] * prey)).cumsum(dim=1)
        inside = t <= DURATION
        z["times"][:, k:].index_copy_(0, filled, torch.where(inside, t, DURATION))
        z["events"][:, k:].index_copy_(0, filled, torch.where(inside, 2, -1).to(torch.int8))
        z["n_events"].index_add_(0, filled, inside.sum(dim=1))
        return _keep(~pure, rows, state, clock)

    # -- replay ----------------------------------------------------------------------------------

    @staticmethod
    def _check_z(z, n: int | None = None) -> None:
        keys = ("times", "events", "n_events", "overflow")
        if not isinstance(z, dict) or any(k not in z for k in keys):
            raise ValueError(
                f"draws.z must be the dict of {keys} that LotkaVolterra(record_path=True).sample returns: "
                "the event path is recorded only with record_path=True."
            )
        if n is not None and any(z[k].shape[0] != n for k in keys):
            raise ValueError(
                f"draws.z holds {z['times'].shape[0]} runs but theta has {n} rows: give one row of "
                "theta per recorded run."
            )

    @staticmethod
    def _map_chunks(z: dict, fn) -> Tensor:
        """fn(rows, j, times, n_events, overflow) over groups of runs of similar length, each
        trimmed to its longest path, outputs put back in the order of the runs.

        A group holds at most GRAIN event slots, so memory stays bounded and torch runs each op on
        one thread: the replay is memory-bound, and it does not stall on thread synchronisation
        when parallel workers or other jobs share the cores.
        """
        n_events = z["n_events"].long()
        order = torch.argsort(n_events, descending=True, stable=True)
        lengths = n_events[order].clamp(min=1).tolist()
        outputs, start = [], 0
        while start < len(lengths):
            width = lengths[start]
            rows = order[start : start + max(1, GRAIN // width)]
            j = z["events"].narrow(1, 0, width).index_select(0, rows).long()
            times = z["times"].narrow(1, 0, width).index_select(0, rows).to(DTYPE)
            ends = n_events.index_select(0, rows), z["overflow"].index_select(0, rows)
            outputs.append(fn(rows, j, times, *ends))
            start += rows.numel()
        return torch.cat(outputs)[torch.argsort(order)]

    @staticmethod
    def _replay(j: Tensor, times: Tensor, n_events: Tensor, overflow: Tensor) -> dict:
        """Recomputes the states along recorded paths j, times: (m, K) (j = −1: padding).

        Returns ``valid`` (m, K), the state before each event ``x``, ``y`` (m, K), the waiting times
        ``wait`` (m, K) (0 on padding), the final state ``x_end``, ``y_end`` (m,) and the time
        ``rest`` (m,) from the last event to T (0 for runs that overflowed: no survival term).
        """
        m = j.shape[0]
        valid = j >= 0
        times = torch.where(valid, times, 0.0)
        x_after = INITIAL[0] + ((j == 0).to(DTYPE) - (j == 1).to(DTYPE)).cumsum(dim=1)
        y_after = INITIAL[1] + ((j == 2).to(DTYPE) - (j == 3).to(DTYPE)).cumsum(dim=1)
        x = torch.cat([torch.full((m, 1), INITIAL[0], dtype=DTYPE), x_after[:, :-1]], dim=1)
        y = torch.cat([torch.full((m, 1), INITIAL[1], dtype=DTYPE), y_after[:, :-1]], dim=1)
        before = torch.cat([torch.zeros(m, 1, dtype=DTYPE), times[:, :-1]], dim=1)
        last = times.gather(1, (n_events - 1).clamp(min=0)[:, None])[:, 0]
        return {
            "valid": valid, "x": x, "y": y, "wait": torch.where(valid, times - before, 0.0),
            "x_end": x_after[:, -1], "y_end": y_after[:, -1],
            "rest": torch.where(overflow, 0.0, DURATION - last),
        }  # fmt: skip

    def _observe(self, z: dict) -> Tensor:
        """Populations at t_i = i/5, i = 0..150, from the event paths: (n, 151, 2). An event at
        time t is seen from grid point ⌈5t⌉ on (t ≤ t_i, up to rounding at the grid points)."""

        def observe(rows, j, times, n_events, overflow):
            scaled = times * (STEPS / DURATION)
            first = scaled.long()
            first = first + (first < scaled)  # ⌈5t⌉ from elementwise ops, which stay single-threaded
            flat = (torch.arange(j.shape[0])[:, None] * (STEPS + 1) + first).reshape(-1)
            bins = torch.zeros(j.shape[0] * (STEPS + 1), 2, dtype=DTYPE)
            bins[:, 0].index_add_(0, flat, ((j == 0).to(DTYPE) - (j == 1).to(DTYPE)).reshape(-1))
            bins[:, 1].index_add_(0, flat, ((j == 2).to(DTYPE) - (j == 3).to(DTYPE)).reshape(-1))
            return bins.reshape(j.shape[0], STEPS + 1, 2).cumsum(dim=1)

        return torch.tensor(INITIAL, dtype=DTYPE) + self._map_chunks(z, observe)

    def series(self, draws: Draws) -> Tensor:
        """The recorded populations (X, Y) at t = 0, 0.2, ..., 30: (n, 151, 2). An overflowed run
        keeps the populations of its last recorded event."""
        self._check_z(draws.z)
        return self._observe(draws.z)

    # -- mining from the sufficient statistics -------------------------------------------------

    def natural_parameters(self, theta) -> Tensor:
        """η(θ) = (θ₀, θ₁, θ₂, θ₃, −c₀ − c₃, −c₁, −c₂, 1), c = e^θ: (n, 4) → (n, 8), the order of STATS."""
        c = theta.exp()
        return torch.cat([theta, -(c[:, 0:1] + c[:, 3:4]), -c[:, 1:3], torch.ones_like(theta[:, :1])], dim=1)

    def sufficient_statistics(self, draws: Draws) -> Tensor:
        """T = (n₀..n₃, ∫XY dt, ∫X dt, ∫Y dt, log h(z)), (n, 8): ``draws.stats``, or from the recorded path."""
        if draws.stats is not None:
            return torch.as_tensor(draws.stats, dtype=DTYPE)
        self._check_z(draws.z)
        return self._path_statistics(draws.z)

    def joint_score(self, draws: Draws, theta) -> Tensor:
        """Hand-written t_j = n_j − c_j·H_j from the statistics (H₀ = H₃ = ∫XY dt): no autograd graph."""
        theta = self.check_theta(theta).detach()
        stats = self.sufficient_statistics(draws)
        if stats.shape[0] != theta.shape[0]:
            raise ValueError(f"the draws hold {stats.shape[0]} runs but theta has {theta.shape[0]} rows: give one row "
                             "of theta per recorded run.")
        return stats[:, 0:4] - theta.exp() * stats[:, [4, 5, 6, 4]]

    def _path_statistics(self, z: dict) -> Tensor:
        """T of recorded paths, by replay: (n, 8)."""
        largest = int(INITIAL[1]) + int(z["n_events"].max())
        log_int = torch.arange(largest + 1, dtype=DTYPE).log()

        def statistics(rows, j, times, n_events, overflow):
            r = self._replay(j, times, n_events, overflow)
            counts = [(j == k).sum(dim=1).to(DTYPE) for k in range(4)]
            x_end, y_end, rest = r["x_end"], r["y_end"], r["rest"]
            log_x = log_int.index_select(0, r["x"].long().reshape(-1)).reshape(j.shape)
            log_y = log_int.index_select(0, r["y"].long().reshape(-1)).reshape(j.shape)
            log_h = torch.where(j == 1, log_x, torch.where(j == 2, log_y, log_x + log_y))
            return torch.stack([
                *counts,
                (r["x"] * r["y"] * r["wait"]).sum(dim=1) + x_end * y_end * rest,
                (r["x"] * r["wait"]).sum(dim=1) + x_end * rest,
                (r["y"] * r["wait"]).sum(dim=1) + y_end * rest,
                torch.where(r["valid"], log_h, 0.0).sum(dim=1),
            ], dim=1)  # fmt: skip

        return self._map_chunks(z, statistics)

    # -- the reference: replay of the recorded path ------------------------------------------------

    def path_log_prob(self, draws: Draws, theta) -> Tensor:
        """log p(z|θ) by replaying the recorded events one by one (module docstring), the reference that
        `joint_log_prob` (from the statistics) is tested against: n runs, θ (n, 4) → (n,)."""
        theta = self.check_theta(theta)
        self._check_z(draws.z, theta.shape[0])
        # populations are integers below 100 + n_events: their logs come from a table, as a log
        # over every event would run multithreaded, which stalls on a busy machine
        largest = int(INITIAL[1]) + int(draws.z["n_events"].max())
        log_int = torch.arange(largest + 1, dtype=DTYPE).log()

        def replay(rows, j, times, n_events, overflow):
            r = self._replay(j, times, n_events, overflow)
            th = theta[rows]
            c = th.exp()
            xy = r["x"] * r["y"]
            log_x = log_int.index_select(0, r["x"].long().reshape(-1)).reshape(j.shape)
            log_y = log_int.index_select(0, r["y"].long().reshape(-1)).reshape(j.shape)
            log_h = torch.where(j == 1, log_x, torch.where(j == 2, log_y, log_x + log_y))
            total = (c[:, 0:1] + c[:, 3:4]) * xy + c[:, 1:2] * r["x"] + c[:, 2:3] * r["y"]
            per_event = th.gather(1, j.clamp(min=0)) + log_h - total * r["wait"]
            x_end, y_end = r["x_end"], r["y_end"]
            total_end = (c[:, 0] + c[:, 3]) * x_end * y_end + c[:, 1] * x_end + c[:, 2] * y_end
            return torch.where(r["valid"], per_event, 0.0).sum(dim=1) - total_end * r["rest"]

        return self._map_chunks(draws.z, replay)

    def path_score(self, draws: Draws, theta) -> Tensor:
        """t_j = n_j − exp(θ_j)·H_j by replaying the recorded events: (n, 4), the reference of `joint_score`."""
        theta = self.check_theta(theta).detach()
        self._check_z(draws.z, theta.shape[0])

        def score(rows, j, times, n_events, overflow):
            r = self._replay(j, times, n_events, overflow)
            counts = torch.stack([(j == k).sum(dim=1) for k in range(4)], dim=1).to(DTYPE)
            x_end, y_end, rest = r["x_end"], r["y_end"], r["rest"]
            xy_time = (r["x"] * r["y"] * r["wait"]).sum(dim=1) + x_end * y_end * rest
            x_time = (r["x"] * r["wait"]).sum(dim=1) + x_end * rest
            y_time = (r["y"] * r["wait"]).sum(dim=1) + y_end * rest
            return counts - theta[rows].exp() * torch.stack([xy_time, x_time, y_time, xy_time], dim=1)

        return self._map_chunks(draws.z, score)


__all__ = ["LotkaVolterra", "summarize", "X_NAMES", "STATS", "default_engine"]
