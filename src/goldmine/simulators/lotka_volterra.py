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

so the joint score is t_j = n_j − exp(θ_j) H_j. The populations are recorded every 0.2 time units
(151 points) and reduced to the 9 summary statistics of the paper (`summarize`), not normalized by
a pilot run as there; x is a deterministic function of z, so p(x, z|θ) = p(z|θ).

Runs are capped at `max_events` events. A run that reaches the cap stops there ("overflow"): its x is
NaN and its density is that of the recorded prefix, log p = Σ_{k ≤ cap} [...] without the survival
term, the exact density of "the first max_events events were these". Complete runs with fewer events
and capped prefixes partition the outcomes, so the gold identities hold exactly.

References:
    Papamakarios, Murray, "Fast ε-free inference of simulation models with Bayesian conditional
    density estimation", NeurIPS 2016, appendix F, https://arxiv.org/abs/1605.06376
    Gillespie, "Exact stochastic simulation of coupled chemical reactions", J. Phys. Chem. 81
    (1977) 2340
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .. import checks
from .base import DTYPE, Draws, Simulator, box_prior

INITIAL = (50.0, 100.0)  # (predators X, prey Y)
DURATION = 30.0
STEPS = 150  # observation intervals of 0.2 time units → 151 recorded points
CHANGE = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))  # (ΔX, ΔY) of each event type
X_NAMES = (
    "mean X", "mean Y", "log(var X + 1)", "log(var Y + 1)",
    "autocorr X lag 0.2", "autocorr X lag 0.4", "autocorr Y lag 0.2", "autocorr Y lag 0.4",
    "crosscorr X Y",
)  # fmt: skip
BLOCK = 32  # event steps between refills of random numbers and removal of finished runs
GRAIN = 32768  # event slots replayed at once: torch's grain size, below which ops run on one thread


def _keep(mask: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
    """The rows of each tensor where mask is True."""
    idx = mask.nonzero()[:, 0]
    return tuple(t.index_select(0, idx) for t in tensors)


def summarize(series: Tensor) -> Tensor:
    """The 9 summary statistics of recorded populations: (n, m, 2) → (n, 9), in the order X_NAMES.

    With u = s − mean(s) and v = mean(u²) (the variance with divisor m) of each series s:
    mean(s); log(v + 1), the +1 keeping an extinct (constant) series finite; the autocorrelation
    at lag l = 1, 2 grid steps, Σ_{i<m−l} u_i u_{i+l} / Σ_i u_i²; and the cross-correlation
    Σ_i u_i u′_i / √(Σ_i u_i² Σ_i u′_i²) of X and Y. A (co)rrelation with a constant series is 0.
    """
    m = series.shape[1]
    mean = series.mean(dim=1)  # (n, 2)
    u = series - mean[:, None]
    var = (u * u).mean(dim=1)
    safe = torch.where(var > 0, var, torch.ones_like(var))  # constant series: numerators are 0 too
    ac1 = (u[:, 1:] * u[:, :-1]).sum(dim=1) / m / safe
    ac2 = (u[:, 2:] * u[:, :-2]).sum(dim=1) / m / safe
    cc = (u[..., 0] * u[..., 1]).mean(dim=1) / (safe[:, 0] * safe[:, 1]).sqrt()
    logvar = torch.log1p(var)
    return torch.stack(
        [mean[:, 0], mean[:, 1], logvar[:, 0], logvar[:, 1], ac1[:, 0], ac2[:, 0], ac1[:, 1], ac2[:, 1], cc],
        dim=1,
    )


class LotkaVolterra(Simulator):
    """Lotka–Volterra of Papamakarios & Murray (2016): θ = 4 log-rates, x = 9 summary statistics.

    Prior uniform on [−5, 2]⁴, θ_ref = log(0.01, 0.5, 1, 0.01). The runs of a batch advance together,
    one Python step per event; a run that went extinct (X = Y = 0, no propensity left) stops and its
    populations stay constant. Once the predators are gone the prey is a pure birth process, which is
    filled in at once. At θ_ref about half of the runs see the prey die out before T (and then the
    predators); in the others both populations oscillate around (c₂/c₃, c₁/c₀) = (100, 50) with
    period ≈ 2π/√(c₁c₂) ≈ 9.

    Overflow: a run that reaches `max_events` events stops there, its x is NaN in every component
    (training code drops such rows) and `z["overflow"]` is True. At θ_ref the runs that keep their
    predators take 6100 ± 600 events (at most 8300 in 4400 such runs), those that lose their prey
    fewer: far below the default cap of 20 000. About 0.8% of the runs at θ_ref lose their
    predators while prey remain; the prey then grows like Y·e^(c₂t), and unless that happens close
    to T no cap holds it: those runs overflow.

    The latent z is a dict: ``times`` (n, max_events) float64, event times padded with T;
    ``events`` (n, max_events) int8, event types 0..3 padded with −1; ``n_events`` (n,) int64;
    ``overflow`` (n,) bool. It costs 9 bytes per event slot: 180 kB per run at the default cap,
    180 MB for a batch of 1000.

    Arguments:
        max_events: the cap on the number of events of a run.

    Example:
        >>> sim = LotkaVolterra(max_events=100)
        >>> draws = sim.sample(sim.reference[None], generator=torch.Generator().manual_seed(0))
        >>> draws.x.shape, draws.z["times"].shape, bool(draws.z["overflow"][0])
        (torch.Size([1, 9]), torch.Size([1, 100]), True)
    """

    name = "lotka-volterra"
    theta_dim = 4
    x_dim = 9
    block_size = 1000  # rows per seed: z takes 9·max_events bytes per row

    def __init__(self, max_events: int = 20_000):
        self.max_events = checks.positive_int(max_events, "max_events")
        self.prior = box_prior([-5.0] * 4, [2.0] * 4)
        self.reference = torch.tensor([0.01, 0.5, 1.0, 0.01], dtype=DTYPE).log()

    def config(self) -> dict:
        return {"max_events": self.max_events}

    # -- simulation ------------------------------------------------------------------------------

    def sample(self, theta, generator: torch.Generator | None = None) -> Draws:
        theta = self.check_theta(theta).detach()
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
        x = summarize(self._observe(z))
        x[z["overflow"]] = math.nan
        return Draws(x, z)

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
            raise ValueError(f"draws.z must be the dict of {keys} that LotkaVolterra.sample returns.")
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

    def joint_log_prob(self, draws: Draws, theta) -> Tensor:
        """log p(z|θ) by replaying the recorded events (module docstring): n runs, θ (n, 4) → (n,)."""
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

    def joint_score(self, draws: Draws, theta) -> Tensor:
        """Hand-written t_j = n_j − exp(θ_j)·H_j with H_j = ∫ h_j(s(t)) dt: no autograd graph."""
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


__all__ = ["LotkaVolterra", "summarize", "X_NAMES"]
